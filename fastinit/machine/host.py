"""This machine as a topology: nodes and CPUs from sysfs, zones from /proc/zoneinfo, memory
ranges from /proc/iomem, and its kernel command line from /proc/cmdline (whose
``kernelcore=``/``movablecore=`` give the nodes a Movable zone).

/proc/iomem shows real addresses only to root; for others every address reads as zero,
and the node's zone spans from zoneinfo stand in for its memory (holes then count as
memory, which the topology's notes say).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from fastinit.host.cpus import SYSFS_NODES, parse_cpulist
from fastinit.layout import PAGE_SHIFT, pfn_up
from fastinit.machine.cmdline import KernelCmdline, parse_cmdline
from fastinit.machine.topology import Node, Topology, intersect, merge_ranges

_ZONE_HEADER = re.compile(r"^Node (\d+), zone\s+(\w+)")
_FIELD = re.compile(r"^\s+(spanned|present|managed|start_pfn:?)\s+(\d+)")
_IOMEM_RAM = re.compile(r"^([0-9a-fA-F]+)-([0-9a-fA-F]+) : System RAM\s*$")


def parse_zoneinfo(text: str) -> dict[tuple[int, str], dict[str, int]]:
    """Per ``(nid, zone name)``: spanned, present, managed and start_pfn (populated zones)."""
    zones: dict[tuple[int, str], dict[str, int]] = {}
    current = None
    for line in text.splitlines():
        if match := _ZONE_HEADER.match(line):
            current = zones.setdefault((int(match.group(1)), match.group(2)), {})
        elif current is not None and (match := _FIELD.match(line)):
            current[match.group(1).rstrip(":")] = int(match.group(2))
    return {key: fields for key, fields in zones.items() if fields.get("present")}


def parse_iomem(text: str) -> list[tuple[int, int]]:
    """Top-level "System RAM" ranges of /proc/iomem as whole-page pfn ranges."""
    ranges = []
    for line in text.splitlines():
        if match := _IOMEM_RAM.match(line):
            start, last = int(match.group(1), 16), int(match.group(2), 16)
            first_pfn, end_pfn = pfn_up(start), (last + 1) >> PAGE_SHIFT
            if first_pfn < end_pfn:
                ranges.append((first_pfn, end_pfn))
    return merge_ranges(ranges)


def _node_cpu_counts(sysfs_nodes: Path) -> dict[int, int]:
    counts = {}
    for entry in sysfs_nodes.glob("node[0-9]*"):
        try:
            counts[int(entry.name[4:])] = len(parse_cpulist((entry / "cpulist").read_text()))
        except OSError:
            continue
    return counts


def _cmdline(text: str | None, notes: list[str]) -> KernelCmdline:
    try:
        return parse_cmdline(text or "")
    except ValueError as error:  # kernelcore=mirror: zones as if it were not there
        notes.append(f"/proc/cmdline: {error}")
        return KernelCmdline()


def this_machine(zoneinfo: str | None = None, iomem: str | None = None,
                 sysfs_nodes: Path = SYSFS_NODES, cmdline: str | None = None) -> Topology:
    """The machine fastinit runs on.

    Parameters
    ----------
    zoneinfo, iomem : str or None
        Texts of /proc/zoneinfo and /proc/iomem (read from /proc when None).
    sysfs_nodes : Path
        Where the NUMA nodes are listed.
    cmdline : str or None
        The kernel command line; read from /proc/cmdline when None and zoneinfo is read
        from /proc too.
    """
    if cmdline is None and zoneinfo is None:
        try:
            cmdline = Path("/proc/cmdline").read_text().strip()
        except OSError:
            cmdline = ""
    if zoneinfo is None:
        zoneinfo = Path("/proc/zoneinfo").read_text()
    if iomem is None:
        try:
            iomem = Path("/proc/iomem").read_text()
        except OSError:
            iomem = ""
    zones = parse_zoneinfo(zoneinfo)
    if not zones:
        raise ValueError("/proc/zoneinfo lists no populated zone; use --spec or --dmesg")
    ram = [r for r in parse_iomem(iomem) if r[0] or r[1] > 1]
    cpus = _node_cpu_counts(sysfs_nodes) or {0: os.cpu_count() or 1}
    notes = []
    nodes = []
    for nid in sorted({nid for nid, _ in zones} | set(cpus)):
        spans = merge_ranges([(f["start_pfn"], f["start_pfn"] + f["spanned"])
                              for (n, _), f in zones.items() if n == nid])
        if ram:
            memory = merge_ranges([r for lo, hi in spans for r in intersect(ram, lo, hi)])
        else:
            memory = spans
        nodes.append(Node(nid, cpus.get(nid, 0), tuple(memory)))
    if not ram:
        notes.append("/proc/iomem hides addresses (run as root for exact ranges); "
                     "zone spans stand in for memory, holes included")
    kernel_cmdline = _cmdline(cmdline, notes)
    topology = Topology(tuple(nodes), source="this machine", notes=tuple(notes),
                        cmdline=kernel_cmdline)
    for (nid, name), fields in sorted(zones.items()):
        derived = {z.name: z.present for z in topology.zones(nid)}.get(name)
        if derived is not None and derived != fields["present"]:
            notes.append(f"node {nid} zone {name}: {derived} present pages derived, "
                         f"/proc/zoneinfo says {fields['present']}")
    return Topology(topology.nodes, source="this machine", notes=tuple(notes),
                    cmdline=kernel_cmdline)
