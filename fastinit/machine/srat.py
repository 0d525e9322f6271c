"""Which node owns what: SRAT memory blocks and CPUs split between nodes, with the fallbacks
the kernel takes when the table cannot be used (``numa_init()`` giving up, one node)."""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.layout import PAGE_SHIFT, pfn_up
from fastinit.machine.topology import intersect, merge_ranges


@dataclass
class SratBlock:
    """One ``SRAT: Node N PXM P [mem a-b]`` line: byte range ``[start, end)``."""

    nid: int
    start: int
    end: int
    hotplug: bool
    line: int


def split_by_srat(srat: list[SratBlock], memory: list[tuple[int, int]], source: str,
                  notes: list[str]) -> dict[int, list[tuple[int, int]]] | None:
    """Split memory (pfn ranges) between nodes by SRAT; None when SRAT is absent or unusable.

    Raises
    ------
    ValueError
        Naming the lines, when two blocks give the same memory to different nodes or a
        non-hotplug block lies beyond all RAM (a truncated e820 map).
    """
    if not srat:
        return None
    blocks = sorted(srat, key=lambda b: (b.start, b.end))
    # A block overlapping any earlier one overlaps the one reaching furthest, unless two
    # earlier blocks of different nodes overlapped, which raised already.
    reach = blocks[0]
    for block in blocks[1:]:
        if block.start < reach.end and block.nid != reach.nid:
            raise ValueError(f"{source}:{block.line}: SRAT gives [mem {block.start:#x}-"
                             f"{min(reach.end, block.end) - 1:#x}] to node {block.nid}, but "
                             f"line {reach.line} gives it to node {reach.nid}; a log with "
                             f"contradicting SRAT entries cannot describe one machine: "
                             f"remove one of the lines")
        reach = block if block.end > reach.end else reach
    top = max(e for _, e in memory) << PAGE_SHIFT
    for block in blocks:
        if block.start >= top and not block.hotplug:
            raise ValueError(f"{source}:{block.line}: SRAT range [mem {block.start:#x}-"
                             f"{block.end - 1:#x}] of node {block.nid} lies beyond all usable "
                             f"RAM (which ends at {top - 1:#x}); the e820 map looks truncated: "
                             f"add the missing BIOS-e820 lines or mark the range hotplug")
    parts: dict[int, list[tuple[int, int]]] = {}
    for block in blocks:
        lo, hi = pfn_up(block.start), block.end >> PAGE_SHIFT
        parts.setdefault(block.nid, []).extend(intersect(memory, lo, hi))
    # Merged before counting: duplicated SRAT lines must not count their memory twice.
    nodes = {nid: merge_ranges(ranges) for nid, ranges in parts.items()}
    covered = sum(e - s for ranges in nodes.values() for s, e in ranges)
    total = sum(e - s for s, e in memory)
    # The kernel gives up on NUMA when SRAT leaves 1 MiB or more of RAM without a node;
    # so do we when it gives RAM to no node at all (only possible below 1 MiB of RAM).
    if total - covered >= (1 << 20) >> PAGE_SHIFT or not covered:
        notes.append(f"SRAT covers only {covered << PAGE_SHIFT >> 10} of "
                     f"{total << PAGE_SHIFT >> 10} KiB of RAM; like the kernel, using one node")
        return None
    if covered < total:
        notes.append(f"{total - covered} pages of RAM are in no SRAT range and get no node")
    return nodes


def cpus_per_node(apic_nodes: dict[int, set[int]], cpus_up: int | None, nids: list[int],
                  numa: bool, notes: list[str]) -> dict[int, int]:
    """CPUs of each node: SRAT's APIC lines with NUMA; otherwise the CPUs brought up (or
    every APIC SRAT named), shared out evenly; 1 per node if the log names no count."""
    if numa and apic_nodes:
        return {nid: len(apic_nodes.get(nid, ())) for nid in nids}
    total = cpus_up
    if total is None and apic_nodes:  # without NUMA every CPU SRAT named is on node 0
        total = len(set().union(*apic_nodes.values()))
    if total is None:
        notes.append("the log names no CPU count; assuming 1 CPU per node")
        return {nid: 1 for nid in nids}
    share, extra = divmod(total, len(nids))
    return {nid: share + (i < extra) for i, nid in enumerate(nids)}
