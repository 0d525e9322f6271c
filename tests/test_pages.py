"""The checked kernel API: right results for good arguments, and for bad ones a ValueError
before any kernel runs (the memmap is left byte for byte as it was)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import naive
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.memmap import Memmap
from fastinit.kernels.descriptors import page_links
from fastinit.layout import MAX_PFN, PAGES_PER_SECTION as S
from fastinit.mm.pages import free_pages, init_pages

SECTIONS = np.array([0, 1, 5], np.int64)  # pfns [0, 2S) and [5S, 6S) have descriptors


def fresh():
    memmap = Memmap.in_memory(SECTIONS)
    memmap.raw[:] = 0x5A  # garbage, like memory nobody initialized
    memmap.pageblock_mt[:] = 1
    return memmap


def test_init_pages_equals_the_naive_reference():
    memmap = fresh()
    expected = memmap.pages.copy()
    slots = np.array([0, 1, -1, -1, -1, 2], np.int64)
    naive.init_pages_range(expected, slots, 0, S - 10, 2 * S, page_links(3, 2), True)
    assert init_pages(memmap, S - 10, 2 * S, nid=3, zid=2, reserved=True) == S + 10
    assert memmap.pages.tobytes() == expected.tobytes()


def test_reserved_may_be_a_numpy_bool():
    memmap, plain = fresh(), fresh()
    init_pages(memmap, 0, S, nid=0, zid=1, reserved=np.bool_(True))
    init_pages(plain, 0, S, nid=0, zid=1, reserved=True)
    assert memmap.pages.tobytes() == plain.pages.tobytes()


def test_free_pages_merges_into_the_canonical_buddy_blocks():
    memmap = fresh()
    init_pages(memmap, 5 * S, 6 * S, nid=1, zid=2)
    area = ZoneFreeArea(1, 2)
    ranges = [[5 * S + 1, 5 * S + 3000], [5 * S + 3000, 5 * S + 5000]]
    assert free_pages(memmap, area, ranges) == 4999
    blocks = naive.free_pages_ranges(memmap.pages.copy(), memmap.pageblock_mt.copy(),
                                     np.array([2], np.int64), 5 * S,
                                     [(5 * S + 1, 5 * S + 5000)], area.list_base)
    assert list(area.nr_free.ravel()) == list(blocks[2].ravel())
    assert area.managed == area.free_pages() == 4999


BAD_INIT = [
    (dict(start_pfn=-1, end_pfn=5), "start_pfn = -1 is outside"),
    (dict(start_pfn=10, end_pfn=5), "end_pfn = 5 is outside 10"),
    (dict(start_pfn=0, end_pfn=MAX_PFN + 1), "end_pfn"),
    (dict(start_pfn=2 * S - 5, end_pfn=2 * S + 5), "have no descriptors"),
    (dict(start_pfn=3 * S, end_pfn=3 * S + 1), "have no descriptors"),
    (dict(nid=1024), "nid = 1024 is outside 0..1023"),
    (dict(nid=-1), "nid = -1"),
    (dict(zid=4), "zid = 4 is outside 0..3"),  # 3 is ZONE_MOVABLE
]


@pytest.mark.parametrize("change", [dict(start_pfn=1.5, end_pfn=9),
                                    dict(start_pfn=True, end_pfn=9),
                                    dict(nid="0"), dict(reserved="yes")])
def test_init_pages_rejects_arguments_of_the_wrong_type_with_type_error(change):
    memmap = fresh()
    before = memmap.raw.copy()
    arguments = dict(start_pfn=0, end_pfn=S, nid=0, zid=1) | change
    name = next(iter(change))
    kind = "True or False" if name == "reserved" else "an integer"
    with pytest.raises(TypeError, match=f"{name} must be {kind}"):
        init_pages(memmap, **arguments)
    assert np.array_equal(memmap.raw, before)


@pytest.mark.parametrize("change, words", BAD_INIT)
def test_init_pages_rejects_bad_arguments_before_writing(change, words):
    memmap = fresh()
    before = memmap.raw.copy()
    arguments = dict(start_pfn=0, end_pfn=S, nid=0, zid=1) | change
    with pytest.raises(ValueError, match=words):
        init_pages(memmap, **arguments)
    assert np.array_equal(memmap.raw, before)


def test_init_pages_refuses_a_read_only_memmap_and_foreign_objects():
    memmap = fresh()
    read_only = Memmap(SECTIONS, bytes(memmap.raw), "a file")
    with pytest.raises(ValueError, match="read-only"):
        init_pages(read_only, 0, 10, 0, 0)
    with pytest.raises(ValueError, match="must be a fastinit.mm.memmap.Memmap"):
        init_pages(np.zeros(10), 0, 10, 0, 0)


def initialized_zone():
    memmap = fresh()
    init_pages(memmap, 0, 2 * S, nid=0, zid=1)
    return memmap, ZoneFreeArea(0, 1)


BAD_FREE = [
    ([], "shape"),
    ([[5, 5]], "must be non-empty"),
    ([[-4, 5]], "must be non-empty and inside"),
    ([[10, 20], [15, 30]], "before range 0 ends"),
    ([[30, 40], [10, 20]], "sort the ranges"),
    ([[2 * S - 10, 2 * S + 10]], "have no descriptors"),
    ([[1, 2, 3]], "shape"),
    ("lots", "integer pairs"),
]


@pytest.mark.parametrize("ranges, words", BAD_FREE)
def test_free_pages_rejects_bad_ranges_before_writing(ranges, words):
    memmap, area = initialized_zone()
    before = memmap.raw.copy()
    with pytest.raises(ValueError, match=words):
        free_pages(memmap, area, ranges)
    assert np.array_equal(memmap.raw, before) and area.managed == 0


def test_free_pages_refuses_pages_of_another_zone_or_uninitialized():
    memmap, _ = initialized_zone()
    with pytest.raises(ValueError, match="not initialized for node 0 zone Normal"):
        free_pages(memmap, ZoneFreeArea(0, 2), [[0, 100]])
    with pytest.raises(ValueError, match="not initialized"):
        free_pages(memmap, ZoneFreeArea(0, 1), [[5 * S, 5 * S + 8]])  # still garbage


def test_free_pages_refuses_a_second_free_in_the_same_max_order_block():
    memmap, area = initialized_zone()
    free_pages(memmap, area, [[0, 512]])
    before = memmap.raw.copy()
    with pytest.raises(ValueError, match="already hold free pages"):
        free_pages(memmap, area, [[512, 1024]])  # would merge with another call's blocks
    with pytest.raises(ValueError, match="already hold free pages"):
        free_pages(memmap, area, [[0, 512]])  # a double free
    assert np.array_equal(memmap.raw, before)


def test_free_pages_refuses_migratetypes_out_of_range():
    memmap, area = initialized_zone()
    memmap.pageblock_mt[3] = 9
    with pytest.raises(ValueError, match="migratetype >= 5"):
        free_pages(memmap, area, [[1024, 2048]])


pfns = st.integers(min_value=-2, max_value=7 * S)


@settings(max_examples=300, deadline=None)
@given(start=pfns, end=pfns, nid=st.integers(-2, 1100), zid=st.integers(-1, 4))
def test_init_pages_either_refuses_untouched_or_writes_only_its_range(start, end, nid, zid):
    memmap = fresh()
    before = memmap.pages.copy()
    try:
        init_pages(memmap, start, end, nid, zid)
    except ValueError:
        assert memmap.pages.tobytes() == before.tobytes()
        return
    changed = np.flatnonzero((memmap.pages.view(np.uint64).reshape(-1, 8)
                              != before.view(np.uint64).reshape(-1, 8)).any(axis=1))
    changed_pfns = memmap.pfns()[changed]
    assert len(changed) == end - start
    assert ((changed_pfns >= start) & (changed_pfns < end)).all()
