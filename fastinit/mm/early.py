"""Early init, on one thread, before any deferred work: what ``mm_core_init()`` does.

In order, as the kernel does it: descriptors of memory below each node's deferral point
(``memmap_init()``, pageblocks marked MOVABLE), descriptors of holes inside present sections
(``init_unavailable_range()``, reserved), memblock-reserved memory marked reserved and, in
the deferred part, initialized (``memmap_init_reserved_pages()``), then the free memory
below the deferral points handed to the buddy allocator (``memblock_free_all()``). All
descriptors that any free path may read are initialized before the first free.
"""

from __future__ import annotations

import numpy as np

from fastinit.mm.plan import BootPlan, NodePlan
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.kernels.descriptors import new_local_lists, page_links
from fastinit.kernels.buddy_free import free_pages_ranges
from fastinit.kernels.page_init import init_pages_range
from fastinit.mm.memmap import Memmap
from fastinit.layout import MIGRATE_MOVABLE, PAGEBLOCK_NR_PAGES, PG_RESERVED, align_up
from fastinit.machine.topology import Range, Topology, intersect, subtract


def init_range(memmap: Memmap, start: int, end: int, nid: int, zid: int,
               reserved: bool) -> int:
    """Initialize ``[start, end)`` (pfns with descriptors only) for node ``nid``, zone ``zid``."""
    done = 0
    links = page_links(nid, zid)
    for s, e in memmap.present_runs(start, end):
        base, slots = memmap.slots(s, e)
        done += init_pages_range(memmap.pages, slots, base, s, e, links, reserved)
    return done


def mark_movable(memmap: Memmap, start: int, end: int) -> None:
    """Set MIGRATE_MOVABLE on the pageblocks whose first pfn lies in ``[start, end)`` (those
    the memmap has: a node's shard holds only its own sections)."""
    for lo, hi in memmap.present_runs(start, end):
        pfns = np.arange(align_up(lo, PAGEBLOCK_NR_PAGES), hi, PAGEBLOCK_NR_PAGES,
                         dtype=np.int64)
        memmap.pageblock_mt[memmap.index(pfns) // PAGEBLOCK_NR_PAGES] = MIGRATE_MOVABLE


def early_limit(node: NodePlan, zone) -> int:
    """End of the zone's early part: the deferral point in the deferred zone."""
    if node.first_deferred_pfn is not None and zone is node.zones[-1]:
        return node.first_deferred_pfn
    return zone.end_pfn


def early_memory(topology: Topology, nid: int) -> list[Range]:
    """Node ``nid``'s memory that ``memmap_init()`` initializes (below its deferral point),
    sorted: the pageblocks starting there are MOVABLE before the first page is freed."""
    first = topology.first_deferred_pfn(nid)
    limit = first if first is not None else topology.node(nid).end_pfn
    return intersect(topology.node(nid).ranges, 0, limit)


def neighbours_early_memory(plan: BootPlan) -> list[Range]:
    """The early memory of the nodes a plan leaves out (a node's shard,
    `BootPlan.shard`), sorted. In the whole boot ``memmap_init()`` marks their pageblocks
    MOVABLE before any page is freed, so a pageblock the shard's node shares with one
    of them must be MOVABLE in the shard too, or its frees would go to other lists."""
    planned = {node.nid for node in plan.nodes}
    return sorted(r for node in plan.topology.memory_nodes if node.nid not in planned
                  for r in early_memory(plan.topology, node.nid))


def early_init(plan: BootPlan, memmap: Memmap, zones: dict[tuple[int, int], ZoneFreeArea],
               noinit: list | None = None) -> int:
    """Run early init for every node; returns the descriptors initialized.

    ``noinit``: sorted pfn ranges of reserved memory in the deferred part whose
    descriptors are left unwritten (HVO'd gigantic pages' tails, which Linux 6.9
    reserves MEMBLOCK_RSRV_NOINIT and never initializes).
    """
    topology = plan.topology
    done = 0
    for node in plan.nodes:
        for zone in node.zones:
            for s, e in intersect(topology.node(node.nid).ranges, zone.start_pfn,
                                  early_limit(node, zone)):
                done += init_range(memmap, s, e, node.nid, zone.zid, reserved=False)
                mark_movable(memmap, s, e)
    for s, e in neighbours_early_memory(plan):
        mark_movable(memmap, s, e)
    for hole in plan.unavailable_ranges():
        done += init_range(memmap, hole.start_pfn, hole.end_pfn, hole.nid, hole.zid,
                           reserved=True)
    flags = memmap.pages["flags"]
    for node in plan.nodes:
        split = node.first_deferred_pfn if node.first_deferred_pfn is not None else 1 << 62
        for start, end in node.reserved:
            if end > split:
                for lo, hi in subtract([(max(start, split), end)], noinit or []):
                    done += init_range(memmap, lo, hi, node.nid, node.zones[-1].zid,
                                       reserved=True)
            if start < split:
                index = memmap.index(np.arange(start, min(end, split), dtype=np.int64))
                flags[index] |= np.uint64(PG_RESERVED)
    for node in plan.nodes:
        for zone in node.zones:
            free = plan.free_ranges(node.nid, zone.start_pfn, early_limit(node, zone))
            if len(free):
                free_into_zone(memmap, zones[(node.nid, zone.zid)], free)
    return done


def free_into_zone(memmap: Memmap, area: ZoneFreeArea, free: np.ndarray) -> int:
    """Free initialized pfn ranges (shape (n, 2)) of one zone into its free lists."""
    base, slots = memmap.slots(int(free[0, 0]), int(free[-1, 1]))
    lists = new_local_lists()
    freed = free_pages_ranges(memmap.pages, memmap.pageblock_mt, slots, base,
                              np.ascontiguousarray(free), area.list_base, lists)
    area.splice(memmap, lists, freed)
    return freed
