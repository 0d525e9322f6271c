"""One node's part of a booted memmap as a SHA-256 digest, to compare boots node by node.

A node's part is what its boot writes: the descriptors of its memory and of the holes
charged to it (the pfns with descriptors among them), the migratetypes of the pageblocks
starting there, and its zones' figures (managed pages, free blocks per order and
migratetype, list heads). It is the same whether the memmap holds every node (one process)
or that node's shard alone (a dask worker), so two boots of one machine agree node for
node exactly when their digests do; only 32 bytes per node cross the network.

With ``links=False`` the order of each free list is left out: the list links of free-block
heads and the zones' list heads are not hashed (which chunk finished first decides the
order, so two parallel boots may differ there and nowhere else; verify allows the same).
"""

from __future__ import annotations

import hashlib

import numpy as np

from fastinit.layout import PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION, align_up
from fastinit.machine.topology import merge_ranges
from fastinit.mm.memmap import Memmap
from fastinit.mm.plan import BootPlan

# Descriptors hashed per step: 16 sections, 32 MiB (the masked copy stays small).
_STEP = 16 * PAGES_PER_SECTION


def node_pfn_ranges(plan: BootPlan, nid: int) -> list[tuple[int, int]]:
    """The pfn ranges whose descriptors node ``nid``'s boot writes: its memory and the
    holes charged to it, sorted and merged (pfns without descriptors included)."""
    ranges = list(plan.topology.node(nid).ranges)
    ranges += [(h.start_pfn, h.end_pfn) for h in plan.unavailable_ranges() if h.nid == nid]
    return merge_ranges(sorted(ranges))


def node_digest(plan: BootPlan, memmap: Memmap, zones: dict, nid: int, *,
                links: bool = True) -> str:
    """SHA-256 (hex) of node ``nid``'s descriptors, pageblocks and zone figures.

    Parameters
    ----------
    plan : BootPlan
        The whole machine's plan or the node's shard (`BootPlan.shard`).
    memmap : Memmap
        Holding at least the node's sections.
    zones : dict of (nid, zid) to ZoneFreeArea
    nid : int
    links : bool
        Hash the free lists' order too (see the module docstring).
    """
    digest = hashlib.sha256()
    ranges = node_pfn_ranges(plan, nid)
    for start, end in ranges:
        for run_start, run_end in memmap.present_runs(start, end):
            # Adjacent present sections sit in adjacent slots: a run is one slice.
            first = memmap.index(run_start)
            for lo in range(0, run_end - run_start, _STEP):
                hi = min(lo + _STEP, run_end - run_start)
                pages = memmap.pages[first + lo:first + hi]
                if not links:
                    pages = pages.copy()
                    heads = pages["mapcount"] == PAGE_BUDDY_MAPCOUNT
                    pages["lru_next"][heads] = 0
                    pages["lru_prev"][heads] = 0
                digest.update(np.array([run_start + lo, run_start + hi], np.int64).tobytes())
                digest.update(pages.tobytes())
    for start, end in ranges:
        firsts = np.arange(align_up(start, PAGEBLOCK_NR_PAGES), end, PAGEBLOCK_NR_PAGES,
                           dtype=np.int64)
        firsts = firsts[memmap.has(firsts)]
        digest.update(firsts.tobytes())
        digest.update(memmap.pageblock_mt[memmap.index(firsts) // PAGEBLOCK_NR_PAGES].tobytes())
    for (zone_nid, zid), area in sorted(zones.items()):
        if zone_nid != nid:
            continue
        digest.update(np.array([zid, area.managed], np.int64).tobytes())
        digest.update(np.ascontiguousarray(area.nr_free, np.int64).tobytes())
        if links:
            digest.update(np.ascontiguousarray(area.heads, np.uint64).tobytes())
    return digest.hexdigest()
