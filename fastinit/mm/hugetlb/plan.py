"""Where the HugeTLB boot pools come from, decided before any descriptor is written.

As Linux 6.1 does it, **gigantic pages (1 GiB)** are taken from memblock while the command
line is handled, after the memmaps were placed: top-down, 1 GiB-aligned, each on the node
whose turn it is (``for_each_node_mask_to_alloc``: round-robin over the nodes with memory
from the first one), or on the node asked for in the per-node form. memblock falls back to
any node when that node has no room (``memblock_alloc_try_nid_raw()`` is not exact), so a
page may land on another node, where it is counted. The first page that fits nowhere ends
the size. 2 MiB pages come from the buddy allocator after deferred init
(`fastinit.mm.hugetlb.buddy_plan`); `PoolPlan` holds both.

The messages are the kernel's (``HugeTLB: allocating 1000 of page size 2.00 MiB failed.
Only allocated 870 hugepages.``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fastinit.machine.hugetlb_sizes import HugepageRequest, HugetlbParams, size_text
from fastinit.machine.ranges import Range, merge_ranges, subtract
from fastinit.machine.topology import Topology


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
    limited : tuple of (int, int)
        ``(order, nid)`` whose count is all the room the node had, so an upper bound of
        the kernel's (see `fastinit.mm.hugetlb.buddy_plan.plan_buddy_pools`).
    """

    params: HugetlbParams
    gigantic: tuple[tuple[int, int, int], ...] = ()
    gigantic_messages: tuple[tuple[int, str], ...] = ()
    buddy: dict = field(default_factory=dict)
    buddy_messages: tuple[str, ...] = ()
    limited: tuple[tuple[int, int], ...] = ()

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

    def of_node(self, nid: int) -> PoolPlan:
        """Node ``nid``'s pools alone (its shard's, `fastinit.mm.plan.BootPlan.shard`):
        its gigantic pages and its share of each buddy-allocated size; the kernel's
        lines stay the machine's."""
        return replace(self, gigantic=tuple(p for p in self.gigantic if p[2] == nid),
                       buddy={key: v for key, v in self.buddy.items() if key[1] == nid},
                       limited=tuple(key for key in self.limited if key[1] == nid))

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


def allocation_failed(request: HugepageRequest, wanted: int, got: int,
                      nid: int | None) -> str:
    """The kernel's line when fewer pages of a size than asked could be allocated."""
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
                    messages.append((request.parsed_after,
                                     allocation_failed(request, wanted, got, nid)))
            continue
        cursor = memory_nodes[0]
        for got in range(request.count):
            nid, cursor = _next_node(memory_nodes, cursor)
            pfn = memblock.alloc(size, nid)
            if pfn is None:
                messages.append((request.parsed_after,
                                 allocation_failed(request, request.count, got, None)))
                break
            pages.append((pfn, request.order, memblock.node_of(pfn)))
    return pages, messages


def zone_of(topology: Topology, nid: int, pfn: int) -> int:
    """The zone of node ``nid`` holding ``pfn``."""
    for zone in topology.zones(nid):
        if zone.start_pfn <= pfn < zone.end_pfn:
            return zone.zid
    raise AssertionError(f"pfn {pfn:#x} is in no zone of node {nid}")


def has_pools(plan) -> bool:
    """True if the plan puts any page in a HugeTLB boot pool."""
    return plan.pools is not None and bool(plan.pools.gigantic or plan.pools.buddy)
