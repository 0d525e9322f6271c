"""2 MiB HugeTLB boot pool pages: what the buddy allocator gives after deferred init.

As Linux 6.1 does it (``hugetlb_init()``): each page on its node alone (``__GFP_THISNODE``),
from the node's zones highest first (Movable, Normal, DMA32, DMA), a zone serving while it
stays above its low watermark, then, once none does, while above its min watermark
(`fastinit.mm.watermarks`), and only while it still has a free block of order 9 or more.
Spread over the nodes round-robin from the first node with memory, a full node being
skipped, until every node is full; the per-node form asks each node alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.layout import ZONE_MOVABLE
from fastinit.machine.hugetlb_sizes import ORDER_2M, HugetlbParams
from fastinit.mm.hugetlb.plan import allocation_failed
from fastinit.mm.watermarks import allocations_allowed, zone_marks


@dataclass(frozen=True)
class ZoneRoom:
    """What one zone can give to huge pages of one order (pages and free blocks now).

    Attributes
    ----------
    nid, zid : int
    free : int
        Free pages (``NR_FREE_PAGES``).
    blocks : int
        Free blocks of the order or more, counted in blocks of the order.
    managed : int
        ``managed_pages`` (sets the watermarks).
    """

    nid: int
    zid: int
    free: int
    blocks: int
    managed: int


def aligned_blocks(ranges, order: int) -> int:
    """Naturally aligned blocks of ``2**order`` pages inside sorted disjoint ``ranges``."""
    size = 1 << order
    return sum(max(0, (end // size) - (-(-start // size))) for start, end in ranges)


def zone_rooms(plan, order: int = ORDER_2M) -> list[ZoneRoom]:
    """Every zone's free pages and free blocks of ``order`` right after deferred init,
    from a `fastinit.mm.plan.BootPlan` (free memory is the canonical buddy state)."""
    rooms = []
    for node in plan.nodes:
        for zone in node.zones:
            free = plan.free_ranges(node.nid, zone.start_pfn, zone.end_pfn)
            pages = int((free[:, 1] - free[:, 0]).sum()) if len(free) else 0
            rooms.append(ZoneRoom(node.nid, zone.zid, pages,
                                  aligned_blocks(free.tolist(), order), pages))
    return rooms


def node_zone_counts(rooms: list[ZoneRoom], marks: dict, order: int) -> list[tuple[int, int, int]]:
    """For one node's zones: ``(zid, pages at the low mark, pages at the min mark)``,
    highest zone first (the order ``__GFP_THISNODE`` allocations try them)."""
    result = []
    for room in sorted(rooms, key=lambda r: -r.zid):
        zone = marks[(room.nid, room.zid)]
        reserve = zone.reserve[ZONE_MOVABLE]
        low = allocations_allowed(room.free, room.blocks, order, zone.low + reserve)
        least = allocations_allowed(room.free, room.blocks, order, zone.min + reserve)
        result.append((room.zid, low, max(least, low)))
    return result


def take_from_zones(counts: list[tuple[int, int, int]], pages: int) -> list[tuple[int, int]]:
    """``(zid, pages)`` segments, in order, for the first ``pages`` allocations on a node:
    each from the first zone above its low mark, else the first above its min mark."""
    taken = {zid: 0 for zid, _, _ in counts}
    segments = []
    for phase in (1, 2):
        for zid, low, least in counts:
            room = (low if phase == 1 else least) - taken[zid]
            step = min(max(room, 0), pages)
            if step:
                taken[zid] += step
                pages -= step
                segments.append((zid, step))
    return segments


def deal(total: int, capacity: list[int]) -> list[int]:
    """Round-robin ``total`` pages over nodes (in turn order) that hold ``capacity`` each;
    a full node is skipped, and dealing ends when all are full."""
    counts = [0] * len(capacity)
    active = [i for i, cap in enumerate(capacity) if cap > 0]
    while total and active:
        rounds = min(min(capacity[i] - counts[i] for i in active), total // len(active))
        if rounds:
            for i in active:
                counts[i] += rounds
            total -= rounds * len(active)
        else:
            for i in active[:total]:
                counts[i] += 1
            total = max(0, total - len(active))
        active = [i for i in active if counts[i] < capacity[i]]
    return counts


def plan_buddy_pools(params: HugetlbParams, rooms: list[ZoneRoom], memory_nodes: list[int],
                     chunks=None) -> tuple[dict, list[str], list[tuple[int, int]]]:
    """Per-zone page counts of every buddy-allocated size, the kernel's lines, and the
    nodes that ran out of room.

    ``chunks(pages)`` gives the calls the kernel's job deals a spread request in
    (`fastinit.machine.hugetlb_job.alloc_chunks`), each a round robin of its own from the
    first node; None: one round robin (Linux before 6.9).

    Returns
    -------
    buddy : dict
        ``(order, nid) -> ((zid, pages), ...)`` in serving order.
    messages : list of str
    limited : list of (int, int)
        ``(order, nid)`` where the count (not 0) is all the room the node had: an upper
        bound (and the other nodes' counts of a spread request lower bounds), as the
        kernel has spent some of that room on its own allocations before
        ``hugetlb_init()`` (percpu chunks, system hash tables, the init task's slab and
        vmalloc pages, interleaved over the nodes), which the model does not follow.
    """
    marks = zone_marks({(room.nid, room.zid): room.managed for room in rooms})
    buddy, messages, limited = {}, [], []
    for request in params.hstates:
        if request.gigantic or not request.count:
            continue
        per_node = {nid: node_zone_counts([r for r in rooms if r.nid == nid], marks,
                                          request.order) for nid in memory_nodes}
        capacity = {nid: sum(least for _, _, least in counts)
                    for nid, counts in per_node.items()}
        if request.nodes:
            got = {}
            for nid, wanted in request.nodes:
                got[nid] = min(wanted, capacity.get(nid, 0))
                if got[nid] < wanted:
                    messages.append(allocation_failed(request, wanted, got[nid], nid))
        else:
            dealt = [0] * len(memory_nodes)
            for pages in (chunks(request.count) if chunks else [request.count]):
                room = [capacity[nid] - had for nid, had in zip(memory_nodes, dealt)]
                dealt = [had + more for had, more in zip(dealt, deal(pages, room))]
            got = dict(zip(memory_nodes, dealt))
            if sum(dealt) < request.count:
                messages.append(allocation_failed(request, request.count, sum(dealt),
                                                  None))
        # All the node had (none is none in the kernel too): the kernel, with less, gets
        # fewer here, and in a spread request gives the others more.
        limited += [(request.order, nid) for nid, pages in got.items()
                    if 0 < pages == capacity.get(nid, 0)]
        for nid, pages in got.items():
            segments = take_from_zones(per_node.get(nid, []), pages)
            if segments:
                buddy[(request.order, nid)] = tuple(segments)
    return buddy, messages, limited
