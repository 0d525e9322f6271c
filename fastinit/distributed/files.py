"""``fastinit verify --memmap-dir DIR --cluster``: check the node files a distributed boot
left on its workers' disks, each on the worker whose disk holds it."""

from __future__ import annotations

import os

from fastinit.distributed import worker as on_worker
from fastinit.distributed.cluster import CONNECT_TIMEOUT, check_workers, connected
from fastinit.distributed.result import DistributedBootResult, NodeShard
from fastinit.distributed.run import Watcher
from fastinit.mm.memmap_meta import topology_fingerprint
from fastinit.mm.plan import plan_boot


def _holders(found: dict) -> dict[int, list[tuple[str, str]]]:
    """Node -> [(worker, path)] from every worker's listing of the directory."""
    holders: dict[int, list[tuple[str, str]]] = {}
    for address in sorted(found):
        if isinstance(found[address], BaseException):
            continue
        for nid, path in found[address].items():
            holders.setdefault(nid, []).append((address, path))
    return holders


def verify_files(cluster, directory, topology=None, *, digests: bool = False,
                 timeout: float | None = None):
    """Verify every ``node<N>.memmap`` in ``directory`` on the workers that hold them.

    A node found on several workers (a disk they share) is checked once, on the worker
    with the fewest files to check so far.

    Returns
    -------
    (DistributedBootResult or None, list of str)
        The nodes as their files hold them (``shards[i].report`` their verification),
        and the problems that stop verification: no files, a node missing, a file that
        is incomplete, damaged or of another machine (each named).
    """
    directory = os.fspath(directory)
    with connected(cluster, timeout=timeout or CONNECT_TIMEOUT) as client:
        identities = check_workers(client)
        holders = _holders(client.run(on_worker.node_files, directory, on_error="return"))
        if not holders:
            return None, [f"no node memmap files (node<N>.memmap) in {directory} on any of "
                          f"the {len(identities)} workers"]
        watcher, load = Watcher(client), {address: 0 for address in identities}
        tasks = {}
        for nid in sorted(holders):
            address, path = min(holders[nid], key=lambda held: (load[held[0]], held[0]))
            load[address] += 1
            tasks[nid] = (watcher.submit(on_worker.verify_file_task, nid, address, 1, path,
                                         nid, digests), address, 1)
        done = watcher.wait(tasks, "verify of its file")
    problems = [summary["problem"] for summary, _, _ in done.values() if "problem" in summary]
    if problems:
        return None, problems
    first = done[min(done)][0]
    stored = first["topology"]
    fingerprint = topology_fingerprint(stored)
    for nid, (summary, address, _) in sorted(done.items()):
        if summary["meta"]["fingerprint"] != fingerprint:
            problems.append(f"node {nid}'s file on {address} was written for another machine "
                            f"than node {min(done)}'s")
    if topology is not None and topology_fingerprint(topology) != fingerprint:
        problems.append(f"the files in {directory} were written for {stored.source}, not "
                        f"{topology.source}")
    plan = plan_boot(stored, first["arch"], None)
    missing = sorted({node.nid for node in plan.nodes} - set(done))
    if missing:
        problems.append(f"no worker holds the file of node(s) {missing} in {directory}")
    if problems:
        return None, problems
    shards = [NodeShard.from_summary(summary, address)
              for _, (summary, address, _) in sorted(done.items())]
    return DistributedBootResult(plan, shards, {}, len(identities)), []
