"""How fastinit prints topologies and boots: kernel-style lines, tables, and JSON."""

from __future__ import annotations

from fastinit.mm.run import BootResult
from fastinit.layout import PAGE_DTYPE, PAGE_SHIFT, ZONE_NAMES
from fastinit.machine.topology import Topology
from fastinit.units import gib
from fastinit.mm.verify_report import VerifyReport
from fastinit.report import hugetlb as hugetlb_report
from fastinit.report.hugetlb import planned_pools


def machine_summary(topology: Topology, memmap_bytes: int | None = None) -> str:
    """``SOURCE: N nodes, M MiB[, memmap X GiB]``: what every report says first."""
    text = (f"{topology.source}: {len(topology.nodes)} nodes, "
            f"{topology.present_pages << PAGE_SHIFT >> 20} MiB")
    return text if memmap_bytes is None else f"{text}, memmap {gib(memmap_bytes)}"


def _mem(start_pfn: int, end_pfn: int) -> str:
    return f"[mem {start_pfn << PAGE_SHIFT:#018x}-{(end_pfn << PAGE_SHIFT) - 1:#018x}]"


def topology_lines(topology: Topology) -> list[str]:
    """The kernel's boot lines for this machine, then a per-node summary."""
    lines = [f"kernel: {topology.kernel.describe()}", "Zone ranges:"]
    for name, start, end in topology.zone_ranges():
        lines.append(f"  {name:<8} {_mem(start, end) if end > start else 'empty'}")
    lines.append("Movable zone start for each node")
    lines += [f"  Node {nid}: {pfn << PAGE_SHIFT:#018x}"
              for nid, pfn in sorted(topology.movable_start.items())]
    lines.append("Early memory node ranges")
    for start, end, nid in topology.memory_ranges():
        lines.append(f"  node {nid:>3}: {_mem(start, end)}")
    for node in topology.memory_nodes:
        lines.append(f"Initmem setup node {node.nid} {_mem(node.start_pfn, node.end_pfn)}")
    for hole in topology.unavailable_ranges():
        lines.append(f"On node {hole.nid}, zone {ZONE_NAMES[hole.zid]}: {hole.pages} pages "
                     f"in unavailable ranges")
    unavailable = topology.unavailable_pages()
    lines.append("")
    lines.append(f"{'node':>4} {'cpus':>5} {'zone':<7} {'start_pfn':>12} {'spanned':>12} "
                 f"{'present':>12} {'unavailable':>11}")
    for node in topology.nodes:
        zones = topology.zones(node.nid, spanned=True) if node.ranges else []
        if not zones:
            lines.append(f"{node.nid:>4} {node.cpus:>5} {'-':<7} (no memory)")
        for zone in zones:
            lines.append(f"{node.nid:>4} {node.cpus:>5} {zone.name:<7} {zone.start_pfn:>#12x} "
                         f"{zone.spanned:>12} {zone.present:>12} "
                         f"{unavailable.get((node.nid, zone.zid), 0):>11}")
    lines.append(f"{machine_summary(topology)} present")
    lines += [f"note: {note}" for note in topology.notes]
    return lines


def topology_json(topology: Topology) -> dict:
    """``{"nodes": [{"nid", "cpus", "ranges", "zones": [...], "hugepages"}]}``, pfn ranges
    end-exclusive; ``hugepages`` per node as sysfs counts them (planned boot pools)."""
    unavailable = topology.unavailable_pages()
    pools = planned_pools(topology)
    return {
        "source": topology.source,
        "kernel": topology.kernel.to_json(),
        "notes": list(topology.notes),
        "nodes": [{
            "nid": node.nid,
            "cpus": node.cpus,
            "ranges": [[start, end] for start, end in node.ranges],
            "zones": [{"name": z.name, "start_pfn": z.start_pfn, "spanned": z.spanned,
                       "present": z.present, "unavailable": unavailable.get((node.nid, z.zid), 0)}
                      for z in (topology.zones(node.nid, spanned=True) if node.ranges else [])],
            **({"hugepages": hugetlb_report.sysfs_counts(pools, None, node.nid)}
               if pools is not None else {}),
        } for node in topology.nodes],
        **({"hugepages_upper_bounds": hugetlb_report.upper_bounds(pools),
            "hugepages_lower_bounds": hugetlb_report.lower_bounds(
                pools, [node.nid for node in topology.memory_nodes])}
           if pools is not None else {}),
    }


