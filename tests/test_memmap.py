"""Memmap: sparse slots, index lookups, storage in memory, clear refusals (files: test_memmap_file.py)."""

import numpy as np
import pytest

from fastinit.arrays import alloc as alloc_module
from fastinit.mm.memmap import Memmap, memmap_bytes
from fastinit.layout import PAGES_PER_SECTION as S

SECTIONS = np.array([0, 1, 5], np.int64)


def test_index_maps_pfns_to_slots():
    m = Memmap.in_memory(SECTIONS)
    assert m.index(5) == 5
    assert m.index(S + 7) == S + 7
    assert m.index(5 * S + 3) == 2 * S + 3
    assert list(m.index(np.array([0, S, 5 * S]))) == [0, S, 2 * S]


def test_index_of_a_pfn_without_descriptors_raises_and_has_says_so():
    # Was -1: of 13 callers one checked, and pages[-1] is the last descriptor.
    m = Memmap.in_memory(SECTIONS)
    with pytest.raises(ValueError, match=f"pfn {2 * S:#x} has no descriptor: its section 2"):
        m.index(2 * S)
    with pytest.raises(ValueError, match=f"pfn {3 * S:#x} has no descriptor"):
        m.index(np.array([0, 3 * S, 5 * S]))
    with pytest.raises(ValueError, match="section 6 is not present"):
        m.index(6 * S)  # past the last section
    assert m.has(5) and not m.has(2 * S)
    assert m.has(np.array([0, 3 * S, 5 * S])).tolist() == [True, False, True]
    assert Memmap.in_memory(np.array([], np.int64)).has(np.array([0])).tolist() == [False]


def test_slots_cover_a_range_with_minus_one_for_absent_sections():
    m = Memmap.in_memory(SECTIONS)
    assert m.slots(S + 5, 5 * S + 1) == (S, pytest.approx(np.array([1, -1, -1, -1, 2])))


def test_present_runs_skip_absent_sections_and_merge_neighbours():
    m = Memmap.in_memory(SECTIONS)
    assert m.present_runs(10, 6 * S) == [(10, 2 * S), (5 * S, 6 * S)]


def test_pfns_lists_every_descriptor():
    m = Memmap.in_memory(SECTIONS)
    pfns = m.pfns()
    assert len(pfns) == len(m.pages)
    assert all(m.index(pfns[[0, S, 2 * S + 9]]) == [0, S, 2 * S + 9])


def test_in_memory_starts_on_a_huge_page_boundary():
    m = Memmap.in_memory(SECTIONS)
    assert m.pages.ctypes.data % (2 << 20) == 0
    assert m.nbytes == memmap_bytes(3)


def test_in_memory_refuses_what_does_not_fit(monkeypatch):
    monkeypatch.setattr(alloc_module, "available_memory", lambda: 1 << 20)
    with pytest.raises(ValueError, match=r"the memmap needs 0\.01 GiB, .* --memmap-file PATH"):
        Memmap.in_memory(SECTIONS)


@pytest.mark.parametrize("name", ["pages", "pageblock_mt", "sections", "words", "raw", "file"])
def test_the_arrays_cannot_be_swapped_from_under_the_checks(name):
    m = Memmap.in_memory(SECTIONS)
    with pytest.raises(AttributeError):
        setattr(m, name, getattr(m, name)[:1].copy() if name != "file" else None)


def test_sections_are_a_read_only_copy():
    given = SECTIONS.copy()
    m = Memmap.in_memory(given)
    with pytest.raises(ValueError, match="read-only"):
        m.sections[0] = 9
    given[0] = 4  # the caller's array is not the memmap's
    assert m.sections[0] == 0


@pytest.mark.parametrize("sections, words", [
    (np.array([5, 3, 9]), "sorted and unique"), (np.array([1, 1, 2]), "sorted and unique"),
    (np.array([[0, 1]]), "1-D"), (np.array([-1, 0]), "sections must be in"),
    (np.array([2**40]), "sections must be in"), (["a"], "integers")])
def test_unsorted_duplicate_or_out_of_range_sections_are_refused(sections, words):
    with pytest.raises(ValueError, match=words):
        Memmap.in_memory(sections)


def test_boot_refuses_a_memmap_made_for_other_sections():
    from fastinit.machine.spec import parse_spec
    from fastinit.mm.run import boot
    with pytest.raises(ValueError, match="made for another machine"):
        boot(parse_spec("1x1G"), memmap=Memmap.in_memory(np.arange(3)))
