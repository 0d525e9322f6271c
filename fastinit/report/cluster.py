"""How a distributed boot prints: the single-process report, with the worker of each node."""

from __future__ import annotations

from fastinit.distributed.result import DistributedBootResult
from fastinit.layout import PAGE_DTYPE
from fastinit.report import hugetlb as hugetlb_report
from fastinit.report.boot import (boot_json, booted_summary, machine_summary, verify_lines,
                                  zone_lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms"


def node_files_lines(result: DistributedBootResult, digests: bool = False) -> list[str]:
    """Node memmap files checked on their workers: which worker read which file, the
    zones the files hold, and the verdict."""
    topology = result.plan.topology
    lines = [f"{machine_summary(topology, result.memmap.nbytes)} in {len(result.shards)} "
             f"node files, each checked on the worker whose disk holds it", ""]
    width = max([len("worker")] + [len(s.worker) for s in result.shards])
    lines.append(f"{'node':>4} {'worker':<{width}} file")
    lines += [f"{s.nid:>4} {s.worker:<{width}} {s.storage}" for s in result.shards]
    lines.append("")
    return lines + zone_lines(result) + _digest_lines(result, digests) + \
        verify_lines(result.verification)


def _digest_lines(result: DistributedBootResult, digests: bool) -> list[str]:
    if not digests:
        return []
    return [""] + [f"node {s.nid} digest {s.digest} (free-list order aside: "
                   f"{s.state_digest})" for s in result.shards]


def cluster_boot_lines(result: DistributedBootResult, digests: bool = False) -> list[str]:
    """Kernel-style lines, the per-node table with workers, zones, and the verdict."""
    if all(shard.node is None for shard in result.shards):
        return node_files_lines(result, digests)
    plan, timings = result.plan, result.timings
    lines = [booted_summary(plan, result.memmap),
             f"cluster: {result.workers} workers, reached and checked in "
             f"{_ms(timings.get('connect', 0))}; nodes booted in {_ms(timings.get('boot', 0))}"
             + (f", verified in {_ms(timings['verify'])}" if "verify" in timings else "")]
    for shard in sorted(result.shards, key=lambda s: s.node.elapsed if s.node else 0):
        if shard.node is not None and shard.node.report is not None:
            lines.append(f"node {shard.nid} deferred pages initialised in "
                         f"{shard.node.elapsed * 1e3:.0f}ms")
    lines += hugetlb_report.boot_section(result) + _pool_lines(result)
    # With boot pools, each node's huge pages per size (sysfs names) end its row.
    sizes = sorted(plan.pools.params.hstates, key=lambda r: r.order) \
        if result.pools is not None else []
    lines.append("")
    width = max([len("worker")] + [len(s.worker) for s in result.shards])
    lines.append(f"{'node':>4} {'worker':<{width}} {'threads':>7} {'chunks':>6} "
                 f"{'deferred_pages':>14} {'time_ms':>9} {'GB/s':>7} {'sparse_ms':>9} "
                 f"{'early_ms':>8}" + "".join(f" {r.size_kb:>11}kB" for r in sizes))
    for shard in result.shards:
        node = shard.node
        sparse = shard.timings.get("sparse_init", 0) * 1e3
        early = shard.timings.get("early", 0) * 1e3
        counts = "".join(f" {n:>13}" for n in hugetlb_report.sysfs_counts(
            plan.pools, result.pools, shard.nid).values()) if sizes else ""
        if node is None or node.report is None:
            lines.append(f"{shard.nid:>4} {shard.worker:<{width}} {'-':>7} {'-':>6} {0:>14} "
                         f"{'-':>9} {'-':>7} {sparse:>9.1f} {early:>8.1f}{counts}")
            continue
        rate = node.pages * PAGE_DTYPE.itemsize / node.elapsed / 1e9 if node.elapsed else 0.0
        lines.append(f"{shard.nid:>4} {shard.worker:<{width}} {node.report.nworks:>7} "
                     f"{len(node.report.chunks):>6} {node.pages:>14} "
                     f"{node.elapsed * 1e3:>9.1f} {rate:>7.2f} {sparse:>9.1f} {early:>8.1f}"
                     f"{counts}")
    retried = [s for s in result.shards if s.attempts > 1]
    lines += [f"node {s.nid} booted again on {s.worker} (attempt {s.attempts})"
              for s in retried]
    lines.append("")
    lines += zone_lines(result) + _digest_lines(result, digests)
    return lines + verify_lines(result.verification)


def _pool_lines(result: DistributedBootResult) -> list[str]:
    """Each node's pool jobs on its worker, and HVO's figures added up over the nodes'
    workers (each remapped its own shard)."""
    if result.pools is None:
        return []
    lines = []
    for nid, figures in sorted(result.pools.nodes.items()):
        jobs = figures["jobs"]
        done = [f"allocation took {jobs['alloc']['ms']:.0f}ms with "
                f"hugepage_allocation_threads={jobs['alloc']['threads']}"] \
            if "alloc" in jobs else []
        done += [f"gigantic pages gathered in {jobs['gather']['ms']:.0f} ms "
                 f"({jobs['gather']['threads']} threads)"] if "gather" in jobs else []
        if done:
            lines.append(f"node {nid} HugeTLB: {'; '.join(done)}")
    summary = result.pools.hvo()
    if summary is None:
        return lines
    mib = 1 << 20
    return lines + [f"HVO on the workers: vmemmap of {summary['pages_remapped']} of "
            f"{summary['pages_wanted']} huge pages remapped ({summary['mappings']} "
            f"mappings), {summary['released_bytes'] / mib:.1f} MiB released; shards "
            f"resident {summary['memmap_resident_bytes'] / mib:.1f} MiB of "
            f"{summary['memmap_bytes'] / mib:.1f} MiB (ideal "
            f"{summary['memmap_ideal_bytes'] / mib:.1f} MiB)"]


def cluster_boot_json(result: DistributedBootResult) -> dict:
    """`fastinit.report.boot.boot_json`'s document, each node with its worker and timings
    (and its HugeTLB pool jobs); HVO's figures added up over the nodes."""
    document = boot_json(result, result.verification)
    document["workers"] = result.workers
    if result.pools is not None:
        document["hugetlb"]["hvo"] = result.pools.hvo()
    for entry, shard in zip(document["nodes"], result.shards):
        entry.update({"worker": shard.worker, "pid": shard.pid, "attempts": shard.attempts,
                      "memmap_bytes": shard.memmap_bytes, "storage": shard.storage,
                      "timings_ms": {k: round(v * 1e3, 3) for k, v in shard.timings.items()}})
        if shard.pools is not None:
            entry["hugetlb_jobs"] = shard.pools["jobs"]
        if shard.digest is not None:
            entry["digest"], entry["state_digest"] = shard.digest, shard.state_digest
    return document
