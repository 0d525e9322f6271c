"""A CPU-bound neighbour's throughput while fastinit boots, with and without ``nice``.

    python perf/nice_neighbour.py [--spec 1x128G] [--nice 19] [--repeat 3]

The neighbours are real processes, one per usable CPU, each counting in a tight loop and
publishing its count in shared memory. Their rate alone is measured first; then, in the
same run, their rate during a boot at this process's niceness and during a boot with
``nice=N`` (helper and pgdatinit threads at N, the caller's thread unchanged), alternating,
median of --repeat each. A neighbour keeps more of its throughput the more the boot yields;
the boot pays for it in time while the CPUs are contended.
"""

import argparse
import multiprocessing
import os
import statistics
import time

import fastinit

# Iterations between publications of a neighbour's count: cheap, and fine-grained enough.
_BATCH = 20000


def neighbour(counter) -> None:
    while True:
        for _ in range(_BATCH):
            pass
        with counter.get_lock():
            counter.value += _BATCH


def total(counters) -> int:
    return sum(counter.value for counter in counters)


def rate_during(counters, work) -> tuple[float, float]:
    """(neighbour iterations per second while ``work()`` runs, seconds it took)."""
    before, began = total(counters), time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    return (total(counters) - before) / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="1x128G")
    parser.add_argument("--nice", type=int, default=19)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    machine = fastinit.parse_spec(args.spec)
    fastinit.boot(machine)  # warm: kernels loaded, pool made, before anything is timed
    cpus = len(os.sched_getaffinity(0))
    counters = [multiprocessing.Value("q", 0) for _ in range(cpus)]
    workers = [multiprocessing.Process(target=neighbour, args=(c,), daemon=True)
               for c in counters]
    for worker in workers:
        worker.start()
    try:
        time.sleep(0.5)
        alone = rate_during(counters, lambda: time.sleep(1.0))[0]
        rates = {None: [], args.nice: []}
        times = {None: [], args.nice: []}
        for _ in range(args.repeat):
            for nice in rates:
                rate, seconds = rate_during(counters,
                                            lambda: fastinit.boot(machine, nice=nice))
                rates[nice].append(rate)
                times[nice].append(seconds)
    finally:
        for worker in workers:
            worker.terminate()
    print(f"{cpus} neighbour processes, boot of {args.spec} (memmap "
          f"{machine.present_pages * 64 / 2**30:.1f} GiB); median of {args.repeat}")
    print(f"neighbours alone: {alone / 1e6:.1f} M iterations/s")
    for nice in rates:
        label = "boot at this niceness" if nice is None else f"boot with nice={nice}"
        print(f"{label:<24} neighbours at {statistics.median(rates[nice]) / alone:5.2f}x "
              f"their rate alone; boot {statistics.median(times[nice]):.2f} s")


if __name__ == "__main__":
    main()
