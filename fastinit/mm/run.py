"""A whole simulated boot: plan, allocate the memmap, first touch, early init, deferred init.

`boot` is the library's main entry point; ``fastinit boot`` prints what it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from fastinit.arrays.touch import first_touch as touch_memory
from fastinit.mm.plan import BootPlan, plan_boot
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.validate import check_callable, check_event, check_type
from fastinit.mm.deferred import DEFAULT_KERNEL, NodeResult, deferred_init
from fastinit.mm import page_file as memmap_files
from fastinit.mm.early import early_init
from fastinit.mm.options import BootOptions
from fastinit.mm.hugetlb.plan import has_pools
from fastinit.mm.hugetlb.hvo import remapped_pages
from fastinit.mm.hugetlb.hvo_budget import decide_hvo
from fastinit.mm.memmap import Memmap
from fastinit.engine.padata import JobCancelled
from fastinit.machine.topology import Topology

@dataclass
class BootResult:
    """Everything a boot produced.

    Attributes
    ----------
    plan : BootPlan
    memmap : Memmap
    zones : dict of (nid, zid) to ZoneFreeArea
    nodes : list of NodeResult
        Deferred init per node with memory.
    timings : dict of str to float
        Seconds for "sparse_init" (allocation and first touch; absent when a memmap was
        reused), "early", "deferred" and "hugetlb" (the boot pools).
    hvo : fastinit.mm.hugetlb.hvo.HvoDecision or None
        Which huge pages get their vmemmap remapped (decided before early init).
    pools : fastinit.mm.hugetlb.result.PoolResult or None
        The HugeTLB boot pools, once allocated.
    verification : fastinit.mm.verify_report.VerifyReport or None
        `fastinit.boot`'s ``verify=True`` report.
    digests : dict of int to dict or None
        `fastinit.boot`'s ``digests=True``: each node's digests.
    """

    plan: BootPlan
    memmap: Memmap
    zones: dict[tuple[int, int], ZoneFreeArea]
    nodes: list[NodeResult]
    timings: dict[str, float] = field(default_factory=dict)
    hvo: object = None
    pools: object = None
    verification: object = None
    digests: dict | None = None


def first_touch(memmap: Memmap, threads: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                nice: int | None = None) -> None:
    """Fault in every page of the memmap in parallel, as `fastinit.empty` does its arrays
    (`fastinit.arrays.touch`), and clear the pageblock types.

    ``progress(done, total)`` is called in bytes, with ``(0, total)`` first (the stage
    starts) and then as chunks finish; ``nice`` is the helpers' niceness (`fastinit.Job`).
    """
    if progress is not None:
        progress(0, len(memmap.raw))
    touch_memory(memmap.raw, threads=threads, progress=progress, nice=nice)
    # The kernel allocates the pageblock bitmap zeroed: every block starts UNMOVABLE.
    memmap.pageblock_mt[:] = 0


def allocate(plan: BootPlan, memmap_file: str | None = None, force: bool = False,
             kernel: str = DEFAULT_KERNEL, replace_any_file: bool = False) -> Memmap:
    """The memmap for a plan: in memory, or in a new ``memmap_file`` (beside the path
    until the boot completes)."""
    if memmap_file is None:
        return Memmap.in_memory(plan.sections)
    return memmap_files.create(plan, memmap_file, force=force, kernel=kernel,
                               replace_any_file=replace_any_file)


@contextmanager
def _failure_recorded(memmap: Memmap):
    """If the block raises or is interrupted, a new memmap file is removed (its path
    keeps what it had) and a reused one is marked ``failed``."""
    try:
        yield
    except BaseException:
        if memmap.file is not None:
            memmap.file.fail()
        raise


def prepare(topology: Topology, options: BootOptions | None = None, /, *,
            memmap: Memmap | None = None,
            touch_progress: Callable[[int, int], None] | None = None, **choices) -> BootResult:
    """Everything before deferred init: plan, memmap (allocated and touched), early init.

    Parameters are as for `boot`; ``memmap`` reuses an already touched memmap of the same
    plan (benchmarks), in which case ``sparse_init`` is not timed.

    Returns
    -------
    BootResult
        With ``nodes`` still empty.
    """
    options = BootOptions.of(options, choices)
    _check_machine_arguments(topology, memmap)
    plan = plan_boot(topology, options.arch, options.threads)
    if options.node is not None:
        plan = plan.shard(options.node)
    if memmap is not None and memmap.file is not None and has_pools(plan) and \
            plan.pools.params.free_vmemmap:
        raise ValueError("hugetlb_free_vmemmap=on (HVO) releases blocks of a new memmap "
                         "file; a memmap file given again is rewritten in place: boot "
                         "into a new file (--memmap-file), or with hugetlb_free_vmemmap=off")
    hvo = decide_hvo(plan)
    timings = {}
    fresh = memmap is None
    began = time.perf_counter()
    if fresh:
        memmap = allocate(plan, options.memmap_file, options.force, options.kernel,
                          options.replace_any_file)
    elif not np.array_equal(memmap.sections, plan.sections):
        raise ValueError("the memmap given was made for another machine; allocate a new one")
    elif remapped_pages(memmap):
        raise ValueError("the memmap given had its vmemmap remapped by HVO (read-only "
                         "pages); allocate a new one")
    elif memmap.file is not None:
        memmap.file.begin_update()
    with _failure_recorded(memmap):
        if fresh:
            first_touch(memmap, progress=touch_progress, nice=options.nice)
            timings["sparse_init"] = time.perf_counter() - began
        else:
            memmap.pageblock_mt[:] = 0
        zones = {(node.nid, zone.zid): ZoneFreeArea(node.nid, zone.zid)
                 for node in plan.nodes for zone in node.zones}
        began = time.perf_counter()
        early_init(plan, memmap, zones, hvo.noinit(plan))
        timings["early"] = time.perf_counter() - began
    return BootResult(plan, memmap, zones, [], timings, hvo)


def _check_machine_arguments(topology, memmap) -> None:
    """Refuse arguments of the wrong kind here (TypeError), not as a traceback from deep
    inside (the options check themselves: `BootOptions`)."""
    check_type(topology, Topology, "topology", "a fastinit.machine.topology.Topology",
               fix="make one with fastinit.machine.spec.parse_spec, "
                   "fastinit.machine.bootlog.read_bootlog or fastinit.machine.host.this_machine")
    check_type(memmap, Memmap, "memmap", "a fastinit.mm.memmap.Memmap", optional=True)


def _check_callbacks(progress, cancel, chunk_hook, touch_progress) -> None:
    """Callbacks run on node threads; a wrong kind must fail here, on the caller."""
    check_callable(progress, "progress", "progress(done, total)", optional=True)
    check_callable(chunk_hook, "chunk_hook", "chunk_hook(nid, start, end)", optional=True)
    check_callable(touch_progress, "touch_progress", "touch_progress(done, total)",
                   optional=True)
    check_event(cancel, "cancel")


def boot(topology: Topology, options: BootOptions | None = None, /, *,
         progress: Callable[[int, int], None] | None = None,
         cancel: threading.Event | None = None,
         chunk_hook: Callable[[int, int, int], None] | None = None,
         memmap: Memmap | None = None,
         touch_progress: Callable[[int, int], None] | None = None,
         before_pools: Callable[[BootResult], None] | None = None,
         **choices) -> BootResult:
    """Simulate the boot-time struct page initialization of ``topology``.

    Parameters
    ----------
    topology : Topology
        The machine (`fastinit.machine.spec.parse_spec`, `fastinit.machine.bootlog.read_bootlog`,
        `fastinit.machine.host.this_machine`).
    options : BootOptions or None
        How to boot (`fastinit.mm.options.BootOptions`: ``arch``, ``threads``, ``kernel``,
        ``memmap_file``, ``force``, ``replace_any_file``, ``node``).
    **choices
        Any of those options as keywords, over ``options``:
        ``boot(topology, threads=2, memmap_file="m.bin")``.
    progress : callable or None
        ``progress(done, total)`` in pages of the deferred ranges, as chunks finish
        (any thread), from ``(0, total)``.
    cancel : threading.Event or None
        Set to stop the boot.
    chunk_hook : callable or None
        Called as ``chunk_hook(nid, start, end)`` before every deferred chunk.
    memmap : Memmap or None
        Reuse this already touched memmap (made for the same machine).
    touch_progress : callable or None
        ``touch_progress(done, total)`` in bytes, as the new memmap is first touched,
        from ``(0, total)``.
    before_pools : callable or None
        Called as ``before_pools(result)`` after deferred init, before the HugeTLB pools
        are built; it may replace ``result.plan`` by one with other pools (a cluster's
        node takes its share of a count spread over the nodes there).

    Returns
    -------
    BootResult
    """
    _check_callbacks(progress, cancel, chunk_hook, touch_progress)
    check_callable(before_pools, "before_pools", "before_pools(result)", optional=True)
    options = BootOptions.of(options, choices)
    result = prepare(topology, options, memmap=memmap, touch_progress=touch_progress)
    kernel = options.kernel
    with _failure_recorded(result.memmap):
        began = time.perf_counter()
        result.nodes = deferred_init(result.plan, result.memmap, result.zones, kernel=kernel,
                                     progress=progress, cancel=cancel, chunk_hook=chunk_hook,
                                     nice=options.nice)
        result.timings["deferred"] = time.perf_counter() - began
        if before_pools is not None:
            before_pools(result)
        if has_pools(result.plan):
            # Imported here: only boots with pools pay for compiling the pool kernels
            # (see fastinit.mm.hugetlb).
            from fastinit.mm.hugetlb.jobs import hugetlb_init
            began = time.perf_counter()
            result.pools = hugetlb_init(result, result.hvo)
            result.timings["hugetlb"] = time.perf_counter() - began
        if result.memmap.file is not None:
            if cancel is not None and cancel.is_set():  # after the last chunk: still off
                raise JobCancelled("the boot was cancelled before its memmap file was "
                                   "complete; the path keeps what it had")
            began = time.perf_counter()
            result.memmap.file.complete(result.zones)
            result.timings["sync"] = time.perf_counter() - began
    return result


def load(path: str, topology: Topology | None = None, *, check_data: bool = False) -> BootResult:
    """The result a finished boot left in a memmap file, for `fastinit.mm.verify.verify`.

    Parameters
    ----------
    path : str
        A memmap file written by ``boot(..., memmap_file=path)``.
    topology : Topology or None
        If given, the file must have been written for this machine.
    check_data : bool
        Also compare the data checksum written at completion (see
        `fastinit.mm.page_file.open_file`: verify checks more, for less).

    Returns
    -------
    BootResult
        With the file's memmap (read-only), the plan remade from the machine stored in the
        file, and the zones' free areas as the boot left them; ``nodes`` is empty. The
        file stays locked for reading (no fastinit replaces it) while the memmap lives.

    Raises
    ------
    fastinit.mm.page_file.IncompleteMemmapError
        The run that wrote the file did not finish.
    fastinit.mm.page_file.DamagedMemmapError
        Its data changed since it was completed, or breaks the buddy model's bounds.
    fastinit.mm.page_file.MemmapFileError
        The file is not a usable page memmap file (see
        `fastinit.mm.page_file.open_file`).
    """
    memmap, plan = memmap_files.open_file(path, topology=topology, check_data=check_data)
    zones = {}
    for record in memmap.file.zone_state():
        area = ZoneFreeArea(int(record["nid"]), int(record["zid"]))
        area.heads[:], area.nr_free[:] = record["heads"], record["nr_free"]
        area.managed = int(record["managed"])
        zones[(area.nid, area.zid)] = area
    result = BootResult(plan, memmap, zones, [], {})
    if has_pools(plan):
        # Imported here, as in boot: only files with pools pay for the pool kernels.
        from fastinit.mm.hugetlb.recorded import recorded_pools
        result.pools = recorded_pools(plan, memmap)
    return result
