"""``fastinit.boot``: in this process, or one node per dask worker with ``cluster=``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace

from fastinit.engine.progress import Tally
from fastinit.validate import check_callable, check_int, check_type
from fastinit.machine.topology import Topology
from fastinit.mm.deferred import DEFAULT_KERNEL
from fastinit.distributed.pools import needs_split
from fastinit.mm.options import BootOptions
from fastinit.mm.plan import DEFAULT_ARCH, plan_boot
from fastinit.mm import run as single


def boot(topology: Topology, *, cluster=None, verify: bool = False, digests: bool = False,
         retries: int = 0, memmap_dir: str | None = None,
         progress: Callable[[int, int], None] | None = None, timeout: float | None = None,
         **options):
    """Simulate the boot of ``topology``: here (`fastinit.mm.run.boot`), or on a cluster.

    Parameters
    ----------
    topology : Topology
    cluster : None, str or distributed.Client
        None boots in this process and returns a `fastinit.mm.run.BootResult` (every other
        keyword is `fastinit.mm.run.boot`'s). ``"local:N"`` starts N dask worker
        processes here; ``"tcp://HOST:8786"`` uses a running scheduler and its workers;
        a ``distributed.Client`` is used as it is. Each node's shard is booted, verified
        and dropped on one worker, with its HugeTLB boot pools (the command line's
        ``hugepages=``; `fastinit.distributed.pools`).
    verify, digests : bool
        On a cluster: verify every node on its worker; compute each node's digests
        (`fastinit.distributed.digest.node_digest`).
    retries : int
        On a cluster: boot a node again, from scratch on another worker, this many times
        when its worker dies.
    memmap_dir : str or None
        On a cluster: each node's memmap is the file ``node<N>.memmap`` in this directory
        on its worker's disk (it stays there, complete, for ``fastinit verify``).
    progress : callable or None
        ``progress(done, total)`` in pages as deferred init advances, over all nodes.
    timeout : float or None
        Seconds to reach a scheduler address (default 5).
    **options
        ``arch``, ``threads``, ``kernel``, ``force``; without a cluster, anything
        `fastinit.mm.run.boot` takes.

    Returns
    -------
    BootResult or fastinit.distributed.result.DistributedBootResult
    """
    if cluster is None:
        if verify or digests or retries or memmap_dir is not None or timeout is not None:
            raise ValueError("verify, digests, retries, memmap_dir and timeout apply to a "
                             "cluster boot: pass cluster='local:N' or an address (in one "
                             "process, use fastinit.mm.verify.verify and memmap_file=)")
        return single.boot(topology, progress=progress, **options)
    return cluster_boot(topology, cluster, verify=verify, digests=digests, retries=retries,
                        memmap_dir=memmap_dir, progress=progress, timeout=timeout, **options)


def _cloudpickle():
    import cloudpickle
    return cloudpickle


def cluster_boot(topology: Topology, cluster, *, arch: str = DEFAULT_ARCH,
                 threads: int | None = None, kernel: str = DEFAULT_KERNEL,
                 force: bool = False, verify: bool = False, digests: bool = False,
                 retries: int = 0, memmap_dir: str | None = None, progress=None,
                 timeout: float | None = None, memory_limit=None, chunk_hook=None):
    """`boot` on a cluster (see there); ``memory_limit`` per worker of a local cluster;
    ``chunk_hook(nid, start, end)`` runs on the worker before every deferred chunk (as in
    `fastinit.mm.run.boot`; it must pickle, and tests use it to hold a node mid-init)."""
    from fastinit.distributed.cluster import CONNECT_TIMEOUT, check_workers, connected
    from fastinit.distributed.memmap_dir import problems as memmap_dir_problems
    from fastinit.distributed.result import DistributedBootResult
    from fastinit.distributed.run import run_boot
    single._check_machine_arguments(topology, None)
    boot_options = BootOptions(arch=arch, threads=threads, kernel=kernel, force=force)
    check_callable(progress, "progress", "progress(done, total)", optional=True)
    check_callable(chunk_hook, "chunk_hook", "chunk_hook(nid, start, end)", optional=True)
    retries = check_int(retries, "retries", minimum=0, fix="times to boot a node again")
    check_type(memmap_dir, (str, os.PathLike), "memmap_dir", "a directory path",
               optional=True)
    plan = plan_boot(topology, arch, threads)  # bad input fails here, before any cluster
    options = {"boot": boot_options,
               # 2 MiB pools wait for the split between the nodes (distributed.pools).
               "split_pools": needs_split(plan),
               "memmap_dir": None if memmap_dir is None else os.fspath(memmap_dir),
               # By cloudpickle, so a lambda or a test's function reaches the workers (the
               # scheduler unpickles the task with plain pickle: it must not need them).
               "chunk_hook": None if chunk_hook is None else _cloudpickle().dumps(chunk_hook)}
    nids = [node.nid for node in plan.nodes]
    if memmap_dir is not None and isinstance(cluster, str) and \
            cluster.strip().startswith("local:"):
        _refuse(memmap_dir_problems(os.fspath(memmap_dir), nids, force))  # before it starts
    began = time.perf_counter()
    with connected(cluster, timeout=timeout or CONNECT_TIMEOUT,
                   memory_limit=memory_limit) as client:
        identities = check_workers(client)
        if memmap_dir is not None:  # on every worker's disk, before any node starts
            found = client.run(memmap_dir_problems, os.fspath(memmap_dir), nids, force,
                               on_error="return")
            _refuse(_by_problem(found))
        connect = time.perf_counter() - began
        # The nodes report pages as they gain them; the caller gets (done, total).
        tally = Tally(progress, sum(end - start for node in plan.nodes
                                    for start, end in plan.deferred_jobs(node.nid)))
        shards, timings, pools = run_boot(client, plan, identities, options,
                                          verify=verify, digests=digests, retries=retries,
                                          progress=tally.add if progress is not None
                                          else None)
    timings["connect"] = connect
    # The plan as the nodes booted it: its pools split by the rooms they reported.
    return DistributedBootResult(replace(plan, pools=pools),
                                 [shards[nid] for nid in sorted(shards)], timings,
                                 len(identities))


def _by_problem(found: dict) -> list[str]:
    """Each problem the workers found with ``--memmap-dir``, once, naming the workers."""
    workers: dict[str, list[str]] = {}
    for address in sorted(found):
        said = found[address]
        if isinstance(said, BaseException):
            said = [f"cannot check --memmap-dir ({type(said).__name__}: {said})"]
        for problem in said:
            workers.setdefault(problem, []).append(address)
    return [f"{problem} (on {', '.join(where)})" for problem, where in workers.items()]


def _refuse(problems: list[str]) -> None:
    """ValueError (exit 2) naming every problem of ``--memmap-dir``."""
    if problems:
        raise ValueError("; ".join(problems))
