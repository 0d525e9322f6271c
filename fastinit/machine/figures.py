"""What the kernel printed about memory it derived itself, to check our derivation against.

A boot log answers its own questions: "Zone ranges", "Movable zone start for each node",
"Early memory node ranges", present pages per zone ("DMA zone: 3998 pages, LIFO batch:0",
until 5.11), node totals, and the pages in unavailable ranges per node and zone (5.12+).
None of this is ever used to build a topology; `checks` and `compare` say where the model's
figures and the kernel's differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastinit.machine.loglines import MEM_RANGE, log_lines
from fastinit.layout import MAX_DMA32_PFN, MAX_DMA_PFN, PAGE_SHIFT, ZONE_NAMES
from fastinit.machine.topology import Topology, merge_ranges

# Figures no kernel prints (over 64 bits) are not read, so never compared: a mismatch
# message would print them, and str() refuses an int of over 4300 decimal digits.
_N = r"(\d{1,19})(?!\d)"
_ZONE_RANGE = re.compile(rf"^\s+(DMA32|DMA|Normal)\s+(?:{MEM_RANGE}|(empty))\s*$")
_NODE_RANGE = re.compile(rf"node\s+{_N}: {MEM_RANGE}")
_TOTALPAGES = re.compile(rf"On node {_N} totalpages: {_N}")
_ZONE_PAGES = re.compile(rf"(DMA32|DMA|Normal|Movable) zone: {_N} pages, LIFO batch")
_UNAVAILABLE = re.compile(rf"On node {_N}, zone (DMA32|DMA|Normal|Movable): {_N} pages in "
                          rf"unavailable")
_MOVABLE_HEADER = re.compile(r"Movable zone start (?:PFN )?for each node")
# "  Node 1: 0x00000000a0000000" (an address, since 2.6.3x) or a decimal pfn (older).
_MOVABLE_START = re.compile(rf"^\s+Node {_N}: (?:0x([0-9a-fA-F]{{1,16}})|{_N})\s*$")
_ZEROED = re.compile(rf"Zeroed struct page in unavailable ranges: {_N} pages")
# mem_init_print_info(): "Memory: 260860K/2096628K available (...)"; the second figure is
# every node's present pages.
_MEMORY = re.compile(rf"Memory: {_N}K/{_N}K available")
_DEFERRED = re.compile(rf"node {_N} deferred pages initialised in {_N}ms")
_VERSION = re.compile(rf"Linux version {_N}\.{_N}")
# "x86/mm: Fix zone ranges boot printout" (v3.19) clipped the printed limits to the RAM.
_CLIPPED_LIMITS_SINCE = (3, 19)


@dataclass
class KernelFigures:
    """The kernel's own derived figures found in a log (empty where it printed none)."""

    version: tuple[int, int] | None = None
    zone_ranges: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    node_ranges: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    totalpages: dict[int, int] = field(default_factory=dict)
    zone_present: dict[tuple[int, str], int] = field(default_factory=dict)
    unavailable: dict[tuple[int, str], int] = field(default_factory=dict)
    zeroed_unavailable: int | None = None
    physpages_kib: int | None = None
    deferred_ms: dict[int, int] = field(default_factory=dict)
    # None: the log has no "Movable zone start for each node" header to read them from.
    movable_start: dict[int, int] | None = None


@dataclass(frozen=True)
class FigureCheck:
    """One figure: its name, what the kernel printed, and what fastinit derives."""

    name: str
    kernel: object
    ours: object

    @property
    def ok(self) -> bool:
        return self.kernel == self.ours

    def problem(self) -> str:
        return f"{self.name}: the kernel printed {self.kernel}, fastinit derives {self.ours}"


def _pfns(match: re.Match, first: int) -> tuple[int, int]:
    return int(match.group(first), 16) >> PAGE_SHIFT, (int(match.group(first + 1), 16) + 1) >> PAGE_SHIFT


