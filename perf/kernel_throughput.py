"""Kernel-only throughput by chunk size: one thread calling a deferred-init kernel directly.

For each chunk size (in sections of 128 MiB of memory, 2 MiB of descriptors), the kernel
runs chunk after chunk over a pre-faulted 1 GiB memmap, as a padata helper would, with no
scheduler in between; memset of 0x5a over the same bytes is the limit. Best of --repeat.

    python perf/kernel_throughput.py [--gib 1] [--repeat 5] [--save]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from fastinit.mm.deferred import CHUNK_KERNELS
from fastinit.bench.membw import memset_limit
from fastinit.mm.memmap import Memmap
from fastinit.kernels.descriptors import new_local_lists, page_links, zone_list_base
from fastinit.layout import PAGES_PER_SECTION


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="descriptor bytes, in GiB")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="also write perf/results/*.json")
    args = parser.parse_args()

    nr_sections = max(1, int(args.gib * 2**30) // (PAGES_PER_SECTION * 64))
    memmap = Memmap.in_memory(np.arange(nr_sections, dtype=np.int64))
    memmap.raw.fill(1)
    end = nr_sections * PAGES_PER_SECTION
    free = np.array([[0, end]], dtype=np.int64)
    links = page_links(0, 2)
    list_base = zone_list_base(0, 2)
    memset = memset_limit(memmap.raw[:memmap.pages.nbytes], 1, args.repeat)
    rows = []
    print(f"{memmap.pages.nbytes / 2**30:.2f} GiB of descriptors; memset 0x5a: "
          f"{memmap.pages.nbytes / memset / 1e9:.2f} GB/s (1 thread)")
    print(f"{'kernel':>7} {'chunk_sections':>14} {'best_ms':>8} {'GB/s':>7} {'vs memset':>9}")
    for name, kernel in CHUNK_KERNELS.items():
        for sections in (1, 4, 16, 64):
            if sections > nr_sections:
                continue
            step = sections * PAGES_PER_SECTION

            def run():
                began = time.perf_counter()
                for start in range(0, end, step):
                    base, slots = memmap.slots(start, start + step)
                    kernel(memmap, slots, base, free, start, start + step, links, list_base,
                           new_local_lists())
                return time.perf_counter() - began

            best = min(run() for _ in range(args.repeat))
            row = {"kernel": name, "chunk_sections": sections, "best_ms": best * 1e3,
                   "gbps": memmap.pages.nbytes / best / 1e9, "ratio_to_memset": memset / best}
            rows.append(row)
            print(f"{name:>7} {sections:>14} {best * 1e3:>8.1f} {row['gbps']:>7.2f} "
                  f"{row['ratio_to_memset']:>8.2f}x")
    if args.save:
        out = Path(__file__).parent / "results" / f"kernel_throughput-{int(time.time())}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"memset_ms": memset * 1e3, "rows": rows}, indent=2))
        print(f"saved {out}")


if __name__ == "__main__":
    main()
