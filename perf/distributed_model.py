"""A model of the full-size hosts: one node's boot timed on a dask worker at several sizes,
a straight line through the times, and the projected wall time of the 12 TiB / 8-node and
24 TiB / 16-node hosts on N workers.

Measured: a one-node machine of each ``--sizes`` (GiB of memory, ``cpus`` CPUs) booted on
``local:1`` (one worker on this computer's CPUs), best of ``--repeat``: the node's
deferred init (its pgdatinit thread's time), its first touch (sparse_init), early init
and the whole task as the client saw it. Fitted: seconds = a + b * pages for each phase
(least squares; the largest relative residual is printed, the check that the line holds).

Projected: both hosts have 1.5 TiB per node (24 GiB of memmap). A worker is assumed to be
a computer like this one (same CPUs, same memory bandwidth) with a memory limit that
holds one shard under dask's pause threshold (24 GiB / 0.8 plus the worker's own ~0.2 GiB,
about 31 GiB); computers do not share memory bandwidth, so nodes on different workers
run side by side. A worker runs its nodes one after another (the runner starts a node
only while the shards fit), so the wall time is ceil(nodes / N) rounds of one node's
task (first touch + early + deferred + the measured fixed cost per task); the deferred
phase alone is ceil(nodes / N) * deferred(1.5 TiB).

    flock /tmp/fastinit-bench.lock python perf/distributed_model.py [--sizes 16,32,64,128]
"""

import argparse
import json
import math

import numpy as np

from fastinit.distributed.api import boot
from fastinit.distributed.cluster import connected
from fastinit.machine.spec import parse_spec

PAGE = 4096
HOSTS = {"12 TiB / 8 nodes": (12 << 40, 8), "24 TiB / 16 nodes": (24 << 40, 16)}


def measure(client, size_gib: int, cpus: int, repeat: int) -> dict:
    best = {}
    for _ in range(repeat):
        result = boot(parse_spec(f"1x{size_gib}G,cpus={cpus}"), cluster=client)
        shard = result.shards[0]
        times = {"deferred": shard.node.elapsed, "sparse_init": shard.timings["sparse_init"],
                 "early": shard.timings["early"], "task": result.timings["boot"]}
        best = {k: min(v, best.get(k, math.inf)) for k, v in times.items()}
    best["pages"] = shard.node.pages
    best["threads"] = shard.node.report.nworks
    return best


def fit(pages: np.ndarray, seconds: np.ndarray) -> tuple[float, float, float]:
    """(a, b, largest relative residual) of seconds = a + b * pages."""
    b, a = np.polyfit(pages, seconds, 1)
    residual = np.max(np.abs(a + b * pages - seconds) / seconds)
    return float(a), float(b), float(residual)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,32,64,128", help="GiB per node")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with connected("local:1") as client:
        boot(parse_spec(f"1x{sizes[0]}G,cpus={args.cpus}"), cluster=client)  # warm up
        rows = [dict(size_GiB=size, **measure(client, size, args.cpus, args.repeat))
                for size in sizes]
    pages = np.array([row["pages"] for row in rows], float)
    lines = {phase: fit(pages, np.array([row[phase] for row in rows]))
             for phase in ("deferred", "sparse_init", "early", "task")}
    fixed = lines["task"][0] - lines["deferred"][0] - lines["sparse_init"][0] - \
        lines["early"][0]
    projections = {}
    for name, (memory, nodes) in HOSTS.items():
        node_pages = memory // nodes // PAGE
        one = {phase: a + b * node_pages for phase, (a, b, _) in lines.items()}
        projections[name] = {
            "memmap_per_node_GiB": node_pages * 64 / 2**30,
            "one_node_s": {k: round(v, 2) for k, v in one.items()},
            "wall_s_on_N_workers": {
                n: {"deferred": round(math.ceil(nodes / n) * one["deferred"], 2),
                    "boot": round(math.ceil(nodes / n) * one["task"], 2)}
                for n in (1, 2, 4, 8, 16) if n <= nodes}}
    print(json.dumps({"measured": rows,
                      "fits": {k: {"a_s": a, "b_ns_per_page": b * 1e9, "max_rel_residual":
                                   round(r, 3)} for k, (a, b, r) in lines.items()},
                      "fixed_cost_per_task_s": round(fixed, 4),
                      "projections": projections}, indent=2))


if __name__ == "__main__":
    main()
