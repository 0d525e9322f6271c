"""This machine: /proc/zoneinfo and /proc/iomem parsing, and a topology that boots."""

from fastinit.machine.host import parse_iomem, parse_zoneinfo, this_machine

ZONEINFO = """\
Node 0, zone      DMA
  per-node stats
      nr_inactive_anon 365
  pages free     3840
        spanned  4095
        present  3998
        managed  3840
  start_pfn:           1
Node 0, zone    DMA32
        spanned  1044480
        present  782336
        managed  772808
  start_pfn:           4096
Node 0, zone   Normal
        spanned  5505024
        present  5505024
        managed  3604480
  start_pfn:           1048576
Node 0, zone  Movable
        spanned  0
        present  0
        managed  0
"""

IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-000fffff : Reserved
00100000-bfffffff : System RAM
  01000000-01ffffff : Kernel code
100000000-63fffffff : System RAM
4000000000-7fffffffff : PCI Bus 0000:00
"""

HIDDEN_IOMEM = IOMEM.replace("00001000-0009fbff", "00000000-00000000") \
    .replace("00100000-bfffffff", "00000000-00000000") \
    .replace("100000000-63fffffff", "00000000-00000000")


def test_parse_zoneinfo_keeps_populated_zones():
    zones = parse_zoneinfo(ZONEINFO)
    assert sorted(zones) == [(0, "DMA"), (0, "DMA32"), (0, "Normal")]
    assert zones[(0, "DMA32")] == {"spanned": 1044480, "present": 782336,
                                   "managed": 772808, "start_pfn": 4096}


def test_parse_iomem_top_level_ram_trimmed_to_pages():
    assert parse_iomem(IOMEM) == [(1, 0x9F), (0x100, 0xC0000), (0x100000, 0x640000)]


def test_machine_from_texts_matches_zoneinfo(tmp_path):
    topology = this_machine(ZONEINFO, IOMEM, sysfs_nodes=tmp_path)
    assert topology.notes == ()
    assert [z.present for z in topology.zones(0)] == [3998, 782336, 5505024]
    assert [z.spanned for z in topology.zones(0)] == [4095, 1044480, 5505024]


def test_hidden_iomem_falls_back_to_zone_spans_with_a_note(tmp_path):
    topology = this_machine(ZONEINFO, HIDDEN_IOMEM, sysfs_nodes=tmp_path)
    assert "hides addresses" in topology.notes[0]
    assert topology.nodes[0].ranges == ((1, 0x640000),)


def test_this_machine_reads_proc():
    topology = this_machine()
    assert topology.present_pages > 0
    assert all(node.cpus >= 0 for node in topology.nodes)


# The same DMA and DMA32; Normal ends where the movable zone starts.
MOVABLE_ZONEINFO = ZONEINFO.split("Node 0, zone   Normal")[0] + """\
Node 0, zone   Normal
        spanned  786432
        present  786432
  start_pfn:           1048576
Node 0, zone  Movable
        spanned  262144
        present  262144
  start_pfn:           1835008
"""
MOVABLE_IOMEM = """\
00001000-0009efff : System RAM
00100000-bfffffff : System RAM
100000000-1ffffffff : System RAM
"""


def test_host_booted_with_movablecore_has_the_movable_zone_its_zoneinfo_shows():
    # 1 GiB movable of 1834910 pages: the kernel keeps 1572766, 158 + 786176 of them below
    # 4 GiB, so ZONE_MOVABLE starts 786432 pages into Normal, at 1835008 (1024-aligned).
    topology = this_machine(MOVABLE_ZONEINFO, MOVABLE_IOMEM, cmdline="ro movablecore=1G")
    assert [(z.name, z.start_pfn, z.present) for z in topology.zones(0)][-2:] == \
        [("Normal", 1048576, 786432), ("Movable", 1835008, 262144)]
    assert not topology.notes
    # Without the command line the derived Normal zone disagrees with zoneinfo, and says so.
    plain = this_machine(MOVABLE_ZONEINFO, MOVABLE_IOMEM, cmdline="")
    assert any("zone Normal" in note for note in plain.notes)
