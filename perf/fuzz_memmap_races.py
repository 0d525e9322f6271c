"""Race fuzz campaign over memmap files (issue 18): header fields rewritten by a racing
writer process while the file is opened, and strange entries at the lock and temporary
names (see tests/memmap_race_fuzz.py). Wanted: 0 signals, 0 tracebacks, 0 hangs, 0 files
of ours or theirs lost, every refusal naming the file.

    python perf/fuzz_memmap_races.py --count 50000 --seed 1 --json out.json

Works in /dev/shm (tmpfs) when there is one: fsync there is free, and the cases test
names and headers, not the disk.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from memmap_race_fuzz import campaign  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200, help="cases per worker request")
    parser.add_argument("--json", help="write the tallies here")
    args = parser.parse_args()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as work:
        page = Path(work) / "page.bin"  # a small page memmap file, for load + verify
        subprocess.run([sys.executable, "-m", "fastinit.cli", "boot", "--spec", "1x128M",
                        "--memmap-file", str(page), "--no-progress"], check=True,
                       capture_output=True)
        result = campaign(work, args.count, args.seed, str(page), args.batch,
                          report_every=max(args.count // 20, 1))
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    for sample in result["samples"][:10]:
        print(sample)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
