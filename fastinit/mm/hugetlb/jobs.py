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

from fastinit.layout import DESCRIPTORS_PER_PAGE
from fastinit.engine.padata import Job, do_multithreaded
from fastinit.engine.workpool import shared_pool
from fastinit.kernels._layout import page_links
from fastinit.kernels.buddy_alloc import take_blocks
from fastinit.kernels.compound import prep_buddy_huge_pages, prep_gigantic_pages
from fastinit.mm.hugetlb.state import PoolResult, PoolState
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
    keys = []
    for position, node in enumerate(plan.nodes):
        zones = [zid for zid, pages in pools.buddy.get((order, node.nid), ())
                 for _ in range(pages)]
        for turn, zid in enumerate(zones):
            first, second = (position, turn) if node_form else (turn, position)
            keys.append((first, second, node.nid, zid))
    keys.sort()
    return np.array([key[2:] for key in keys], dtype=np.int64).reshape(-1, 2)


def _in_full(state, slots, base, order, links=None):
    """What writes every descriptor of pages HVO could not remap after all (the process
    ran out of mappings): buddy pages from where their first 64 were written; gigantic
    pages (``links``) initialized first, as early init skipped them past their first 64."""
    pages, count = state.memmap.pages, 1 << order
    if links is None:
        return lambda heads: prep_buddy_huge_pages(pages, slots, base, heads, order, count,
                                                   False)
    return lambda heads: prep_gigantic_pages(pages, slots, base, heads, order, count, links,
                                             True, False)


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
        base, slots = state.slots[(nid, zid)]
        prep_buddy_huge_pages(state.memmap.pages, slots, base, heads, order,
                              DESCRIPTORS_PER_PAGE if optimize else 1 << order, optimize)
        if optimize:
            state.optimize(heads, order, _in_full(state, slots, base, order))
        state.enqueue(heads, order, nid)


def _gather_chunk(start: int, end: int, ctx) -> None:
    """Thread function of the gigantic job: the memblock pages of nodes ``[start, end)``
    (a chunk may hold several nodes: padata promises no more than that)."""
    state, plan = ctx.state, ctx.state.plan
    for nid in range(start, end):
        for (pfn, order, owner), optimize in zip(plan.pools.gigantic, ctx.remap):
            if owner != nid:
                continue
            zid = zone_of(plan.topology, nid, pfn)
            base, slots = state.slots[(nid, zid)]
            heads = np.array([pfn], dtype=np.int64)
            links = page_links(nid, zid)
            prep_gigantic_pages(state.memmap.pages, slots, base, heads, order,
                                DESCRIPTORS_PER_PAGE if optimize else 1 << order,
                                links, False, optimize)
            # The pages were memblock's, "stolen" from totalram: count them again.
            state.add_managed((nid, zid), 1 << order)
            if optimize:
                state.optimize(heads, order, _in_full(state, slots, base, order, links),
                               keep_tails=False)
            state.enqueue(heads, order, nid)


@dataclass
class _JobArg:
    state: PoolState
    order: int = 0
    sequence: np.ndarray | None = None
    remap_units: int = 0
    remap: tuple = ()


def hugetlb_init(result, decision: HvoDecision, threads: int | None = None) -> PoolResult:
    """Allocate and prepare the boot pools of a booted machine.

    Parameters
    ----------
    result : fastinit.mm.run.BootResult
        After deferred init.
    decision : HvoDecision
        From `decide_hvo`, made before early init.
    threads : int or None
        Most threads per job instead of the kernel's shapes (measurements).

    Returns
    -------
    PoolResult
    """
    state = None
    try:
        state = PoolState(result, decision)
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
        cap = threads or memory_nodes * 2
        job = Job(_alloc_chunk, start=0, size=total, align=1,
                  min_chunk=total // memory_nodes // 2, max_threads=min(cap, pool.size),
                  fn_arg=arg, numa_aware=True)
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
