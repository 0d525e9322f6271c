"""Deferred init: one pgdatinit thread per node, each running one padata job.

Every node with deferred memory gets a thread (``pgdatinit<nid>``); all start at once and
the boot waits for the slowest. A node's job covers
``[first_deferred_pfn, SECTION_ALIGN_UP(zone_end))`` with ``align = min_chunk =
PAGES_PER_SECTION`` and the node's thread cap. Simulated CPUs never oversubscribe the real
ones: at most as many node jobs run at once as the pool has threads (the others wait their
turn; a node's time starts when its job does), each takes an even share of the pool, its
pgdatinit thread included, and its arch cap still applies below that. So a boot runs at
most the pool's size of chunks at once (the usable CPUs), when nothing else uses the pool.

Why chunks are section-aligned: a section is a whole number of max-order blocks and of
pageblocks, so every buddy merge and every pageblock migratetype a chunk touches belongs to
that chunk alone. A chunk builds its free lists without locks and takes the zone's lock
once, to splice them in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fastinit.mm.plan import BootPlan, NodePlan
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.kernels.descriptors import new_local_lists, page_links
from fastinit.kernels.buddy_free import deferred_init_chunk
from fastinit.kernels.streaming import deferred_init_chunk_stream
from fastinit.mm.memmap import Memmap
from fastinit.mm.node_threads import run_node_threads
from fastinit.host.niceness import set_thread_nice
from fastinit.engine.padata import Job, JobReport, do_multithreaded
from fastinit.engine.progress import Tally
from fastinit.layout import PAGES_PER_SECTION
from fastinit.engine.workpool import shared_pool


def _plain(memmap: Memmap, *args) -> int:
    return deferred_init_chunk(memmap.pages, memmap.pageblock_mt, *args)


def _stream(memmap: Memmap, *args) -> int:
    return deferred_init_chunk_stream(memmap.pages, memmap.words, memmap.pageblock_mt, *args)


# The deferred-init kernels: "stream" writes whole max-order blocks once with streaming
# stores; "plain" is the kernel's two passes with ordinary stores, the reference path.
CHUNK_KERNELS = {"stream": _stream, "plain": _plain}
DEFAULT_KERNEL = "stream"


@dataclass
class NodeResult:
    """How one node's deferred init went.

    Attributes
    ----------
    nid : int
    max_threads : int
        The node's cap (arch profile or --threads); its job is split for at most the
        pool's size of threads and gets at most its share of them.
    report : JobReport or None
        The padata job's report (None when the node defers nothing).
    elapsed : float
        Seconds from the pgdatinit thread's start to its job's end.
    pages : int
        Pages initialized and freed by the job.
    """

    nid: int
    max_threads: int
    report: JobReport | None
    elapsed: float
    pages: int


class _ChunkContext:
    """What every chunk of one node's job needs (the job's ``fn_arg``)."""

    def __init__(self, plan: BootPlan, node: NodePlan, memmap: Memmap, area: ZoneFreeArea,
                 kernel: str, chunk_hook: Callable | None, cancel: threading.Event):
        zone = node.deferred_zone
        self.nid = node.nid
        self.memmap = memmap
        self.area = area
        self.links = page_links(node.nid, zone.zid)
        self.free = plan.free_ranges(node.nid, node.first_deferred_pfn, zone.end_pfn)
        self.kernel = CHUNK_KERNELS[kernel]
        self.chunk_hook = chunk_hook
        self.cancel = cancel
        self.lock = threading.Lock()
        self.pages = 0

    def relay_progress(self, tally: Tally) -> Callable | None:
        """A job's ``progress(done, total)``, adding the units it finished since its last
        call to the boot's ``tally`` (made per job: each counts from 0)."""
        if tally.progress is None:
            return None
        reported = 0

        def on_progress(done_units: int, total: int) -> None:
            nonlocal reported
            tally.add(done_units - reported)
            reported = done_units
        return on_progress

    def ranges_in(self, start: int, end: int) -> np.ndarray:
        lo = np.searchsorted(self.free[:, 1], start, side="right")
        hi = np.searchsorted(self.free[:, 0], end, side="left")
        return self.free[lo:hi]


def deferred_init_memmap_chunk(start: int, end: int, ctx: _ChunkContext) -> None:
    """The job's thread function: init and free the free memory in ``[start, end)``."""
    try:
        if ctx.chunk_hook is not None:
            ctx.chunk_hook(ctx.nid, start, end)
        _init_chunk(start, end, ctx)
    except BaseException:
        # Stop every node's job now, not when this node's job has unwound.
        ctx.cancel.set()
        raise


def _init_chunk(start: int, end: int, ctx: _ChunkContext) -> None:
    ranges = ctx.ranges_in(start, end)
    if not len(ranges):
        return
    memmap = ctx.memmap
    base, slots = memmap.slots(start, end)
    lists = new_local_lists()
    done = ctx.kernel(memmap, slots, base, ranges, start, end, ctx.links, ctx.area.list_base,
                      lists)
    ctx.area.splice(memmap, lists, done)
    with ctx.lock:
        ctx.pages += done


