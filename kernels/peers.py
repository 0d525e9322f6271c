"""The numba.prange version of filling whole max-order blocks: a peer for benchmarks.

What a Numba user would write without fastinit: one ``parallel=True`` kernel over the
blocks, plain stores, Numba's own thread pool and static scheduling. It writes the same
final state as `fastinit.kernels.streaming.stream_max_order_blocks`.
"""

from __future__ import annotations

import numpy as np
from numba import prange, types

from fastinit.kernels._jit import PAGEBLOCK_TYPES, PAGES, PFNS, kernel
from fastinit.kernels.buddy_free import LISTS
from fastinit.layout import (LIST_HEAD_SIZE, LRU_OFFSET, MAPCOUNT_NONE, MAX_ORDER,
                           MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE, MIGRATE_TYPES,
                           PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER,
                           PAGES_PER_SECTION, SECTION_SHIFT, VMEMMAP_START)

_MASK = PAGES_PER_SECTION - 1


@kernel(types.void(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, types.int64, types.int64,
                   types.uint64, types.uint64, LISTS), parallel=True)
def fill_max_order_blocks_prange(pages, pageblock_mt, slots, base_pfn, spfn, epfn, links,
                                 list_base, lists):
    """Final state of the aligned whole blocks ``[spfn, epfn)``, blocks spread by prange."""
    head = list_base + np.uint64((MAX_ORDER * MIGRATE_TYPES + MIGRATE_MOVABLE) * LIST_HEAD_SIZE)
    last = lists[1, MAX_ORDER, MIGRATE_MOVABLE]
    lru_base = np.uint64(VMEMMAP_START + LRU_OFFSET)
    count = (epfn - spfn) // MAX_ORDER_NR_PAGES
    for k in prange(count):
        block = spfn + k * MAX_ORDER_NR_PAGES
        section = slots[(block - base_pfn) >> SECTION_SHIFT]
        i = section * PAGES_PER_SECTION + (block & _MASK)
        for b in range(2):
            pageblock_mt[(i >> PAGEBLOCK_ORDER) + b] = MIGRATE_MOVABLE
        lru = lru_base + np.uint64(block) * np.uint64(64)
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
            lru += np.uint64(64)
        rec = pages[i]
        rec["private"] = MAX_ORDER
        rec["mapcount"] = PAGE_BUDDY_MAPCOUNT
        own = lru_base + np.uint64(block) * np.uint64(64)
        if k + 1 < count:
            rec["lru_next"] = own + np.uint64(MAX_ORDER_NR_PAGES * 64)
        else:
            rec["lru_next"] = head
        if k > 0:
            rec["lru_prev"] = own - np.uint64(MAX_ORDER_NR_PAGES * 64)
        elif last < 0:
            rec["lru_prev"] = head
        else:
            rec["lru_prev"] = lru_base + np.uint64(last) * np.uint64(64)
    if count:
        if last < 0:
            lists[0, MAX_ORDER, MIGRATE_MOVABLE] = spfn
        else:
            j = slots[(last - base_pfn) >> SECTION_SHIFT] * PAGES_PER_SECTION + (last & _MASK)
            pages[j]["lru_next"] = lru_base + np.uint64(spfn) * np.uint64(64)
        lists[1, MAX_ORDER, MIGRATE_MOVABLE] = epfn - MAX_ORDER_NR_PAGES
        lists[2, MAX_ORDER, MIGRATE_MOVABLE] += count
