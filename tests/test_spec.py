"""Spec strings: grammar, x86-like layout, clear errors."""

import pytest

from fastinit.layout import PAGE_SHIFT
from fastinit.machine.kernel_rules import parse_version
from fastinit.machine.spec import parse_size, parse_spec

GIB = (1 << 30) >> PAGE_SHIFT


def test_two_nodes_of_64g_with_cpus():
    topo = parse_spec("2x64G,cpus=8")
    assert [n.cpus for n in topo.nodes] == [8, 8]
    # Node 0 loses page 0 and the 640K-1M hole; node 1 is whole.
    assert topo.nodes[0].present_pages == 64 * GIB - 1 - 97
    assert topo.nodes[1].present_pages == 64 * GIB


def test_pci_hole_below_4g_is_skipped_not_counted():
    topo = parse_spec("1x8G,cpus=1")
    ranges = topo.nodes[0].ranges
    assert (3 * GIB, 4 * GIB) not in ranges
    assert ranges[-1] == (4 * GIB, 9 * GIB)


def test_small_machine_has_no_memory_above_4g():
    topo = parse_spec("1x2G,cpus=1")
    assert topo.max_pfn == 2 * GIB
    assert [z.name for z in topo.zones(0)] == ["DMA", "DMA32"]


def test_mixed_groups_and_memory_only_node():
    topo = parse_spec("2x16G:4+1x8G:0")
    assert [(n.nid, n.cpus) for n in topo.nodes] == [(0, 4), (1, 4), (2, 0)]


def test_boot_reservations_inside_memory():
    topo = parse_spec("1x4G,cpus=1")
    assert topo.reserved == ((1, 159), (4096, 12288))
    # Before 5.13, 64 KiB of low memory.
    assert parse_spec("1x4G,cpus=1", kernel=parse_version("5.10")).reserved == \
        ((1, 16), (4096, 12288))


@pytest.mark.parametrize("text, value", [("64G", 64 << 30), ("1.5T", 3 << 39),
                                         ("512MiB", 512 << 20), ("4096", 4096)])
def test_parse_size_units(text, value):
    assert parse_size(text, "test") == value


@pytest.mark.parametrize("spec, words", [
    ("", "empty spec"),
    ("2y64G", "cannot read size"),
    ("2x64G,threads=4", "unknown option"),
    ("0x64G", "0 nodes"),
    ("2000x1G", "2000 nodes"),
    ("1x5P", "does not fit"),
    ("1x1.3", "not a whole number"),
    ("1x8G,pci_hole=5G", "at most 3G"),
])
def test_bad_spec_names_the_problem(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_spec(spec, default_cpus=1)


@pytest.mark.parametrize("spec, message", [
    ("2x0G", "every node has 0 bytes; give at least one node memory"),
    ("2x16G,cpus=0", "cpus=0 gives the nodes no CPUs; write cpus=N with N >= 1"),
    ("1x16G:4+1x8G,cpus=0", "a node without CPUs as SIZE:0"),
])
def test_a_machine_without_memory_or_cpus_is_refused_with_the_fix(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_a_memory_only_node_is_written_size_colon_0():
    topology = parse_spec("1x16G:4+1x8G:0")
    assert [node.cpus for node in topology.nodes] == [4, 0]
