"""The descriptor arithmetic helpers give the same integers from Python, NumPy and Numba.

Numba and NumPy both turn a uint64 mixed with an int64 into a float64, which rounds
addresses above 2**53: every helper is checked from compiled code with int64 and uint64
arguments, from Python with ints and NumPy scalars and arrays, against the formula written
out on Python integers.
"""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit.kernels.descriptors import (COUNT, FIRST, LAST, descriptor_index, free_list_address,
                                          largest_order, list_append_max_order_run,
                                          list_append_run, list_head, lru_address,
                                          lru_pfn, max_order_pieces, new_local_lists, page_address,
                                          page_links,
                                          pageblock_index, zone_id, zone_list_base)
from fastinit.layout import (FREE_AREA_BASE, MAX_NUMNODES, MAX_NR_ZONES, MAX_ORDER,
                             MAX_ORDER_NR_PAGES, MAX_PFN, MIGRATE_TYPES, NR_ORDERS,
                             PAGES_PER_SECTION as S, VMEMMAP_START)


@numba.njit
def jit_lru_address(pfn):
    return lru_address(pfn)


@numba.njit
def jit_page_address(pfn):
    return page_address(pfn)


@numba.njit
def jit_lru_pfn(address):
    return lru_pfn(address)


@numba.njit
def jit_page_links(nid, zid):
    return page_links(nid, zid)


@numba.njit
def jit_zone_id(flags):
    return zone_id(flags)


@numba.njit
def jit_list_address(nid, zid, order, migratetype):
    return list_head(zone_list_base(nid, zid), order, migratetype)


@numba.njit
def jit_indices(slots, base_pfn, pfn):
    return descriptor_index(slots, base_pfn, pfn), pageblock_index(slots, base_pfn, pfn)


@numba.njit
def jit_pieces(ranges, start, end):
    out = []
    for spfn, epfn, whole in max_order_pieces(ranges, start, end):
        out.append((spfn, epfn, whole))
    return out


@numba.njit
def jit_append(lists, order, migratetype, first, last, count):
    return list_append_run(lists, order, migratetype, first, last, count)


@numba.njit
def jit_append_max_order_run(lists, list_base, spfn, epfn):
    return list_append_max_order_run(lists, list_base, spfn, epfn)


def exact(value, expected, kind):
    """``value`` is an integer of ``kind`` (not a float that happens to compare equal)."""
    assert int(value) == expected
    assert isinstance(value, (int, np.integer)) and not isinstance(value, bool), type(value)
    if isinstance(value, np.generic):
        assert np.dtype(type(value)).kind == kind


pfns = st.integers(0, MAX_PFN - 1)


@settings(max_examples=200, deadline=None)
@given(pfns)
def test_lru_address_is_exact_for_python_numpy_and_numba(pfn):
    exact(page_address(pfn), VMEMMAP_START + 64 * pfn, "u")
    exact(jit_page_address(np.int64(pfn)), VMEMMAP_START + 64 * pfn, "u")
    expected = VMEMMAP_START + 8 + 64 * pfn
    exact(lru_address(pfn), expected, "u")
    exact(lru_address(np.int64(pfn)), expected, "u")
    exact(jit_lru_address(np.int64(pfn)), expected, "u")
    exact(jit_lru_address(np.uint64(pfn)), expected, "u")
    for address in (expected, np.uint64(expected)):
        exact(lru_pfn(address), pfn, "i")
        exact(jit_lru_pfn(np.uint64(address)), pfn, "i")


def test_lru_address_of_an_array_is_uint64_and_exact():
    pfns = np.array([0, 1, MAX_PFN - 1, 2**40 + 3], dtype=np.int64)
    addresses = lru_address(pfns)
    assert addresses.dtype == np.uint64
    assert addresses.tolist() == [VMEMMAP_START + 8 + 64 * int(p) for p in pfns]
    assert lru_pfn(addresses).tolist() == pfns.tolist()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MAX_NUMNODES - 1), st.integers(0, MAX_NR_ZONES - 1))
def test_page_links_and_zone_id_from_python_and_numba(nid, zid):
    expected = (nid << 54) | (zid << 51)
    exact(page_links(nid, zid), expected, "u")
    exact(jit_page_links(np.int64(nid), np.int64(zid)), expected, "u")
    exact(jit_page_links(np.uint64(nid), np.int64(zid)), expected, "u")
    flags = np.uint64(expected | 0x1000)  # PG_reserved does not change the zone
    exact(zone_id(flags), expected >> 51, "u")
    exact(jit_zone_id(flags), expected >> 51, "u")


@settings(max_examples=100, deadline=None)
@given(st.integers(0, MAX_NUMNODES - 1), st.integers(0, MAX_NR_ZONES - 1),
       st.integers(0, MAX_ORDER), st.integers(0, MIGRATE_TYPES - 1))
