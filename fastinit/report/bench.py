"""``fastinit bench``'s table: deferred init against memset per thread count, in the format
of the padata series' tables, and the peers beside it."""

from __future__ import annotations

from fastinit.bench.run import BenchResult


def _threads_label(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


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
             f"                         deferred init (median of {result.repeat})"
             f"{'':<18}memset 0x5a, same bytes, same threads",
             "                         ----------------------------------------   "
             "-------------------------------------",
             "node% (thr)  ran  speedup  saved  time_ms (stdev)     GB/s     time_ms  "
             "speed vs memset"]
    base = result.rows[0]
    for row in result.rows:
        share = 100 * row.threads // max(node_cpus, 1)
        speedup, saved = ("--", "--") if row is base else \
            (f"{row.speedup:.2f}x", f"{100 * (1 - row.deferred_ms / base.deferred_ms):.1f}%")
        lines.append(f"{share:>4}% ({row.threads:>3})  {row.threads_run:>3}  {speedup:>7}  "
                     f"{saved:>5}  {row.deferred_ms:7.1f} ({row.deferred_ms_stdev:5.1f})  "
                     f"{row.gbps:7.2f}     {row.memset_ms:7.1f}   {row.ratio_to_memset:6.2f}x")
    lines += ["node% (thr): threads per node asked for, as a share of the node's "
              f"{max(node_cpus, 1)} CPUs (and their number); ran: threads that really ran "
              "at once (memset used as many)",
              "speedup: the first row's time over this row's (bigger is faster); saved: "
              "time saved against the first row, as in the series' tables",
              "speed vs memset: deferred init's speed over memset's on the same bytes "
              "(memset time / deferred time): bigger is faster, 1.00x is memset's speed"]
    if result.peers:
        ours = {row.threads_run: row.deferred_ms for row in result.rows}
        lines += ["", "peers, same semantics, same run (median ms; fastinit at the same number "
                      "of threads)"]
        for peer in result.peers:
            label = f"{peer.name} ({_threads_label(peer.threads)})"
            mine, verdict = ours.get(peer.threads), ""
            if mine:
                ratio = peer.ms / mine
                verdict = (f"   fastinit {ratio:5.2f}x faster" if ratio >= 1 else
                           f"   fastinit {1 / ratio:5.2f}x slower")
            lines.append(f"  {label:<40} {peer.ms:9.1f}{verdict}")
    return lines
