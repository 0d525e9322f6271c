"""Speedup of a nogil kernel job on N threads over 1, through fastinit.do_multithreaded.

Initializes a pre-faulted array of page descriptors with the plain-store init kernel,
section-aligned chunks as deferred init uses them, best of --repeat runs per thread count.

    python perf/engine_speedup.py [--gib 1] [--threads 1,2] [--repeat 5]
"""

import argparse
import time

import numpy as np

from fastinit import Job, do_multithreaded
from fastinit.kernels.page_init import init_pages_range
from fastinit.kernels.descriptors import page_links
from fastinit.layout import PAGE_DTYPE, PAGES_PER_SECTION


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="descriptor bytes, in GiB")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    sections = max(1, int(args.gib * (1 << 30)) // (PAGES_PER_SECTION * 64))
    pages = np.empty(sections * PAGES_PER_SECTION, PAGE_DTYPE)
    pages.view(np.uint8).fill(1)  # pre-fault: first-touch cost is not what we measure
    slots = np.arange(sections, dtype=np.int64)
    links = np.uint64(page_links(0, 2))

    def chunk(start, end, arg):
        init_pages_range(pages, slots, 0, start, end, links, False)

    print(f"{pages.nbytes / 2**30:.2f} GiB of descriptors, {len(pages)} pages")
    print(f"{'threads':>8} {'best_ms':>9} {'GB/s':>7} {'speedup':>8}")
    base = None
    for threads in map(int, args.threads.split(",")):
        job = Job(chunk, start=0, size=len(pages), align=PAGES_PER_SECTION,
                  min_chunk=PAGES_PER_SECTION, max_threads=threads)
        best = float("inf")
        for _ in range(args.repeat):
            began = time.perf_counter()
            do_multithreaded(job)
            best = min(best, time.perf_counter() - began)
        base = base or best
        print(f"{threads:>8} {best * 1e3:>9.1f} {pages.nbytes / best / 1e9:>7.2f} "
              f"{base / best:>8.2f}")


if __name__ == "__main__":
    main()
