"""HugeTLB boot pools on the padata engine: ``hugetlb_init()`` after deferred init.

Two jobs, shaped as Linux 6.9 shapes them (padata's second user, the one that made it
``numa_aware``):

- **2 MiB pages** (``hugetlb_pages_alloc_boot()``): one job over the pool's pages,
  ``max_threads`` = nodes with memory x 2, ``min_chunk`` = pages / nodes / 2, ``align`` 1.
  A chunk takes its pages from the buddy allocators of their nodes (under each zone's
  lock), makes them compound HugeTLB pages, applies HVO, and enqueues them on the size's
  per-node free list. The node and zone of every page of the pool are the plan's
  (`fastinit.mm.hugetlb.plan`: Linux 6.1's round robin and watermarks), so the counts do
  not depend on how the chunks ran.
- **1 GiB pages** (``gather_bootmem_prealloc()``): one job over node ids, ``size =
  nr_node_ids``, ``min_chunk`` 1, ``max_threads`` = nodes with memory: each node's
  memblock pages become compound pages, go back into ``managed`` and are enqueued.

Before Linux 6.9 (kernel rule ``hugetlb_padata``) the boot CPU built the pools alone: the
same jobs run as one call each, on one thread.

With ``hugetlb_free_vmemmap=on`` (`fastinit.mm.hugetlb.hvo`) only the first 64 descriptors of a
huge page are written; the other pages of its vmemmap are mapped onto that one, and the
physical pages that held them are freed into the buddy allocator, as the kernel does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from fastinit.engine.padata import Job, do_multithreaded
from fastinit.engine.workpool import shared_pool
from fastinit.machine.hugetlb_job import alloc_job_shape
from fastinit.kernels.buddy_alloc import take_blocks
from fastinit.mm.hugetlb.prep import in_full, prep_buddy, prep_gigantic
from fastinit.mm.hugetlb.result import PoolResult
from fastinit.mm.hugetlb.state import PoolState
from fastinit.mm.hugetlb.plan import zone_of
from fastinit.mm.hugetlb.hvo import freeze
from fastinit.mm.hugetlb.hvo_budget import HvoDecision


def pool_sequence(plan, order: int) -> np.ndarray:
    """Every page of a buddy-allocated size in the kernel's allocation order.

    Returns
    -------
    ndarray of int64, shape (pages, 2)
        ``(nid, zid)`` of each page: round robin over the nodes (node by node for the
        per-node form), and on each node from its zones in the order they serve.
    """
    pools = plan.pools
    node_form = bool(pools.params.hstate(order).nodes)
    positions, turns, units = [], [], []
    for position, node in enumerate(plan.nodes):
        segments = pools.buddy.get((order, node.nid), ())
        zids = np.repeat(np.array([zid for zid, _ in segments], dtype=np.int64),
                         [pages for _, pages in segments])
        positions.append(np.full(len(zids), position, dtype=np.int64))
        turns.append(np.arange(len(zids), dtype=np.int64))
        units.append(np.stack([np.full(len(zids), node.nid, dtype=np.int64), zids], axis=1))
    if not units:
        return np.zeros((0, 2), dtype=np.int64)
    position, turn = np.concatenate(positions), np.concatenate(turns)
    # Node by node (per-node form), else turn by turn across the nodes: each key is unique.
    first, second = (position, turn) if node_form else (turn, position)
    return np.concatenate(units)[np.lexsort((second, first))]


def _alloc_chunk(start: int, end: int, ctx) -> None:
    """Thread function of the 2 MiB job: the pool's pages ``[start, end)``."""
    state, order = ctx.state, ctx.order
    units = ctx.sequence[start:end]
    remapped = (np.arange(start, end) < ctx.remap_units).astype(np.int64)
    # One batch per zone (and per HVO or not): (nid, zid, remapped) as one key.
    keys, counts = np.unique((units[:, 0] * 8 + units[:, 1]) * 2 + remapped,
                             return_counts=True)
    for key, count in zip(keys.tolist(), counts.tolist()):
        nid, zid, optimize = key // 16, key // 2 % 8, bool(key % 2)
        heads = np.empty(count, dtype=np.int64)
        taken = state.zone_call((nid, zid), take_blocks, order, count, heads)
        if taken != count:
            raise RuntimeError(f"node {nid} zone {zid} ran out of order-{order} blocks "
                               f"({taken} of {count}): the plan and the buddy state differ")
        prep_buddy(state, (nid, zid), heads, order, optimize)
        if optimize:
            state.optimize(heads, order, in_full(state, (nid, zid), order, False))
        state.enqueue(heads, order, nid)


