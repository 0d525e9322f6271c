"""The simulated machine: NUMA nodes with CPUs and memory ranges, and what Linux derives.

A `Topology` holds only facts a source can give (this machine, a boot log, a spec): each
node's CPU count and its memory as pfn ranges, plus memory that boot code reserves. Every
figure the kernel derives from them (zones, spans, present pages, sections with a memmap,
pages in unavailable ranges, where deferral starts) is computed here, with the kernel's rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from fastinit.layout import (MAX_DMA32_PFN, MAX_DMA_PFN, MAX_NUMNODES, MAX_PFN,
                             PAGES_PER_SECTION, ZONE_NAMES)
from fastinit.machine.cmdline import KernelCmdline
from fastinit.machine.kernel_rules import NEWEST_RULES, KernelRules
# Re-exported: the range arithmetic has always been imported from here.
from fastinit.machine.ranges import (Range, intersect, merge_ranges,  # noqa: F401
                                     present_runs, section_align_up, section_runs, subtract)
from fastinit.machine.zones import arch_zone_windows, node_zones, zone_movable_pfns

# Zone limits in pfns on x86-64: [start, end) before clipping to the machine.
ZONE_LIMITS = ((0, MAX_DMA_PFN), (MAX_DMA_PFN, MAX_DMA32_PFN), (MAX_DMA32_PFN, MAX_PFN))


@dataclass(frozen=True)
class Zone:
    """One zone of one node, as ``free_area_init()`` sizes it.

    Attributes
    ----------
    nid, zid : int
        Node and zone index (0 DMA, 1 DMA32, 2 Normal, 3 Movable).
    start_pfn, end_pfn : int
        The zone's span, ``[start_pfn, end_pfn)``; holes included.
    present : int
        Pages of memory inside the span.
    """

    nid: int
    zid: int
    start_pfn: int
    end_pfn: int
    present: int

    @property
    def name(self) -> str:
        return ZONE_NAMES[self.zid]

    @property
    def spanned(self) -> int:
        return self.end_pfn - self.start_pfn


@dataclass(frozen=True)
class Node:
    """One NUMA node.

    Attributes
    ----------
    nid : int
        Node id.
    cpus : int
        CPUs on the node (0 for a memory-only node).
    ranges : tuple of (int, int)
        Memory as sorted, disjoint, non-empty pfn ranges ``[start, end)``; empty for a
        CPU-only node.
    """

    nid: int
    cpus: int
    ranges: tuple[Range, ...]

    @property
    def present_pages(self) -> int:
        return sum(e - s for s, e in self.ranges)

    @property
    def start_pfn(self) -> int:
        return self.ranges[0][0] if self.ranges else 0

    @property
    def end_pfn(self) -> int:
        return self.ranges[-1][1] if self.ranges else 0


@dataclass(frozen=True)
class Unavailable:
    """One ``init_unavailable_range()`` call: hole pages given descriptors, as reserved."""

    nid: int
    zid: int
    start_pfn: int
    end_pfn: int
    pages: int


@dataclass(frozen=True)
class Topology:
    """A machine: its nodes, their memory, and the memory boot code reserves.

    Attributes
    ----------
    nodes : tuple of Node
        Sorted by nid.
    reserved : tuple of (int, int)
        memblock-reserved pfn ranges known from the source (firmware, kernel, initrd);
        the memmap's own reservation is added when a boot allocates it.
    source : str
        Where the description came from, for reports.
    notes : tuple of str
        What the source said that the model could not use as is (shown to the user).
    cmdline : KernelCmdline
        The kernel command line the machine booted with (its ``kernelcore=`` and
        ``movablecore=`` shape the zones; the rest was applied by the source).
    gbpages : bool
        The CPU maps 1 GiB pages (``pdpe1gb``), so ``hugepagesz=1G`` is accepted. A boot log
        tells by its HugeTLB lines; a spec assumes a current server CPU.
    kernel : KernelRules
        The Linux generation whose rules the machine is modelled with (the log's
        ``Linux version``; the newest for a spec).
    """

    nodes: tuple[Node, ...]
    reserved: tuple[Range, ...] = ()
    source: str = "spec"
    notes: tuple[str, ...] = field(default=(), compare=False)
    cmdline: KernelCmdline = KernelCmdline()
    gbpages: bool = True
    kernel: KernelRules = field(default=NEWEST_RULES, compare=False)

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ValueError unless the description is self-consistent."""
        if not self.nodes:
            raise ValueError(f"{self.source}: no NUMA node; a machine needs at least one")
        nids = [n.nid for n in self.nodes]
        if nids != sorted(set(nids)):
            raise ValueError(f"{self.source}: node ids {nids} must be unique and sorted")
        spans = []
        for node in self.nodes:
            if not 0 <= node.nid < MAX_NUMNODES:
                raise ValueError(f"{self.source}: node {node.nid} is outside 0..{MAX_NUMNODES - 1}")
            if node.cpus < 0:
                raise ValueError(f"{self.source}: node {node.nid} has {node.cpus} CPUs")
            previous_end = -1
            for start, end in node.ranges:
                if not 0 <= start < end <= MAX_PFN:
                    raise ValueError(
                        f"{self.source}: node {node.nid} range [{start:#x}, {end:#x}) is empty "
                        f"or beyond the {MAX_PFN:#x} pfns of 52-bit physical memory")
                if start < previous_end:
                    raise ValueError(f"{self.source}: node {node.nid} ranges overlap or are "
                                     f"unsorted at pfn {start:#x}")
                previous_end = end
                spans.append((start, end, node.nid))
        spans.sort()
        for (s1, e1, n1), (s2, e2, n2) in zip(spans, spans[1:]):
            if s2 < e1:
                raise ValueError(f"{self.source}: memory [{s2:#x}, {min(e1, e2):#x}) belongs "
                                 f"to both node {n1} and node {n2}")
        if not spans:
            raise ValueError(f"{self.source}: no usable memory on any node")
        for start, end in self.reserved:
            if not 0 <= start < end <= MAX_PFN:
                raise ValueError(f"{self.source}: reserved range [{start:#x}, {end:#x}) "
                                 f"is empty or out of range")

    # What the kernel derives ---------------------------------------------------------

    def node(self, nid: int) -> Node:
        for node in self.nodes:
            if node.nid == nid:
                return node
        raise ValueError(f"no node {nid}; nodes are {[n.nid for n in self.nodes]}")

    @property
    def memory_nodes(self) -> tuple[Node, ...]:
        """Nodes with memory (N_MEMORY), the ones that get a pgdatinit thread."""
        return tuple(n for n in self.nodes if n.ranges)

    def memory_ranges(self) -> list[tuple[int, int, int]]:
        """Every memory range as ``(start_pfn, end_pfn, nid)``, in address order."""
        return sorted((s, e, n.nid) for n in self.nodes for s, e in n.ranges)

    @property
    def min_pfn(self) -> int:
        return self.memory_ranges()[0][0]

    @property
    def max_pfn(self) -> int:
        return max(e for _, e, _ in self.memory_ranges())

    @property
    def present_pages(self) -> int:
        return sum(n.present_pages for n in self.nodes)

    @cached_property
    def _windows(self) -> list[Range]:
        return arch_zone_windows(self.min_pfn, self.max_pfn)

    def zone_ranges(self) -> list[tuple[str, int, int]]:
        """The "Zone ranges" the kernel prints: ``(name, start_pfn, end_pfn)``, end exclusive.

        Each limit is clipped to the machine's last pfn (empty zones come out as
        ``start == end``), as ``zone_sizes_init()`` does on x86-64 since Linux 4.x.
        """
        return [(ZONE_NAMES[zid], lo, hi) for zid, (lo, hi) in enumerate(self._windows)]

    @cached_property
    def movable_start(self) -> dict[int, int]:
        """``nid -> pfn`` where ZONE_MOVABLE begins ("Movable zone start for each node")."""
        cmdline = self.cmdline
        if cmdline.kernelcore is None and cmdline.movablecore is None:
            return {}
        return zone_movable_pfns({n.nid: list(n.ranges) for n in self.memory_nodes},
                                 self._windows, cmdline.kernelcore, cmdline.movablecore,
                                 past_end=not self.kernel.has("movable_none_past_node_end"))

    @cached_property
    def _zones(self) -> dict[int, list[Zone]]:
        return {node.nid: [Zone(node.nid, *figures) for figures in
                           node_zones(list(node.ranges), self._windows,
                                      self.movable_start.get(node.nid))]
                for node in self.memory_nodes}

    def zones(self, nid: int, spanned: bool = False) -> list[Zone]:
        """The node's populated zones (or, with ``spanned``, every zone with a span), lowest
        first.

        A zone spans the node's span clamped to the zone's limits and cut where ZONE_MOVABLE
        starts (``zone_spanned_pages_in_node()``), so it can reach past its last memory page
        and, rarely, hold none (such a zone is not populated: boot gives it no pages).
        """
        zones = self._zones.get(self.node(nid).nid, [])
        return list(zones) if spanned else [zone for zone in zones if zone.present]

    def zone(self, nid: int, zid: int) -> Zone:
        for zone in self.zones(nid):
            if zone.zid == zid:
                return zone
        raise ValueError(f"node {nid} has no {ZONE_NAMES[zid]} zone")

    def present_sections(self) -> np.ndarray:
        """Sections holding any memory, sorted (int64): those get descriptors (vmemmap)."""
        # From the runs, not np.unique, whose hashing took 46 s on 2**25 sections.
        return np.concatenate([np.arange(first, end, dtype=np.int64)
                               for first, end, _ in section_runs(self.memory_ranges())])

    def valid_pages(self, start: int, end: int, sections: np.ndarray | None = None) -> int:
        """Pfns of ``[start, end)`` inside present sections (those ``pfn_valid()`` accepts)."""
        sections = self.present_sections() if sections is None else sections
        return sum(e - s for s, e in present_runs(sections, start, end))

    def unavailable_ranges(self) -> list[Unavailable]:
        """The holes ``memmap_init()`` gives reserved descriptors, call by call.

        A hole is charged to the zone and node of the memory range that follows it; the
        tail from the last range up to its section's end to the last zone seen. Only pfns
        in present sections count (others have no descriptors).
        """
        sections = self.present_sections()
        result, hole_pfn, zid, nid = [], 0, 0, 0
        for start, end, nid in self.memory_ranges():
            for zone in self.zones(nid):
                lo, hi = max(start, zone.start_pfn), min(end, zone.end_pfn)
                if lo < hi:
                    if hole_pfn < lo:
                        result.append(Unavailable(nid, zone.zid, hole_pfn, lo,
                                                  self.valid_pages(hole_pfn, lo, sections)))
                    hole_pfn = hi
                zid = zone.zid
        tail_end = section_align_up(hole_pfn)
        if hole_pfn < tail_end:
            result.append(Unavailable(nid, zid, hole_pfn, tail_end,
                                      self.valid_pages(hole_pfn, tail_end, sections)))
        return [u for u in result if u.pages]

    def unavailable_pages(self) -> dict[tuple[int, int], int]:
        """Pages in unavailable ranges per ``(nid, zid)``, as the kernel's lines count them."""
        counts: dict[tuple[int, int], int] = {}
        for hole in self.unavailable_ranges():
            counts[(hole.nid, hole.zid)] = counts.get((hole.nid, hole.zid), 0) + hole.pages
        return counts

    def first_deferred_pfn(self, nid: int) -> int | None:
        """Where deferred init starts on the node, or None if nothing is deferred.

        Only the node's highest zone is deferred. Its first section of memory pages is
        initialized early; deferral starts at the first section boundary met after more
        than PAGES_PER_SECTION of its memory pages (``defer_init()``).
        """
        zones = self.zones(nid)
        if not zones:
            return None
        top = zones[-1]
        counted = 0
        for start, end in intersect(self.node(nid).ranges, top.start_pfn, top.end_pfn):
            # At pfn p the count is counted + (p - start) + 1; it must exceed one section.
            pfn = section_align_up(max(start, start + PAGES_PER_SECTION - counted))
            if pfn < end:
                return pfn
            counted += end - start
        return None
