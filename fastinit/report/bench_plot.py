"""``fastinit bench --plot``: time, speedup and bandwidth against threads, the peers beside.

The plot is checked before the benchmark runs (a benchmark that ran for minutes must not
fail on a typo in the file name), and drawn the way a performance engineer shows numbers:
integer thread ticks, every y axis from zero, error bars from the measured standard
deviation, and a title naming the CPU, the bytes written, the kernel and the repeat count.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastinit.bench.run import BenchResult

# Formats written by matplotlib's default backends without extra libraries.
PLOT_FORMATS = (".png", ".svg", ".pdf")


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("plot needs matplotlib: pip install 'fastinit[perf]'") from None
    return plt


def check_plot_path(path: str) -> None:
    """ValueError now, before any measurement, if ``path`` cannot take the plot."""
    target = Path(path)
    if target.suffix.lower() not in PLOT_FORMATS:
        raise ValueError(f"plot {path!r}: the format comes from the file name; end it in "
                         f"{', '.join(PLOT_FORMATS)}")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"plot {path!r}: the folder {str(folder)!r} does not exist; "
                         f"create it or write the plot elsewhere")
    if target.is_dir():
        raise ValueError(f"plot {path!r} is a folder; name a file in it")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ValueError(f"plot {path!r}: no permission to write there")
    _pyplot()


def plot(result: BenchResult, path: str) -> None:
    """Draw ``result`` into ``path`` (PNG, SVG or PDF by its suffix)."""
    plt = _pyplot()
    figure = draw(result)
    try:
        figure.savefig(path, dpi=100)
    finally:
        plt.close(figure)


def draw(result: BenchResult):
    """The figure for ``result``: three panels sharing the thread axis (matplotlib Figure)."""
    plt = _pyplot()
    rows = result.rows
    threads = [row.threads for row in rows]
    nbytes = result.deferred_bytes
    figure, (times, speedups, rates) = plt.subplots(1, 3, figsize=(15, 4.8))

    times.errorbar(threads, [r.deferred_ms for r in rows], [r.deferred_ms_stdev for r in rows],
                   fmt="o-", capsize=4, label=f"fastinit ({result.kernel})")
    times.plot(threads, [r.memset_ms for r in rows], "s--", label="memset 0x5a (limit)")
    speedups.errorbar(threads, [r.speedup for r in rows],
                      [r.speedup * r.deferred_ms_stdev / r.deferred_ms for r in rows],
                      fmt="o-", capsize=4, label="deferred init")
    speedups.plot(threads, [min(t, r.threads_run) / threads[0] for t, r in zip(threads, rows)],
                  ":", color="grey", label="linear in threads that ran")
    rates.errorbar(threads, [r.gbps for r in rows],
                   [r.gbps * r.deferred_ms_stdev / r.deferred_ms for r in rows],
                   fmt="o-", capsize=4, label=f"fastinit ({result.kernel})")
    rates.plot(threads, [nbytes / r.memset_ms / 1e6 for r in rows], "s--",
               label="memset 0x5a (limit)")
    for index, name in enumerate(sorted({peer.name for peer in result.peers})):
        peers = sorted((p for p in result.peers if p.name == name), key=lambda p: p.threads)
        style = dict(fmt="^:v:D:x:"[2 * index % 8:2 * index % 8 + 2], capsize=3, label=name,
                     alpha=0.8)
        xs = [p.threads for p in peers]
        times.errorbar(xs, [p.ms for p in peers], [p.ms_stdev for p in peers], **style)
        rates.errorbar(xs, [nbytes / p.ms / 1e6 for p in peers],
                       [nbytes / p.ms / 1e6 * p.ms_stdev / p.ms for p in peers], **style)
    for row in rows:
        if row.threads_run != row.threads:
            times.annotate(f"ran {row.threads_run}", (row.threads, row.deferred_ms),
                           textcoords="offset points", xytext=(4, 6), fontsize=8)
    ticks = sorted(set(threads) | {p.threads for p in result.peers})
    for axes, ylabel, title in ((times, "ms (median, bars: ±1 stdev)", "Deferred-init time"),
                                (speedups, "× the first row", "Speedup"),
                                (rates, "GB/s (1e9 bytes/s)", "Write bandwidth")):
        axes.set(xlabel="threads per node", ylabel=ylabel, title=title, xticks=ticks)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8, loc="lower right" if axes is not times else "upper right")
    machine = result.machine
    figure.suptitle(f"fastinit bench on {machine['cpu']} ({machine['cpus']} usable CPUs): "
                    f"{result.source}, {nbytes / 2**30:.2f} GiB of descriptors, "
                    f"{result.kernel} kernel, median of {result.repeat} runs", fontsize=10)
    figure.tight_layout()
    return figure
