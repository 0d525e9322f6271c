"""Zones per node as ``free_area_init()`` sizes them, ZONE_MOVABLE included.

The architecture gives each zone a pfn window (x86-64: DMA below 16 MiB, DMA32 below 4 GiB,
Normal up to the end of RAM; each starting where the one below ended, from the first pfn of
RAM). ``kernelcore=`` / ``movablecore=`` then carve ZONE_MOVABLE out of the top of each node,
in the highest zone that has a window: ``find_zone_movable_pfns_for_nodes()`` spreads the
kernel's share evenly over the nodes with memory, gives a node that cannot take its share's
rest to the others in further passes, and rounds each node's start of ZONE_MOVABLE up to a
MAX_ORDER block. A zone's span is the node's span clamped to its window and cut at that
start (``adjust_zone_range_for_zone_movable()``); present pages are the node's memory in it.
"""

from __future__ import annotations

from fastinit.layout import (MAX_DMA32_PFN, MAX_DMA_PFN, MAX_ORDER_NR_PAGES, ZONE_MOVABLE,
                             ZONE_NORMAL, align_up)
from fastinit.machine.ranges import Range, intersect

# The zone limits x86-64 passes to free_area_init() (max_zone_pfn), before clipping to RAM;
# None means "the end of RAM" (max_low_pfn, which is max_pfn on 64 bits).
ARCH_ZONE_LIMITS = (MAX_DMA_PFN, MAX_DMA32_PFN, None)


def arch_zone_windows(min_pfn: int, max_pfn: int) -> list[Range]:
    """``[lowest, highest)`` possible pfn of DMA, DMA32, Normal (empty: lowest == highest)."""
    windows, start = [], min_pfn
    for limit in ARCH_ZONE_LIMITS:
        end = max(min(limit, max_pfn) if limit is not None else max_pfn, start)
        windows.append((start, end))
        start = end
    return windows


def movable_zone(windows: list[Range]) -> int:
    """``find_usable_zone_for_movable()``: the highest zone with a non-empty window."""
    for zid in range(ZONE_NORMAL, -1, -1):
        if windows[zid][1] > windows[zid][0]:
            return zid
    return 0


def _required_kernelcore(total: int, kernelcore, movablecore) -> int:
    """Pages the kernel keeps out of ZONE_MOVABLE, from kernelcore= and movablecore=."""
    required = kernelcore.pages_of(total) if kernelcore is not None else 0
    movable = movablecore.pages_of(total) if movablecore is not None else 0
    if movable:
        # Rounded up so that ZONE_MOVABLE is at least as large as asked.
        movable = min(total, align_up(movable, MAX_ORDER_NR_PAGES))
        required = max(required, total - movable)
    return required


def zone_movable_pfns(node_ranges: dict[int, list[Range]], windows: list[Range],
                      kernelcore, movablecore, past_end: bool = False) -> dict[int, int]:
    """Where ZONE_MOVABLE starts on each node (nodes without one are left out).

    Parameters
    ----------
    node_ranges : dict
        ``nid -> sorted pfn ranges`` of every node with memory.
    windows : list of (int, int)
        From `arch_zone_windows`.
    kernelcore, movablecore : fastinit.machine.cmdline.CoreSize or None
    past_end : bool
        Keep a start at or past the node's end (kernels without ddbc84f3f595: kernel
        rule movable_none_past_node_end).
    """
    total = sum(e - s for ranges in node_ranges.values() for s, e in ranges)
    required = _required_kernelcore(total, kernelcore, movablecore)
    if not required or required >= total:
        return {}
    nids = sorted(nid for nid, ranges in node_ranges.items() if ranges)
    usable_start = windows[movable_zone(windows)][0]
    start_of = {nid: 0 for nid in nids}
    usable_nodes = len(nids)
    while True:
        per_node = required // usable_nodes
        for nid in nids:
            if required < per_node:
                per_node = required // usable_nodes
            remaining = per_node
            for start, end in node_ranges[nid]:
                start = max(start, start_of[nid])
                if start >= end:
                    continue
                if start < usable_start:
                    # Memory below the movable zone's window can only be the kernel's.
                    kernel_pages = min(end, usable_start) - start
                    remaining -= min(kernel_pages, remaining)
                    required -= min(kernel_pages, required)
                    if end <= usable_start:
                        start_of[nid] = end
                        continue
                    start = usable_start
                size = min(end - start, remaining)
                start_of[nid] = start + size
                required -= min(required, size)
                remaining -= size
                if not remaining:
                    break
        usable_nodes -= 1
        if not (usable_nodes and required > usable_nodes):
            break
    result = {}
    for nid in nids:
        pfn = align_up(start_of[nid], MAX_ORDER_NR_PAGES)
        if 0 < pfn and (past_end or pfn < node_ranges[nid][-1][1]):
            result[nid] = pfn
    return result


def node_zones(ranges: list[Range], windows: list[Range], movable_pfn: int | None,
               ) -> list[tuple[int, int, int, int]]:
    """The node's zones: ``(zid, start_pfn, end_pfn, present)`` for every zone that spans
    pages (``zone_spanned_pages_in_node()``), lowest first; present may be 0."""
    if not ranges:
        return []
    node_start, node_end = ranges[0][0], ranges[-1][1]
    top = windows[movable_zone(windows)][1]
    result = []
    for zid in range(ZONE_MOVABLE + 1):
        if zid == ZONE_MOVABLE:
            if not movable_pfn:
                continue
            start, end = movable_pfn, min(node_end, top)
        else:
            low, high = windows[zid]
            start, end = min(max(node_start, low), high), min(max(node_end, low), high)
            if movable_pfn and start < movable_pfn < end:
                end = movable_pfn
            elif movable_pfn and start >= movable_pfn:
                start = end
        if end < node_start or start > node_end:
            continue
        start, end = max(start, node_start), min(end, node_end)
        if end > start:
            present = sum(e - s for s, e in intersect(ranges, start, end))
            result.append((zid, start, end, present))
    return result