def test_free_list_address_from_python_and_numba(nid, zid, order, migratetype):
    slot = ((nid * MAX_NR_ZONES + zid) * NR_ORDERS + order) * MIGRATE_TYPES + migratetype
    expected = FREE_AREA_BASE + 16 * slot
    exact(free_list_address(nid, zid, order, migratetype), expected, "u")
    exact(jit_list_address(nid, zid, order, migratetype), expected, "u")
    exact(jit_list_address(np.uint64(nid), np.int64(zid), np.int64(order),
                           np.int64(migratetype)), expected, "u")


def test_free_list_heads_of_different_lists_never_collide():
    addresses = {int(free_list_address(n, z, o, m)) for n in (0, 1, MAX_NUMNODES - 1)
                 for z in range(MAX_NR_ZONES) for o in range(NR_ORDERS)
                 for m in range(MIGRATE_TYPES)}
    assert len(addresses) == 3 * MAX_NR_ZONES * NR_ORDERS * MIGRATE_TYPES


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3 * S - 1), st.integers(0, 100))
def test_descriptor_and_pageblock_index_follow_the_slots(offset, base_section):
    slots = np.array([2, 0, 1], np.int64)
    base = base_section * S
    pfn = base + offset
    index = int(slots[offset // S]) * S + offset % S
    for got in (descriptor_index(slots, base, pfn), jit_indices(slots, base, pfn)[0],
                jit_indices(slots, np.int64(base), np.uint64(pfn))[0]):
        exact(got, index, "i")
    exact(pageblock_index(slots, base, pfn), index // 512, "i")
    exact(jit_indices(slots, base, pfn)[1], index // 512, "i")
    many = descriptor_index(slots, base, np.array([pfn, base], np.int64))
    assert many.dtype == np.int64 and many.tolist() == [index, 2 * S]


@st.composite
def ranges_and_window(draw):
    cuts = sorted(draw(st.lists(st.integers(0, 8 * MAX_ORDER_NR_PAGES), min_size=0,
                                max_size=12, unique=True)))
    ranges = np.array(list(zip(cuts[::2], cuts[1::2])), np.int64).reshape(-1, 2)
    a, b = sorted(draw(st.lists(st.integers(0, 8 * MAX_ORDER_NR_PAGES), min_size=2,
                                max_size=2)))
    return ranges, a, b


@settings(max_examples=200, deadline=None)
@given(ranges_and_window())
def test_max_order_pieces_tile_the_ranges_inside_the_window(case):
    ranges, start, end = case
    pieces = [(int(s), int(e), bool(w)) for s, e, w in max_order_pieces(ranges, start, end)]
    assert jit_pieces(ranges, start, end) == pieces
    covered = [p for s, e, _ in pieces for p in range(s, e)]
    assert covered == [p for s, e in ranges.tolist() for p in range(max(s, start), min(e, end))]
    for s, e, whole in pieces:
        if whole:
            assert s % MAX_ORDER_NR_PAGES == 0 and (e - s) % MAX_ORDER_NR_PAGES == 0
        else:
            assert s // MAX_ORDER_NR_PAGES == (e - 1) // MAX_ORDER_NR_PAGES
            assert e - s < MAX_ORDER_NR_PAGES


def test_max_order_pieces_make_one_run_of_whole_blocks_between_partial_ends():
    ranges = np.array([[3, 5000], [6000, 9000]], np.int64)
    expected = [(3, 1024, False), (1024, 4096, True), (4096, 5000, False),
                (6000, 6144, False), (6144, 8192, True), (8192, 9000, False)]
    assert [(int(s), int(e), w) for s, e, w in max_order_pieces(ranges, 0, 10_000)] == expected
    assert jit_pieces(ranges, 0, 10_000) == expected


def test_list_append_run_from_python_and_numba_keeps_first_last_and_count():
    for append in (list_append_run, jit_append):
        lists = new_local_lists()
        assert append(lists, 10, 1, 1024, 4096, 4) == -1
        assert append(lists, 10, 1, 8192, 8192, 1) == 4096
        assert [lists[FIRST, 10, 1], lists[LAST, 10, 1], lists[COUNT, 10, 1]] == [1024, 8192, 5]
        others = np.ones(lists.shape[1:], bool)
        others[10, 1] = False
        assert (lists[FIRST][others] == -1).all() and (lists[COUNT][others] == 0).all()


def test_a_max_order_run_goes_to_the_order_10_movable_list_from_python_and_numba():
    base = zone_list_base(1, 2)
    for append in (list_append_max_order_run, jit_append_max_order_run):
        lists = new_local_lists()
        head, previous = append(lists, base, 4096, 8192)
        exact(head, int(free_list_address(1, 2, MAX_ORDER, 1)), "u")
        assert previous == -1
        assert append(lists, base, 10240, 11264)[1] == 7168
        assert [lists[row, MAX_ORDER, 1] for row in (FIRST, LAST, COUNT)] == [4096, 10240, 5]


@pytest.mark.parametrize("pfn, end, order", [(0, 1024, 10), (0, 1023, 9), (3, 16, 0),
                                             (4, 16, 2), (8, 16, 3), (1024, 4096, 10),
                                             (512, 2048, 9), (7, 8, 0)])
def test_largest_order_is_one_step_of_the_buddy_decomposition(pfn, end, order):
    assert largest_order(pfn, end) == order
