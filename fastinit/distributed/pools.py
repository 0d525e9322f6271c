"""HugeTLB boot pools on a cluster: each node's pools built on the worker holding its shard.

Gigantic pages come from memblock while the plan is made (the client's plan places them,
and each shard reserves its node's), so a node's worker builds them alone. A 2 MiB count
is split between the nodes by their buddy allocators' room after deferred init
(`fastinit.mm.hugetlb.buddy_plan`): for a count spread over the nodes, what one node gets
depends on every other node's room. So each worker, once its node's deferred init is
done, reports the node's room as its buddy allocator holds it (`rooms_of`), and waits;
the client, with every node's room, splits the counts as one process does
(`split_pools`) and sends each node its share (`fastinit.distributed.run`); the worker
then builds its pools from that share. The rooms measured must be the ones the plan
derives: otherwise the cluster's pools could not equal the single-process boot's, and the
split says which node differs.

`ClusterPools` is the pools' part of a cluster's result, summed from the nodes'
`pool_figures`, shaped where the report reads it like `fastinit.mm.hugetlb.result.PoolResult`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from fastinit.machine.hugetlb_sizes import ORDER_2M
from fastinit.mm.hugetlb.buddy_plan import ZoneRoom, plan_buddy_pools, zone_rooms
from fastinit.mm.hugetlb.plan import PoolPlan, has_pools


def needs_split(plan) -> bool:
    """Whether the nodes' pools wait for the client's split: the plan has pools and the
    command line asks for buddy-allocated (2 MiB) pages."""
    return has_pools(plan) and any(not request.gigantic and request.count
                                   for request in plan.pools.params.hstates)


def rooms_of(result) -> list[tuple]:
    """A booted shard's zones' room for 2 MiB pages as its buddy allocator holds it now
    (worker side): ``(nid, zid, free, blocks, managed)`` per zone, plain numbers."""
    rooms = []
    for (nid, zid), area in sorted(result.zones.items()):
        orders = range(area.nr_free.shape[0])
        blocks = area.nr_free.sum(axis=1)
        free = sum(int(blocks[order]) << order for order in orders)
        # Free blocks of order 9 or more, counted in 2 MiB blocks.
        big = sum(int(blocks[order]) << (order - ORDER_2M) for order in orders
                  if order >= ORDER_2M)
        rooms.append((nid, zid, free, big, int(area.managed)))
    return rooms


def await_share(shard, result, poll: float) -> None:
    """After a node's deferred init, on its worker: report its room (phase ``rooms``),
    wait for the client's split (`fastinit.distributed.registry.give_pools`), and boot its
    pools from its share. ``shard`` is the node's `fastinit.distributed.registry.Shard`;
    its cancel event is looked at every ``poll`` seconds."""
    from fastinit.engine.padata import JobCancelled
    with shard.lock:
        shard.rooms = rooms_of(result)
        shard.phase = "rooms"
    try:
        # The wait needs every node booted at once: this task leaves the worker's thread
        # count, so a node queued behind it on a worker of one thread can start.
        from distributed import secede
        secede()
    except (ImportError, ValueError):
        pass  # not in a dask worker
    while not shard.pools_given.wait(poll):
        if shard.cancel.is_set():
            raise JobCancelled(f"node {shard.nid}: its boot was cancelled while it waited "
                               f"for its share of the HugeTLB pools")
    result.plan = replace(result.plan, pools=shard.pools)
    shard.phase = "pools"


def split_pools(plan, measured: dict[int, list[tuple]]) -> PoolPlan:
    """The machine's pools with each buddy-allocated count split by the nodes' measured
    rooms (``{nid: rooms_of(...)}``, every node), as one process splits it.

    Raises
    ------
    ValueError
        A node's measured room is not the one its plan derives (its boot differs from
        the single-process boot's): names the node and both rooms.
    """
    planned = {(room.nid, room.zid): room for room in zone_rooms(plan)}
    rooms = []
    for nid in sorted(measured):
        for values in measured[nid]:
            room = ZoneRoom(*values)
            if planned.get((room.nid, room.zid)) != room:
                raise ValueError(f"node {nid}'s buddy allocator after deferred init holds "
                                 f"{room}, its plan {planned.get((room.nid, room.zid))}: "
                                 f"its pools would differ from the single-process boot's")
            rooms.append(room)
    buddy, messages, limited = plan_buddy_pools(plan.pools.params, rooms,
                                                [node.nid for node in plan.nodes])
    return replace(plan.pools, buddy=buddy, buddy_messages=tuple(messages),
                   limited=tuple(limited))


def pool_figures(result) -> dict | None:
    """What a node's pools are, for its summary (worker side): counts per size, each
    job's threads, chunks and milliseconds, and HVO's figures."""
    pools = result.pools
    if pools is None:
        return None
    jobs = {name: {"threads": report.nworks, "chunks": len(report.chunks),
                   "chunk_size": report.chunk_size,
                   "ms": round(pools.seconds[name] * 1e3, 3)}
            for name, report in pools.jobs.items()}
    return {"counts": pools.counts(), "jobs": jobs, "hvo": _hvo_figures(result),
            "kept_vmemmap": pools.kept_vmemmap}


def _hvo_figures(result) -> dict | None:
    """What HVO did to a shard, in the keys of the single-process report's ``hugetlb.hvo``
    (`fastinit.report.hugetlb.hvo_summary`, a layer above this one), to be added up."""
    pools = result.pools
    remapper = pools.remapper
    if remapper is None:
        return None
    from fastinit.mm.hugetlb.hvo import resident_bytes
    nbytes = result.memmap.pages.nbytes
    return {"pages_remapped": remapper.remapped,
            "pages_wanted": sum(n for sizes in result.plan.pools.counts().values()
                                for n in sizes.values()),
            "mappings": remapper.mappings, "budget": pools.decision.budget,
            "released_bytes": remapper.released_bytes,
            "freed_to_buddy_pages": sum(e - s for _, _, s, e in pools.freed_vmemmap),
            "memmap_resident_bytes": resident_bytes(result.memmap, remapper),
            "memmap_ideal_bytes": nbytes - remapper.released_bytes, "memmap_bytes": nbytes}


@dataclass
class ClusterPools:
    """Every node's pools as their workers built them.

    Attributes
    ----------
    nodes : dict
        ``nid -> pool_figures`` of each node with pools.
    jobs, seconds : dict
        Empty: each node ran its own jobs (``nodes[nid]["jobs"]``).
    remapper : None
        HVO's mappings are on the workers (`hvo` sums their figures).
    """

    nodes: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    remapper: None = None

    def counts(self) -> dict[int, dict[int, int]]:
        """``nid -> {order: pages}``, as `fastinit.mm.hugetlb.result.PoolResult.counts`."""
        return {nid: dict(figures["counts"].get(nid, {}))
                for nid, figures in sorted(self.nodes.items())
                if figures["counts"].get(nid)}

    def hvo(self) -> dict | None:
        """HVO's figures added up over the nodes (None without HVO)."""
        summaries = [f["hvo"] for f in self.nodes.values() if f["hvo"] is not None]
        if not summaries:
            return None
        return {key: sum(summary[key] for summary in summaries) for key in summaries[0]}