def _gather_chunk(start: int, end: int, ctx) -> None:
    """Thread function of the gigantic job: the memblock pages of nodes ``[start, end)``
    (a chunk may hold several nodes: padata promises no more than that)."""
    state, plan = ctx.state, ctx.state.plan
    for nid in range(start, end):
        # The node's pages by zone, size and HVO, each group prepared by one kernel call
        # (a call costs tens of microseconds: a few percent of streaming the
        # descriptors of a 1 GiB page), as Linux 6.9 prepares a node's pages as a batch.
        groups: dict[tuple[int, int, bool], list[int]] = {}
        enqueued: dict[int, list[int]] = {}
        for (pfn, order, owner), optimize in zip(plan.pools.gigantic, ctx.remap):
            if owner == nid:
                key = (zone_of(plan.topology, nid, pfn), order, optimize)
                groups.setdefault(key, []).append(pfn)
                enqueued.setdefault(order, []).append(pfn)
        for (zid, order, optimize), pfns in groups.items():
            heads = np.array(pfns, dtype=np.int64)
            prep_gigantic(state, (nid, zid), heads, order, optimize)
            # The pages were memblock's, "stolen" from totalram: count them again.
            state.add_managed((nid, zid), len(pfns) << order)
            if optimize:
                state.optimize(heads, order, in_full(state, (nid, zid), order, True),
                               keep_tails=False)
        # Each page goes first on its list in turn, as if enqueued one by one.
        for order, pfns in enqueued.items():
            state.enqueue(np.array(pfns, dtype=np.int64), order, nid)


@dataclass
class _JobArg:
    state: PoolState
    order: int = 0
    sequence: np.ndarray | None = None
    remap_units: int = 0
    remap: tuple = ()


def hugetlb_init(result, decision: HvoDecision, threads: int | None = None,
                 stream: bool = True) -> PoolResult:
    """Allocate and prepare the boot pools of a booted machine.

    Parameters
    ----------
    result : fastinit.mm.run.BootResult
        After deferred init.
    decision : HvoDecision
        From `decide_hvo`, made before early init.
    threads : int or None
        Most threads per job instead of the kernel's shapes (measurements).
    stream : bool
        Write the tails whose old contents are known by streaming stores
        (`fastinit.mm.hugetlb.prep`); False: the reference's plain stores only (tests).

    Returns
    -------
    PoolResult
    """
    state = None
    try:
        state = PoolState(result, decision, stream)
        _run_jobs(state, decision, threads)
    finally:
        # Every remapping is done (or never will be): its mappings now count against the
        # process's limit themselves, and the mappings keep the memfd's pages, not its
        # file descriptor.
        decision.release()
        remapper = state.out.remapper if state is not None else None
        if remapper is not None:
            remapper.close()
            if remapper.remapped:
                freeze(result.memmap)
    return state.out


def _run_jobs(state: PoolState, decision: HvoDecision, threads: int | None) -> None:
    """The 2 MiB job of each buddy-allocated size, then the gigantic job."""
    plan = state.plan
    pool = shared_pool()
    memory_nodes = len(plan.nodes)
    # Before Linux 6.9 (kernel rule hugetlb_padata) the boot CPU alone built the pools:
    # the same jobs, on one thread (padata's single call over the whole range).
    if not plan.topology.kernel.has("hugetlb_padata"):
        threads = 1
    for request in plan.pools.params.hstates:
        total = plan.pools.total(request.order)
        if request.gigantic or not total:
            continue
        arg = _JobArg(state, request.order, pool_sequence(plan, request.order),
                      decision.buddy_units.get(request.order, 0))
        cap, least = alloc_job_shape(plan.topology.kernel, total, memory_nodes,
                                     sum(node.cpus for node in plan.topology.nodes))
        if threads:
            cap, least = threads, total // threads
        job = Job(_alloc_chunk, start=0, size=total, align=1, min_chunk=least,
                  max_threads=min(cap, pool.size), fn_arg=arg, numa_aware=True)
        began = time.perf_counter()
        state.out.jobs["alloc"] = do_multithreaded(job)
        state.out.seconds["alloc"] = time.perf_counter() - began
    if plan.pools.gigantic:
        nr_node_ids = max(node.nid for node in plan.topology.nodes) + 1
        cap = threads or memory_nodes
        job = Job(_gather_chunk, start=0, size=nr_node_ids, align=1, min_chunk=1,
                  max_threads=min(cap, pool.size), fn_arg=_JobArg(state, remap=decision.gigantic),
                  numa_aware=True)
        began = time.perf_counter()
        state.out.jobs["gather"] = do_multithreaded(job)
        state.out.seconds["gather"] = time.perf_counter() - began
