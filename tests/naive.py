"""Slow, obviously correct reference versions of the kernels, one page at a time.

Each function does what its kernel does in the plainest Python we could write, so a test can
compare the two field by field on small arrays.
"""

import numpy as np

from fastinit.page import (MAPCOUNT_NONE, PAGES_PER_SECTION, PG_RESERVED, lru_address)


def descriptor_index(slots, base_pfn, pfn):
    """Where the descriptor of ``pfn`` lives in the sparse memmap."""
    section = (pfn - base_pfn) // PAGES_PER_SECTION
    return int(slots[section]) * PAGES_PER_SECTION + pfn % PAGES_PER_SECTION


def init_single_page(pages, index, pfn, links, reserved):
    """``__init_single_page()``: zero, set links, refcount 1, mapcount -1, lru to itself."""
    pages[index] = np.zeros((), pages.dtype)
    pages["flags"][index] = links | (PG_RESERVED if reserved else 0)
    pages["refcount"][index] = 1
    pages["mapcount"][index] = MAPCOUNT_NONE
    pages["lru_next"][index] = lru_address(pfn)
    pages["lru_prev"][index] = lru_address(pfn)


def init_pages_range(pages, slots, base_pfn, start_pfn, end_pfn, links, reserved):
    for pfn in range(start_pfn, end_pfn):
        init_single_page(pages, descriptor_index(slots, base_pfn, pfn), pfn, links, reserved)
    return end_pfn - start_pfn
