"""fastinit.fill against memset and the peers, and "from nothing to an initialized array".

Part ``peers``: records of 8, 24, 64 and 128 bytes over --gib GiB of pre-faulted memory,
on 1 and 2 threads: fastinit.fill, glibc memset of 0x5a over the same bytes (the
streaming-write limit), a numba.prange kernel writing the same records with plain stores
(what a Numba user writes), and NumPy assigning each field from computed arrays (in
blocks of 16 Mi records, so the temporaries stay small). Every peer is first checked to
write exactly fill's bytes. Rounds interleave the methods; each figure is the best round.

Part ``nothing``: allocation, first touch and fill of a new array, all timed:
fastinit.empty + fill, numpy.empty + fill, numpy.zeros + fill (with --no-huge-pages, on
4 KiB pages); part ``file``: the same into a file: fastinit.empty(path=) + fill (which
syncs, checksums and completes the file) against numpy.memmap + fill + flush (msync).
Part ``stage`` (not by default) sweeps the staging block of the fill kernels.

Run under the bench lock (it needs about 2x --gib of memory and --gib of disk):

    flock /tmp/fastinit-bench.lock python perf/fill_bench.py [--gib 4] [--repeat 3]
        [--part peers nothing file] [--dir DIR] [--json OUT]
"""

import argparse
import json
import os
import platform
import tempfile
import time

import numba
import numpy as np
from numba import prange

import fastinit
from fastinit.bench.membw import memset_limit

BLOCK = 1 << 24  # records per NumPy block


# --- the layouts: a dtype, a record function, a NumPy peer (prange peers: made below) --

D8 = np.dtype([("id", "<u4"), ("w", "<f4")])


@numba.njit
def r8(i):
    return i, i * 0.5


def numpy8(a, idx):
    a["id"], a["w"] = idx, idx * 0.5


D24 = np.dtype([("id", "<u8"), ("x", "<f8"), ("next", "<i8")])


@numba.njit
def r24(i):
    return i, i * 0.5, i + 1


def numpy24(a, idx):
    a["id"], a["x"], a["next"] = idx, idx * 0.5, idx + 1


# Shaped like a struct page: flags, a self-pointing list head, counters.
D64 = np.dtype([("flags", "<u8"), ("next", "<u8"), ("prev", "<u8"), ("mapping", "<u8"),
                ("index", "<u8"), ("private", "<u8"), ("mapcount", "<i4"),
                ("refcount", "<i4"), ("memcg", "<u8")])
BASE = np.uint64(0xFFD4000000000008)
LINE = np.uint64(64)


@numba.njit
def r64(i):
    lru = BASE + np.uint64(i) * LINE  # uint64 throughout: a kernel address
    return 0x3FF0000000000000, lru, lru, 0, 0, 0, -1, 1, 0


def numpy64(a, idx):
    lru = BASE + idx.astype(np.uint64) * LINE
    a["flags"], a["next"], a["prev"] = 0x3FF0000000000000, lru, lru
    a["mapping"], a["index"], a["private"] = 0, 0, 0
    a["mapcount"], a["refcount"], a["memcg"] = -1, 1, 0


D128 = np.dtype([("id", "<u8"), ("pos", "<f8", (3,)), ("vel", "<f8", (3,)), ("mass", "<f8"),
                 ("nbr", "<i8", (8,))])


@numba.njit
def r128(i):
    return (i, (i * 0.5, 1.0, 2.0), (0.0, 0.0, 0.0), 1.0,
            (i - 1, i + 1, i - 2, i + 2, -1, -1, -1, -1))


def numpy128(a, idx):
    a["id"] = idx
    a["pos"] = np.stack([idx * 0.5, np.full(len(idx), 1.0), np.full(len(idx), 2.0)], axis=1)
    a["vel"], a["mass"] = 0.0, 1.0
    a["nbr"] = np.stack([idx - 1, idx + 1, idx - 2, idx + 2] + [np.full(len(idx), -1)] * 4,
                        axis=1)


def prange_peer(dtype, record):
    """The numba.prange kernel a Numba user writes by hand for ``dtype``: one plain store
    a field (a loop over a subarray field), from ``record(i)``'s tuple in field order.

    Written out as source and compiled, since a record's field name must be a constant
    in nopython mode; check_peers_agree checks that it writes fill's bytes."""
    stores = []
    for k, name in enumerate(dtype.names):
        shape = dtype[name].shape
        if shape:
            stores.append(f"for j in range({shape[0]}):\n"
                          f"            r[{name!r}][j] = v[{k}][j]")
        else:
            stores.append(f"r[{name!r}] = v[{k}]")
    source = ("def peer(a):\n"
              "    for i in prange(a.shape[0]):\n"
              "        v = record(i)\n"
              "        r = a[i]\n" + "".join(f"        {store}\n" for store in stores))
    namespace = {"prange": prange, "record": record}
    exec(compile(source, f"<prange peer of {dtype}>", "exec"), namespace)
    return numba.njit(parallel=True, nogil=True)(namespace["peer"])


