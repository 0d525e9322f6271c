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
from fastinit.mm.deferred import check_kernel
from fastinit.mm.run import boot, prepare
from fastinit.host.cpus import usable_cpus
from fastinit.validate import check_int
from fastinit.engine.workpool import shared_pool
from fastinit.bench.membw import memset_limit
from fastinit.layout import PAGE_DTYPE
from fastinit.bench.peers import peer_deferred_init
from fastinit.machine.topology import Topology


@dataclass
class BenchRow:
    """One thread count: deferred init against memset with the threads that really ran.

    Attributes
    ----------
    threads : int
        Threads per node asked for.
    threads_run : int
        Threads that ran deferred init at once, all nodes together (fewer than asked when
        the pool has fewer CPUs); memset ran with as many.
    deferred_ms, deferred_ms_stdev : float
        Median and standard deviation of the repeats, milliseconds.
    gbps : float
        Descriptor bytes written per second at the median, in GB/s (1e9 bytes).
    memset_ms : float
        Best memset of the same bytes with ``threads_run`` threads, milliseconds.
    ratio_to_memset : float
        ``memset_ms / deferred_ms``: above 1 means faster than memset.
    speedup : float
        The first row's time over this row's.
    """

    threads: int
    threads_run: int
    deferred_ms: float
    deferred_ms_stdev: float
    gbps: float
    memset_ms: float
    ratio_to_memset: float
    speedup: float = 1.0


@dataclass
class PeerRow:
    """A peer at one thread count: median and stdev in milliseconds."""

    name: str
    threads: int
    ms: float
    ms_stdev: float


@dataclass
class BenchResult:
    machine: dict
    source: str
    kernel: str
    repeat: int
    deferred_bytes: int
    first_touch_ms: float
    rows: list[BenchRow] = field(default_factory=list)
    peers: list[PeerRow] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


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


def _median_stdev(times: list[float]) -> tuple[float, float]:
    """Median and sample standard deviation in milliseconds (stdev 0 for one run)."""
    return (statistics.median(times) * 1e3,
            statistics.stdev(times) * 1e3 if len(times) > 1 else 0.0)


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
    repeat = check_int(repeat, "repeat", minimum=1, fix="boots per thread count, e.g. 5")
    if not isinstance(threads, (list, tuple)) or not threads:
        raise TypeError(f"threads must be a non-empty list of thread counts, got {threads!r}")
    threads = [check_int(count, "threads", minimum=1, fix="thread counts start at 1")
               for count in threads]
    check_kernel(kernel)
    first = prepare(topology, threads=threads[0])
    memmap = first.memmap
    result = BenchResult(machine_description(), topology.source, kernel, repeat, 0,
                         first.timings["sparse_init"] * 1e3)
    # Warm the kernels and the memory once before timing.
    boot(topology, threads=threads[0], kernel=kernel, memmap=memmap)
    pool_size = shared_pool().size
    for count in threads:
        times, pages, ran = [], 0, 1
        for _ in range(repeat):
            booted = boot(topology, threads=count, kernel=kernel, memmap=memmap)
            times.append(booted.timings["deferred"])
            pages = sum(n.pages for n in booted.nodes)
            # Node jobs run side by side, at most the pool's size of threads in all.
            ran = max(ran, min(pool_size, sum(n.report.nworks for n in booted.nodes
                                              if n.report is not None)))
        nbytes = pages * PAGE_DTYPE.itemsize
        result.deferred_bytes = nbytes
        median, stdev = _median_stdev(times)
        memset = memset_limit(memmap.raw[:max(nbytes, 4096)], ran, repeat) * 1e3
        result.rows.append(BenchRow(count, ran, median, stdev, nbytes / median / 1e6, memset,
                                    memset / median))
    for row in result.rows:
        row.speedup = result.rows[0].deferred_ms / row.deferred_ms
    if peers:
        _bench_peers(topology, threads, repeat, memmap, result)
    return result


def _bench_peers(topology, threads, repeat, memmap, result) -> None:
    runs = [("numba.prange", count) for count in threads
            if count <= numba.config.NUMBA_NUM_THREADS] + [("numpy", 1)]
    for name, count in runs:
        times = []
        for _ in range(max(1, min(repeat, 3) if name == "numpy" else repeat)):
            prepared = prepare(topology, threads=count, memmap=memmap)
            times.append(peer_deferred_init(prepared, name, count))
        result.peers.append(PeerRow(name, count, *_median_stdev(times)))
    if result.kernel != "plain":
        for row in result.rows:
            times = [boot(topology, threads=row.threads, kernel="plain", memmap=memmap)
                     .timings["deferred"] for _ in range(repeat)]
            result.peers.append(PeerRow("fastinit plain stores", row.threads_run,
                                        *_median_stdev(times)))
