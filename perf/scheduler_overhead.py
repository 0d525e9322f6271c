"""Scheduler overhead of fastinit.do_multithreaded: microseconds per job and per chunk.

The thread function does nothing, so everything timed is the engine: validation, chunk
sizing, waking helpers, claiming chunks under the lock, joining. Best of many runs (this
machine is shared and noisy).

    python perf/scheduler_overhead.py [--runs 2000]
"""

import argparse
import json
import time

from fastinit import Job, do_multithreaded


def empty(start, end, arg):
    pass


def measure(max_threads, size, runs):
    best_job, chunks = float("inf"), 0
    job = Job(empty, start=0, size=size, max_threads=max_threads)
    for _ in range(runs):
        began = time.perf_counter()
        report = do_multithreaded(job)
        best_job = min(best_job, time.perf_counter() - began)
        chunks = len(report.chunks)
    return {"max_threads": max_threads, "chunks_per_job": chunks,
            "us_per_job": best_job * 1e6, "us_per_chunk": best_job * 1e6 / chunks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    rows = [measure(threads, 1 << 20, args.runs) for threads in (1, 2)]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'threads':>8} {'chunks':>7} {'us/job':>9} {'us/chunk':>9}")
    for row in rows:
        print(f"{row['max_threads']:>8} {row['chunks_per_job']:>7} "
              f"{row['us_per_job']:>9.1f} {row['us_per_chunk']:>9.1f}")


if __name__ == "__main__":
    main()
