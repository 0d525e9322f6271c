"""Initialize page descriptors over a pfn range: the ``__init_single_page()`` loop.

Descriptors exist only for present sections (the sparse vmemmap). ``slots`` maps each
section from ``base_pfn`` on to its slot in ``pages`` (-1 for a section without
descriptors); `fastinit.kernels.descriptors.descriptor_index` finds a pfn's descriptor.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import PAGES, PFNS, kernel
from fastinit.kernels.descriptors import descriptor_index, lru_address
from fastinit.layout import MAPCOUNT_NONE, PAGES_PER_SECTION, PG_RESERVED, PAGE_DTYPE

_SECTION_MASK = PAGES_PER_SECTION - 1
_STRIDE = np.uint64(PAGE_DTYPE.itemsize)


@kernel(types.void(PAGES, types.int64, types.uint64, types.uint64))
def init_single_page(pages, i, flags, lru):
    """``__init_single_page()`` for descriptor ``i``: zeroed, ``flags``, refcount 1,
    mapcount -1, and its lru list_head (at address ``lru``) pointing at itself."""
    rec = pages[i]
    rec["flags"] = flags
    rec["lru_next"] = lru
    rec["lru_prev"] = lru
    rec["mapping"] = 0
    rec["index"] = 0
    rec["private"] = 0
    rec["mapcount"] = MAPCOUNT_NONE
    rec["refcount"] = 1
    rec["memcg_data"] = 0


@kernel(types.int64(PAGES, PFNS, types.int64, types.int64, types.int64, types.uint64,
                    types.boolean))
def init_pages_range(pages, slots, base_pfn, start_pfn, end_pfn, links, reserved):
    """Initialize the descriptors of ``[start_pfn, end_pfn)`` as freshly booted pages.

    Each page is zeroed, gets its node and zone links in ``flags`` (plus PG_reserved if
    ``reserved``), refcount 1, mapcount -1, and an lru list_head pointing at itself.

    Parameters
    ----------
    pages : ndarray of PAGE_DTYPE, shape (nr_slots * PAGES_PER_SECTION,)
        The sparse memmap.
    slots : ndarray of int64, shape (nr_sections,)
        Slot of each section from ``base_pfn`` on; every section the range touches must
        have one.
    base_pfn : int
        Section-aligned pfn that ``slots[0]`` describes.
    start_pfn, end_pfn : int
        The range, ``base_pfn <= start_pfn <= end_pfn``.
    links : uint64
        ``page_links(nid, zid)``.
    reserved : bool
        Also set PG_reserved (holes and memblock-reserved memory).

    Returns
    -------
    int
        Pages initialized.
    """
    flags = links | np.uint64(PG_RESERVED if reserved else 0)
    pfn = start_pfn
    while pfn < end_pfn:
        section_end = min(end_pfn, (pfn | _SECTION_MASK) + 1)
        i = descriptor_index(slots, base_pfn, pfn)
        lru = lru_address(pfn)
        for _ in range(section_end - pfn):
            init_single_page(pages, i, flags, lru)
            i += 1
            lru += _STRIDE
        pfn = section_end
    return end_pfn - start_pfn
