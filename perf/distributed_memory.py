"""A machine whose memmap no worker holds: 4 workers limited to 3 GiB each, a 4-node spec
with 8 GiB of memmap, booted and verified; each worker's peak memory against its limit.

Peak memory is the worker process's high-water mark of resident memory (``VmHWM`` in
/proc/PID/status, read on the worker after the boot): what dask's memory monitor measures
(process RSS) at its highest, never sampled between two looks.

    flock /tmp/fastinit-bench.lock python perf/distributed_memory.py [--spec 4x128G,cpus=1]
"""

import argparse
import json

from fastinit.distributed.api import boot
from fastinit.distributed.cluster import connected
from fastinit.machine.spec import parse_spec
from fastinit.mm.plan import plan_boot


def high_water() -> int:
    """Bytes: this process's peak resident memory."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="4x128G,cpus=1")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit", default="3GiB")
    args = parser.parse_args()
    topology = parse_spec(args.spec)
    with connected(f"local:{args.workers}", memory_limit=args.limit) as client:
        limits = {a: w["memory_limit"] for a, w in client.scheduler_info()["workers"].items()}
        result = boot(topology, cluster=client, verify=True)
        peaks = client.run(high_water)
    total = plan_boot(topology).memmap_bytes
    print(json.dumps({
        "spec": args.spec, "memmap_GiB": round(total / 2**30, 3),
        "workers": args.workers, "limit_GiB": round(max(limits.values()) / 2**30, 3),
        "memmap_over_one_worker_limit": round(total / max(limits.values()), 2),
        "verified": result.verification.ok,
        "nodes": {s.nid: s.worker for s in result.shards},
        "peak_GiB": {a: round(p / 2**30, 3) for a, p in sorted(peaks.items())},
        "peak_over_limit": {a: round(p / limits[a], 3) for a, p in sorted(peaks.items())},
        "every_worker_within_its_limit": all(p < limits[a] for a, p in peaks.items()),
    }, indent=2))


if __name__ == "__main__":
    main()
