"""Allocating from and freeing into a zone's own free lists (kernels/buddy_alloc.py)
against the naive reference: smallest block first, expand() to the heads of the lists,
fallback migratetypes, merging wherever the buddy is listed."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit.kernels.descriptors import new_local_lists, page_links
from fastinit.kernels.buddy_alloc import free_ranges_to_zone, take_blocks
from fastinit.kernels.buddy_free import free_pages_ranges
from fastinit.kernels.page_init import init_pages_range
from fastinit.layout import (MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, PAGEBLOCK_NR_PAGES,
                             PAGES_PER_SECTION)
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.memmap import Memmap, memmap_bytes
from naive_hugetlb import NaiveZone

S = PAGES_PER_SECTION
SECTIONS = np.array([8, 9], np.int64)
BASE = 8 * S


def zone_with_free(ranges, movable=True):
    """Two sections of reserved descriptors; ``ranges`` freed into node 0's Normal zone."""
    memmap = Memmap(SECTIONS, bytearray(memmap_bytes(2)), "test")
    base, slots = memmap.slots(BASE, BASE + 2 * S)
    init_pages_range(memmap.pages, slots, base, BASE, BASE + 2 * S, np.uint64(page_links(0, 2)),
                     True)
    memmap.pageblock_mt[:] = MIGRATE_MOVABLE if movable else MIGRATE_UNMOVABLE
    area = ZoneFreeArea(0, 2)
    if ranges:
        lists = new_local_lists()
        freed = free_pages_ranges(memmap.pages, memmap.pageblock_mt, slots, base,
                                  np.array(ranges, np.int64), area.list_base, lists)
        area.splice(memmap, lists, freed)
    return memmap, area, slots, base


def copy_of(memmap, area):
    twin = Memmap(SECTIONS, bytearray(memmap.raw.tobytes()), "twin")
    other = ZoneFreeArea(0, 2)
    other.heads[:], other.nr_free[:] = area.heads, area.nr_free
    return twin, other


def assert_same(memmap, area, twin, other):
    assert np.array_equal(memmap.raw, twin.raw)
    assert np.array_equal(area.heads, other.heads)
    assert np.array_equal(area.nr_free, other.nr_free)


def free_ranges_strategy():
    @st.composite
    def build(draw):
        cuts = sorted(draw(st.lists(st.integers(0, 2 * S // 64), min_size=2, max_size=8,
                                    unique=True)))
        return [(BASE + a * 64, BASE + b * 64) for a, b in zip(cuts[::2], cuts[1::2])]
    return build()


@settings(max_examples=30, deadline=None)
@given(free_ranges_strategy(), st.integers(1, 40), st.sampled_from([9, 10]))
def test_take_blocks_equals_the_naive_allocator(ranges, count, order):
    memmap, area, slots, base = zone_with_free(ranges)
    twin, other = copy_of(memmap, area)
    out = np.full(count, -1, np.int64)
    taken = take_blocks(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                        area.nr_free, area.list_base, order, count, out)
    naive = NaiveZone(twin.pages, twin.pageblock_mt, slots, base, other.heads, other.nr_free,
                      other.list_base)
    expected = []
    for _ in range(count):
        pfn = naive.take(order)
        if pfn is None:
            break
        expected.append(pfn)
    naive.finish()
    assert out[:taken].tolist() == expected
    assert_same(memmap, area, twin, other)


def test_take_splits_a_max_order_block_and_puts_the_upper_half_first_on_its_list():
    memmap, area, slots, base = zone_with_free([(BASE, BASE + 2048)])
    out = np.zeros(3, np.int64)
    taken = take_blocks(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                        area.nr_free, area.list_base, 9, 3, out)
    # The first order-10 block gives its lower half, then the upper half (order 9) goes.
    assert taken == 3 and out.tolist() == [BASE, BASE + 512, BASE + 1024]
    assert area.free_by_order() == [0] * 9 + [1, 0]
    assert area.nr_free[9, MIGRATE_MOVABLE] == 1


def test_take_stops_when_the_zone_has_no_block_of_the_order():
    memmap, area, slots, base = zone_with_free([(BASE, BASE + 511), (BASE + 1024, BASE + 1536)])
    out = np.zeros(4, np.int64)
    taken = take_blocks(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                        area.nr_free, area.list_base, 9, 4, out)
    assert taken == 1 and out[0] == BASE + 1024
    assert area.free_pages() == 511


def test_take_falls_back_to_unmovable_blocks_and_makes_them_movable():
    memmap, area, slots, base = zone_with_free([(BASE, BASE + 1024)], movable=False)
    out = np.zeros(1, np.int64)
    take_blocks(memmap.pages, memmap.pageblock_mt, slots, base, area.heads, area.nr_free,
                area.list_base, 9, 1, out)
    assert out[0] == BASE
    index = memmap.index(BASE) // PAGEBLOCK_NR_PAGES
    assert memmap.pageblock_mt[index:index + 2].tolist() == [MIGRATE_MOVABLE] * 2
    assert area.nr_free[9, MIGRATE_MOVABLE] == 1 and area.nr_free[10].sum() == 0


@settings(max_examples=30, deadline=None)
@given(free_ranges_strategy(), free_ranges_strategy())
def test_freeing_into_the_zone_equals_the_naive_allocator(before, more):
    more = [(s, e) for s, e in more
            if not any(s < b_end and e > b_start for b_start, b_end in before)]
    memmap, area, slots, base = zone_with_free(before)
    twin, other = copy_of(memmap, area)
    freed = free_ranges_to_zone(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                                area.nr_free, area.list_base,
                                np.array(more, np.int64).reshape(-1, 2))
    naive = NaiveZone(twin.pages, twin.pageblock_mt, slots, base, other.heads, other.nr_free,
                      other.list_base)
    for s, e in more:
        for pfn in range(s, e):
            naive.free_page(pfn)
    naive.finish()
    assert freed == sum(e - s for s, e in more)
    assert_same(memmap, area, twin, other)


def test_freed_pages_merge_with_listed_buddies_up_to_max_order():
    memmap, area, slots, base = zone_with_free([(BASE + 512, BASE + 1024)])
    free_ranges_to_zone(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                        area.nr_free, area.list_base, np.array([(BASE, BASE + 512)], np.int64))
    assert area.free_by_order() == [0] * 10 + [1]