def check_kernel(kernel: str, memmap: Memmap | None = None) -> None:
    """Refuse an unknown kernel, or streaming stores on a misaligned memmap."""
    if kernel not in CHUNK_KERNELS:
        raise ValueError(f"unknown deferred-init kernel {kernel!r}; choose one of "
                         f"{', '.join(CHUNK_KERNELS)}")
    if kernel == "stream" and memmap is not None and memmap.pages.ctypes.data % 64:
        raise ValueError("the stream kernel needs a 64-byte aligned memmap; allocate it with "
                         "fastinit.mm.memmap.Memmap or use kernel='plain'")


def deferred_init(plan: BootPlan, memmap: Memmap, zones: dict[tuple[int, int], ZoneFreeArea],
                  *, kernel: str = DEFAULT_KERNEL,
                  progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None,
                  chunk_hook: Callable[[int, int, int], None] | None = None,
                  nice: int | None = None) -> list[NodeResult]:
    """Run every node's deferred init in parallel and wait for all of them.

    Parameters
    ----------
    plan, memmap, zones
        From the boot; early init must have run.
    kernel : str
        A key of `CHUNK_KERNELS`.
    progress : callable or None
        ``progress(done, total)`` in pages of the nodes' deferred ranges covered so far,
        as chunks finish (any thread; see `fastinit.engine.progress.Tally`).
    cancel : threading.Event or None
        Set to stop every node's job; set here too when a node fails.
    chunk_hook : callable or None
        ``chunk_hook(nid, start, end)`` before each chunk (tests inject faults with it).
    nice : int or None
        Niceness of the pgdatinit threads and their helpers (see `fastinit.Job`).

    Raises
    ------
    Exception
        The first node's error, noted with its node; the other nodes were stopped.
    """
    check_kernel(kernel, memmap)
    cancel = cancel if cancel is not None else threading.Event()
    nodes = [node for node in plan.nodes if node.first_deferred_pfn is not None]
    tally = Tally(progress, sum(end - start for node in nodes
                                for start, end in plan.deferred_jobs(node.nid)))
    run = _DeferredRun(plan, memmap, zones, kernel, tally, cancel, chunk_hook, len(nodes),
                       nice)
    failed = run_node_threads(nodes, run.node, cancel)
    if failed is not None:
        nid, error = failed
        error.add_note(f"in deferred init of node {nid}")
        raise error
    return [run.results.get(node.nid, NodeResult(node.nid, node.max_threads, None, 0.0, 0))
            for node in plan.nodes]


class _DeferredRun:
    """What every node's job of one deferred init shares, and each node's result."""

    def __init__(self, plan, memmap, zones, kernel, tally, cancel, chunk_hook, nodes: int,
                 nice: int | None = None):
        self.plan, self.memmap, self.zones, self.kernel = plan, memmap, zones, kernel
        self.tally, self.cancel, self.chunk_hook = tally, cancel, chunk_hook
        self.nice = nice
        self.results: dict[int, NodeResult] = {}
        # The pool counts each pgdatinit thread as one of its threads: at most its size of
        # nodes run at once, each with an even share (otherwise the first node to start
        # takes every helper and the others run alone).
        self.pool = shared_pool()
        at_once = max(1, min(nodes, self.pool.size))
        self.share = max(1, self.pool.size // at_once)
        self.turns = threading.BoundedSemaphore(at_once)

    def node(self, node: NodePlan) -> None:
        """One node's padata job, on its pgdatinit thread, when its turn comes."""
        if self.nice is not None:
            set_thread_nice(self.nice)  # this thread is the boot's, not the caller's
        with self.turns:
            began = time.perf_counter()
            ctx = _ChunkContext(self.plan, node, self.memmap,
                                self.zones[(node.nid, node.deferred_zone.zid)], self.kernel,
                                self.chunk_hook, self.cancel)
            reports = []
            # One job since Linux 6.18; one per free range before (BootPlan.deferred_jobs).
            for start, end in self.plan.deferred_jobs(node.nid):
                job = Job(deferred_init_memmap_chunk, start=start, size=end - start,
                          align=PAGES_PER_SECTION, min_chunk=PAGES_PER_SECTION,
                          max_threads=min(node.max_threads, self.pool.size), fn_arg=ctx,
                          nice=self.nice)
                reports.append(do_multithreaded(
                    job, progress=ctx.relay_progress(self.tally), cancel=self.cancel,
                    pool=self.pool, max_helpers=self.share - 1))
            self.results[node.nid] = NodeResult(node.nid, node.max_threads, combined(reports),
                                                time.perf_counter() - began, ctx.pages)


def combined(reports: list[JobReport]) -> JobReport | None:
    """The node's jobs as one report: every chunk, each worker's units and seconds summed."""
    if len(reports) <= 1:
        return reports[0] if reports else None
    workers = max(report.nworks for report in reports)

    def summed(field: str) -> tuple:
        padded = [list(getattr(r, field)) + [0] * (workers - len(getattr(r, field)))
                  for r in reports]
        return tuple(sum(column) for column in zip(*padded))

    return JobReport(workers, max(r.chunk_size for r in reports),
                     tuple(c for r in reports for c in r.chunks),
                     sum(r.elapsed for r in reports), summed("worker_units"),
                     summed("worker_seconds"))
