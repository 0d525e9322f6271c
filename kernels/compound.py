"""Turn allocated blocks into HugeTLB pages: compound head and tails as Linux 6.1 writes them.

What the descriptors hold afterwards (x86-64, 64-byte struct page; offsets in bytes):

- head: ``flags`` gains PG_head (and loses PG_reserved); ``_refcount`` 0 (frozen); its
  ``lru`` is linked into the size's per-node free list (``enqueue_huge_page()``), and
  ``private`` holds the HugeTLB flags: HPG_freed, and HPG_vmemmap_optimized when HVO
  remapped its vmemmap;
- every tail: ``compound_head`` @8 = the head's address + 1; ``_refcount`` 0; PG_reserved
  clear; pages from the buddy allocator also get ``mapping`` @24 = TAIL_MAPPING and
  ``private`` @40 = 0 (``prep_compound_tail()``), gigantic boot pages keep theirs;
- first tail: ``compound_dtor`` byte @16 = HUGETLB_PAGE_DTOR (2), ``compound_order`` byte
  @17, ``compound_mapcount`` @20 = -1, ``compound_pincount`` @24 = 0, ``compound_nr`` @28 =
  pages (the rest of its words stays as it was: bytes 18-19 of the old ``lru.prev``);
- second and third tails: ``private`` @40 = 0 (hugetlb cgroup pointers).

With HVO only the first 64 descriptors (one 4 KiB page of the vmemmap) are written: the
caller then maps every other page of the huge page's descriptors onto that one, so they
read as it does.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import PAGES, PFNS, inline_helper, kernel
from fastinit.kernels.descriptors import descriptor_index, lru_address, page_address
from fastinit.kernels.page_init import init_single_page
from fastinit.layout import PAGE_DTYPE, PG_RESERVED

PG_HEAD = 1 << 16
# POISON_POINTER_DELTA + 0x400: what prep_compound_tail() puts in a tail's mapping.
TAIL_MAPPING = 0xDEAD000000000400
HUGETLB_PAGE_DTOR = 2
# Bits of a HugeTLB head's private (enum hugetlb_page_flags).
HPG_FREED = 1 << 3
HPG_VMEMMAP_OPTIMIZED = 1 << 4
_STRIDE = np.uint64(PAGE_DTYPE.itemsize)
_LOW16 = np.uint64(0xFFFF)
_LOW32 = np.uint64(0xFFFFFFFF)


@kernel(types.void(PAGES, types.int64, types.int64))
def _first_tail(pages, i, order):
    """The first tail's compound fields: the HugeTLB destructor, the order, compound
    mapcount -1, pincount 0, ``compound_nr``, and the subpool pointer (private) NULL."""
    rec = pages[i + 1]
    # Bytes 16 and 17 are the destructor and the order; 18-19 keep what was there.
    word = (rec["lru_prev"] & ~_LOW16) | np.uint64(HUGETLB_PAGE_DTOR) | \
        (np.uint64(order) << np.uint64(8))
    rec["lru_prev"] = (word & _LOW32) | (_LOW32 << np.uint64(32))
    rec["mapping"] = (np.uint64(1) << np.uint64(order)) << np.uint64(32)
    rec["private"] = 0


@inline_helper
def _head(pages, i, pfn, optimized):
    """The head ``i`` (of ``pfn``) as ``prep_new_huge_page()`` leaves it: PG_head without
    PG_reserved, refcount 0 (frozen), ``lru`` linked to itself until it is enqueued, and
    the HugeTLB flags in ``private``."""
    rec = pages[i]
    rec["flags"] = (rec["flags"] & ~np.uint64(PG_RESERVED)) | np.uint64(PG_HEAD)
    rec["refcount"] = 0
    rec["private"] = HPG_VMEMMAP_OPTIMIZED if optimized else 0
    own = lru_address(pfn)
    rec["lru_next"] = own
    rec["lru_prev"] = own


@kernel(types.int64(PAGES, PFNS, types.int64, PFNS, types.int64, types.int64, types.boolean))
def prep_buddy_huge_pages(pages, slots, base_pfn, heads, order, tails, optimized):
    """Make blocks fresh from the buddy allocator HugeTLB pages (``prep_compound_page()``,
    ``prep_new_huge_page()``), writing tails ``1 .. tails - 1`` of each.

    Parameters
    ----------
    pages : ndarray of PAGE_DTYPE
    slots, base_pfn
        As for the other kernels (sections from ``base_pfn``).
    heads : ndarray of int64, shape (n,)
        First pfn of each block, as `take_blocks` left it.
    order : int
    tails : int
        ``2**order`` for every tail, 64 when HVO keeps one page of descriptors.
    optimized : bool
        Set HPG_vmemmap_optimized in the heads.

    Returns
    -------
    int
        Descriptors written.
    """
    count = min(tails, np.int64(1) << order)
    for pfn in heads:
        i = descriptor_index(slots, base_pfn, pfn)
        head_address = page_address(pfn)
        for t in range(1, count):
            tail = pages[i + t]
            tail["mapping"] = np.uint64(TAIL_MAPPING)
            tail["lru_next"] = head_address + np.uint64(1)
            tail["private"] = 0
        _first_tail(pages, i, order)
        _head(pages, i, pfn, optimized)
    return count * heads.shape[0]


@kernel(types.int64(PAGES, PFNS, types.int64, PFNS, types.int64, types.int64, types.uint64,
                    types.boolean, types.boolean))
def prep_gigantic_pages(pages, slots, base_pfn, heads, order, tails, links, initialize,
                        optimized):
    """Make memblock-allocated boot pages HugeTLB pages (``prep_compound_gigantic_page()``,
    ``prep_new_huge_page()``), writing tails ``1 .. tails - 1`` of each.

    Parameters
    ----------
    heads : ndarray of int64, shape (n,)
        First pfn of each page (their descriptors are reserved pages, refcount 1).
    tails : int
        ``2**order``, or 64 with HVO (the rest is never written).
    links : uint64
        ``page_links(nid, zid)`` of the pages' zone, for `initialize`.
    initialize : bool
        First initialize descriptors ``0 .. tails - 1`` as reserved pages, because early
        init skipped them (HVO: Linux 6.9 reserves them MEMBLOCK_RSRV_NOINIT).

    The other parameters and the result are as for `prep_buddy_huge_pages`.
    """
    nr = np.int64(1) << order
    count = min(tails, nr)
    flags = links | np.uint64(PG_RESERVED)
    keep = ~np.uint64(PG_RESERVED)
    for pfn in heads:
        i = descriptor_index(slots, base_pfn, pfn)
        if initialize:
            lru = lru_address(pfn)
            for t in range(count):
                init_single_page(pages, i + t, flags, lru)
                lru += _STRIDE
        head_address = page_address(pfn)
        # set_compound_order() comes first: bytes 17 and 28-31 of the first tail.
        first = pages[i + 1]
        first["lru_prev"] = (first["lru_prev"] & ~np.uint64(0xFF00)) | \
            (np.uint64(order) << np.uint64(8))
        first["mapping"] = (first["mapping"] & _LOW32) | (np.uint64(nr) << np.uint64(32))
        for t in range(1, count):
            rec = pages[i + t]
            rec["flags"] = rec["flags"] & keep
            rec["refcount"] = 0
            rec["lru_next"] = head_address + np.uint64(1)
        _first_tail(pages, i, order)
        for t in (2, 3):
            pages[i + t]["private"] = 0
        _head(pages, i, pfn, optimized)
    return count * heads.shape[0]


@kernel(types.void(PAGES, PFNS, types.int64, PFNS, types.uint64, types.int64))
def link_heads(pages, slots, base_pfn, heads, list_address, freed_bits):
    """Link the heads, in order, as one list ending at the list head ``list_address`` on
    both sides (the caller splices it in), and mark each free (``SetHPageFreed()``)."""
    n = heads.shape[0]
    for k in range(n):
        rec = pages[descriptor_index(slots, base_pfn, heads[k])]
        rec["lru_prev"] = list_address if k == 0 else lru_address(heads[k - 1])
        rec["lru_next"] = list_address if k == n - 1 else lru_address(heads[k + 1])
        rec["private"] = rec["private"] | np.uint64(freed_bits)
