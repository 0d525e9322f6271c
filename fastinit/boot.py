"""A whole simulated boot: plan, allocate the memmap, first touch, early init, deferred init.

`boot` is the library's main entry point; ``fastinit boot`` prints what it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from fastinit.bootplan import DEFAULT_ARCH, BootPlan, plan_boot
from fastinit.buddy import ZoneFreeArea
from fastinit.cpus import usable_cpus
from fastinit.deferred import DEFAULT_KERNEL, NodeResult, deferred_init
from fastinit.early import early_init
from fastinit.kernels.first_touch import touch_range
from fastinit.memmap import Memmap
from fastinit.padata import Job, do_multithreaded
from fastinit.page import PAGE_SIZE
from fastinit.topology import Topology

# First-touch chunks: whole huge pages, at least 32 MiB each.
_HUGE_PAGE_UNITS = (2 << 20) // PAGE_SIZE


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
        Seconds for "sparse_init" (allocation and first touch), "early" and "deferred".
    """

    plan: BootPlan
    memmap: Memmap
    zones: dict[tuple[int, int], ZoneFreeArea]
    nodes: list[NodeResult]
    timings: dict[str, float] = field(default_factory=dict)


def first_touch(memmap: Memmap, threads: int | None = None) -> None:
    """Fault in every page of the memmap in parallel, and clear the pageblock types."""
    raw = memmap.raw

    def touch(start: int, end: int, arg) -> None:
        touch_range(raw, start * PAGE_SIZE, min(end * PAGE_SIZE, len(raw)))

    units = -(-len(raw) // PAGE_SIZE)
    do_multithreaded(Job(touch, start=0, size=units, align=_HUGE_PAGE_UNITS,
                         min_chunk=16 * _HUGE_PAGE_UNITS,
                         max_threads=threads or usable_cpus()))
    # The kernel allocates the pageblock bitmap zeroed: every block starts UNMOVABLE.
    memmap.pageblock_mt[:] = 0


def allocate(plan: BootPlan, memmap_file: str | None = None, force: bool = False) -> Memmap:
    """The memmap for a plan: in memory, or in ``memmap_file``."""
    if memmap_file is None:
        return Memmap.in_memory(plan.sections)
    return Memmap.in_file(plan.sections, memmap_file, force=force)


def boot(topology: Topology, *, arch: str = DEFAULT_ARCH, threads: int | None = None,
         memmap_file: str | None = None, force: bool = False, kernel: str = DEFAULT_KERNEL,
         progress: Callable[[int], None] | None = None, cancel: threading.Event | None = None,
         chunk_hook: Callable[[int, int, int], None] | None = None) -> BootResult:
    """Simulate the boot-time struct page initialization of ``topology``.

    Parameters
    ----------
    topology : Topology
        The machine (`fastinit.spec.parse_spec`, `fastinit.bootlog.read_bootlog`,
        `fastinit.host.this_machine`).
    arch : str
        Thread-cap profile, a key of `fastinit.bootplan.ARCH_PROFILES`.
    threads : int or None
        Threads per node, overriding the profile.
    memmap_file : str or None
        Back the memmap with this file instead of memory.
    force : bool
        Overwrite an existing ``memmap_file``.
    kernel : str
        Deferred-init kernel (see `fastinit.deferred.CHUNK_KERNELS`).
    progress : callable or None
        ``progress(pages)`` as deferred chunks finish.
    cancel : threading.Event or None
        Set to stop the boot.
    chunk_hook : callable or None
        Called as ``chunk_hook(nid, start, end)`` before every deferred chunk.

    Returns
    -------
    BootResult
    """
    plan = plan_boot(topology, arch, threads)
    began = time.perf_counter()
    memmap = allocate(plan, memmap_file, force)
    first_touch(memmap)
    timings = {"sparse_init": time.perf_counter() - began}
    zones = {(node.nid, zone.zid): ZoneFreeArea(node.nid, zone.zid)
             for node in plan.nodes for zone in node.zones}
    began = time.perf_counter()
    early_init(plan, memmap, zones)
    timings["early"] = time.perf_counter() - began
    began = time.perf_counter()
    nodes = deferred_init(plan, memmap, zones, kernel=kernel, progress=progress,
                          cancel=cancel, chunk_hook=chunk_hook)
    timings["deferred"] = time.perf_counter() - began
    return BootResult(plan, memmap, zones, nodes, timings)
