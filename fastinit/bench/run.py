"""``fastinit bench``: deferred init against the machine's streaming-write limit and peers.

Every figure is measured in the same run on the same memory: the memmap is allocated and
first touched once (reported separately), then each thread count boots it ``repeat`` times
(early init is not timed), and glibc memset of a non-zero byte fills the same bytes with
the same number of threads. The peers do the same deferred init their own way.
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import asdict, dataclass, field

import llvmlite
import numba
import numpy as np

import fastinit
from fastinit.mm.run import boot, prepare
from fastinit.engine.cpus import usable_cpus
from fastinit.bench.membw import memset_limit
from fastinit.layout import PAGE_DTYPE
from fastinit.bench.peers import peer_deferred_init
from fastinit.machine.topology import Topology


@dataclass
class BenchRow:
    threads: int
    deferred_ms: float
    deferred_ms_stdev: float
    gbps: float
    memset_ms: float
    ratio_to_memset: float
    speedup: float = 1.0


@dataclass
class BenchResult:
    machine: dict
    source: str
    kernel: str
    deferred_bytes: int
    first_touch_ms: float
    rows: list[BenchRow] = field(default_factory=list)
    peers: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        document = asdict(self)
        document["rows"] = [asdict(row) for row in self.rows]
        return document


def machine_description() -> dict:
    """CPU model, CPUs, memory and library versions, for the report's header."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {"cpu": model, "cpus": usable_cpus(), "memory_gib": round(memory / 2**30, 1),
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "fastinit": fastinit.__version__}


def run_bench(topology: Topology, threads: list[int], repeat: int = 5,
              kernel: str = "stream", peers: bool = True) -> BenchResult:
    """Measure deferred init, memset and the peers for each thread count.

    Parameters
    ----------
    topology : Topology
    threads : list of int
        Threads per node to measure; the first is the speedup baseline.
    repeat : int
        Boots (and memset runs) per thread count.
    kernel : str
        Deferred-init kernel under test.
    peers : bool
        Also time the peers (numba.prange at each thread count, numpy at one thread,
        fastinit's plain-store kernel at each thread count).
    """
    if repeat < 1 or not threads or min(threads) < 1:
        raise ValueError("bench needs --repeat >= 1 and thread counts >= 1")
    first = prepare(topology, threads=threads[0])
    memmap = first.memmap
    result = BenchResult(machine_description(), topology.source, kernel, 0,
                         first.timings["sparse_init"] * 1e3)
    # Warm the kernels and the memory once before timing.
    boot(topology, threads=threads[0], kernel=kernel, memmap=memmap)
    for count in threads:
        times, pages = [], 0
        for _ in range(repeat):
            booted = boot(topology, threads=count, kernel=kernel, memmap=memmap)
            times.append(booted.timings["deferred"])
            pages = sum(n.pages for n in booted.nodes)
        nbytes = pages * PAGE_DTYPE.itemsize
        result.deferred_bytes = nbytes
        median = statistics.median(times)
        memset = memset_limit(memmap.raw[:max(nbytes, 4096)], count, repeat)
        result.rows.append(BenchRow(
            threads=count, deferred_ms=median * 1e3,
            deferred_ms_stdev=statistics.stdev(times) * 1e3 if len(times) > 1 else 0.0,
            gbps=nbytes / median / 1e9, memset_ms=memset * 1e3,
            ratio_to_memset=memset / median))
    base = result.rows[0].deferred_ms
    for row in result.rows:
        row.speedup = base / row.deferred_ms
    if peers:
        _bench_peers(topology, threads, repeat, memmap, result)
    return result


def _bench_peers(topology, threads, repeat, memmap, result) -> None:
    runs = [("numba.prange", count) for count in threads
            if count <= numba.config.NUMBA_NUM_THREADS] + [("numpy", 1)]
    for name, count in runs:
        best = []
        for _ in range(max(1, min(repeat, 3) if name == "numpy" else repeat)):
            prepared = prepare(topology, threads=count, memmap=memmap)
            best.append(peer_deferred_init(prepared, name, count))
        result.peers[f"{name} ({count} thread{'s' if count > 1 else ''})"] = \
            statistics.median(best) * 1e3
    if result.kernel != "plain":
        for count in threads:
            times = [boot(topology, threads=count, kernel="plain", memmap=memmap)
                     .timings["deferred"] for _ in range(repeat)]
            result.peers[f"fastinit plain stores ({count} thread{'s' if count > 1 else ''})"] = \
                statistics.median(times) * 1e3


def bench_lines(result: BenchResult, node_cpus: int) -> list[str]:
    """The report in the format of the padata series' tables."""
    m = result.machine
    lines = [f"{m['cpu']}, {m['cpus']} usable CPUs, {m['memory_gib']} GiB",
             f"python {m['python']}, numpy {m['numpy']}, numba {m['numba']}, "
             f"llvmlite {m['llvmlite']}, fastinit {m['fastinit']}",
             f"machine: {result.source}; deferred init writes "
             f"{result.deferred_bytes / 2**30:.2f} GiB of descriptors ({result.kernel} kernel)",
             f"first touch of the memmap (allocation, cold): {result.first_touch_ms:.0f} ms",
             "",
             "               deferred init (median of repeats)      memset 0x5a, same bytes",
             "               ------------------------------------   ----------------------",
             "node% (thr)    speedup  time_ms (stdev)     GB/s       time_ms   deferred/memset"]
    for row in result.rows:
        share = 100 * row.threads // max(node_cpus, 1)
        saved = "--" if row is result.rows[0] else \
            f"{100 * (1 - row.deferred_ms / result.rows[0].deferred_ms):.1f}%"
        lines.append(f"{share:>4}% ({row.threads:>3})  {saved:>7}  {row.deferred_ms:7.1f} "
                     f"({row.deferred_ms_stdev:5.1f})  {row.gbps:7.2f}     {row.memset_ms:7.1f}"
                     f"   {row.ratio_to_memset:6.2f}x")
    lines.append("speedup: time saved against the first row, as in the series' tables; "
                 "deferred/memset > 1 means faster than memset")
    if result.peers:
        ours = {row.threads: row.deferred_ms for row in result.rows}
        lines += ["", "peers, same semantics, same run (median ms; speedup of fastinit at the same thread count)"]
        for name, ms in result.peers.items():
            count = int(name.rsplit("(", 1)[1].split()[0])
            mine = ours.get(count)
            ratio = f"   fastinit {ms / mine:5.2f}x faster" if mine else ""
            lines.append(f"  {name:<40} {ms:9.1f}{ratio}")
    return lines


def plot(result: BenchResult, path: str) -> None:
    """Speedup and GB/s against threads, with the memset limit as a line (needs matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'fastinit[perf]'") from None
    threads = [row.threads for row in result.rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(threads, [row.speedup for row in result.rows], "o-", label="deferred init")
    left.plot(threads, [t / threads[0] for t in threads], ":", color="grey", label="linear")
    left.set(xlabel="threads per node", ylabel="speedup over first row", title="Speedup")
    left.legend()
    right.plot(threads, [row.gbps for row in result.rows], "o-", label="deferred init")
    right.plot(threads, [result.deferred_bytes / row.memset_ms / 1e6 for row in result.rows],
               "s--", label="memset 0x5a (limit)")
    right.set(xlabel="threads per node", ylabel="GB/s", title="Write bandwidth")
    right.legend()
    figure.suptitle(f"fastinit bench: {result.source}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)

