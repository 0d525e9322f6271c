"""Where the HugeTLB boot pools come from, decided before any descriptor is written.

As Linux 6.1 does it:

- **Gigantic pages (1 GiB)** are taken from memblock while the command line is handled,
  after the memmaps were placed: top-down, 1 GiB-aligned, each on the node whose turn it
  is (``for_each_node_mask_to_alloc``: round-robin over the nodes with memory from the first
  one), or on the node asked for in the per-node form. memblock falls back to any node when
  that node has no room (``memblock_alloc_try_nid_raw()`` is not exact), so a page may land
  on another node, where it is counted. The first page that fits nowhere ends the size.
- **2 MiB pages** come from the buddy allocator after deferred init (``hugetlb_init()``):
  each on its node alone (``__GFP_THISNODE``), from the node's zones highest first
  (Movable, Normal, DMA32, DMA), a zone serving while it stays above its low watermark,
  then, once none does, while above its min watermark (`fastinit.mm.watermarks`), and
  only while it still has a free block of order 9 or more. Spread over the nodes
  round-robin from the first node with memory, a full node being skipped, until every
  node is full; the per-node form asks each node alone.

The messages are the kernel's (``HugeTLB: allocating 1000 of page size 2.00 MiB failed.
Only allocated 870 hugepages.``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastinit.layout import PAGE_SHIFT, ZONE_MOVABLE
from fastinit.machine.hugetlb_sizes import ORDER_2M, HugepageRequest, HugetlbParams, size_text
from fastinit.machine.ranges import Range, intersect, merge_ranges, subtract
from fastinit.machine.topology import Topology
from fastinit.mm.watermarks import allocations_allowed, zone_marks


@dataclass(frozen=True)
class PoolPlan:
    """The boot pools a machine gets.

    Attributes
    ----------
    params : HugetlbParams
        The command line's HugeTLB options.
    gigantic : tuple of (int, int, int)
        ``(pfn, order, nid)`` of each gigantic page, in allocation order; ``nid`` is the
        node whose memory holds it.
    gigantic_messages : tuple of (int, str)
        The kernel's lines while allocating gigantic pages, each with the number of option
        warnings printed before it.
    buddy : dict
        ``(order, nid) -> ((zid, pages), ...)``: what each node's zones give to each
        buddy-allocated size, in the order they give it.
    buddy_messages : tuple of str
        The kernel's lines while allocating them (at ``hugetlb_init()``).
    """

    params: HugetlbParams
    gigantic: tuple[tuple[int, int, int], ...] = ()
    gigantic_messages: tuple[tuple[int, str], ...] = ()
    buddy: dict = field(default_factory=dict)
    buddy_messages: tuple[str, ...] = ()

    def gigantic_ranges(self) -> list[Range]:
        return merge_ranges((pfn, pfn + (1 << order)) for pfn, order, _ in self.gigantic)

    def counts(self) -> dict[int, dict[int, int]]:
        """``nid -> {order: pages}`` of every size with pages."""
        result: dict[int, dict[int, int]] = {}
        for _, order, nid in self.gigantic:
            sizes = result.setdefault(nid, {})
            sizes[order] = sizes.get(order, 0) + 1
        for (order, nid), segments in self.buddy.items():
            sizes = result.setdefault(nid, {})
            sizes[order] = sizes.get(order, 0) + sum(pages for _, pages in segments)
        return result

    def total(self, order: int) -> int:
        return sum(sizes.get(order, 0) for sizes in self.counts().values())

    def with_buddy(self, buddy: dict, messages: list[str]) -> PoolPlan:
        return PoolPlan(self.params, self.gigantic, self.gigantic_messages, dict(buddy),
                        tuple(messages))


def online_nodes(topology: Topology) -> list[int]:
    """Nodes online when the options are handled: those with memory or CPUs."""
    return [node.nid for node in topology.nodes if node.ranges or node.cpus]


class _Memblock:
    """memblock's free memory for the gigantic allocations: top-down, aligned."""

    def __init__(self, topology: Topology, reserved: list[Range]):
        self.topology = topology
        self.reserved = merge_ranges(reserved)

    def free(self, nid: int | None) -> list[Range]:
        if nid is None:
            memory = [(s, e) for s, e, _ in self.topology.memory_ranges()]
        else:
            memory = list(self.topology.node(nid).ranges) if nid in \
                {n.nid for n in self.topology.nodes} else []
        return subtract(memory, self.reserved)

    def alloc(self, pages: int, nid: int | None) -> int | None:
        """``memblock_alloc_try_nid_raw(size, size, 0, ACCESSIBLE, nid)``: the node's
        highest aligned free place, else the highest anywhere."""
        for where in ([nid, None] if nid is not None else [None]):
            for start, end in reversed(self.free(where)):
                # memblock never hands out the first page (start is at least PAGE_SIZE).
                place = (end - pages) // pages * pages
                if place >= max(start, 1):
                    self.reserved = merge_ranges(self.reserved + [(place, place + pages)])
                    return place
        return None

    def node_of(self, pfn: int) -> int:
        for start, end, nid in self.topology.memory_ranges():
            if start <= pfn < end:
                return nid
        raise AssertionError(f"pfn {pfn:#x} is in no node")