def read_figures(text: str) -> KernelFigures:
    """Collect the kernel's derived memory figures from a boot log's text."""
    figures = KernelFigures()
    in_zone_ranges = in_movable = False
    node = None
    for line in log_lines(text):
        if "Zone ranges:" in line:
            in_zone_ranges = True
            continue
        if _MOVABLE_HEADER.search(line):
            in_zone_ranges, in_movable = False, True
            figures.movable_start = {}
            continue
        if in_movable:
            payload = re.sub(r"^.*?(?=\s+Node \d)", "", line)
            if (match := _MOVABLE_START.match(payload)) is not None:
                pfn = int(match.group(2), 16) >> PAGE_SHIFT if match.group(2) else \
                    int(match.group(3))
                figures.movable_start[int(match.group(1))] = pfn
                continue
            in_movable = False
        if in_zone_ranges:
            payload = re.sub(r"^.*?(?=\s{2}(?:DMA|Normal|Device|Movable))", "", line)
            match = _ZONE_RANGE.match(payload)
            if match:
                figures.zone_ranges[match.group(1)] = None if match.group(4) else _pfns(match, 2)
                continue
            if "Device" not in payload:
                in_zone_ranges = False
        if (match := _NODE_RANGE.search(line)) and "Initmem" not in line:
            figures.node_ranges.setdefault(int(match.group(1)), []).append(_pfns(match, 2))
        elif match := _TOTALPAGES.search(line):
            node = int(match.group(1))
            figures.totalpages[node] = int(match.group(2))
        elif (match := _ZONE_PAGES.search(line)) and node is not None:
            figures.zone_present[(node, match.group(1))] = int(match.group(2))
        elif match := _UNAVAILABLE.search(line):
            key = (int(match.group(1)), match.group(2))
            figures.unavailable[key] = figures.unavailable.get(key, 0) + int(match.group(3))
        elif match := _ZEROED.search(line):
            figures.zeroed_unavailable = int(match.group(1))
        elif figures.physpages_kib is None and (match := _MEMORY.search(line)):
            figures.physpages_kib = int(match.group(2))
        elif match := _DEFERRED.search(line):
            figures.deferred_ms[int(match.group(1))] = int(match.group(2))
        elif figures.version is None and (match := _VERSION.search(line)):
            figures.version = (int(match.group(1)), int(match.group(2)))
    return figures


def derived_zone_ranges(topology: Topology, version: tuple[int, int] | None) -> dict:
    """The "Zone ranges" as the log's kernel version would print them (None = empty)."""
    result = {}
    for name, start, end in topology.zone_ranges():
        if version is not None and version < _CLIPPED_LIMITS_SINCE and name != "Normal":
            end = MAX_DMA_PFN if name == "DMA" else MAX_DMA32_PFN
        result[name] = (start, end) if end > start else None
    return result


def checks(topology: Topology, figures: KernelFigures) -> list[FigureCheck]:
    """Every figure the kernel printed, next to the model's."""
    result = []
    if figures.zone_ranges:
        ours = derived_zone_ranges(topology, figures.version)
        for name, kernel in figures.zone_ranges.items():
            result.append(FigureCheck(f"zone range {name}", kernel, ours.get(name)))
    if figures.movable_start is not None:
        result.append(FigureCheck("Movable zone start for each node (pfn)",
                                  figures.movable_start, topology.movable_start))
    memory_nids = {n.nid for n in topology.memory_nodes}
    for nid, ranges in figures.node_ranges.items():
        ours = list(topology.node(nid).ranges) if nid in memory_nids else []
        result.append(FigureCheck(f"node {nid} memory ranges", merge_ranges(ranges),
                                  merge_ranges(ours)))
    for nid, pages in figures.totalpages.items():
        result.append(FigureCheck(f"node {nid} present pages", pages,
                                  topology.node(nid).present_pages if nid in memory_nids else 0))
    zones = {(z.nid, z.name): z for n in topology.memory_nodes for z in topology.zones(n.nid)}
    for key, pages in figures.zone_present.items():
        result.append(FigureCheck(f"node {key[0]} zone {key[1]} present pages", pages,
                                  zones[key].present if key in zones else 0))
    ours_unavailable = {(nid, ZONE_NAMES[zid]): pages
                        for (nid, zid), pages in topology.unavailable_pages().items()}
    if figures.unavailable:
        result.append(FigureCheck("pages in unavailable ranges by node and zone",
                                  figures.unavailable, ours_unavailable))
    if figures.physpages_kib is not None:
        result.append(FigureCheck("present memory, all nodes (KiB, the Memory: line)",
                                  figures.physpages_kib,
                                  topology.present_pages << PAGE_SHIFT >> 10))
    if figures.zeroed_unavailable is not None:
        result.append(FigureCheck("pages in unavailable ranges, all nodes",
                                  figures.zeroed_unavailable, sum(ours_unavailable.values())))
    return result


def compare(topology: Topology, figures: KernelFigures) -> tuple[int, list[str]]:
    """Check the model's figures against the kernel's.

    Returns
    -------
    (int, list of str)
        How many figures were compared, and one line per mismatch.
    """
    found = checks(topology, figures)
    return len(found), [check.problem() for check in found if not check.ok]
