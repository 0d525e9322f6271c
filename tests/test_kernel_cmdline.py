"""The kernel command line acting on machines: from a boot log's ``Command line:`` and from
``--cmdline`` on a spec; and ``fastinit topology --dmesg`` saying in its exit status whether
the kernel's printed figures agree."""

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cli_run import run
from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.spec import parse_spec

BIOS = ["Command line: {cmdline}",
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved",
        "BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable",
        "BIOS-e820: [mem 0x00000000bffe0000-0x00000000bfffffff] reserved",
        "BIOS-e820: [mem 0x0000000100000000-0x000000023fffffff] usable"]
LOG = Path(__file__).parent / "data" / "dmesg" / "hyperv-2node-3.15.txt"


def log(cmdline: str, *more: str) -> str:
    return "\n".join([BIOS[0].format(cmdline=cmdline)] + BIOS[1:] + list(more))


def test_page_zero_is_reserved_without_the_debug_line():
    topology = parse_bootlog(log(""))
    assert topology.node(0).ranges[0] == (1, 0x9F)
    assert topology.zones(0)[0].spanned == 4095


def test_mem_on_the_command_line_cuts_a_bios_map_printed_without_a_user_map():
    topology = parse_bootlog(log("quiet mem=2G"))
    assert topology.max_pfn == 2 << 18


def test_mem_removal_line_reaching_past_52_bits_is_read():
    # Was: "address beyond 52-bit physical memory", so a genuine mem= log could not be read.
    text = log("mem=2372M", "e820: remove [mem 0x94400000-0xfffffffffffffffe] usable",
               "user-defined physical RAM map:",
               "user: [mem 0x0000000000000000-0x000000000009fbff] usable",
               "user: [mem 0x0000000000100000-0x00000000943fffff] usable")
    assert parse_bootlog(text).max_pfn == 0x94400


def test_user_map_already_holds_the_command_lines_edits():
    # memmap=1G@4G is in the printed user map; applying it again must not add RAM twice
    # (it would not), and a user map without it means the kernel did not apply it.
    text = log("memmap=64M$0x10000000", "user-defined physical RAM map:",
               "user: [mem 0x0000000000000000-0x000000000009fbff] usable",
               "user: [mem 0x0000000000100000-0x00000000bffdffff] usable")
    assert parse_bootlog(text).node(0).ranges == ((1, 0x9F), (0x100, 0xBFFE0))


def test_kernel_image_outside_the_map_comes_back_as_ram_where_the_debug_line_says():
    text = log("memmap=exactmap memmap=636K@0 memmap=256M@1M", "user-defined physical RAM map:",
               "user: [mem 0x0000000000000000-0x000000000009efff] usable",
               "user: [mem 0x0000000000100000-0x00000000100fffff] usable",
               ".text .data .bss are not marked as E820_TYPE_RAM!",
               "e820: remove [mem 0xa4a00000-0xa7e2ffff] ")
    topology = parse_bootlog(text)
    assert topology.node(0).ranges[-1] == (0xA4A00, 0xA7E30)
    assert not any("loglevel=8" in note for note in topology.notes)


def test_kernel_image_outside_the_map_without_the_debug_line_is_said():
    text = log("memmap=exactmap memmap=636K@0 memmap=256M@1M", "user-defined physical RAM map:",
               "user: [mem 0x0000000000100000-0x00000000100fffff] usable",
               ".text .data .bss are not marked as E820_TYPE_RAM!")
    assert any("loglevel=8" in note for note in parse_bootlog(text).notes)


def test_srat_beyond_ram_cut_by_mem_gives_a_memoryless_node():
    # Was: "lies beyond all usable RAM ... the e820 map looks truncated".
    text = log("mem=2G", "SRAT: PXM 0 -> APIC 0x00 -> Node 0",
               "SRAT: Node 0 PXM 0 [mem 0x00000000-0xbfffffff]",
               "SRAT: Node 1 PXM 1 [mem 0x100000000-0x23fffffff]")
    topology = parse_bootlog(text)
    assert [(n.nid, bool(n.ranges)) for n in topology.nodes] == [(0, True), (1, False)]


def test_numa_off_and_numa_fake_from_the_log():
    srat = ["SRAT: Node 0 PXM 0 [mem 0x00000000-0xbfffffff]",
            "SRAT: Node 1 PXM 1 [mem 0x100000000-0x23fffffff]"]
    assert len(parse_bootlog(log("numa=off", *srat)).nodes) == 1
    assert len(parse_bootlog(log("numa=noacpi", *srat)).nodes) == 1
    # 8 GiB in 4 fake nodes of 2 GiB: physical node 0 has 3 GiB, and 1 GiB would be too
    # little for the next one, so its first fake node takes it all; node 1 gives two.
    assert [n.ranges for n in parse_bootlog(log("numa=fake=4", *srat)).nodes] == [
        ((1, 0x9F), (0x100, 0xBFFE0)), ((0x100000, 0x180000),), ((0x180000, 0x240000),)]


