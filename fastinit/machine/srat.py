"""Which node owns what: SRAT memory blocks as the kernel's NUMA meminfo, CPUs per node, and
the fallbacks the kernel takes when the table cannot be used (``numa_init()`` giving up).

The blocks are kept as x86's ``numa_meminfo`` holds them (bytes, in table order), because
NUMA emulation (``numa=fake=``) splits those blocks, not the memory ranges.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.layout import PAGE_SHIFT, pfn_up
from fastinit.machine.topology import Range, intersect, merge_ranges


@dataclass
class SratBlock:
    """One ``SRAT: Node N PXM P [mem a-b]`` line: byte range ``[start, end)``."""

    nid: int
    start: int
    end: int
    hotplug: bool
    line: int


@dataclass(frozen=True)
class MemBlock:
    """One ``numa_memblk``: node ``nid`` owns memory in bytes ``[start, end)``."""

    nid: int
    start: int
    end: int


def _pages_in(memory: list[Range], start: int, end: int) -> int:
    """Memory pages (pfn ranges) inside the byte range [start, end)."""
    return sum(e - s for s, e in intersect(memory, pfn_up(start), end >> PAGE_SHIFT))


def _check_srat(srat: list[SratBlock], memory: list[Range], source: str,
                ram_cut: bool) -> None:
    """Refuse SRAT tables no machine has, naming the lines."""
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
        # mem= or memmap= on the command line cut RAM away: then blocks beyond it are normal.
        if block.start >= top and not block.hotplug and not ram_cut:
            raise ValueError(f"{source}:{block.line}: SRAT range [mem {block.start:#x}-"
                             f"{block.end - 1:#x}] of node {block.nid} lies beyond all usable "
                             f"RAM (which ends at {top - 1:#x}); the e820 map looks truncated: "
                             f"add the missing BIOS-e820 lines or mark the range hotplug")


def cleanup_meminfo(blocks: list[MemBlock], memory: list[Range],
                    max_pfn: int, to_memblock: bool = False) -> list[MemBlock]:
    """``numa_cleanup_meminfo()``: blocks without memory dropped, the rest clipped to
    [0, ``max_pfn``), and blocks of one node joined when no other node's block lies between.

    ``to_memblock``: Linux 6.12's generic mm/numa_memblks.c clips to memblock's memory
    instead, [memblock_start_of_DRAM(), memblock_end_of_DRAM()): on x86 the first block
    then starts at page 1 (page 0 is reserved), and NUMA emulation cuts its fake nodes
    from there, one page later than x86's own code did.
    """
    low, high = 0, max_pfn << PAGE_SHIFT
    if to_memblock and memory:
        low, high = memory[0][0] << PAGE_SHIFT, memory[-1][1] << PAGE_SHIFT
    kept = []
    for block in blocks:
        if not intersect(memory, block.start >> PAGE_SHIFT, pfn_up(block.end)):
            continue  # moved to the reserved meminfo: not RAM at all
        start, end = max(block.start, low), min(block.end, high)
        if start < end:
            kept.append([block.nid, start, end])
    i = 0
    while i < len(kept):
        j = i + 1
        while j < len(kept):
            nid, start, end = kept[i][0], min(kept[i][1], kept[j][1]), max(kept[i][2], kept[j][2])
            if kept[j][0] == nid and not any(k[0] != nid and start < k[2] and end > k[1]
                                             for k in kept):
                kept[i] = [nid, start, end]
                del kept[j]
            else:
                j += 1
        i += 1
    return [MemBlock(*block) for block in kept]


def srat_meminfo(srat: list[SratBlock], memory: list[Range], max_pfn: int, source: str,
                 notes: list[str], ram_cut: bool = False) -> list[MemBlock] | None:
    """The NUMA meminfo SRAT gives; None when SRAT is absent or the kernel would not use it.

    Parameters
    ----------
    srat : list of SratBlock
        In table (log) order.
    memory : list of (int, int)
        memblock memory, pfn ranges.
    max_pfn : int
        The end of RAM (``e820__end_of_ram_pfn()``).
    ram_cut : bool
        The command line removed RAM (``mem=``, ``memmap=``): SRAT may then describe
        memory the map no longer has.

    Raises
    ------
    ValueError
        Naming the lines, when two blocks give the same memory to different nodes or a
        non-hotplug block lies beyond all RAM (a truncated e820 map).
    """
    if not srat:
        return None
    _check_srat(srat, memory, source, ram_cut)
    blocks = cleanup_meminfo([MemBlock(b.nid, b.start, b.end) for b in srat], memory,
                             max_pfn)
    covered = sum(_pages_in(memory, b.start, b.end) for b in blocks)
    total = sum(e - s for s, e in memory)
    # numa_meminfo_cover_memory(): 1 MiB or more of RAM without a node and NUMA is not used.
    if total - covered >= (1 << 20) >> PAGE_SHIFT or not covered:
        notes.append(f"SRAT covers only {covered << PAGE_SHIFT >> 10} of "
                     f"{total << PAGE_SHIFT >> 10} KiB of RAM; like the kernel, using one node")
        return None
    if covered < total:
        notes.append(f"{total - covered} pages of RAM are in no SRAT range and get no node")
    return blocks


def node_memory(blocks: list[MemBlock], memory: list[Range]) -> dict[int, list[Range]]:
    """Memory (pfn ranges) of each node of the meminfo (``memblock_set_node()``)."""
    parts: dict[int, list[Range]] = {}
    for block in blocks:
        parts.setdefault(block.nid, []).extend(
            intersect(memory, pfn_up(block.start), block.end >> PAGE_SHIFT))
    return {nid: merge_ranges(ranges) for nid, ranges in parts.items()}


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
