"""HugeTLB boot pools: pool init time by threads, and the memmap's residency with HVO.

For a spec machine with half its memory in 2 MiB pages, then the same memory in 1 GiB
pages (issue 12's measurements), this boots the machine and times ``hugetlb_init()``
alone (`fastinit.mm.hugetlb.jobs.hugetlb_init`: the 2 MiB job allocates and prepares, the
gigantic job gathers), best of ``--repeat`` at each thread count, with the tails streamed
and with the reference's plain stores (``stream=False``), each followed by glibc memset
of the same descriptor bytes with the same threads in the same run (the write limit: the
ratio of each pair, best and median, as tests/test_hugetlb_perf.py gates it), and
per page and per thread next to the kernel's figures from the series' cover letter.
Then it boots each pool with ``hugetlb_free_vmemmap=on`` and without, and measures the
memmap's resident bytes (/proc/self/pagemap) against the ideal: the memmap less the
vmemmap HVO frees for every pool page (28 KiB per 2 MiB page, 16380 KiB per 1 GiB page).
HVO maps each freed page of a pool page's vmemmap onto the kept one, one mapping each, so
how many pool pages it can remap is bounded by vm.max_map_count: the figures say how many.

    flock /tmp/fastinit-bench.lock python perf/hugetlb_bench.py --spec 2x256G,cpus=2
    python perf/hugetlb_bench.py --spec 2x16G,cpus=2 --threads 1 --skip-residency

Memory: the memmap is 1/64 of the machine (8 GiB for 2x256G: take the bench lock).

``--max-map-count N`` (root only) raises vm.max_map_count to N for the residency runs and
puts the old value back afterwards, so that every pool page can be remapped: HVO of
2x256G in 2 MiB pages needs 131072 x 9 mappings.
"""

import argparse
import contextlib
import gc
import json
import sys
import time

import numpy as np

from fastinit.bench.membw import memset_limit
from fastinit.machine.spec import parse_spec
from fastinit.mm.deferred import deferred_init
from fastinit.mm.hugetlb.jobs import hugetlb_init
from fastinit.mm.hugetlb.hvo import resident_bytes
from fastinit.mm.run import prepare

# The series' own figures (Gang Li, v6, Linux 6.9): (test, pages, ms before, ms after).
ANCHORS = (("256c2T 4 nodes 1G", "2T in 1G pages?", 4745, 2024),
           ("128c1T 2 nodes 1G", "1T in 1G pages?", 3358, 1712),
           ("12T 1G", 11776, 77000, 18300),
           ("256c2T 4 nodes 2M", "2T in 2M pages?", 3336, 1051),
           ("128c1T 2 nodes 2M", "1T in 2M pages?", 1943, 716))


def pool_options(topology, size: str) -> str:
    half = topology.present_pages * 4096 // 2
    if size == "2M":
        return f"hugepagesz=2M hugepages={half >> 21}"
    return f"hugepagesz=1G hugepages={half >> 30}"


def boot_to_pools(topology, memmap=None):
    """Everything up to hugetlb_init(): returns the result, deferred init done."""
    result = prepare(topology, memmap=memmap)
    result.nodes = deferred_init(result.plan, result.memmap, result.zones)
    return result


def pool_seconds(topology, threads: int, stream: bool, memmap=None):
    """One hugetlb_init() on a fresh boot: (seconds, PoolResult, memmap)."""
    result = boot_to_pools(topology, memmap)
    began = time.perf_counter()
    pools = hugetlb_init(result, result.hvo, threads=threads, stream=stream)
    return time.perf_counter() - began, pools, result.memmap


def time_pools(spec: str, size: str, threads: list[int], repeat: int) -> dict:
    """Best of ``repeat`` pool inits at each thread count, streamed and with the
    reference's plain stores, each followed by memsets of the same bytes on as many
    threads (the write limit), all in this run: the ratio of each init to the memset
    right after it, the best and the median of those pairs (runs close together see the
    same neighbours on a shared machine), and the best times."""
    base = parse_spec(spec)
    topology = parse_spec(spec, cmdline=pool_options(base, size))
    figures, memmap = {}, None
    order = 9 if size == "2M" else 18
    for count in threads:
        best = {"stream": None, "plain": None, "memset": None}
        ratios = {"stream": [], "plain": []}
        for _ in range(repeat):
            for kind in ("stream", "plain"):
                elapsed, pools, memmap = pool_seconds(topology, count, kind == "stream",
                                                      memmap)
                if best[kind] is None or elapsed < best[kind][0]:
                    job = pools.jobs["alloc" if size == "2M" else "gather"]
                    best[kind] = (elapsed, job.nworks, len(job.chunks))
                pages = sum(sum(sizes.values()) for sizes in pools.counts().values())
                # The same bytes: the descriptors a pool writes are at most the memmap's
                # (which the next boot writes again anyway).
                written = min(pages * (1 << order) * 64, memmap.raw.nbytes)
                limit = memset_limit(memmap.raw[:written], count, repeat=2)
                ratios[kind].append(limit / elapsed)
                best["memset"] = min(best["memset"] or limit, limit)
        elapsed, nworks, chunks = best["stream"]
        figures[count] = {"ms": round(elapsed * 1e3, 1), "threads": nworks,
                          "chunks": chunks, "pages": pages,
                          "us_per_page": round(elapsed * 1e6 / pages, 2),
                          "us_per_page_thread": round(elapsed * 1e6 * nworks / pages, 2),
                          "memset_same_bytes_ms": round(best["memset"] * 1e3, 1),
                          "ratio_to_memset": round(elapsed / best["memset"], 2),
                          # Speed against memset's, pair by pair (>= 1: at the limit).
                          "speed_vs_memset_best_pair": round(max(ratios["stream"]), 3),
                          "speed_vs_memset_median_pair": round(
                              float(np.median(ratios["stream"])), 3),
                          "plain_stores_ms": round(best["plain"][0] * 1e3, 1),
                          "plain_ratio_to_memset": round(best["plain"][0] / best["memset"], 2),
                          "plain_speed_vs_memset_best_pair": round(max(ratios["plain"]), 3)}
    return {"spec": spec, "size": size, "cmdline": topology.cmdline.text, "by_threads": figures}