def test_movable_zone_from_the_log_and_its_printed_start_checked():
    text = log("movablecore=1G", "Movable zone start for each node",
               "  Node 0: 0x0000000200000000", "Early memory node ranges")
    topology = parse_bootlog(text)
    assert topology.movable_start == {0: 0x200000}
    assert [z.name for z in topology.zones(0)] == ["DMA", "DMA32", "Normal", "Movable"]


def test_crashkernel_on_a_spec_is_placed_top_down_below_4_gib():
    topology = parse_spec("1x4G,cpus=1", cmdline="crashkernel=256M")
    assert (720896, 786432) in topology.reserved  # the 256 MiB under 3 GiB, 16 MiB aligned
    high = parse_spec("1x4G,cpus=1", cmdline="crashkernel=256M,high")
    assert (1245184, 1310720) in high.reserved and (720896, 786432) in high.reserved


def test_spec_command_line_cutting_all_memory_is_a_clear_error():
    import pytest
    with pytest.raises(ValueError, match="no usable RAM"):
        parse_spec("1x4G,cpus=1", cmdline="memmap=exactmap")


def test_topology_check_exits_1_on_a_mismatch_and_0_when_all_agree(capsys, tmp_path):
    assert run(capsys, "topology", "--dmesg", str(LOG))[0] == 0
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(LOG.read_text().replace("node   1: [mem 0x40200000",
                                             "node   1: [mem 0x40400000"))
    status, out, _ = run(capsys, "topology", "--dmesg", str(wrong))
    assert status == 1 and "MISMATCH node 1 memory ranges" in out
    status, out, _ = run(capsys, "topology", "--dmesg", str(wrong), "--json")
    check = json.loads(out)["kernel_check"]
    assert status == 1 and "node 1 memory ranges" in check["checked"]
    assert len(check["mismatches"]) == 1 and check["compared"] == len(check["checked"])


def test_topology_check_exits_2_on_unreadable_input(capsys, tmp_path):
    assert run(capsys, "topology", "--dmesg", str(tmp_path / "missing.txt"))[0] == 2
    (tmp_path / "junk.txt").write_text("no memory map here\n")
    assert run(capsys, "topology", "--dmesg", str(tmp_path / "junk.txt"))[0] == 2


def test_cmdline_option_for_spec_machines_only(capsys):
    status, out, _ = run(capsys, "topology", "--spec", "2x4G,cpus=2", "--cmdline",
                         "movablecore=25%", "--json")
    zones = [z["name"] for node in json.loads(out)["nodes"] for z in node["zones"]]
    assert status == 0 and "Movable" in zones
    status, _, err = run(capsys, "topology", "--dmesg", str(LOG), "--cmdline", "mem=1G")
    assert status == 2 and "--cmdline applies to --spec machines" in err
    status, _, err = run(capsys, "boot", "--spec", "1x1G", "--cmdline", "kernelcore=mirror")
    assert status == 2 and "kernelcore=mirror" in err


OPTIONS = ["mem=3G", "mem=700M", "memmap=1G$2G", "memmap=64M#0x10000000", "memmap=2G!4G",
           "memmap=exactmap", "memmap=640K@0", "memmap=1G@1M", "memmap=512M", "numa=off",
           "numa=noacpi", "numa=fake=3", "numa=fake=256M", "numa=fake=2U", "numa=fake=64",
           "movablecore=20%", "movablecore=1G", "kernelcore=60%", "kernelcore=3G",
           "crashkernel=128M", "crashkernel=256M,high", "crashkernel=64M@16M", "mem=0"]


@settings(max_examples=120, deadline=None, derandomize=True, database=None)
@given(st.lists(st.sampled_from(OPTIONS), max_size=5),
       st.sampled_from(["2x4G,cpus=2", "1x6G", "3x1G+1x0:2,cpus=1", "1x512M"]))
def test_any_command_line_on_a_spec_gives_a_consistent_machine_or_a_clear_error(options, spec):
    import fuzz_corpus as fc
    try:
        topology = parse_spec(spec, cmdline=" ".join(options))
    except ValueError as error:
        assert "no usable RAM" in str(error) or "no usable memory" in str(error), error
        return
    fc.check_topology(topology)
    for nid, pfn in topology.movable_start.items():
        zones = topology.zones(nid)
        assert zones[-1].name == "Movable" and zones[-1].start_pfn == pfn


def test_memmap_edits_act_on_the_raw_table_in_order():
    # parse_memmap_one() edits the table without sanitizing between options: removing the
    # reserved range just added leaves the RAM under it, as if nothing had been asked.
    plain = parse_spec("1x4G,cpus=1").node(0).ranges
    assert parse_spec("1x4G,cpus=1", cmdline="memmap=1G$1G").node(0).ranges != plain
    assert parse_spec("1x4G,cpus=1", cmdline="memmap=1G$1G memmap=1G%1G-2").node(0).ranges \
        == plain
    # mem= then memmap=@ above the limit: the RAM comes back (memblock takes what is left).
    assert parse_spec("1x4G,cpus=1", cmdline="mem=1G memmap=1G@1G").max_pfn == 2 << 18
