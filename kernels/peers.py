"""The numba.prange version of filling whole max-order blocks: a peer for benchmarks.

What a Numba user would write without fastinit: one ``parallel=True`` kernel over the
blocks, plain stores field by field, Numba's own thread pool and static scheduling. It
writes the same final state as `fastinit.kernels.streaming.stream_max_order_blocks`, and
keeps the local lists with the same helpers (`fastinit.kernels.descriptors`).
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from fastinit.kernels._jit import LISTS, PAGEBLOCK_TYPES, PAGES, PFNS, kernel
from fastinit.kernels.descriptors import (descriptor_index, list_append_max_order_run,
                                          lru_address, pageblock_index)
from fastinit.layout import (MAPCOUNT_NONE, MAX_ORDER, MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE,
                             PAGE_BUDDY_MAPCOUNT, PAGE_DTYPE, PAGEBLOCK_NR_PAGES)

_STRIDE = np.uint64(PAGE_DTYPE.itemsize)
_BLOCK_BYTES = np.uint64(MAX_ORDER_NR_PAGES * PAGE_DTYPE.itemsize)


@kernel(types.void(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, types.int64, types.int64,
                   types.uint64, types.uint64, LISTS), parallel=True)
def fill_max_order_blocks_prange(pages, pageblock_mt, slots, base_pfn, spfn, epfn, links,
                                 list_base, lists):
    """Final state of the aligned whole blocks ``[spfn, epfn)``, blocks spread by prange."""
    if epfn <= spfn:
        return
    head, last = list_append_max_order_run(lists, list_base, spfn, epfn)
    count = (epfn - spfn) // MAX_ORDER_NR_PAGES
    for k in prange(count):
        block = spfn + k * MAX_ORDER_NR_PAGES
        i = descriptor_index(slots, base_pfn, block)
        for pageblock in range(block, block + MAX_ORDER_NR_PAGES, PAGEBLOCK_NR_PAGES):
            pageblock_mt[pageblock_index(slots, base_pfn, pageblock)] = MIGRATE_MOVABLE
        lru = lru_address(block)
        for j in range(i, i + MAX_ORDER_NR_PAGES):
            rec = pages[j]
            rec["flags"] = links
            rec["lru_next"] = lru
            rec["lru_prev"] = lru
            rec["mapping"] = 0
            rec["index"] = 0
            rec["private"] = 0
            rec["mapcount"] = MAPCOUNT_NONE
            rec["refcount"] = 0
            rec["memcg_data"] = 0
            lru += _STRIDE
        rec = pages[i]
        rec["private"] = MAX_ORDER
        rec["mapcount"] = PAGE_BUDDY_MAPCOUNT
        own = lru_address(block)
        rec["lru_next"] = own + _BLOCK_BYTES if k + 1 < count else head
        if k > 0:
            rec["lru_prev"] = own - _BLOCK_BYTES
        else:
            rec["lru_prev"] = head if last < 0 else lru_address(last)
    if last >= 0:
        pages[descriptor_index(slots, base_pfn, last)]["lru_next"] = lru_address(spfn)
