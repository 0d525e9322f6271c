"""A 2-node machine on ``--cluster local:2`` against the single-process boot, in one run.

Deferred-init throughput (descriptor bytes per second of deferred-init wall time): in one
process, both nodes' pgdatinit threads share the pool, and the time is the boot's
``deferred`` timing; on the cluster each node runs on its own worker process (each kept on
one of the CPUs). The workers reach deferred init at different moments (first touch
varies by hundreds of ms, deferred init takes tens), so, as in the kernel where every
pgdatinit thread starts together, a barrier in each node's first chunk (a chunk hook)
lets them start together; the time is from the barrier's release (the last node's
arrival) to the last node's end, on the one clock of this computer. Best of ``--repeat``
of each, alternated.

Fixed cost per node task: a task restricted to a worker carrying what a node task carries
(the machine, the options) and doing nothing, timed from submit to result on the client
(scheduling, transfer both ways), best and median of ``--tasks``; and for the real boot,
the client's time per node task minus the task's own time on the worker.

    flock /tmp/fastinit-bench.lock python perf/distributed_throughput.py [--spec 2x64G,cpus=1]
"""

import argparse
import functools
import json
import os
import shutil
import statistics
import tempfile
import time

from fastinit.distributed.api import boot as cluster_boot
from fastinit.distributed.cluster import connected
from fastinit.layout import PAGE_DTYPE
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot


def nothing(topology, options):
    """A node task's arguments, no work."""
    return len(topology.nodes)


def single(topology, memmap):
    result = boot(topology, memmap=memmap)
    pages = sum(node.pages for node in result.nodes)
    return pages * PAGE_DTYPE.itemsize / result.timings["deferred"], result.memmap


def barrier(folder, nodes, nid, start, end):
    """Each node's first chunk waits here until every node has arrived."""
    path = os.path.join(folder, f"node{nid}")
    if not os.path.exists(path):
        open(path, "w").close()
        while len(os.listdir(folder)) < nodes:
            time.sleep(0.0002)


def distributed(topology, client):
    folder = tempfile.mkdtemp()
    hook = functools.partial(barrier, folder, len(topology.memory_nodes))
    result = cluster_boot(topology, cluster=client, chunk_hook=hook)
    released = max(os.stat(os.path.join(folder, name)).st_mtime
                   for name in os.listdir(folder))
    shutil.rmtree(folder)
    window = max(s.deferred_end for s in result.shards) - released
    pages = sum(s.node.pages for s in result.shards)
    per_node = [s.task_seconds for s in result.shards]
    return pages * PAGE_DTYPE.itemsize / window, result.timings["boot"], per_node


def fixed_cost(client, topology, tasks: int) -> list[float]:
    workers = sorted(client.scheduler_info()["workers"])
    options = {"arch": "x86", "threads": None, "kernel": "stream", "force": False,
               "memmap_dir": None, "chunk_hook": None}
    seconds = []
    for i in range(tasks):
        began = time.perf_counter()
        client.submit(nothing, topology, options, workers=[workers[i % len(workers)]],
                      allow_other_workers=False, pure=False).result()
        seconds.append(time.perf_counter() - began)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="2x64G,cpus=1")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=50)
    args = parser.parse_args()
    topology = parse_spec(args.spec)
    memmap = None
    rates_single, rates_cluster, overheads = [], [], []
    with connected("local:2") as client:
        cluster_boot(topology, cluster=client)  # workers load the kernels once
        for _ in range(args.repeat):
            rate, memmap = single(topology, memmap)
            rates_single.append(rate)
            rate, client_seconds, per_node = distributed(topology, client)
            rates_cluster.append(rate)
            overheads.append(client_seconds - max(per_node))
        costs = fixed_cost(client, topology, args.tasks)
    best_single, best_cluster = max(rates_single), max(rates_cluster)
    print(json.dumps({
        "spec": args.spec, "repeat": args.repeat,
        "single_process_GBps": round(best_single / 1e9, 3),
        "local2_GBps": round(best_cluster / 1e9, 3),
        "throughput_ratio_cluster_over_single": round(best_cluster / best_single, 3),
        "fixed_cost_per_task_ms": {"best": round(min(costs) * 1e3, 2),
                                   "median": round(statistics.median(costs) * 1e3, 2)},
        "boot_overhead_beyond_slowest_task_ms": {
            "best": round(min(overheads) * 1e3, 1),
            "median": round(statistics.median(overheads) * 1e3, 1)},
    }, indent=2))


if __name__ == "__main__":
    main()
