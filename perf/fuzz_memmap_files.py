"""Fuzz campaign over page memmap files (issue 9): mutated files through load + verify.

Bases are complete files booted from specs and from real boot logs (tests/data/dmesg);
each mutation damages one thing (resealed metadata, the fixed header, the size, or bytes,
words, runs and targeted fields of the descriptors, pageblock migratetypes and zone state,
with the data checksum resealed or not; see tests/memmap_fuzz.py) and the file is checked
by a watched worker process (tests/memmap_fuzz_run.py). Wanted: 0 tracebacks, 0 signals,
0 hangs, 0 runaway memory, every refusal naming the file.

    python perf/fuzz_memmap_files.py --count 100000 --seed 1 --json out.json
    python perf/fuzz_memmap_files.py --replay 1:4242      # one mutation, in this process

Working copies live in /dev/shm (tmpfs) when there is one; failures are saved with the
seed and index that rebuild them under --findings.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from memmap_fuzz import make_bases  # noqa: E402
from memmap_fuzz_run import campaign, replay  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60.0, help="per-file time limit")
    parser.add_argument("--memory-mib", type=int, default=4096, help="per-worker RSS limit")
    parser.add_argument("--findings", default="/tmp/fastinit-memmap-fuzz-findings")
    parser.add_argument("--json", help="write the tallies here")
    parser.add_argument("--replay", metavar="SEED:INDEX")
    args = parser.parse_args()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as work:
        bases = make_bases(Path(work))
        if args.replay:
            seed, index = (int(part) for part in args.replay.split(":"))
            print(json.dumps(replay(seed, index, bases), indent=2))
            return 0
        result = campaign(bases, args.count, args.seed, Path(args.findings), args.seconds,
                          args.memory_mib << 20, report_every=max(args.count // 20, 1))
    result["bases"] = {b.name: len(b.raw) for b in bases}
    summary = {k: v for k, v in result.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    for outcome, samples in result["samples"].items():
        print(f"{outcome}: {len(samples)} kept, e.g. {samples[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
