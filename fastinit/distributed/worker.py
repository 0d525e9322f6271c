"""What runs inside a dask worker: a node's life (boot, verify, digests).

A shard (one node's memmap and zones) lives in the task that boots it, never in dask's
managed memory: the task returns only a small summary (numbers, short strings, the
verify report), so dask has nothing large to spill, pickle or send, and the shard is gone
when the task ends. The registry (`fastinit.distributed.registry`) holds what the client
may ask about a running node (phase, pages done) and its cancel event. The worker counts the shard as its process
memory ("unmanaged"), which is why the runner keeps every worker's running shards under
its pause threshold (`fastinit.distributed.placement`).

Functions named ``*_task`` run as dask tasks on the worker's threads; the others run
through ``Client.run`` on the worker's event loop and only read or flip a few fields.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import threading
import time
from dataclasses import replace

import fastinit
from fastinit.distributed.digest import node_digest
from fastinit.distributed.memmap_dir import node_file_name
from fastinit.distributed.pools import await_share, pool_figures
from fastinit.distributed.registry import CANCELLED, COMMITTED, LOCK, SHARDS, Shard
from fastinit.arrays.touch import advise
from fastinit.host.memory import available_memory
from fastinit.layout import align_up
from fastinit.mm.memmap_meta import descriptor_layout

# Exactly the names node_file_name writes: ASCII digits, no leading zero (str.isdigit
# takes "²", which int() refuses, and "node01" would stand for node 1 beside "node1").
_NODE_FILE = re.compile(r"node(0|[1-9][0-9]*)\.memmap")
# Seconds between a running node's looks at its worker: one that is closing (it lost
# the scheduler, or is told to stop) cancels the node instead of finishing it unseen.
WATCH = 0.1


def identity(dask_worker=None) -> dict:
    """Who this worker is and what room it has (``Client.run``).

    ``budget`` is the bytes its shards may take: below the memory fraction at which dask
    pauses the worker (a paused worker would not start our next task while the shard
    stays), less what the process holds now, and within what the computer has free.
    ``host_room`` is what the computer has free: workers sharing it share that too
    (their memory limits may add up to more than it has). ``layout`` is `layout_print`.
    """
    import psutil
    rss = psutil.Process().memory_info().rss
    limit = pause = None
    if dask_worker is not None:
        manager = dask_worker.memory_manager
        limit, pause = manager.memory_limit, manager.memory_pause_fraction
    host_room = room = int(available_memory() * 0.9)
    if limit:
        room = min(room, int(limit * (pause or 0.95)) - rss)
    return {"fastinit": fastinit.__version__, "pid": os.getpid(), "rss": rss,
            "memory_limit": limit or 0, "pause_fraction": pause or 0.0, "budget": room,
            "host_room": host_room,
            "nthreads": dask_worker.state.nthreads if dask_worker is not None else 0,
            "cpus": len(os.sched_getaffinity(0)), "layout": layout_print()}


def layout_print() -> str:
    """A short hash of the descriptor layout, compared across workers."""
    return hashlib.sha256(json.dumps(descriptor_layout()).encode()).hexdigest()[:16]


def pin_cpus(cpus: list[int]) -> int:
    """Keep this worker process on ``cpus`` (a local cluster's share of this computer)."""
    os.sched_setaffinity(0, cpus)
    return len(os.sched_getaffinity(0))


def node_task(boot_id: str, topology, nid: int, options: dict, verify: bool,
              digests: bool) -> dict:
    """A node's whole life on this worker: boot its shard, verify it and compute its
    digests if asked, and drop it.

    ``options``: boot (a `fastinit.mm.options.BootOptions`), memmap_dir, chunk_hook, and
    split_pools (True: after deferred init, report the node's room and wait for its
    share of the HugeTLB pools, `fastinit.distributed.pools`). Returns the
    node's summary (`_summary`, with ``report`` and the digests when asked). The shard is
    dropped when the task ends, however it ends; a memmap file stays only complete (a
    failed or cancelled boot removes its new file: no node is left marked complete).
    """
    from fastinit.engine.padata import JobCancelled
    from fastinit.mm.run import boot
    shard = Shard(nid)
    with LOCK:
        if boot_id in CANCELLED:
            raise JobCancelled(f"node {nid}: its boot was cancelled before it started")
        SHARDS[(boot_id, nid)] = shard
    _watch_worker(shard)
    began = time.perf_counter()
    try:
        path = None
        if options.get("memmap_dir"):
            # The directory is on this worker's disk: the client cannot make it.
            os.makedirs(options["memmap_dir"], exist_ok=True)
            path = os.path.join(options["memmap_dir"], node_file_name(nid))
        shard.phase = "init"
        result = boot(topology, replace(options["boot"], node=nid, memmap_file=path),
                      progress=shard.add_pages,
                      cancel=shard.cancel, chunk_hook=_loaded(options.get("chunk_hook")),
                      before_pools=(lambda booted: await_share(shard, booted, WATCH))
                      if options.get("split_pools") else None)
        if path is not None:
            with LOCK:
                COMMITTED.setdefault(boot_id, set()).add(nid)
                shard.phase = "committed"
        booted = time.time()
        try:
            summary = _summary(result, nid)
            # Wall-clock end of the node's deferred init (sync comes after it): lets a
            # benchmark on one computer line nodes up on one clock.
            summary["deferred_end"] = booted - result.timings.get("sync", 0.0)
            if verify or digests:
                shard.phase = "verify"
                from fastinit.mm.verify import verify as verify_boot
                summary.update(_checked(result, nid, digests, verify_boot))
        finally:
            give_back(result.memmap)
        summary["task_seconds"] = time.perf_counter() - began
        return summary
    finally:
        with LOCK:
            SHARDS.pop((boot_id, nid), None)
        shard.running = False


def _watch_worker(shard: Shard) -> None:
    """Cancel ``shard``'s node if its worker starts to close while it runs (a worker that
    lost its scheduler closes: the node's file must then fail, not complete unseen)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return  # not in a dask worker (a test calls the task in-process)

    def watch():
        while shard.running and not shard.cancel.is_set():
            if worker.status.name not in ("running", "paused"):
                shard.cancel.set()
                return
            time.sleep(WATCH)

    threading.Thread(target=watch, name=f"fastinit-watch-node{shard.nid}",
                     daemon=True).start()


def give_back(memmap) -> None:
    """Return a finished shard's memory to the system now.

    Its arrays can outlive the task until the last reference to them is collected, and
    until then the process would hold the shard's bytes, over its budget for the next
    node. Nothing reads them after the task: a memory
    shard's pages become zero pages, a file's were synced when it was completed.
    """
    raw = memmap.raw
    first = align_up(raw.ctypes.data, mmap.PAGESIZE)
    end = (raw.ctypes.data + raw.nbytes) // mmap.PAGESIZE * mmap.PAGESIZE
    if end > first:
        advise(first, end - first, mmap.MADV_DONTNEED)


def _loaded(hook: bytes | None):
    """A chunk hook the client sent by cloudpickle (see `fastinit.distributed.api`)."""
    if hook is None:
        return None
    import cloudpickle
    return cloudpickle.loads(hook)


def _summary(result, nid: int) -> dict:
    return {"nid": nid, "pid": os.getpid(), "node": result.nodes[0],
            "timings": dict(result.timings), "memmap_bytes": result.memmap.nbytes,
            "storage": result.memmap.storage, "zones": zone_figures(result.zones),
            "pools": pool_figures(result)}


def zone_figures(zones: dict) -> dict:
    """``{(nid, zid): (managed, nr_free, heads)}``, copied out of the shard's zones for
    the client (`fastinit.distributed.result.zones_from` makes them zones again)."""
    return {key: (area.managed, area.nr_free.copy(), area.heads.copy())
            for key, area in zones.items()}


def verify_file_task(path: str, nid: int, digests: bool) -> dict:
    """Verify the memmap file of node ``nid`` at ``path`` on this worker's disk.

    A file that cannot be used (incomplete, damaged, of another node) is no error of the
    task: its summary says so in ``problem``.
    """
    from fastinit.arrays.errors import MemmapFileError
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    try:
        result = load(path)
    except MemmapFileError as error:
        return {"nid": nid, "problem": f"node {nid}: {error}"}
    planned = [node.nid for node in result.plan.nodes]
    if planned != [nid]:
        return {"nid": nid, "problem": f"{path} holds node(s) {planned}, not node {nid}"}
    summary = _checked(result, nid, digests, verify)
    summary.update(
        topology=result.plan.topology, arch=result.plan.arch,
        memmap_bytes=result.memmap.nbytes, storage=path, zones=zone_figures(result.zones),
        meta={key: result.memmap.file.meta[key]
              for key in ("format", "fastinit", "created", "kernel", "fingerprint")})
    return summary


def _checked(result, nid: int, digests: bool, verify) -> dict:
    report = verify(result, threads=None)
    summary = {"nid": nid, "report": report, "pid": os.getpid()}
    if digests:
        summary["digest"] = node_digest(result.plan, result.memmap, result.zones, nid)
        summary["state_digest"] = node_digest(result.plan, result.memmap, result.zones, nid,
                                              links=False)
    return summary


def node_files(directory: str) -> dict[int, str]:
    """The node memmap files in ``directory`` on this worker (``Client.run``)."""
    found = {}
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            named = _NODE_FILE.fullmatch(name)
            if named:
                found[int(named.group(1))] = os.path.join(directory, name)
    return found
