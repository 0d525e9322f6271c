"""Buddy kernels against the naive reference: merging, local lists, chunks, migratetypes."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from fastinit.kernels.descriptors import new_local_lists
from fastinit.kernels.buddy_free import deferred_init_chunk, free_pages_ranges
from fastinit.kernels.page_init import init_pages_range
from fastinit.kernels.streaming import deferred_init_chunk_stream
from fastinit.kernels.descriptors import page_links, zone_list_base
from fastinit.layout import (MIGRATE_MOVABLE, PAGE_DTYPE, PAGES_PER_SECTION,
                             PAGEBLOCKS_PER_SECTION)

S = PAGES_PER_SECTION
BASE = 8 * S                       # somewhere past the low zones
SLOTS = np.array([1, 0], np.int64)  # two sections, slots not in section order
LINKS = page_links(1, 2)
LIST_BASE = zone_list_base(1, 2)


def aligned_pages(count):
    """Descriptors on a 64-byte boundary, as streaming stores need (np.zeros may not be)."""
    raw = np.zeros(count * 64 + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    return raw[offset:offset + count * 64].view(PAGE_DTYPE)


def fresh_state():
    """Two sections of descriptors, all initialized reserved (holes and reserved memory)."""
    pages = aligned_pages(2 * S)
    init_pages_range(pages, SLOTS, BASE, BASE, BASE + 2 * S, np.uint64(LINKS), True)
    pageblock_mt = np.zeros(2 * PAGEBLOCKS_PER_SECTION, np.uint8)
    return pages, pageblock_mt


def ranges_strategy(max_pages=6000):
    """Sorted disjoint ranges within the two sections, small enough for the naive code."""
    @st.composite
    def build(draw):
        cuts = sorted(draw(st.lists(st.integers(0, 2 * S), min_size=2, max_size=10,
                                    unique=True)))
        ranges, total = [], 0
        for a, b in zip(cuts[::2], cuts[1::2]):
            b = min(b, a + max_pages - total)
            if b > a:
                ranges.append((BASE + a, BASE + b))
                total += b - a
        return ranges
    return build()


def same(a, b):
    return np.array_equal(a.view(np.uint8), b.view(np.uint8))


def assert_same_state(got, want):
    """Descriptors byte for byte, pageblock types and local lists, as the naive kernel
    left them."""
    (pages, mt, lists), (want_pages, want_mt, want_lists) = got, want
    assert same(pages, want_pages)
    assert np.array_equal(mt, want_mt)
    assert np.array_equal(lists, want_lists)


@settings(max_examples=40, deadline=None)
@given(ranges_strategy(), st.lists(st.integers(0, 2), min_size=2 * PAGEBLOCKS_PER_SECTION,
                                   max_size=2 * PAGEBLOCKS_PER_SECTION))
def test_free_pages_ranges_matches_naive(ranges, migratetypes):
    # Mixed pageblock types make merges at pageblock order change the buddy's type.
    pages, mt = fresh_state()
    mt[:] = migratetypes
    for s, e in ranges:  # early init leaves memory initialized, not reserved
        init_pages_range(pages, SLOTS, BASE, s, e, np.uint64(LINKS), False)
    want_pages, want_mt = pages.copy(), mt.copy()
    lists = new_local_lists()
    array = np.array(ranges, np.int64).reshape(-1, 2)
    freed = free_pages_ranges(pages, mt, SLOTS, BASE, array, LIST_BASE, lists)
    want_lists = naive.free_pages_ranges(want_pages, want_mt, SLOTS, BASE, ranges, LIST_BASE)
    assert freed == sum(e - s for s, e in ranges)
    assert_same_state((pages, mt, lists), (want_pages, want_mt, want_lists))


@settings(max_examples=25, deadline=None)
@given(ranges_strategy(), st.integers(0, 2 * S), st.integers(0, 2 * S))
def test_deferred_init_chunk_matches_naive(ranges, a, b):
    start, end = BASE + min(a, b), BASE + max(a, b)
    pages, mt = fresh_state()
    want_pages, want_mt = pages.copy(), mt.copy()
    lists = new_local_lists()
    array = np.array(ranges, np.int64).reshape(-1, 2)
    done = deferred_init_chunk(pages, mt, SLOTS, BASE, array, start, end, np.uint64(LINKS),
                               LIST_BASE, lists)
    want_lists = naive.deferred_init_chunk(want_pages, want_mt, SLOTS, BASE, ranges, start,
                                           end, LINKS, LIST_BASE)
    assert done == sum(max(0, min(e, end) - max(s, start)) for s, e in ranges)
    assert_same_state((pages, mt, lists), (want_pages, want_mt, want_lists))


@settings(max_examples=25, deadline=None)
@given(ranges_strategy(max_pages=2 * S), st.integers(0, 2 * S), st.integers(0, 2 * S))
def test_streaming_chunk_writes_the_same_bytes_as_the_plain_chunk(ranges, a, b):
    start, end = BASE + min(a, b), BASE + max(a, b)
    pages, mt = fresh_state()
    plain_pages, plain_mt = fresh_state()
    lists, plain_lists = new_local_lists(), new_local_lists()
    array = np.array(ranges, np.int64).reshape(-1, 2)
    done = deferred_init_chunk_stream(pages, pages.view(np.uint64), mt, SLOTS, BASE, array,
                                      start, end, np.uint64(LINKS), LIST_BASE, lists)
    plain_done = deferred_init_chunk(plain_pages, plain_mt, SLOTS, BASE, array, start, end,
                                     np.uint64(LINKS), LIST_BASE, plain_lists)
    assert done == plain_done
    assert same(pages, plain_pages)
    assert np.array_equal(mt, plain_mt)
    assert np.array_equal(lists, plain_lists)


def test_full_max_order_blocks_become_order_10_heads_in_pfn_order():
    pages, mt = fresh_state()
    lists = new_local_lists()
    ranges = np.array([[BASE, BASE + 4096]], np.int64)
    deferred_init_chunk(pages, mt, SLOTS, BASE, ranges, BASE, BASE + S, np.uint64(LINKS),
                        LIST_BASE, lists)
    assert lists[:, 10, MIGRATE_MOVABLE].tolist() == [BASE, BASE + 3072, 4]
    heads = naive.descriptor_index(SLOTS, BASE, BASE)
    assert pages["private"][heads] == 10 and pages["refcount"][heads] == 0


def test_partial_block_merges_into_the_canonical_decomposition():
    pages, mt = fresh_state()
    lists = new_local_lists()
    # 3 pages short of a max-order block at each end: [3, 4) [4, 8) ... [256, 512) on the
    # way up, [512, 768) ... [1016, 1020) [1020, 1021) on the way down.
    ranges = np.array([[BASE + 3, BASE + 1024 - 3]], np.int64)
    deferred_init_chunk(pages, mt, SLOTS, BASE, ranges, BASE, BASE + S, np.uint64(LINKS),
                        LIST_BASE, lists)
    counts = lists[2].sum(axis=1).tolist()
    assert counts == [2, 0, 2, 2, 2, 2, 2, 2, 2, 0, 0]
