"""Topology: what the kernel derives (zones, sections, holes, deferral) and self-checks."""

import pytest

from fastinit.layout import PAGES_PER_SECTION as S
from fastinit.machine.topology import Node, Topology, intersect, subtract

# The Hyper-V guest of ../shared/examples: two nodes, 2 GiB.
HYPERV = Topology((Node(0, 2, ((1, 159), (256, 262128))), Node(1, 2, ((262656, 524800),))))


def test_zones_of_example_match_kernel():
    assert [(z.name, z.start_pfn, z.end_pfn, z.present) for z in HYPERV.zones(0)] == \
        [("DMA", 1, 4096, 3998), ("DMA32", 4096, 262128, 258032)]


def test_zone_span_reaches_node_end_not_last_memory_page():
    # /proc/zoneinfo of a 24 GiB guest: DMA32 spans to 4 GiB though RAM stops at 3 GiB.
    topo = Topology((Node(0, 2, ((1, 0x9F), (0x100, 0xC0000), (0x100000, 0x640000))),))
    assert [(z.name, z.spanned, z.present) for z in topo.zones(0)] == \
        [("DMA", 4095, 3998), ("DMA32", 1044480, 782336), ("Normal", 5505024, 5505024)]
    assert [(z.name, z.present) for z in HYPERV.zones(1)] == [("DMA32", 262144)]


def test_zone_ranges_clip_to_last_pfn():
    assert HYPERV.zone_ranges() == [("DMA", 1, 4096), ("DMA32", 4096, 524800),
                                    ("Normal", 524800, 524800)]


def test_unavailable_hole_charged_to_following_range_and_tail_to_last_zone():
    holes = [(u.nid, u.zid, u.start_pfn, u.end_pfn, u.pages) for u in HYPERV.unavailable_ranges()]
    assert holes == [(0, 0, 0, 1, 1), (0, 0, 159, 256, 97), (1, 1, 262128, 262656, 528),
                     (1, 1, 524800, 557056, 32256)]


def test_unavailable_skips_sections_without_memory():
    topo = Topology((Node(0, 1, ((0, 10), (5 * S, 5 * S + 10))),))
    # The hole spans sections 1-4, which have no descriptors: only section 0's tail counts.
    assert sum(u.pages for u in topo.unavailable_ranges()) == (S - 10) + (S - 10)


def test_first_deferred_pfn_after_one_section_of_highest_zone():
    assert HYPERV.first_deferred_pfn(0) == 65536
    assert HYPERV.first_deferred_pfn(1) == 327680


def test_first_deferred_pfn_none_when_zone_holds_one_section():
    topo = Topology((Node(0, 1, ((S, 2 * S),)),))
    assert topo.first_deferred_pfn(0) is None


def test_first_deferred_pfn_counts_only_memory_pages():
    # Two half sections of memory with a hole between: deferral starts once more than a
    # section of memory was seen, at the next section boundary.
    topo = Topology((Node(0, 1, ((1 << 20, (1 << 20) + S // 2),
                                 ((1 << 20) + 2 * S, (1 << 20) + 4 * S))),))
    assert topo.first_deferred_pfn(0) == (1 << 20) + 3 * S


def test_present_sections_cover_every_memory_pfn():
    assert list(HYPERV.present_sections()) == list(range(17))


@pytest.mark.parametrize("nodes, words", [
    ((), "no NUMA node"),
    ((Node(0, 1, ()),), "no usable memory"),
    ((Node(0, 1, ((10, 5),)),), "is empty"),
    ((Node(0, 1, ((0, 10), (5, 20))),), "overlap or are unsorted"),
    ((Node(0, 1, ((0, 10),)), Node(1, 1, ((5, 20),))), "belongs to both node 0 and node 1"),
    ((Node(1, 1, ((0, 10),)), Node(0, 1, ((20, 30),))), "must be unique and sorted"),
    ((Node(0, 1, ((0, 1 << 41),)),), "beyond"),
    ((Node(0, -1, ((0, 10),)),), "-1 CPUs"),
])
def test_inconsistent_topology_is_rejected(nodes, words):
    with pytest.raises(ValueError, match=words):
        Topology(nodes)


def test_intersect_and_subtract():
    assert intersect([(0, 10), (20, 30), (40, 50)], 5, 45) == [(5, 10), (20, 30), (40, 45)]
    assert subtract([(0, 100)], [(10, 20), (15, 30), (90, 200)]) == [(0, 10), (30, 90)]