LAYOUTS = {size: (dtype, record, prange_peer(dtype, record), numpy_peer)
           for size, dtype, record, numpy_peer in [(8, D8, r8, numpy8), (24, D24, r24, numpy24),
                                                   (64, D64, r64, numpy64),
                                                   (128, D128, r128, numpy128)]}
assert all(dtype.itemsize == size for size, (dtype, *_) in LAYOUTS.items())


def numpy_fill(a, peer):
    for start in range(0, len(a), BLOCK):
        end = min(start + BLOCK, len(a))
        peer(a[start:end], np.arange(start, end, dtype=np.int64))


def timed(fn):
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def check_peers_agree():
    """Every peer writes fill's bytes (on an array that fits in cache-unfriendly sizes)."""
    for size, (dtype, record, prange_peer, numpy_peer) in LAYOUTS.items():
        count = 100_003
        ours, theirs, numpys = (np.empty(count, dtype) for _ in range(3))
        fastinit.fill(ours, record)
        prange_peer(theirs)
        numpy_fill(numpys, numpy_peer)
        assert ours.tobytes() == theirs.tobytes() == numpys.tobytes(), size


# --- part peers -------------------------------------------------------------------------

def part_peers(args, out):
    for size, (dtype, record, prange_peer, numpy_peer) in LAYOUTS.items():
        array = fastinit.empty(int(args.gib * 2**30) // size, dtype)  # pre-faulted
        raw = array.view(np.uint8)
        for threads in args.threads:
            numba.set_num_threads(threads)
            times = {"fill": [], "memset": [], "prange": [], "numpy": []}
            for round_ in range(args.repeat):
                times["memset"].append(memset_limit(raw, threads, 1))
                times["fill"].append(timed(lambda: fastinit.fill(array, record,
                                                                 threads=threads)))
                times["prange"].append(timed(lambda: prange_peer(array)))
                if round_ < args.numpy_repeat:
                    times["numpy"].append(timed(lambda: numpy_fill(array, numpy_peer)))
            best = {name: min(values) for name, values in times.items() if values}
            # Each round's memset and fill ran back to back: their ratio is the least
            # disturbed by other load on a shared machine.
            paired = float(np.median(np.array(times["memset"]) / np.array(times["fill"])))
            row = {"record_bytes": size, "threads": threads, "gib": raw.size / 2**30,
                   **{f"{name}_s": value for name, value in best.items()},
                   "fill_vs_memset": best["memset"] / best["fill"],
                   "fill_vs_memset_median_paired": paired,
                   "fill_vs_prange": best["prange"] / best["fill"],
                   "fill_vs_numpy": best["numpy"] / best["fill"]}
            out["peers"].append(row)
            print(f"{size:>4} B x{threads}  fill {raw.size / best['fill'] / 1e9:5.1f} GB/s | "
                  f"memset {raw.size / best['memset'] / 1e9:5.1f} | "
                  f"prange {raw.size / best['prange'] / 1e9:5.1f} | "
                  f"numpy {raw.size / best['numpy'] / 1e9:5.2f} || fill/memset "
                  f"{row['fill_vs_memset']:.2f}x (paired median {paired:.2f}x), "
                  f"{row['fill_vs_prange']:.2f}x prange, "
                  f"{row['fill_vs_numpy']:.1f}x numpy", flush=True)
        del array, raw


# --- part stage ------------------------------------------------------------------------

def part_stage(args, out):
    """The staging block size of fastinit.kernels.fill, swept: median of paired ratios."""
    import fastinit.arrays.fill as fill_module
    import fastinit.kernels.fill as kernels_module
    chosen = kernels_module.STAGE_BYTES
    for size in (8, 24):
        dtype, record, *_ = LAYOUTS[size]
        array = fastinit.empty(int(args.gib * 2**30) // size, dtype)
        raw = array.view(np.uint8)
        for threads in args.threads:
            ratios = {block: [] for block in (1024, 2048, 4096, 8192, 16384)}
            for _ in range(args.repeat):
                for block in ratios:
                    kernels_module.STAGE_BYTES = block
                    fill_module._kernels.clear()  # recompile with this block
                    fastinit.fill(array[:100], record)
                    memset = memset_limit(raw, threads, 1)
                    ratios[block].append(memset / timed(
                        lambda: fastinit.fill(array, record, threads=threads)))
            medians = {block: float(np.median(values)) for block, values in ratios.items()}
            out["stage"].append({"record_bytes": size, "threads": threads, **{
                str(block): value for block, value in medians.items()}})
            print(f"{size:>4} B x{threads}  fill/memset by staging block: " + ", ".join(
                f"{block // 1024} KiB {value:.2f}x" for block, value in medians.items()),
                flush=True)
        del array, raw
    kernels_module.STAGE_BYTES = chosen
    fill_module._kernels.clear()


# --- parts nothing and file -------------------------------------------------------------

def once_in_memory(method, count, dtype, record, threads, huge_pages):
    began = time.perf_counter()
    if method == "fastinit.empty":
        array = fastinit.empty(count, dtype, threads=threads, huge_pages=huge_pages)
    elif method == "numpy.empty":
        array = np.empty(count, dtype)
    else:
        array = np.zeros(count, dtype)
    allocated = time.perf_counter()
    report = fastinit.fill(array, record, threads=threads)
    done = time.perf_counter()
    return {"total_s": done - began, "alloc_s": allocated - began, "fill_s": report.elapsed}


def once_in_file(method, count, dtype, record, threads, directory):
    path = os.path.join(directory, f"fill_bench-{method}.bin")
    began = time.perf_counter()
    if method == "fastinit.empty(path)":
        array = fastinit.empty(count, dtype, path=path, force=True, threads=threads)
    else:
        array = np.memmap(path, dtype=dtype, mode="w+", shape=(count,))
    allocated = time.perf_counter()
    report = fastinit.fill(array, record, threads=threads)
    filled = time.perf_counter()
    if method == "numpy.memmap + flush":
        array.flush()
    done = time.perf_counter()
    del array
    os.unlink(path)
    return {"total_s": done - began, "alloc_s": allocated - began, "fill_s": report.elapsed,
            "sync_s": done - filled + report.complete_seconds}


def part_from_nothing(args, out, where):
    methods = (["fastinit.empty", "numpy.empty", "numpy.zeros"] if where == "memory" else
               ["fastinit.empty(path)", "numpy.memmap + flush"])
    for size in args.nothing_sizes:
        dtype, record, *_ = LAYOUTS[size]
        count = int(args.gib * 2**30) // size
        fastinit.fill(np.empty(10, dtype), record)  # compile outside the timing
        for threads in args.threads:
            runs = {method: [] for method in methods}
            for _ in range(args.repeat):
                for method in methods:
                    if where == "memory":
                        runs[method].append(once_in_memory(method, count, dtype, record,
                                                           threads, not args.no_huge_pages))
                    else:
                        runs[method].append(once_in_file(method, count, dtype, record,
                                                         threads, args.dir))
            best = {method: min(values, key=lambda r: r["total_s"])
                    for method, values in runs.items()}
            first = best[methods[0]]["total_s"]
            for method, row in best.items():
                row.update(where=where, method=method, record_bytes=size, threads=threads,
                           gib=count * size / 2**30, vs_fastinit=row["total_s"] / first)
                out["from_nothing"].append(row)
                parts = ", ".join(f"{key[:-2]} {value:.2f}" for key, value in row.items()
                                  if key.endswith("_s") and key != "total_s")
                print(f"{where:6} {size:>4} B x{threads}  {method:22} total "
                      f"{row['total_s']:6.2f} s ({parts}) = {row['vs_fastinit']:.2f}x "
                      f"fastinit's time", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--numpy-repeat", type=int, default=2, help="NumPy is slow")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--part", nargs="+", default=["peers", "nothing", "file"],
                        choices=["peers", "nothing", "file", "stage"])
    parser.add_argument("--nothing-sizes", type=int, nargs="+", default=[24, 64],
                        choices=sorted(LAYOUTS))
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="for part file")
    parser.add_argument("--no-huge-pages", action="store_true",
                        help="part nothing with 4 KiB pages: fastinit.empty(huge_pages=False) "
                             "and NumPy run with NUMPY_MADVISE_HUGEPAGE=0 in the environment")
    parser.add_argument("--json", help="write every figure here")
    args = parser.parse_args()
    if args.no_huge_pages and os.environ.get("NUMPY_MADVISE_HUGEPAGE") != "0":
        parser.error("--no-huge-pages needs NUMPY_MADVISE_HUGEPAGE=0 in the environment "
                     "(NumPy reads it when imported)")
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
           "huge_pages": not args.no_huge_pages,
           "numba": numba.__version__, "numpy": np.__version__,
           "threading_layer": None, "peers": [], "from_nothing": [], "stage": []}
    check_peers_agree()
    out["threading_layer"] = numba.threading_layer()
    print(f"{args.gib} GiB per array; best of {args.repeat} (NumPy {args.numpy_repeat}); "
          f"numba {numba.__version__} ({out['threading_layer']}), numpy {np.__version__}")
    if "peers" in args.part:
        part_peers(args, out)
    if "stage" in args.part:
        part_stage(args, out)
    if "nothing" in args.part:
        part_from_nothing(args, out, "memory")
    if "file" in args.part:
        part_from_nothing(args, out, "file")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(out, stream, indent=2)


if __name__ == "__main__":
    main()