def residency(spec: str, size: str) -> dict:
    base = parse_spec(spec)
    figures = {}
    for hvo in (False, True):
        options = pool_options(base, size) + (" hugetlb_free_vmemmap=on" if hvo else "")
        topology = parse_spec(spec, cmdline=options)
        result = boot_to_pools(topology)
        began = time.perf_counter()
        pools = hugetlb_init(result, result.hvo)
        elapsed = time.perf_counter() - began
        remapper = pools.remapper
        order = 9 if size == "2M" else 18
        pages = sum(sum(sizes.values()) for sizes in pools.counts().values())
        memmap = result.memmap.pages.nbytes
        freed_each = ((1 << order) // 64 - 1) * 4096
        figures["hvo" if hvo else "plain"] = {
            "resident_bytes": resident_bytes(result.memmap, remapper),
            "memmap_bytes": memmap,
            "ideal_bytes": memmap - pages * freed_each if hvo else memmap,
            "pages": pages,
            "remapped": remapper.remapped if remapper else 0,
            "mappings": remapper.mappings if remapper else 0,
            "budget": pools.decision.budget,
            "pool_init_ms": round(elapsed * 1e3, 1)}
        del result, pools, remapper
        gc.collect()  # one memmap at a time: 8 GiB each for 2x256G
    return figures


@contextlib.contextmanager
def map_count(limit: int | None):
    """vm.max_map_count raised to ``limit`` inside the block (None: left alone)."""
    path = "/proc/sys/vm/max_map_count"
    if limit is None:
        yield
        return
    with open(path) as handle:
        old = int(handle.read())
    with open(path, "w") as handle:
        handle.write(str(max(limit, old)))
    try:
        yield
    finally:
        with open(path, "w") as handle:
            handle.write(str(old))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="2x64G,cpus=2")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--skip-residency", action="store_true")
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--max-map-count", type=int, metavar="N",
                        help="raise vm.max_map_count to N for the residency runs (root)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    report = {"timing": [], "residency": {}, "anchors": ANCHORS}
    for size in ("2M", "1G"):
        timing = {"by_threads": {}} if args.skip_timing else \
            time_pools(args.spec, size, threads, args.repeat)
        gc.collect()
        report["timing"].append(timing)
        for count, row in timing["by_threads"].items():
            print(f"{args.spec} {size}: {row['pages']} pages, {count} thread(s): "
                  f"{row['ms']} ms ({row['us_per_page']} us/page, "
                  f"{row['us_per_page_thread']} us/page/thread), memset of the same "
                  f"descriptor bytes {row['memset_same_bytes_ms']} ms "
                  f"(x{row['ratio_to_memset']}; {1 / row['ratio_to_memset']:.2f}x its speed; "
                  f"pair by pair: best {row['speed_vs_memset_best_pair']}x, median "
                  f"{row['speed_vs_memset_median_pair']}x); "
                  f"plain stores {row['plain_stores_ms']} ms "
                  f"(x{row['plain_ratio_to_memset']})", flush=True)
        one, two = (timing["by_threads"].get(t) for t in (1, 2))
        if one and two:
            print(f"  speedup 2 threads / 1: {one['ms'] / two['ms']:.2f}x")
        if not args.skip_residency:
            with map_count(args.max_map_count):
                figures = residency(args.spec, size)
            report["residency"][size] = figures
            plain, hvo = figures["plain"], figures["hvo"]
            mib = 1 << 20
            print(f"  memmap resident: without HVO {plain['resident_bytes'] / mib:.1f} MiB "
                  f"(ideal {plain['ideal_bytes'] / mib:.1f}); with HVO "
                  f"{hvo['resident_bytes'] / mib:.1f} MiB (ideal with every pool page "
                  f"remapped {hvo['ideal_bytes'] / mib:.1f}; {hvo['remapped']} of "
                  f"{hvo['pages']} pages remapped in the mapping budget of "
                  f"{hvo['budget']})", flush=True)
    print("anchors (kernel, ms before -> after padata):")
    for name, pages, before, after in ANCHORS:
        print(f"  {name}: {pages} pages, {before} -> {after} ms")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
