"""Zones per node and ZONE_MOVABLE, against cases worked by hand from the kernel's rules
(find_zone_movable_pfns_for_nodes(), adjust_zone_range_for_zone_movable()), and ZONE_MOVABLE
through a whole boot."""

from fastinit.layout import ZONE_MOVABLE
from fastinit.machine.cmdline import CoreSize, parse_cmdline
from fastinit.machine.spec import parse_spec
from fastinit.machine.topology import Node, Topology
from fastinit.machine.zones import arch_zone_windows, movable_zone, node_zones, zone_movable_pfns

# 2 GiB below 4 GiB from 1 MiB: DMA [256, 4096), DMA32 [4096, 524288), no Normal.
LOW = {0: [(256, 524288)]}
LOW_WINDOWS = arch_zone_windows(256, 524288)


def test_windows_start_at_the_first_pfn_of_ram_and_end_at_its_end():
    assert LOW_WINDOWS == [(256, 4096), (4096, 524288), (524288, 524288)]
    assert movable_zone(LOW_WINDOWS) == 1  # DMA32: Normal has no window


def test_kernelcore_percent_on_one_node():
    # total 524032 pages; 25% = 131008 for the kernel. The 3840 DMA pages count as kernel
    # pages; the other 127168 come from DMA32 from 4096, up to 131264, rounded up to 1024.
    starts = zone_movable_pfns(LOW, LOW_WINDOWS, CoreSize(percent=25), None)
    assert starts == {0: 132096}
    assert node_zones(LOW[0], LOW_WINDOWS, starts[0]) == [
        (0, 256, 4096, 3840), (1, 4096, 132096, 128000), (ZONE_MOVABLE, 132096, 524288, 392192)]


def test_movablecore_is_rounded_up_to_a_max_order_block_and_leaves_the_rest_to_the_kernel():
    # 100 MiB = 25600 pages (already a multiple of 1024): the kernel keeps 498432 pages.
    starts = zone_movable_pfns(LOW, LOW_WINDOWS, None, CoreSize(pages=25600))
    assert starts == {0: 498688}
    assert node_zones(LOW[0], LOW_WINDOWS, starts[0])[-1] == (ZONE_MOVABLE, 498688, 524288, 25600)


def test_kernelcore_spread_over_nodes_then_the_rest_on_nodes_that_still_have_memory():
    # kernelcore=1G (262144 pages) over node 0 [256, 131072) and node 1 [131072, 524288):
    # 131072 each; node 0 has only 130816 (3840 of them below DMA32), so a second pass gives
    # the missing 256 to node 1, whose movable zone then starts at 262400, rounded to 263168.
    # Node 0's start is its end: no movable zone there.
    ranges = {0: [(256, 131072)], 1: [(131072, 524288)]}
    starts = zone_movable_pfns(ranges, LOW_WINDOWS, CoreSize(pages=262144), None)
    assert starts == {1: 263168}
    assert node_zones(ranges[1], LOW_WINDOWS, starts[1]) == [
        (1, 131072, 263168, 132096), (ZONE_MOVABLE, 263168, 524288, 261120)]


def test_no_movable_zone_when_the_kernel_asks_for_everything():
    assert zone_movable_pfns(LOW, LOW_WINDOWS, CoreSize(percent=100), None) == {}
    assert zone_movable_pfns(LOW, LOW_WINDOWS, CoreSize(pages=0), None) == {}
    assert zone_movable_pfns(LOW, LOW_WINDOWS, CoreSize(pages=1 << 30), None) == {}


def test_a_zone_between_two_ranges_spans_pages_but_has_none():
    ranges = [(256, 4096), (1048576, 1310720)]
    windows = arch_zone_windows(256, 1310720)
    assert node_zones(ranges, windows, None) == [
        (0, 256, 4096, 3840), (1, 4096, 1048576, 0), (2, 1048576, 1310720, 262144)]
    topology = Topology((Node(0, 1, tuple(ranges)),))
    assert [z.zid for z in topology.zones(0)] == [0, 2]  # populated zones only
    assert [z.zid for z in topology.zones(0, spanned=True)] == [0, 1, 2]


def test_movable_zone_is_cut_from_normal_above_4_gib():
    topology = parse_spec("1x8G,cpus=2", cmdline="movablecore=2G")
    (start,) = topology.movable_start.values()
    zones = topology.zones(0)
    assert [z.name for z in zones] == ["DMA", "DMA32", "Normal", "Movable"]
    assert zones[2].end_pfn == zones[3].start_pfn == start
    assert zones[3].present == 2 << 18 and zones[3].end_pfn == topology.node(0).end_pfn
    # Deferred init defers the node's highest zone: now the movable one.
    assert zones[3].start_pfn <= topology.first_deferred_pfn(0) < zones[3].end_pfn


def test_spec_without_a_command_line_is_unchanged_by_an_empty_one():
    spec = "2x4G+1x0:2,cpus=2"
    assert parse_spec(spec, cmdline="").nodes == parse_spec(spec).nodes


def test_boot_with_a_movable_zone_verifies():
    from fastinit import boot
    from fastinit.mm.verify import verify
    topology = parse_spec("2x1G,cpus=2", cmdline="movablecore=40%")
    result = boot(topology, threads=2)
    report = verify(result)
    assert report.ok, report
    for node in result.plan.nodes:
        assert node.zones[-1].zid == ZONE_MOVABLE and node.deferred_zone.zid == ZONE_MOVABLE
        assert result.zones[(node.nid, ZONE_MOVABLE)].managed > 0


def test_kernelcore_and_movablecore_from_the_same_line_take_the_larger_kernel_share():
    # movablecore=25% leaves 75% to the kernel; kernelcore=90% asks for more: it wins.
    both = parse_cmdline("movablecore=25% kernelcore=90%")
    alone = parse_cmdline("kernelcore=90%")
    assert zone_movable_pfns(LOW, LOW_WINDOWS, both.kernelcore, both.movablecore) == \
        zone_movable_pfns(LOW, LOW_WINDOWS, alone.kernelcore, None)


def test_memmap_file_keeps_the_movable_zone_for_a_later_verify(tmp_path):
    from fastinit import boot
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    topology = parse_spec("1x1G,cpus=2", cmdline="movablecore=30%")
    path = str(tmp_path / "movable.bin")
    boot(topology, threads=2, memmap_file=path)
    loaded = load(path)
    assert loaded.plan.topology.movable_start == topology.movable_start
    assert verify(loaded).ok
    # The same machine without its command line has other zones: another machine.
    import pytest
    with pytest.raises(ValueError, match="another machine"):
        load(path, parse_spec("1x1G,cpus=2"))
