"""verify against the deferred init it checks: same machine, same run, best of several.

Boots the machine once (first touch), then --repeat times: deferred init again on the same
memmap, and verify of the result. Prints each best time, their ratio (the goal: verify at
most 5x deferred init), and verify's rate. Take the bench lock for large machines:

    flock /tmp/fastinit-bench.lock python perf/verify_speed.py --spec 1x256G [--repeat 5]
"""

import argparse
import json
import time

from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot
from fastinit.mm.verify import verify


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="1x64G")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="verify's threads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    topology = parse_spec(args.spec)
    result = boot(topology)
    deferred, checked = [], []
    for _ in range(args.repeat):
        result = boot(topology, memmap=result.memmap)
        deferred.append(result.timings["deferred"])
        began = time.perf_counter()
        report = verify(result, threads=args.threads)
        checked.append(time.perf_counter() - began)
        if not report.ok:
            raise SystemExit(f"verify failed: {report.problems}")
    nbytes = result.memmap.pages.nbytes
    row = {"spec": args.spec, "repeat": args.repeat, "descriptor_bytes": nbytes,
           "deferred_ms": [round(d * 1e3, 2) for d in deferred],
           "verify_ms": [round(v * 1e3, 2) for v in checked],
           "ratio_of_bests": min(checked) / min(deferred),
           "ratios": [round(v / d, 2) for v, d in zip(checked, deferred)]}
    if args.json:
        print(json.dumps(row, indent=2))
        return
    print(f"{args.spec}: {nbytes / 2**30:.2f} GiB of descriptors, best of {args.repeat}")
    print(f"  deferred init {min(deferred) * 1e3:8.1f} ms")
    print(f"  verify        {min(checked) * 1e3:8.1f} ms  ({nbytes / min(checked) / 1e9:.1f} GB/s)")
    print(f"  verify / deferred init: {row['ratio_of_bests']:.2f} (best against best); "
          f"run by run {row['ratios']}")


if __name__ == "__main__":
    main()
