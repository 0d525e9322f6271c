"""What a boot's HugeTLB pools look like in its report: the kernel's lines, per-node
counts keyed like sysfs, job timings and what HVO did to the memmap."""

from __future__ import annotations

import os

from fastinit.layout import DESCRIPTORS_PER_PAGE, PAGE_SIZE
from fastinit.machine.hugetlb_sizes import size_text
from fastinit.machine.topology import Topology
from fastinit.mm.hugetlb.hvo import resident_bytes
from fastinit.mm.hugetlb.plan import PoolPlan
from fastinit.mm.plan import plan_boot


def planned_pools(topology: Topology) -> PoolPlan | None:
    """The boot pools a boot of ``topology`` would get (None if it cannot be planned:
    a node without room for its own memmap)."""
    try:
        return plan_boot(topology).pools
    except ValueError:
        return None


def kernel_lines(plan, pools=None) -> list[str]:
    """The kernel's HugeTLB lines, in its order: option warnings with the gigantic
    allocations' messages among them, the 2 MiB allocation's, then per size the
    ``registered ... pre-allocated`` and ``vmemmap can be freed`` lines."""
    params = plan.pools.params
    lines, gigantic = [], list(plan.pools.gigantic_messages)
    for index, warning in enumerate(params.warnings):
        lines += [text for after, text in gigantic if after == index]
        lines.append(warning)
    lines += [text for after, text in gigantic if after >= len(params.warnings)]
    lines += list(plan.pools.buddy_messages)
    counts = pools.counts() if pools is not None else plan.pools.counts()
    for request in params.hstates:
        name = size_text(request.order)
        total = sum(sizes.get(request.order, 0) for sizes in counts.values())
        # hugetlb_vmemmap_optimizable_size(): all but one page of the descriptors.
        freeable = ((1 << request.order) // DESCRIPTORS_PER_PAGE - 1) * PAGE_SIZE // 1024
        if not plan.topology.kernel.has("hugetlb_report_colon"):
            lines.append(f"HugeTLB registered {name} page size, pre-allocated {total} pages")
            continue
        lines.append(f"HugeTLB: registered {name} page size, pre-allocated {total} pages")
        lines.append(f"HugeTLB: {freeable} KiB vmemmap can be freed for a {name} page")
    return lines


def sysfs_counts(pool_plan, pools, nid: int) -> dict[str, int]:
    """A node's ``nr_hugepages`` per registered size, keyed like sysfs (``"2048kB"``):
    from the boot's pools, or the plan's (`fastinit.mm.hugetlb.plan.PoolPlan`)."""
    counts = (pools.counts() if pools is not None else pool_plan.counts()).get(nid, {})
    return {sysfs_key(request): counts.get(request.order, 0)
            for request in sorted(pool_plan.params.hstates, key=lambda r: r.order)}


def sysfs_key(request) -> str:
    """How sysfs and the JSON name a huge page size: ``"2048kB"``."""
    return f"{request.size_kb}kB"


def wants_lines(plan) -> bool:
    """Print HugeTLB lines only when the command line asks for something HugeTLB."""
    names = {"hugepages", "hugepagesz", "default_hugepagesz", "hugetlb_free_vmemmap"}
    return any(name.replace("-", "_") in names for name, _ in plan.topology.cmdline.params)


def hvo_summary(result) -> dict | None:
    """What HVO did: pages remapped, mappings, vmemmap freed, the memmap's residency."""
    pools = result.pools
    if pools is None or pools.remapper is None:
        return None
    remapper = pools.remapper
    resident = resident_bytes(result.memmap, remapper)
    ideal = result.memmap.pages.nbytes - remapper.released_bytes
    return {"pages_remapped": remapper.remapped,
            "pages_wanted": _wanted(result),
            "mappings": remapper.mappings,
            # A file read back made no decision: its aliases are what it records.
            "budget": pools.decision.budget if pools.decision is not None else None,
            "released_bytes": remapper.released_bytes,
            "freed_to_buddy_pages": sum(e - s for _, _, s, e in pools.freed_vmemmap),
            "memmap_resident_bytes": resident, "memmap_ideal_bytes": ideal,
            "memmap_bytes": result.memmap.pages.nbytes, **_file_figures(remapper)}


def _file_figures(remapper) -> dict:
    """A memmap file's size (``ls -l``) and the bytes it takes on disk (``du``)."""
    if not hasattr(remapper, "allocated_bytes"):
        return {}
    return {"file_bytes": os.fstat(remapper.fd).st_size,
            "file_allocated_bytes": remapper.allocated_bytes()}


def _wanted(result) -> int:
    plan = result.plan
    return sum(sizes for counts in plan.pools.counts().values() for sizes in counts.values())


def upper_bound_lines(pool_plan) -> list[str]:
    """fastinit's own warning for each node whose count is all the room it had."""
    return [f"fastinit: node {nid}'s {size_text(order)} count is an upper bound: it ran "
            f"out of room, and the real kernel has spent some of it on its own allocations "
            f"before hugetlb_init() (percpu, hash tables, slab), which fastinit does not "
            f"model" for order, nid in pool_plan.limited]


def upper_bounds(pool_plan) -> list[dict]:
    """``[{"nid", "size"}]``: the counts that are upper bounds (`upper_bound_lines`)."""
    requests = {request.order: request for request in pool_plan.params.hstates}
    return [{"nid": nid, "size": sysfs_key(requests[order])}
            for order, nid in pool_plan.limited]


def lower_bounds(pool_plan, nids) -> list[dict]:
    """``[{"nid", "size"}]``: the counts that are lower bounds. A count spread over the nodes
    (``hugepages=N`` without nodes) is dealt round robin; where a node ran out of room
    (its count an upper bound), the kernel, with less room there, deals what that node
    could not take to the others, so each other node of ``nids`` (the nodes with memory)
    may hold more than fastinit's count, never less."""
    limited = set(pool_plan.limited)
    spread = [request for request in pool_plan.params.hstates
              if not request.nodes and any(order == request.order for order, _ in limited)]
    return [{"nid": nid, "size": sysfs_key(request)} for request in spread
            for nid in nids if (request.order, nid) not in limited]


def lower_bound_lines(pool_plan, nids) -> list[str]:
    """fastinit's own warning for each count that is a lower bound (`lower_bounds`)."""
    return [f"fastinit: node {bound['nid']}'s {bound['size']} count is a lower bound: "
            f"another node ran out of room for the same spread count, and the real kernel "
            f"gives the others what that node could not take" for bound in
            lower_bounds(pool_plan, nids)]


def timing_lines(result) -> list[str]:
    """fastinit's own lines: each job's time and threads, and HVO's effect."""
    pools, lines = result.pools, []
    if pools is None:
        return lines
    if "alloc" in pools.jobs:
        report = pools.jobs["alloc"]
        lines.append(f"HugeTLB: allocation took {pools.seconds['alloc'] * 1e3:.0f}ms with "
                     f"hugepage_allocation_threads={report.nworks}")
    if "gather" in pools.jobs:
        report = pools.jobs["gather"]
        pages = len(result.plan.pools.gigantic)
        lines.append(f"hugetlb_init: {pages} gigantic pages gathered in "
                     f"{pools.seconds['gather'] * 1e3:.0f} ms ({report.nworks} threads, "
                     f"{len(report.chunks)} chunks)")
    summary = hvo_summary(result)
    if summary is not None:
        mib = 1 << 20
        budget = "" if summary["budget"] is None else f", budget {summary['budget']}"
        line = (f"HVO: vmemmap of {summary['pages_remapped']} of "
                f"{summary['pages_wanted']} huge pages remapped "
                f"({summary['mappings']} mappings{budget}), "
                f"{summary['released_bytes'] / mib:.1f} MiB released; memmap resident "
                f"{summary['memmap_resident_bytes'] / mib:.1f} MiB of "
                f"{summary['memmap_bytes'] / mib:.1f} MiB (ideal "
                f"{summary['memmap_ideal_bytes'] / mib:.1f} MiB)")
        if "file_bytes" in summary:  # ls -l and du of a memmap file
            line += (f"; memmap file {summary['file_bytes'] / mib:.1f} MiB long, "
                     f"{summary['file_allocated_bytes'] / mib:.1f} MiB on disk")
        lines.append(line)
    return lines


def boot_section(result) -> list[str]:
    """Every HugeTLB line of a boot report (nothing if the boot was not asked for any)."""
    if result.plan.pools is None or not (wants_lines(result.plan) or result.pools):
        return []
    nids = [node.nid for node in result.plan.nodes]
    return kernel_lines(result.plan, result.pools) + timing_lines(result) + \
        upper_bound_lines(result.plan.pools) + lower_bound_lines(result.plan.pools, nids)


def boot_json(result) -> dict:
    """The ``hugetlb`` object of ``boot --json``."""
    pools = result.pools
    jobs = {}
    for name, report in (pools.jobs.items() if pools is not None else ()):
        jobs[name] = {"threads": report.nworks, "chunks": len(report.chunks),
                      "chunk_size": report.chunk_size,
                      "ms": round(pools.seconds[name] * 1e3, 3)}
    return {"lines": kernel_lines(result.plan, pools), "jobs": jobs,
            "hvo": hvo_summary(result), "upper_bounds": upper_bounds(result.plan.pools),
            "lower_bounds": lower_bounds(result.plan.pools,
                                         [node.nid for node in result.plan.nodes])}
