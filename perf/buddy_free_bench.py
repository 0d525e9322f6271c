"""The buddy free paths with merging: time per page, next to memset of the same bytes.

Two cases on ``--sections`` sections of reserved descriptors (128 MiB of descriptors per 16
sections), best of ``--repeat`` each:

- ``zone page by page``: every page freed on its own into a zone's own lists
  (`fastinit.kernels.buddy_alloc.free_ranges_to_zone`, as HVO frees vmemmap pages), each
  merging with its buddy up to MAX_ORDER;
- ``local odd ranges``: ranges of 1022 pages inside each max-order block (its first and
  last pages left out) freed into local lists (`fastinit.kernels.buddy_free.free_pages_ranges`,
  early init's free), so that every range is cut into blocks of all orders that merge.

Each figure comes with glibc memset of the same descriptor bytes in the same run, one
thread. To compare two trees, run this in each, alternating, under the bench lock:

    flock /work/coord/bench.lock python perf/buddy_free_bench.py --sections 64 --repeat 15
"""

import argparse
import time

import numpy as np

from fastinit.bench.membw import memset_limit
from fastinit.kernels.descriptors import new_local_lists, page_links
from fastinit.kernels.buddy_alloc import free_ranges_to_zone
from fastinit.kernels.buddy_free import free_pages_ranges
from fastinit.kernels.page_init import init_pages_range
from fastinit.layout import MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE, PAGES_PER_SECTION
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.memmap import Memmap, memmap_bytes

FIRST_SECTION = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if args.sections < 1 or args.repeat < 1:
        parser.error(f"--sections {args.sections} and --repeat {args.repeat} must be >= 1")
    sections = np.arange(FIRST_SECTION, FIRST_SECTION + args.sections, dtype=np.int64)
    start = FIRST_SECTION * PAGES_PER_SECTION
    end = start + args.sections * PAGES_PER_SECTION
    memmap = Memmap(sections, bytearray(memmap_bytes(args.sections)), "buddy_free_bench")
    base, slots = memmap.slots(start, end)
    links = np.uint64(page_links(0, 2))
    whole = np.array([(start, end)], np.int64)
    odd = np.array([(pfn + 1, pfn + MAX_ORDER_NR_PAGES - 1)
                    for pfn in range(start, end, MAX_ORDER_NR_PAGES)], np.int64)

    def zone_page_by_page():
        area = ZoneFreeArea(0, 2)
        began = time.perf_counter()
        free_ranges_to_zone(memmap.pages, memmap.pageblock_mt, slots, base, area.heads,
                            area.nr_free, area.list_base, whole)
        return time.perf_counter() - began

    def local_odd_ranges():
        area, lists = ZoneFreeArea(0, 2), new_local_lists()
        began = time.perf_counter()
        free_pages_ranges(memmap.pages, memmap.pageblock_mt, slots, base, odd,
                          area.list_base, lists)
        return time.perf_counter() - began

    limit = memset_limit(memmap.raw, 1, repeat=args.repeat)
    for name, case, pages in (("zone page by page", zone_page_by_page, end - start),
                              ("local odd ranges", local_odd_ranges,
                               int((odd[:, 1] - odd[:, 0]).sum()))):
        best = float("inf")
        for _ in range(args.repeat):
            init_pages_range(memmap.pages, slots, base, start, end, links, True)
            memmap.pageblock_mt[:] = MIGRATE_MOVABLE
            best = min(best, case())
        print(f"{name}: {pages} pages, {best * 1e3:.2f} ms ({best * 1e9 / pages:.1f} ns/page), "
              f"memset of the same descriptor bytes {limit * 1e3:.2f} ms (x{best / limit:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
