"""What a user would pick instead of fastinit, doing the same deferred init, for benchmarks.

Each peer runs a node's deferred init with the same semantics (the same bytes, the same
free lists as a serial boot): pieces smaller than a max-order block take the reference
two-pass kernel, and whole blocks are filled by the peer's own method:

- ``numba.prange``: one ``parallel=True`` kernel over the blocks (Numba's thread pool);
- ``numpy``: field-by-field NumPy assignments over slices, one thread;
- ``plain``: fastinit's own plain-store kernel through the padata engine (a boot with
  ``kernel="plain"``, run by the benchmark itself, not here).
"""

from __future__ import annotations

import time

import numba
import numpy as np

from fastinit.kernels.descriptors import (descriptor_index, list_append_max_order_run,
                                          lru_address, max_order_pieces, new_local_lists,
                                          page_links)
from fastinit.kernels.buddy_free import init_free_piece
from fastinit.kernels.peers import fill_max_order_blocks_prange
from fastinit.layout import (MAPCOUNT_NONE, MAX_ORDER, MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE,
                             PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES)
from fastinit.mm.memmap import Memmap
from fastinit.mm.run import BootResult

# NumPy works on this many descriptors at a time, so temporaries stay in cache.
_NUMPY_BATCH = 1 << 16


def _fill_numpy(memmap: Memmap, spfn: int, epfn: int, links, list_base, lists: np.ndarray) -> None:
    pages = memmap.pages
    base, slots = memmap.slots(spfn, epfn)
    for start, end in memmap.present_runs(spfn, epfn):
        first = descriptor_index(slots, base, start)
        for offset in range(0, end - start, _NUMPY_BATCH):
            lo, hi = first + offset, first + min(offset + _NUMPY_BATCH, end - start)
            part = pages[lo:hi]
            part["flags"] = links
            # uint64 from the start: an int64 arange converted inside lru_address made
            # this peer 1.7x slower (204 ms against 124 ms for 1x64G).
            lru = lru_address(np.arange(start + offset, start + offset + hi - lo,
                                        dtype=np.uint64))
            part["lru_next"] = lru
            part["lru_prev"] = lru
            part["mapping"] = 0
            part["index"] = 0
            part["private"] = 0
            part["mapcount"] = MAPCOUNT_NONE
            part["refcount"] = 0
            part["memcg_data"] = 0
        memmap.pageblock_mt[first // PAGEBLOCK_NR_PAGES:(first + end - start) // PAGEBLOCK_NR_PAGES] = \
            MIGRATE_MOVABLE
    heads = np.arange(spfn, epfn, MAX_ORDER_NR_PAGES, dtype=np.int64)
    index = descriptor_index(slots, base, heads)
    pages["private"][index] = MAX_ORDER
    pages["mapcount"][index] = PAGE_BUDDY_MAPCOUNT
    head, last = list_append_max_order_run(lists, list_base, spfn, epfn)
    addresses = lru_address(heads)
    previous = lru_address(last) if last >= 0 else head
    pages["lru_prev"][index] = np.concatenate(([previous], addresses[:-1]))
    pages["lru_next"][index] = np.concatenate((addresses[1:], [head]))
    if last >= 0:
        pages["lru_next"][memmap.index(last)] = addresses[0]


def _fill_prange(memmap: Memmap, spfn: int, epfn: int, links, list_base, lists: np.ndarray) -> None:
    base, slots = memmap.slots(spfn, epfn)
    fill_max_order_blocks_prange(memmap.pages, memmap.pageblock_mt, slots, base, spfn, epfn,
                                 links, list_base, lists)


PEERS = {"numba.prange": _fill_prange, "numpy": _fill_numpy}


def peer_deferred_init(result: BootResult, peer: str, threads: int = 1) -> float:
    """Run every node's deferred init with ``peer`` after `fastinit.mm.run.prepare`.

    Returns
    -------
    float
        Seconds for all nodes (one after the other; each peer parallelizes inside a node).
    """
    fill = PEERS[peer]
    memmap, plan = result.memmap, result.plan
    if peer == "numba.prange":
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    began = time.perf_counter()
    for node in plan.nodes:
        if node.first_deferred_pfn is None:
            continue
        zone = node.deferred_zone
        area = result.zones[(node.nid, zone.zid)]
        links = page_links(node.nid, zone.zid)
        lists = new_local_lists()
        free = plan.free_ranges(node.nid, node.first_deferred_pfn, zone.end_pfn)
        done = 0
        for spfn, epfn, whole in max_order_pieces(free, node.first_deferred_pfn, zone.end_pfn):
            spfn, epfn = int(spfn), int(epfn)
            if whole:
                fill(memmap, spfn, epfn, links, area.list_base, lists)
            else:
                base, slots = memmap.slots(spfn, epfn)
                init_free_piece(memmap.pages, memmap.pageblock_mt, slots, base, spfn, epfn,
                                links, area.list_base, lists)
            done += epfn - spfn
        area.splice(memmap, lists, done)
    return time.perf_counter() - began
