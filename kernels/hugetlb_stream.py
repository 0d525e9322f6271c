"""HugeTLB page setup at the write limit: tails written whole, by streaming stores.

`fastinit.kernels.compound` writes each tail's changed fields into the descriptor that was
there, so every tail's cache line is first read from memory (read-for-ownership) and then
written back: twice the traffic of a memset. Here the tails from the fourth on are written
as whole 64-byte lines with non-temporal stores (`fastinit.kernels.streaming`), which is
only right where the descriptor before is known without reading it:

- a 2 MiB page taken from a max-order block that was freed whole (deferred init and
  ``memblock_free_all()`` free such a block at MAX_ORDER: no tail of it was ever a free
  head, so none carries a merge's list poison): its tails are free pages (node and zone
  links, ``lru`` pointing at itself, mapcount -1, everything else 0), its head one the
  buddy allocator just took (the same, whatever its links were: the head's are rewritten);
- a gigantic boot page: reserved pages as early init left them (memblock never frees
  them): the same, with PG_reserved and refcount 1, which the setup clears.

So every descriptor, the head and the first tail's compound fields included, is written
whole and never read. The caller picks the pages (`fastinit.mm.hugetlb.prep`); the
descriptors written are byte for byte the reference's (tests/test_hugetlb_stream.py).
Every descriptor must be 64-byte aligned: the caller checks the array's address.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import PFNS, inline_helper, kernel
from fastinit.kernels.descriptors import descriptor_index, lru_address, page_address
from fastinit.kernels.compound import (HPG_VMEMMAP_OPTIMIZED, HUGETLB_PAGE_DTOR, PG_HEAD,
                                       TAIL_MAPPING)
from fastinit.kernels.streaming import DESCRIPTOR_STRIDE as _STRIDE
from fastinit.kernels.streaming import DESCRIPTOR_WORDS as _WORDS
from fastinit.kernels.streaming import WORD6_TAIL as _WORD6
from fastinit.kernels.streaming import ZERO_WORD as _ZERO
from fastinit.kernels.streaming import WORDS, store_fence, store_record_nt

# Words 6-7 of a tail: mapcount -1 (low half), refcount 0 (high half); memcg_data 0, the
# same words the streaming free path writes (one definition, in kernels/streaming.py).
_LOW16 = np.uint64(0xFFFF)
_LOW32 = np.uint64(0xFFFFFFFF)


@inline_helper
def _stream_page(words, i, pfn, order, count, links, tail_mapping, optimized):
    """Descriptors ``0 .. count - 1`` of the huge page at ``pfn`` (descriptor ``i``) in
    their final state, one streaming store each: what `prep_buddy_huge_pages` and
    `prep_gigantic_pages` leave where the old descriptors are as the module says (a tail's
    ``lru.prev`` is its own ``lru``; the first tail keeps bytes 18-19 of it)."""
    own = lru_address(pfn)
    compound_head = page_address(pfn) + np.uint64(1)
    private = np.uint64(HPG_VMEMMAP_OPTIMIZED) if optimized else _ZERO
    store_record_nt(words, i * _WORDS, (links | np.uint64(PG_HEAD), own, own, _ZERO, _ZERO,
                                        private, _WORD6, _ZERO))
    lru = own + _STRIDE
    info = ((lru & ~_LOW16) | np.uint64(HUGETLB_PAGE_DTOR) | (np.uint64(order) << np.uint64(8))
            ) & _LOW32 | (_LOW32 << np.uint64(32))
    nr = (np.uint64(1) << np.uint64(order)) << np.uint64(32)
    store_record_nt(words, (i + 1) * _WORDS, (links, compound_head, info, nr, _ZERO, _ZERO,
                                              _WORD6, _ZERO))
    for t in range(2, count):
        lru += _STRIDE
        store_record_nt(words, (i + t) * _WORDS, (links, compound_head, lru, tail_mapping,
                                                  _ZERO, _ZERO, _WORD6, _ZERO))


@kernel(types.int64(WORDS, PFNS, types.int64, PFNS, types.int64, types.int64, types.uint64,
                    types.boolean))
def stream_buddy_huge_pages(words, slots, base_pfn, heads, order, tails, links, optimized):
    """`prep_buddy_huge_pages` of pages from max-order blocks freed whole, every descriptor
    streamed. ``links``: ``page_links(nid, zid)`` of their zone.

    Returns
    -------
    int
        Descriptors written.
    """
    count = min(tails, np.int64(1) << order)
    for pfn in heads:
        _stream_page(words, descriptor_index(slots, base_pfn, pfn), pfn, order, count, links,
                     np.uint64(TAIL_MAPPING), optimized)
    store_fence()
    return count * heads.shape[0]


@kernel(types.int64(WORDS, PFNS, types.int64, PFNS, types.int64, types.int64, types.uint64,
                    types.boolean))
def stream_gigantic_pages(words, slots, base_pfn, heads, order, tails, links, optimized):
    """`prep_gigantic_pages` of boot pages early init initialized (``initialize`` False),
    every descriptor streamed (their tails keep ``mapping`` 0). Parameters and result as
    for `stream_buddy_huge_pages`."""
    count = min(tails, np.int64(1) << order)
    for pfn in heads:
        _stream_page(words, descriptor_index(slots, base_pfn, pfn), pfn, order, count, links,
                     _ZERO, optimized)
    store_fence()
    return count * heads.shape[0]
