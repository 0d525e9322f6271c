"""A whole simulated boot: plan, allocate the memmap, first touch, early init, deferred init.

`boot` is the library's main entry point; ``fastinit boot`` prints what it returns.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from fastinit.mm.plan import DEFAULT_ARCH, BootPlan, plan_boot
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.engine.cpus import usable_cpus
from fastinit.engine.validate import check_bool, check_callable, check_event, check_type
from fastinit.mm.deferred import DEFAULT_KERNEL, NodeResult, check_kernel, deferred_init
from fastinit.mm import memmap_file as memmap_files
from fastinit.mm.early import early_init
from fastinit.mm.hugetlb.plan import has_pools
from fastinit.mm.hugetlb.hvo import remapped_pages
from fastinit.mm.hugetlb.hvo_budget import decide_hvo
from fastinit.kernels.first_touch import touch_range
from fastinit.mm.memmap import Memmap
from fastinit.engine.padata import Job, do_multithreaded
from fastinit.engine.niceness import check_nice
from fastinit.engine.progress import Tally
from fastinit.layout import HPAGE_PMD_SIZE, PAGE_SIZE, pfn_up
from fastinit.machine.topology import Topology

# First-touch chunks: whole huge pages, at least 32 MiB each.
_HUGE_PAGE_UNITS = HPAGE_PMD_SIZE // PAGE_SIZE


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
    pools : fastinit.mm.hugetlb.state.PoolResult or None
        The HugeTLB boot pools, once allocated.
    verification : fastinit.mm.verify_report.VerifyReport or None
        `fastinit.boot`'s ``verify=True`` report.
    digests : dict of int to str or None
        `fastinit.boot`'s ``digests=True``: each node's SHA-256.
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
    """Fault in every page of the memmap in parallel, and clear the pageblock types.

    ``progress(done, total)`` is called in bytes touched as chunks finish.
    """
    raw = memmap.raw

    def touch(start: int, end: int, arg) -> None:
        touch_range(raw, start * PAGE_SIZE, min(end * PAGE_SIZE, len(raw)))

    tally = Tally(progress, len(raw))

    def on_progress(done_units: int, total: int) -> None:
        tally.add(min(done_units * PAGE_SIZE, len(raw)) - tally.done)

    units = pfn_up(len(raw))
    do_multithreaded(Job(touch, start=0, size=units, align=_HUGE_PAGE_UNITS,
                         min_chunk=16 * _HUGE_PAGE_UNITS,
                         max_threads=threads or usable_cpus(), nice=nice),
                     progress=on_progress)
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


def prepare(topology: Topology, *, arch: str = DEFAULT_ARCH, threads: int | None = None,
            memmap_file: str | None = None, force: bool = False,
            memmap: Memmap | None = None, kernel: str = DEFAULT_KERNEL,
            touch_progress: Callable[[int, int], None] | None = None,
            replace_any_file: bool = False, node: int | None = None,
            nice: int | None = None) -> BootResult:
    """Everything before deferred init: plan, memmap (allocated and touched), early init.

    Parameters are as for `boot`; ``memmap`` reuses an already touched memmap of the same
    plan (benchmarks), in which case ``sparse_init`` is not timed.

    Returns
    -------
    BootResult
        With ``nodes`` still empty.
    """
    _check_machine_arguments(topology, memmap_file, force, memmap, replace_any_file)
    plan = plan_boot(topology, arch, threads)
    if node is not None:
        if has_pools(plan):
            raise ValueError("a node booted alone (node=, --cluster) cannot have HugeTLB "
                             "boot pools yet (hugepages= on the kernel command line); boot "
                             "the machine in one process")
        plan = plan.shard(node)
    hvo = decide_hvo(plan)
    if memmap_file is not None and has_pools(plan):
        raise ValueError("HugeTLB boot pools (hugepages= on the kernel command line) are not "
                         "recorded in memmap files, so the file could not be verified "
                         "later; boot in memory, or without hugepages=")
    timings = {}
    fresh = memmap is None
    began = time.perf_counter()
    if fresh:
        memmap = allocate(plan, memmap_file, force, kernel, replace_any_file)
    elif not np.array_equal(memmap.sections, plan.sections):
        raise ValueError("the memmap given was made for another machine; allocate a new one")
    elif remapped_pages(memmap):
        raise ValueError("the memmap given had its vmemmap remapped by HVO (read-only "
                         "pages); allocate a new one")
    elif memmap.file is not None:
        memmap.file.begin_update()
    with _failure_recorded(memmap):
        if fresh:
            first_touch(memmap, progress=touch_progress, nice=nice)
            timings["sparse_init"] = time.perf_counter() - began
        else:
            memmap.pageblock_mt[:] = 0
        zones = {(node.nid, zone.zid): ZoneFreeArea(node.nid, zone.zid)
                 for node in plan.nodes for zone in node.zones}
        began = time.perf_counter()
        early_init(plan, memmap, zones, hvo.noinit(plan))
        timings["early"] = time.perf_counter() - began
    return BootResult(plan, memmap, zones, [], timings, hvo)


def _check_machine_arguments(topology, memmap_file, force, memmap, replace_any_file) -> None:
    """Refuse arguments of the wrong kind here (TypeError), not as a traceback from deep
    inside."""
    check_type(topology, Topology, "topology", "a fastinit.machine.topology.Topology",
               fix="make one with fastinit.machine.spec.parse_spec, "
                   "fastinit.machine.bootlog.read_bootlog or fastinit.machine.host.this_machine")
    check_type(memmap_file, (str, os.PathLike), "memmap_file", "a path", optional=True)
    check_bool(force, "force")
    check_bool(replace_any_file, "replace_any_file")
    check_type(memmap, Memmap, "memmap", "a fastinit.mm.memmap.Memmap", optional=True)


def _check_callbacks(progress, cancel, chunk_hook, touch_progress) -> None:
    """Callbacks run on node threads; a wrong kind must fail here, on the caller."""
    check_callable(progress, "progress", "progress(done, total)", optional=True)
    check_callable(chunk_hook, "chunk_hook", "chunk_hook(nid, start, end)", optional=True)
    check_callable(touch_progress, "touch_progress", "touch_progress(done, total)",
                   optional=True)
    check_event(cancel, "cancel")


def boot(topology: Topology, *, arch: str = DEFAULT_ARCH, threads: int | None = None,
         memmap_file: str | None = None, force: bool = False, kernel: str = DEFAULT_KERNEL,
         progress: Callable[[int, int], None] | None = None,
         cancel: threading.Event | None = None,
         chunk_hook: Callable[[int, int, int], None] | None = None,
         memmap: Memmap | None = None,
         touch_progress: Callable[[int, int], None] | None = None,
         replace_any_file: bool = False, node: int | None = None,
         nice: int | None = None) -> BootResult:
    """Simulate the boot-time struct page initialization of ``topology``.

    Parameters
    ----------
    topology : Topology
        The machine (`fastinit.machine.spec.parse_spec`, `fastinit.machine.bootlog.read_bootlog`,
        `fastinit.machine.host.this_machine`).
    arch : str
        Thread-cap profile, a key of `fastinit.mm.plan.ARCH_PROFILES`.
    threads : int or None
        Threads per node, overriding the profile.
    memmap_file : str or None
        Back the memmap with this file instead of memory.
    force : bool
        Replace an existing fastinit memmap file at ``memmap_file``. The new file is
        written beside it and renamed over it only when the boot completed: until then,
        and if the boot fails or is interrupted, the old file stays as it was.
    kernel : str
        Deferred-init kernel (see `fastinit.mm.deferred.CHUNK_KERNELS`).
    progress : callable or None
        ``progress(done, total)`` in pages of the deferred ranges, as chunks finish
        (any thread).
    cancel : threading.Event or None
        Set to stop the boot.
    chunk_hook : callable or None
        Called as ``chunk_hook(nid, start, end)`` before every deferred chunk.
    memmap : Memmap or None
        Reuse this already touched memmap (made for the same machine).
    touch_progress : callable or None
        ``touch_progress(done, total)`` in bytes, as the new memmap is first touched
        (any thread).
    replace_any_file : bool
        With ``force``, replace any regular file at ``memmap_file`` (never a directory,
        device, FIFO, socket or symbolic link).
    node : int or None
        Boot this node alone, on a memmap of its sections only (`BootPlan.shard`): its
        descriptors and zones come out as in the whole machine's boot. None: every node.
    nice : int or None
        Run every thread of the boot but the caller's at this niceness (Linux; see
        `fastinit.Job`): the first touch's and deferred init's helpers and the nodes'
        pgdatinit threads.

    Returns
    -------
    BootResult
    """
    _check_callbacks(progress, cancel, chunk_hook, touch_progress)
    nice = check_nice(nice)
    check_kernel(kernel)  # before a memmap file is created for nothing
    result = prepare(topology, arch=arch, threads=threads, memmap_file=memmap_file,
                     force=force, memmap=memmap, kernel=kernel, touch_progress=touch_progress,
                     replace_any_file=replace_any_file, node=node, nice=nice)
    with _failure_recorded(result.memmap):
        began = time.perf_counter()
        result.nodes = deferred_init(result.plan, result.memmap, result.zones, kernel=kernel,
                                     progress=progress, cancel=cancel, chunk_hook=chunk_hook,
                                     nice=nice)
        result.timings["deferred"] = time.perf_counter() - began
        if has_pools(result.plan):
            # Imported here: compiling the pool kernels costs 2 s on a cold Numba cache,
            # which only boots with pools should pay.
            from fastinit.mm.hugetlb.jobs import hugetlb_init
            began = time.perf_counter()
            result.pools = hugetlb_init(result, result.hvo)
            result.timings["hugetlb"] = time.perf_counter() - began
        if result.memmap.file is not None:
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
        `fastinit.mm.memmap_file.open_file`: verify checks more, for less).

    Returns
    -------
    BootResult
        With the file's memmap (read-only), the plan remade from the machine stored in the
        file, and the zones' free areas as the boot left them; ``nodes`` is empty. The
        file stays locked for reading (no fastinit replaces it) while the memmap lives.

    Raises
    ------
    fastinit.mm.memmap_file.IncompleteMemmapError
        The run that wrote the file did not finish.
    fastinit.mm.memmap_file.DamagedMemmapError
        Its data changed since it was completed, or breaks the buddy model's bounds.
    fastinit.mm.memmap_file.MemmapFileError
        The file is not a usable page memmap file (see
        `fastinit.mm.memmap_file.open_file`).
    """
    memmap, plan = memmap_files.open_file(path, topology=topology, check_data=check_data)
    zones = {}
    for record in memmap.file.zone_state():
        area = ZoneFreeArea(int(record["nid"]), int(record["zid"]))
        area.heads[:], area.nr_free[:] = record["heads"], record["nr_free"]
        area.managed = int(record["managed"])
        zones[(area.nid, area.zid)] = area
    return BootResult(plan, memmap, zones, [], {})