def booted_summary(plan, memmap) -> str:
    """The first line of a boot's report: the machine, where its memmap lives, the arch."""
    return f"{machine_summary(plan.topology, memmap.nbytes)} in {memmap.storage}, arch {plan.arch}"


def boot_lines(result: BootResult, verification: VerifyReport | None) -> list[str]:
    """Kernel-style deferred-init lines, a per-node table and per-zone buddy state."""
    plan, memmap = result.plan, result.memmap
    lines = [f"{booted_summary(plan, memmap)}, {plan.topology.kernel.describe()}",
             *reservation_lines(plan.topology),
             *(f"note: {note}" for note in plan.topology.notes),
             f"sparse_init: memmap allocated and first touched in "
             f"{result.timings.get('sparse_init', 0) * 1e3:.0f} ms",
             f"early init (one thread) in {result.timings['early'] * 1e3:.0f} ms"]
    for node in sorted(result.nodes, key=lambda n: n.elapsed):
        if node.report is not None:
            lines.append(f"node {node.nid} deferred pages initialised in "
                         f"{node.elapsed * 1e3:.0f}ms")
    if "sync" in result.timings:
        lines.append(f"memmap file synced to disk and marked complete in "
                     f"{result.timings['sync'] * 1e3:.0f} ms")
    lines += hugetlb_report.boot_section(result)
    # With boot pools, each node's huge pages per size (sysfs names) end its row.
    sizes = sorted(plan.pools.params.hstates, key=lambda r: r.order) \
        if result.pools is not None else []
    lines.append("")
    lines.append(f"{'node':>4} {'threads':>7} {'chunks':>6} {'deferred_pages':>14} "
                 f"{'time_ms':>9} {'GB/s':>7}" + "".join(f" {r.size_kb:>11}kB" for r in sizes))
    for node in result.nodes:
        counts = "".join(f" {n:>13}" for n in hugetlb_report.sysfs_counts(
            plan.pools, result.pools, node.nid).values()) if sizes else ""
        if node.report is None:
            lines.append(f"{node.nid:>4} {'-':>7} {'-':>6} {0:>14} {'-':>9} {'-':>7}{counts}")
            continue
        rate = node.pages * PAGE_DTYPE.itemsize / node.elapsed / 1e9 if node.elapsed else 0.0
        lines.append(f"{node.nid:>4} {node.report.nworks:>7} {len(node.report.chunks):>6} "
                     f"{node.pages:>14} {node.elapsed * 1e3:>9.1f} {rate:>7.2f}{counts}")
    lines.append("")
    return lines + zone_lines(result) + verify_lines(verification) + \
        digest_lines(getattr(result, "digests", None))


def reservations(topology: Topology) -> dict:
    """memblock's reservations known before the boot (firmware, kernel, ``crashkernel=``):
    the ranges, their MiB, and the crash kernel's request and whether it was placed."""
    ranges = [[start, end] for start, end in topology.reserved]
    crash = topology.cmdline.crashkernel
    failed = any(note.startswith("crashkernel reservation failed") for note in topology.notes)
    return {"ranges": ranges,
            "mib": sum(end - start for start, end in ranges) << PAGE_SHIFT >> 20,
            "crashkernel": None if crash is None else
            {"bytes": crash.size, "high": crash.high, "reserved": not failed}}


def reservation_lines(topology: Topology) -> list[str]:
    """``reserved: N ranges, M MiB (crashkernel= K MiB)``, as `reservations` has it."""
    found = reservations(topology)
    crash = found["crashkernel"]
    text = f"reserved before the boot: {len(found['ranges'])} ranges, {found['mib']} MiB"
    if crash is not None:
        text += (f" (crashkernel {crash['bytes'] >> 20} MiB of it)" if crash["reserved"]
                 else " (crashkernel= not reserved: see the note)")
    return [text]


