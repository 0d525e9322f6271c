"""What the HugeTLB jobs do to a batch of huge pages, on any thread.

`PoolState` is the jobs' shared argument: it takes blocks from a zone's free lists under
the zone's lock, gives the vmemmap pages HVO frees back to the buddy allocator, and puts
prepared pages on their size's per-node free list (``enqueue_huge_page()``) under the
pools' lock. Everything a verification needs later is recorded in a
`fastinit.mm.hugetlb.result.PoolResult`.
"""

from __future__ import annotations

import threading

import numpy as np

from fastinit.kernels.descriptors import lru_address, lru_pfn
from fastinit.kernels.buddy_alloc import free_ranges_to_zone
from fastinit.kernels.compound import HPG_FREED, link_heads
from fastinit.machine.ranges import Range, merge_ranges
from fastinit.mm.hugetlb.hvo import Remapper, freed_vmemmap, vmemmap_backing, zone_pieces
from fastinit.mm.hugetlb.hvo_file import FileRemapper
from fastinit.mm.hugetlb.prep import can_stream, whole_blocks
from fastinit.mm.hugetlb.result import PoolResult, freelist_address

class PoolState:
    """Shared state of the HugeTLB jobs.

    Parameters
    ----------
    result : fastinit.mm.run.BootResult
        After deferred init.
    decision : HvoDecision
        Which pages HVO remaps.
    stream : bool
        Stream the tails whose old contents are known (`fastinit.mm.hugetlb.prep`).
    """

    def __init__(self, result, decision, stream: bool = True):
        self.plan, self.memmap, self.zones = result.plan, result.memmap, result.zones
        self.stream = stream and can_stream(self.memmap)
        # Only pages from the buddy allocator ask which blocks were freed whole.
        buddy = any(not r.gigantic and self.plan.pools.total(r.order)
                    for r in self.plan.pools.params.hstates)
        self.whole_blocks = {key: whole_blocks(self.plan, key) for key in self.zones} \
            if buddy else {}
        self.out = PoolResult(decision=decision)
        if decision.pages:
            self.out.remapper = Remapper(self.memmap, decision.pages) \
                if self.memmap.file is None else \
                FileRemapper(self.memmap, self.memmap.file.hvo_record())
            self.backing = vmemmap_backing(self.plan)
        self.slots = {key: self.memmap.slots(self.plan.topology.zone(*key).start_pfn,
                                             self.plan.topology.zone(*key).end_pfn)
                      for key in self.zones}
        self.hstate_index = {request.order: index for index, request in
                             enumerate(self.plan.pools.params.hstates)}
        self.lock = threading.Lock()

    def zone_call(self, key: tuple[int, int], fn, *args):
        """Run a buddy kernel on zone ``key``'s own free lists, under the zone's lock."""
        area, (base, slots) = self.zones[key], self.slots[key]
        with area.lock:
            return fn(self.memmap.pages, self.memmap.pageblock_mt, slots, base, area.heads,
                      area.nr_free, area.list_base, *args)

    def add_managed(self, key: tuple[int, int], pages: int) -> None:
        with self.zones[key].lock:
            self.zones[key].managed += pages
        with self.lock:
            self.out.managed_added[key] = self.out.managed_added.get(key, 0) + pages

    def optimize(self, heads: np.ndarray, order: int, write_in_full, keep_tails=True) -> None:
        """HVO for prepared pages: remap their vmemmap, free the pages that held it.

        A page the process has no mappings left for keeps its vmemmap: the remapper
        restores it and ``write_in_full(heads)`` writes all its descriptors (``keep_tails``:
        the unwritten ones must come back as they were, not be initialized again)."""
        freed: dict[tuple[int, int], list[Range]] = {}
        indexes = np.atleast_1d(self.memmap.index(heads)).tolist()
        for head, index in zip(np.atleast_1d(heads).tolist(), indexes):
            if not self.out.remapper.remap(index, order, keep_tails):
                write_in_full(np.array([head], dtype=np.int64))
                with self.lock:
                    self.out.kept_vmemmap += 1
                continue
            for start, end in freed_vmemmap(self.backing, index, order):
                for key, piece in self.zone_pieces(start, end):
                    freed.setdefault(key, []).append(piece)
        for key, ranges in sorted(freed.items()):
            ranges = np.array(merge_ranges(ranges), dtype=np.int64).reshape(-1, 2)
            self.add_managed(key, self.zone_call(key, free_ranges_to_zone, ranges))
            with self.lock:
                self.out.freed_vmemmap += [(key[0], key[1], s, e) for s, e in ranges.tolist()]

    def zone_pieces(self, start: int, end: int):
        """``((nid, zid), (lo, hi))`` pieces of a range of one node's memory, by zone."""
        return zone_pieces(self.plan, start, end)

    def enqueue(self, heads: np.ndarray, order: int, nid: int) -> None:
        """``enqueue_huge_page()`` of each head in turn: each goes first on the list."""
        if not len(heads):
            return
        index = self.hstate_index[order]
        address = freelist_address(index, nid)
        ordered = np.ascontiguousarray(heads[::-1], dtype=np.int64)
        pages, memmap = self.memmap.pages, self.memmap
        with self.lock:
            base, slots = memmap.slots(int(ordered.min()), int(ordered.max()) + 1)
            link_heads(pages, slots, base, ordered, np.uint64(address), HPG_FREED)
            first, last = self.out.freelists.get((index, nid), (address, address))
            new_last = int(lru_address(int(ordered[-1])))
            pages[memmap.index(int(ordered[-1]))]["lru_next"] = first
            if first == address:
                last = new_last
            else:
                pages[memmap.index(int(lru_pfn(first)))]["lru_prev"] = new_last
            self.out.freelists[(index, nid)] = (int(lru_address(int(ordered[0]))), last)
            self.out.pages.setdefault(order, []).append((np.array(heads, np.int64), nid))