def _failed(request: HugepageRequest, wanted: int, got: int, nid: int | None) -> str:
    where = f" node{nid}" if nid is not None else ""
    return (f"HugeTLB: allocating {wanted} of page size {size_text(request.order)} "
            f"failed{where}.  Only allocated {got} hugepages.")


def _next_node(nodes: list[int], cursor: int) -> tuple[int, int]:
    """``hstate_next_node_to_alloc()``: the node at or after ``cursor`` and the next one."""
    after = [nid for nid in nodes if nid >= cursor]
    nid = after[0] if after else nodes[0]
    index = nodes.index(nid)
    return nid, nodes[(index + 1) % len(nodes)]


def place_gigantic(topology: Topology, params: HugetlbParams,
                   reserved: list[Range]) -> tuple[list[tuple[int, int, int]],
                                                   list[tuple[int, str]]]:
    """Allocate every gigantic size from memblock, in the order the options asked.

    Parameters
    ----------
    topology : Topology
    params : HugetlbParams
    reserved : list of (int, int)
        memblock-reserved pfn ranges when the options are handled (memmaps included).

    Returns
    -------
    pages : list of (pfn, order, nid)
    messages : list of (int, str)
        Failure lines, each with the number of option warnings printed before it.
    """
    memblock = _Memblock(topology, reserved)
    memory_nodes = [node.nid for node in topology.memory_nodes]
    pages, messages = [], []
    requests = sorted((r for r in params.hstates if r.gigantic and r.count),
                      key=lambda r: r.parsed_after)
    for request in requests:
        size = 1 << request.order
        if request.nodes:
            for nid, wanted in request.nodes:
                got = 0
                while got < wanted and (pfn := memblock.alloc(size, nid)) is not None:
                    pages.append((pfn, request.order, memblock.node_of(pfn)))
                    got += 1
                if got < wanted:
                    messages.append((request.parsed_after, _failed(request, wanted, got, nid)))
            continue
        cursor = memory_nodes[0]
        for got in range(request.count):
            nid, cursor = _next_node(memory_nodes, cursor)
            pfn = memblock.alloc(size, nid)
            if pfn is None:
                messages.append((request.parsed_after,
                                 _failed(request, request.count, got, None)))
                break
            pages.append((pfn, request.order, memblock.node_of(pfn)))
    return pages, messages


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


def plan_buddy_pools(params: HugetlbParams, rooms: list[ZoneRoom],
                     memory_nodes: list[int]) -> tuple[dict, list[str]]:
    """Per-zone page counts of every buddy-allocated size, and the kernel's lines.

    Returns
    -------
    buddy : dict
        ``(order, nid) -> ((zid, pages), ...)`` in serving order.
    messages : list of str
    """
    marks = zone_marks({(room.nid, room.zid): room.managed for room in rooms})
    buddy, messages = {}, []
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
                    messages.append(_failed(request, wanted, got[nid], nid))
        else:
            dealt = deal(request.count, [capacity[nid] for nid in memory_nodes])
            got = dict(zip(memory_nodes, dealt))
            if sum(dealt) < request.count:
                messages.append(_failed(request, request.count, sum(dealt), None))
        for nid, pages in got.items():
            segments = take_from_zones(per_node.get(nid, []), pages)
            if segments:
                buddy[(request.order, nid)] = tuple(segments)
    return buddy, messages


def page_size_bytes(order: int) -> int:
    return 1 << (order + PAGE_SHIFT)


def zone_of(topology: Topology, nid: int, pfn: int) -> int:
    """The zone of node ``nid`` holding ``pfn``."""
    for zone in topology.zones(nid):
        if zone.start_pfn <= pfn < zone.end_pfn:
            return zone.zid
    raise AssertionError(f"pfn {pfn:#x} is in no zone of node {nid}")


def gigantic_in(pages, lo: int, hi: int) -> list[Range]:
    """Gigantic page ranges inside ``[lo, hi)``."""
    return intersect(merge_ranges((p, p + (1 << o)) for p, o, _ in pages), lo, hi)


def planned_pools(topology: Topology) -> PoolPlan | None:
    """The boot pools a boot of ``topology`` would get (None if it cannot be planned:
    a node without room for its own memmap)."""
    from fastinit.mm.plan import plan_boot
    try:
        return plan_boot(topology).pools
    except ValueError:
        return None


def has_pools(plan) -> bool:
    """True if the plan puts any page in a HugeTLB boot pool."""
    return plan.pools is not None and bool(plan.pools.gigantic or plan.pools.buddy)
