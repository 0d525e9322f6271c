"""HugeTLB compound pages (kernels/compound.py) against the naive field-by-field version:
pages from the buddy allocator and gigantic boot pages, with and without HVO's 64."""

import numpy as np
import pytest

from fastinit.kernels.descriptors import lru_address, page_links
from fastinit.kernels.compound import (HPG_FREED, link_heads, prep_buddy_huge_pages,
                                       prep_gigantic_pages)
from fastinit.kernels.page_init import init_pages_range
from fastinit.layout import LIST_POISON2, PAGE_DTYPE, PAGES_PER_SECTION
from naive_hugetlb import prep_huge_page

S = PAGES_PER_SECTION
LINKS = page_links(1, 2)


def reserved_sections(count, first_section=64):
    """``count`` sections of descriptors initialized as reserved memory (as memblock's)."""
    pages = np.zeros(count * S, PAGE_DTYPE)
    slots = np.arange(count, dtype=np.int64)
    base = first_section * S
    init_pages_range(pages, slots, base, base, base + count * S, np.uint64(LINKS), True)
    return pages, slots, base


def freed(pages, start, count):
    """What the buddy allocator leaves: not reserved, refcount 0; some links poisoned."""
    pages["flags"][start:start + count] = LINKS
    pages["refcount"][start:start + count] = 0
    pages["lru_prev"][start + 1:start + count:3] = LIST_POISON2


@pytest.mark.parametrize("tails, optimized", [(512, False), (64, True)])
def test_buddy_pages_equal_the_naive_version(tails, optimized):
    pages, slots, base = reserved_sections(1)
    freed(pages, 0, S)
    heads = np.array([base, base + 1024, base + 4096], np.int64)
    expected = pages.copy()
    for pfn in heads.tolist():
        prep_huge_page(expected, slots, base, pfn, 9, tails, False, optimized)
    written = prep_buddy_huge_pages(pages, slots, base, heads, 9, tails, optimized)
    assert written == 3 * tails
    assert np.array_equal(pages.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("tails, optimized", [(1 << 18, False), (64, True)])
def test_gigantic_pages_equal_the_naive_version(tails, optimized):
    pages, slots, base = reserved_sections(8)
    heads = np.array([base], np.int64)
    expected = pages.copy()
    prep_huge_page(expected, slots, base, base, 18, tails, True, optimized)
    prep_gigantic_pages(pages, slots, base, heads, 18, tails, np.uint64(LINKS), False, optimized)
    assert np.array_equal(pages.view(np.uint8), expected.view(np.uint8))


def test_gigantic_pages_skipped_by_early_init_are_initialized_first():
    pages, slots, base = reserved_sections(8)
    expected = pages.copy()
    pages[:64] = np.zeros(64, PAGE_DTYPE)  # never written (MEMBLOCK_RSRV_NOINIT)
    prep_huge_page(expected, slots, base, base, 18, 64, True, True)
    prep_gigantic_pages(pages, slots, base, np.array([base], np.int64), 18, 64,
                        np.uint64(LINKS), True, True)
    assert np.array_equal(pages[:64].view(np.uint8), expected[:64].view(np.uint8))


def test_the_first_tail_holds_destructor_order_mapcount_and_nr():
    pages, slots, base = reserved_sections(1)
    freed(pages, 0, 512)
    prep_buddy_huge_pages(pages, slots, base, np.array([base], np.int64), 9, 512, False)
    word = int(pages["lru_prev"][1])
    assert (word & 0xFF, (word >> 8) & 0xFF, word >> 32) == (2, 9, 0xFFFFFFFF)
    assert int(pages["mapping"][1]) == 512 << 32 and int(pages["refcount"][0]) == 0


def test_heads_are_linked_in_order_between_the_list_head_and_marked_free():
    pages, slots, base = reserved_sections(1)
    heads = np.array([base, base + 512, base + 1024], np.int64)
    list_head = np.uint64(0xFFFF888200000000)
    link_heads(pages, slots, base, heads, list_head, HPG_FREED)
    assert int(pages["lru_prev"][0]) == int(list_head)
    assert int(pages["lru_next"][0]) == int(lru_address(base + 512))
    assert int(pages["lru_next"][1024]) == int(list_head)
    assert all(int(pages["private"][i]) & HPG_FREED for i in (0, 512, 1024))
