"""``fastinit.boot``: a whole simulated boot in this process, with every keyword spelled out.

Machines larger than one computer boot on a dask cluster with `fastinit.cluster_boot`
(`fastinit.distributed.api`), which returns per-node results instead of a memmap: the
descriptors never leave the workers. This module does not import the distributed layer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from fastinit.validate import check_bool
from fastinit.machine.topology import Topology
from fastinit.mm.deferred import DEFAULT_KERNEL
from fastinit.mm.plan import DEFAULT_ARCH
from fastinit.mm.run import BootResult
from fastinit.mm import run as _run


def boot(topology: Topology, *, arch: str = DEFAULT_ARCH, threads: int | None = None,
         verify: bool = False, digests: bool = False, memmap_file: str | None = None,
         force: bool = False, replace_any_file: bool = False,
         kernel: str = DEFAULT_KERNEL, nice: int | None = None,
         progress: Callable[[int, int], object] | None = None,
         touch_progress: Callable[[int, int], object] | None = None,
         verify_progress: Callable[[int, int], object] | None = None,
         cancel: threading.Event | None = None) -> BootResult:
    """Simulate the boot-time struct page initialization of ``topology``.

    Parameters
    ----------
    topology : Topology
        The machine: `fastinit.machine.spec.parse_spec` (``"2x64G,cpus=8"``),
        `fastinit.machine.bootlog.read_bootlog` (a kernel boot log) or
        `fastinit.machine.host.this_machine` (this one).
    arch : str
        Thread caps per node (`fastinit.mm.plan.ARCH_PROFILES`): ``"x86"`` (default),
        ``"generic"``, ``"linux-6.11"``.
    threads : int or None
        Threads per node, overriding ``arch``'s cap.
    verify : bool
        Check the result against the serial reference, the free lists and the expected
        state; the report is ``result.verification`` (``.ok``).
    digests : bool
        Each node's SHA-256 of its descriptors, pageblocks and zones in
        ``result.digests``: ``{nid: {"digest": hex, "state_digest": hex}}``, the second
        without the free lists' order (which differs between parallel boots). Equal to
        a cluster boot's (``--cluster ... --digests``), node for node.
    memmap_file : str or None
        Back the memmap with this file (it can be larger than memory); it appears at the
        path only once the boot completed.
    force, replace_any_file : bool
        Replace an existing fastinit memmap file at ``memmap_file``; with both, any
        regular file.
    kernel : str
        Deferred-init kernel (`fastinit.mm.deferred.CHUNK_KERNELS`).
    nice : int or None
        Run the helper threads at this niceness (0-19; Linux), the caller's thread as
        it is: a big boot then yields the CPUs to the machine's other work.
    progress, touch_progress, verify_progress : callable or None
        ``progress(done, total)`` for deferred init (pages), the first touch of a new
        memmap (bytes) and verification (descriptors), called as work finishes (any
        thread), starting with ``(0, total)``.
    cancel : threading.Event or None
        Set it from any thread to stop the boot (`fastinit.JobCancelled`).

    Returns
    -------
    BootResult
        ``plan``, ``memmap``, ``zones``, ``nodes``, ``timings``; ``verification`` and
        ``digests`` when asked for.
    """
    check_bool(verify, "verify")
    check_bool(digests, "digests")
    result = _run.boot(topology, arch=arch, threads=threads, memmap_file=memmap_file,
                       force=force, replace_any_file=replace_any_file, kernel=kernel,
                       nice=nice, progress=progress, touch_progress=touch_progress,
                       cancel=cancel)
    if verify:
        from fastinit.mm.verify import verify as verify_boot
        result.verification = verify_boot(result, progress=verify_progress)
    if digests:
        result.digests = node_digests(result)
    return result


def node_digests(result: BootResult) -> dict[int, dict[str, str]]:
    """Each node's digests (`fastinit.distributed.digest.node_digest`, which needs no
    dask): with and without the free lists' order."""
    from fastinit.distributed.digest import node_digest
    plan, memmap, zones = result.plan, result.memmap, result.zones
    return {node.nid: {"digest": node_digest(plan, memmap, zones, node.nid),
                       "state_digest": node_digest(plan, memmap, zones, node.nid, links=False)}
            for node in plan.nodes}