def digest_lines(digests: dict | None) -> list[str]:
    """Each node's digests, as a cluster boot prints them (so the two compare)."""
    if not digests:
        return []
    return [""] + [f"node {nid} digest {d['digest']} (free-list order aside: "
                   f"{d['state_digest']})" for nid, d in sorted(digests.items())]


def zone_lines(result: BootResult) -> list[str]:
    """Per node and zone: present and managed pages, free blocks by order."""
    lines = [f"{'node':>4} {'zone':<7} {'present':>11} {'managed':>11}  "
             f"free blocks by order 0..10"]
    for (nid, zid), area in sorted(result.zones.items()):
        zone = result.plan.topology.zone(nid, zid)
        lines.append(f"{nid:>4} {zone.name:<7} {zone.present:>11} {area.managed:>11}  "
                     f"{' '.join(str(n) for n in area.free_by_order())}")
    return lines


def verify_lines(verification: VerifyReport | None) -> list[str]:
    """Each check passed, each problem found, and the verdict (nothing if not verified)."""
    if verification is None:
        return []
    lines = ["", f"verify: four checks in {verification.elapsed * 1e3:.0f} ms"]
    for check in verification.checks:
        lines.append(f"verify: {'ok  ' if check.ok else 'FAIL'} {check.summary}")
        lines += [f"        {problem}" for problem in check.problems]
    return (lines
            + ["verified: parallel result equals the serial reference" if verification.ok
               else "verification FAILED"])


def memmap_file_lines(result: BootResult, verification: VerifyReport) -> list[str]:
    """What a memmap file holds (from its header), its zones, and the verdict."""
    meta, topology = result.memmap.file.meta, result.plan.topology
    return [f"{result.memmap.storage}: memmap file format {meta['format']}, state "
            f"{result.memmap.file.state}, written by fastinit {meta['fastinit']} at "
            f"{meta['created']} (arch {meta['arch']}, kernel {meta['kernel']})",
            machine_summary(topology, result.memmap.nbytes), ""] \
        + zone_lines(result) + verify_lines(verification)


def boot_json(result: BootResult, verification: VerifyReport | None) -> dict:
    plan = result.plan
    nodes = []
    for node in result.nodes:
        node_plan = plan.node(node.nid)
        nodes.append({
            "nid": node.nid,
            "threads": node.report.nworks if node.report else 0,
            "max_threads": node.max_threads,
            "deferred_ms": round(node.elapsed * 1e3, 3),
            "deferred_pages": node.pages,
            "first_deferred_pfn": node_plan.first_deferred_pfn,
            "reserved": [[s, e] for s, e in node_plan.reserved],
            "zones": [{"name": zone.name, "present": zone.present,
                       "managed": result.zones[(node.nid, zone.zid)].managed,
                       "free_by_order": result.zones[(node.nid, zone.zid)].free_by_order()}
                      for zone in node_plan.zones],
            "hugepages": hugetlb_report.sysfs_counts(plan.pools, result.pools, node.nid),
        })
    return {
        "source": plan.topology.source,
        "kernel": plan.topology.kernel.to_json(),
        "notes": list(plan.topology.notes),
        "reserved": reservations(plan.topology),
        "arch": plan.arch,
        "memmap_bytes": result.memmap.nbytes,
        "memmap_storage": result.memmap.storage,
        "timings_ms": {k: round(v * 1e3, 3) for k, v in result.timings.items()},
        "nodes": nodes,
        "hugetlb": hugetlb_report.boot_json(result),
        "verified": None if verification is None else verification.ok,
        "verify_problems": [] if verification is None else verification.problems,
        "verify_checks": [] if verification is None else [
            {"check": check.name, "ok": check.ok, "summary": check.summary,
             "problems": check.problems} for check in verification.checks],
        # A cluster's result has them too, in the same shape (DistributedBootResult).
        **({"digests": {str(nid): d for nid, d in sorted(digests.items())}}
           if (digests := getattr(result, "digests", None)) else {}),
    }
