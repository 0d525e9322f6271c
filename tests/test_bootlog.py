"""Boot logs: real logs reproduce the kernel's own figures; prefixes; clear errors."""

from pathlib import Path

import pytest

from fastinit.machine.bootlog import parse_bootlog, read_bootlog
from fastinit.machine.figures import compare, read_figures

DATA = Path(__file__).parent / "data" / "dmesg"
EXAMPLE = DATA / "hyperv-2node-3.15.txt"  # the team's shared example
LOGS = sorted(DATA.glob("*.txt"))

BIOS_MAP = """\
BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
BIOS-e820: [mem 0x00000000000f0000-0x00000000000fffff] reserved
BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable
BIOS-e820: [mem 0x000000007ffe0000-0x000000007fffffff] reserved
e820: update [mem 0x00000000-0x00000fff] usable ==> reserved
e820: remove [mem 0x000a0000-0x000fffff] usable
"""


@pytest.mark.parametrize("path", LOGS, ids=lambda p: p.name)
def test_real_log_reproduces_the_kernels_own_figures(path):
    topology, text = read_bootlog(str(path))
    checked, problems = compare(topology, read_figures(text))
    assert problems == []
    assert checked >= 4


def test_example_log_exact_figures():
    topology, _ = read_bootlog(str(EXAMPLE))
    assert [n.ranges for n in topology.nodes] == [((1, 159), (256, 262128)),
                                                  ((262656, 524800),)]
    assert [z.present for z in topology.zones(0)] == [3998, 258032]
    assert [z.present for z in topology.zones(1)] == [262144]
    assert [n.cpus for n in topology.nodes] == [2, 2]


@pytest.mark.parametrize("prefix", [
    "[    0.000000] ",
    "[Tue Nov  4 21:29:37 2025] ",
    "Nov  4 21:29:37 host kernel: [    0.000000] ",
    "Nov  4 21:29:37 host kernel: ",
    "[    0.000000] host.example kernel: ",
    "<6>[    0.000000] ",
    "",
])
def test_every_prefix_format_parses_the_same(prefix):
    text = "".join(prefix + line + "\n" for line in BIOS_MAP.splitlines())
    topology = parse_bootlog(text)
    assert topology.nodes[0].ranges == ((1, 159), (256, 0x7FFE0))


def test_crlf_line_ends():
    topology = parse_bootlog(BIOS_MAP.replace("\n", "\r\n"))
    assert topology.nodes[0].ranges == ((1, 159), (256, 0x7FFE0))


def test_mixed_prefixes_in_one_log():
    lines = BIOS_MAP.splitlines()
    text = "\n".join(("[    0.000000] " if i % 2 else "Nov  4 21:29:37 h kernel: ") + line
                     for i, line in enumerate(lines))
    assert parse_bootlog(text).nodes[0].ranges == ((1, 159), (256, 0x7FFE0))


def test_linux_2_6_e820_format_with_exclusive_end():
    text = ("BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)\n"
            "BIOS-e820: 0000000000100000 - 0000000040000000 (usable)\n")
    assert parse_bootlog(text).nodes[0].ranges == ((0, 159), (256, 0x40000))


def test_update_after_last_pfn_only_reserves():
    text = BIOS_MAP + ("last_pfn = 0x7ffe0 max_arch_pfn = 0x400000000\n"
                       "e820: update [mem 0x10000000-0x10000fff] usable ==> reserved\n")
    topology = parse_bootlog(text)
    assert topology.nodes[0].ranges == ((1, 159), (256, 0x7FFE0))
    assert (0x10000, 0x10001) in topology.reserved


def test_srat_two_nodes_with_cpus():
    text = BIOS_MAP + """\
SRAT: PXM 0 -> APIC 0x00 -> Node 0
SRAT: PXM 1 -> APIC 0x01 -> Node 1
SRAT: PXM 1 -> APIC 0x01 -> Node 1
ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x3fffffff]
ACPI: SRAT: Node 1 PXM 1 [mem 0x40000000-0x7fffffff] hotplug
"""
    topology = parse_bootlog(text)
    assert [(n.nid, n.cpus) for n in topology.nodes] == [(0, 1), (1, 1)]
    assert topology.nodes[1].ranges == ((0x40000, 0x7FFE0),)


def test_faking_a_node_ignores_srat():
    text = BIOS_MAP + ("SRAT: Node 0 PXM 0 [mem 0x00000000-0x3fffffff]\n"
                       "No NUMA configuration found\nFaking a node at [mem 0x0-0x7ffdffff]\n")
    assert len(parse_bootlog(text).nodes) == 1


def test_srat_leaving_ram_uncovered_falls_back_to_one_node():
    text = BIOS_MAP + "SRAT: Node 1 PXM 1 [mem 0x40000000-0x7fffffff]\n"
    topology = parse_bootlog(text)
    assert [n.nid for n in topology.nodes] == [0]
    assert "using one node" in topology.notes[0]


@pytest.mark.parametrize("text, words", [
    ("hello\nworld\n", "no e820 memory map found"),
    ("BIOS-e820: [mem 0x0000000000000000-0x0000000000000fff] reserved\n", "no usable RAM"),
    ("BIOS-e820: [mem 0x0000000000100000-0x00000000000fffff] usable\n", ":1: range ends before"),
    ("BIOS-e820: [mem 0x0000000000000000-0x000fffffffffffffff] usable\n", "52-bit"),
    ("BIOS-e820: [mem 0x0000000000000000-0x0000000000ffffff] bogus type\n", "unknown e820 type"),
    (BIOS_MAP + "SRAT: Node 0 PXM 0 [mem 0x00000000-0x5fffffff]\n"
     "SRAT: Node 1 PXM 1 [mem 0x40000000-0x7fffffff]\n", "gives it to node 0"),
    (BIOS_MAP + "SRAT: Node 0 PXM 0 [mem 0x00000000-0x7fffffff]\n"
     "SRAT: Node 1 PXM 1 [mem 0x100000000-0x17fffffff]\n", "lies beyond all usable RAM"),
])
def test_bad_log_fails_with_line_and_fix(text, words):
    with pytest.raises(ValueError, match=words):
        parse_bootlog(text, source="log")


def test_error_names_the_line_number():
    text = BIOS_MAP + "BIOS-e820: [mem 0x0000000000200000-0x00000000001fffff] usable\n"
    with pytest.raises(ValueError, match=r"^log:8: "):
        parse_bootlog(text, source="log")


def test_unreadable_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read boot log"):
        read_bootlog(str(tmp_path / "missing.txt"))
