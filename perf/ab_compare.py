"""Same-run A/B of the README's benchmarks between two checkouts of fastinit.

Each tree runs its own code with its own virtualenv (``TREE/.venv/bin/python``, an
editable install of that tree). The benchmarks run alternately, A, B, B, A, A, B ... so that
the load of a shared machine falls on both alike; for every figure a benchmark prints
(its JSON), the best of the rounds is kept for each tree, and the table gives B/A. A time
(a key in ms, us or seconds) is best smallest, a rate (GB/s, speedup) best largest; B/A
above 1 means B took longer (or, for a rate, was faster). Per benchmark the line gives
the geometric mean of B/A over its times and the range, then each time figure.

    python perf/ab_compare.py /tmp/before /work/tree [--rounds 3] [--only NAME ...]

Take the bench lock on a shared machine: flock /tmp/fastinit-bench.lock python ...
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name: the command (run in the tree, "{json}" is a file for its JSON output, "{py}" the
# tree's python); sized to take seconds to a minute each on a 2-CPU machine.
BENCHMARKS = {
    "bench 1x16G": ["{fastinit}", "bench", "--spec", "1x16G", "--json", "--repeat", "5"],
    "scheduler_overhead": ["{py}", "perf/scheduler_overhead.py", "--json", "--runs", "2000"],
    "kernel_throughput": ["{py}", "perf/kernel_throughput.py", "--gib", "1", "--repeat", "5",
                          "--save"],
    "verify_speed": ["{py}", "perf/verify_speed.py", "--spec", "1x64G", "--repeat", "3",
                     "--json"],
    "fill_bench": ["{py}", "perf/fill_bench.py", "--gib", "1", "--repeat", "2",
                   "--numpy-repeat", "1", "--json", "{json}"],
    "hugetlb_bench": ["{py}", "perf/hugetlb_bench.py", "--spec", "2x16G,cpus=2",
                      "--skip-residency", "--repeat", "5", "--json", "{json}"],
}
_TIME = re.compile(r"(^|_)(ms|us|s|sec|seconds|time|median|best)($|_)|_ms|_us|seconds")
_RATE = re.compile(r"gbps|gb_s|speedup|per_s|rate", re.I)


def leaves(value, key=""):
    """Every number in a JSON document, by its path (lists by index)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and \
            math.isfinite(value) and value > 0:
        yield key, float(value)


def kind(path: str) -> str | None:
    last = path.rsplit(".", 1)[-1].lower()
    if "stdev" in last or "ratio" in last or "vs_" in last:
        return None  # spreads, and ratios whose better direction differs by benchmark
    if _RATE.search(last):
        return "rate"
    if _TIME.search(last):
        return "time"
    return None


def run_once(tree: Path, name: str) -> dict[str, float]:
    py = tree / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.json"
        command = [part.format(py=py, json=out, fastinit=tree / ".venv" / "bin" / "fastinit")
                   for part in BENCHMARKS[name]]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(command, cwd=tree, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed in {tree} (exit {done.returncode}):\n"
                             f"{done.stderr[-2000:]}")
        saved = re.search(r"^saved (\S+\.json)$", done.stdout, re.M)
        if out.exists():
            document = json.loads(out.read_text())
        elif saved:  # kernel_throughput --save writes into the tree's perf/results
            path = tree / saved.group(1) if not os.path.isabs(saved.group(1)) \
                else Path(saved.group(1))
            document = json.loads(path.read_text())
            path.unlink()
        else:
            document = json.loads(done.stdout)
    return dict(leaves(document))


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    kept = {}
    for figures in runs:
        for path, value in figures.items():
            pick = max if kind(path) == "rate" else min
            kept[path] = pick(kept.get(path, value), value)
    return kept


def compare(a: dict[str, float], b: dict[str, float]) -> list[tuple[str, float]]:
    return [(path, b[path] / a[path]) for path in sorted(a.keys() & b.keys())
            if kind(path) == "time"]


def against_memset(runs: dict) -> list[tuple[str, float]]:
    """B/A of each time divided by the memset time of its own run (where the benchmark
    measures memset in the same run): load that slows a run slows its memset too."""
    def normalized(figures: dict[str, float]) -> dict[str, float]:
        def split(path: str) -> tuple[str, str]:
            return tuple(path.rsplit(".", 1)) if "." in path else ("", path)
        memsets = {split(path)[0]: v for path, v in figures.items()
                   if split(path)[1] == "memset_ms"}
        out = {}
        for path, value in figures.items():
            row, last = split(path)
            memset = memsets.get(row, memsets.get(""))
            if memset and kind(path) == "time" and last != "memset_ms":
                out[path] = value / memset
        return out
    best_a, best_b = ({}, {})
    for label, kept in (("A", best_a), ("B", best_b)):
        for figures in runs[label]:
            for path, value in normalized(figures).items():
                kept[path] = min(kept.get(path, value), value)
    return [(path, best_b[path] / best_a[path]) for path in sorted(best_a.keys() & best_b.keys())]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="tree A (e.g. before a change)")
    parser.add_argument("b", type=Path, help="tree B")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each tree, alternated")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--json", help="write every best figure and ratio here")
    args = parser.parse_args()
    for tree in (args.a, args.b):
        if not (tree / ".venv" / "bin" / "python").exists():
            parser.error(f"{tree} has no .venv/bin/python: make one and pip install -e the tree")
    report = {}
    for name in args.only or BENCHMARKS:
        runs = {"A": [], "B": []}
        began = time.perf_counter()
        for round_ in range(args.rounds):
            # A, B then B, A: whatever the first run of a pair leaves the second (huge
            # pages taken, caches) falls on both trees alike.
            pair = [("A", args.a), ("B", args.b)]
            for label, tree in pair if round_ % 2 == 0 else pair[::-1]:
                runs[label].append(run_once(tree, name))
        a, b = best(runs["A"]), best(runs["B"])
        ratios = compare(a, b)
        logs = [math.log(r) for _, r in ratios]
        mean = math.exp(sum(logs) / len(logs)) if logs else float("nan")
        load = os.getloadavg()[0]
        print(f"{name}: B/A of times, geometric mean {mean:.3f} over {len(ratios)} figures "
              f"(range {min(r for _, r in ratios):.3f}-{max(r for _, r in ratios):.3f}), "
              f"best of {args.rounds} each, {time.perf_counter() - began:.0f} s, "
              f"load {load:.1f}", flush=True)
        for path, ratio in ratios:
            print(f"    {path}: A {a[path]:.4g}  B {b[path]:.4g}  B/A {ratio:.3f}")
        report[name] = {"geomean": mean, "load": load, "a": a, "b": b,
                        "ratios": dict(ratios), "runs": runs}
        normalized = against_memset(runs)
        if normalized:
            print(f"    each time over the same run's memset, best of {args.rounds}: "
                  + ", ".join(f"{path} B/A {ratio:.3f}" for path, ratio in normalized))
            report[name]["over_memset"] = dict(normalized)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
