"""What reading a memmap file without a read lease costs: ``load`` + ``verify`` of one
file with its lease (the file mapped) against the same with no lease possible (a
descriptor open for writing held by this process: the file is copied into private
memory, `fastinit.arrays.snapshot`), alternated in one run, page cache warm for both.

    python perf/verify_snapshot_cost.py --spec 1x16G --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(path: str, leased: bool, threads: int | None) -> dict:
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    writer = None if leased else os.open(path, os.O_RDWR)  # no lease while it is open
    try:
        began = time.perf_counter()
        result = load(path)
        loaded = time.perf_counter()
        assert (result.memmap.file.handle._lease is not None) == leased
        assert verify(result, threads=threads).ok
        done = time.perf_counter()
        result.memmap.file.handle.close()
    finally:
        if writer is not None:
            os.close(writer)
    return {"load": loaded - began, "verify": done - loaded, "total": done - began}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="1x16G")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dir", default=None, help="where the file goes (default: $TMPDIR)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        path = str(Path(work) / "m.bin")
        subprocess.run([sys.executable, "-m", "fastinit.cli", "boot", "--spec", args.spec,
                        "--memmap-file", path, "--no-progress"], check=True,
                       capture_output=True)
        one(path, True, args.threads)  # compile, and the page cache warm
        runs = {"lease": [], "copy": []}
        for _ in range(args.repeat):
            for name in ("lease", "copy"):
                runs[name].append(one(path, name == "lease", args.threads))
        size = os.path.getsize(path)
    summary = {"spec": args.spec, "file_bytes": size, "repeat": args.repeat}
    for name, got in runs.items():
        summary[name] = {part: round(statistics.median(r[part] for r in got), 4)
                         for part in ("load", "verify", "total")}
    summary["copy_over_lease_total"] = round(summary["copy"]["total"] /
                                             summary["lease"]["total"], 3)
    summary["copy_over_lease_verify"] = round(summary["copy"]["verify"] /
                                              summary["lease"]["verify"], 3)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
