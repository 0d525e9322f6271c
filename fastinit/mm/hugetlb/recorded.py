"""The pools a memmap file holds, read back from its descriptors.

A file records its pools as it records everything else: the machine and its kernel
command line (``hugepages=``) are in its metadata, so planning it again gives the pool
plan, and the descriptors hold the rest. Every HugeTLB page's head carries PG_head (no
other compound pages exist in a boot), its node is the one whose memory holds it, and the
first and last page of each per-node free list point at that list's head. Nothing is
trusted: `fastinit.mm.hugetlb.verify` then checks these pages against the plan, their
descriptors one by one, and the lists end to end, as it checks a boot's own.
"""

from __future__ import annotations

import numpy as np

from fastinit.kernels.descriptors import lru_address
from fastinit.kernels.compound import PG_HEAD
from fastinit.layout import DESCRIPTORS_PER_PAGE, PAGES_PER_SECTION, SECTION_SHIFT
from fastinit.mm.hugetlb.hvo import (aliased_descriptors, freed_vmemmap, vmemmap_backing,
                                     zone_pieces)
from fastinit.mm.hugetlb.plan import zone_of
from fastinit.mm.hugetlb.result import PoolResult, freelist_address

# Sections scanned at once: bounds the temporary arrays to a few MiB on any machine.
_SECTIONS_AT_ONCE = 64


def head_pfns(memmap, aliased: np.ndarray | None = None) -> np.ndarray:
    """Pfns of every descriptor with PG_head set, sorted (int64), outside the ``[first,
    end)`` descriptor ranges ``aliased`` (HVO's aliases show the head they alias)."""
    found = []
    flags = memmap.pages["flags"]
    heads = np.zeros(0, np.int64) if aliased is None else aliased
    for slot in range(0, len(memmap.sections), _SECTIONS_AT_ONCE):
        lo, hi = slot * PAGES_PER_SECTION, (slot + _SECTIONS_AT_ONCE) * PAGES_PER_SECTION
        index = np.flatnonzero(flags[lo:hi] & np.uint64(PG_HEAD)) + lo
        if len(heads):
            at = np.searchsorted(heads[:, 0], index, side="right") - 1
            index = index[(at < 0) | (index >= heads[np.maximum(at, 0), 1])]
        sections = memmap.sections[index // PAGES_PER_SECTION]
        found.append((sections << SECTION_SHIFT) + index % PAGES_PER_SECTION)
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _nodes_of(topology, pfns: np.ndarray) -> np.ndarray:
    """The node whose memory holds each pfn (-1: none)."""
    ranges = sorted(topology.memory_ranges())
    starts = np.array([s for s, _, _ in ranges], np.int64)
    at = np.searchsorted(starts, pfns, side="right") - 1
    nids = np.full(len(pfns), -1, np.int64)
    for position, (start, end, nid) in enumerate(ranges):
        nids[(at == position) & (pfns < end)] = nid
    return nids


def recorded_pools(plan, memmap) -> PoolResult:
    """The `PoolResult` a boot of ``plan`` left in ``memmap`` (a file's, read back)."""
    out = PoolResult()
    remapper = memmap.file.hvo if memmap.file is not None else None
    heads = head_pfns(memmap, aliased_descriptors(memmap) if remapper else None)
    gigantic = {pfn: (order, nid) for pfn, order, nid in plan.pools.gigantic}
    buddy_orders = [r.order for r in plan.pools.params.hstates if not r.gigantic] or [0]
    nids = _nodes_of(plan.topology, heads)
    orders = np.array([gigantic.get(pfn, (buddy_orders[0],))[0] for pfn in heads.tolist()],
                      np.int64).reshape(-1)
    for order in np.unique(orders).tolist():
        for nid in np.unique(nids[orders == order]).tolist():
            out.pages.setdefault(order, []).append(
                (heads[(orders == order) & (nids == nid)], nid))
    for (pfn, order, nid) in plan.pools.gigantic:
        key = (nid, zone_of(plan.topology, nid, pfn))
        out.managed_added[key] = out.managed_added.get(key, 0) + (1 << order)
    _find_list_ends(plan, memmap, out)
    if remapper is not None:
        _add_freed_vmemmap(plan, memmap, remapper, out)
    return out


def _add_freed_vmemmap(plan, memmap, remapper, out: PoolResult) -> None:
    """What HVO gave the buddy allocator for the pages the file records as aliased."""
    out.remapper = remapper
    backing = vmemmap_backing(plan)
    for first, count in remapper.aliases:
        order = (count * DESCRIPTORS_PER_PAGE).bit_length() - 1
        for start, end in freed_vmemmap(backing, first * DESCRIPTORS_PER_PAGE, order):
            for key, (lo, hi) in zone_pieces(plan, start, end):
                out.freed_vmemmap.append((key[0], key[1], lo, hi))
                out.managed_added[key] = out.managed_added.get(key, 0) + hi - lo


def _find_list_ends(plan, memmap, out: PoolResult) -> None:
    """Each per-node free list's first and last page: those whose links name its head."""
    pages = memmap.pages
    for index, request in enumerate(plan.pools.params.hstates):
        for heads, nid in out.pages.get(request.order, []):
            address = np.uint64(freelist_address(index, nid))
            rows = pages[memmap.index(heads)]
            first = heads[rows["lru_prev"] == address]
            last = heads[rows["lru_next"] == address]
            if len(first) and len(last):
                out.freelists[(index, nid)] = (int(lru_address(int(first[0]))),
                                               int(lru_address(int(last[0]))))
