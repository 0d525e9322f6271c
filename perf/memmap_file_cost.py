"""What a memmap file's safety costs, as same-run ratios to deferred init of the same machine.

    flock /tmp/fastinit-bench.lock python perf/memmap_file_cost.py --spec 1x64G

Measures (best of --repeat): deferred init in memory; the data checksum written at
completion and checked on open (fastinit.arrays.checksum, 1 thread and all usable CPUs);
SHA-256 of the same bytes (the alternative considered); verify of the same boot; and
opening a complete file from the page cache with and without the checksum.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

from fastinit.arrays.checksum import data_checksum
from fastinit.host.cpus import usable_cpus
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot, load
from fastinit.mm.verify import verify


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default="1x64G")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    topology = parse_spec(args.spec)
    first = boot(topology)
    deferred = min(boot(topology, memmap=first.memmap).timings["deferred"]
                   for _ in range(args.repeat))
    raw = first.memmap.raw
    figures = {
        "bytes": int(raw.nbytes), "cpus": usable_cpus(),
        "deferred_s": deferred,
        "checksum_1_thread_s": best(lambda: data_checksum(raw, threads=1), args.repeat),
        "checksum_all_cpus_s": best(lambda: data_checksum(raw), args.repeat),
        "sha256_s": best(lambda: hashlib.sha256(raw).digest(), max(args.repeat // 2, 1)),
        "verify_s": best(lambda: verify(first), max(args.repeat // 2, 1)),
    }
    with tempfile.TemporaryDirectory(dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as d:
        path = str(Path(d) / "m.bin")
        boot(topology, memmap_file=path)
        figures["open_checked_s"] = best(lambda: load(path), args.repeat)
        figures["open_unchecked_s"] = best(lambda: load(path, check_data=False), args.repeat)
        # What a user waits for: verify --memmap-file, with and without the checksum (the
        # first read of a mapped file pays its page faults, whichever pass reads first).
        figures["open_and_verify_checked_s"] = best(lambda: verify(load(path)),
                                                    max(args.repeat // 2, 1))
        figures["open_and_verify_unchecked_s"] = best(
            lambda: verify(load(path, check_data=False)), max(args.repeat // 2, 1))
    ratios = {f"{name[:-2]}_per_deferred": round(value / deferred, 2)
              for name, value in figures.items() if name.endswith("_s") and name != "deferred_s"}
    print(json.dumps({"spec": args.spec, **{k: (round(v, 4) if isinstance(v, float) else v)
                                            for k, v in figures.items()}, **ratios}, indent=2))


if __name__ == "__main__":
    main()
