"""What the kernel printed about memory it derived itself, to check our derivation against.

A boot log answers its own questions: "Zone ranges", "Early memory node ranges", present
pages per zone ("DMA zone: 3998 pages, LIFO batch:0", until 5.11), node totals, and the
pages in unavailable ranges per node and zone (5.12+). None of this is ever used to build a
topology; `compare` says where the model's figures and the kernel's differ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from fastinit.machine.bootlog import log_lines
from fastinit.layout import MAX_DMA32_PFN, MAX_DMA_PFN, PAGE_SHIFT, ZONE_NAMES
from fastinit.machine.topology import Topology, merge_ranges

# Figures no kernel prints (over 64 bits) are not read, so never compared: a mismatch
# message would print them, and str() refuses an int of over 4300 decimal digits.
_MEM = r"\[mem (?:0x)?([0-9a-fA-F]{1,16})-(?:0x)?([0-9a-fA-F]{1,16})\]"
_N = r"(\d{1,19})(?!\d)"
_ZONE_RANGE = re.compile(rf"^\s+(DMA32|DMA|Normal)\s+(?:{_MEM}|(empty))\s*$")
_NODE_RANGE = re.compile(rf"node\s+{_N}: {_MEM}")
_TOTALPAGES = re.compile(rf"On node {_N} totalpages: {_N}")
_ZONE_PAGES = re.compile(rf"(DMA32|DMA|Normal) zone: {_N} pages, LIFO batch")
_UNAVAILABLE = re.compile(rf"On node {_N}, zone (DMA32|DMA|Normal): {_N} pages in unavailable")
_ZEROED = re.compile(rf"Zeroed struct page in unavailable ranges: {_N} pages")
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
    deferred_ms: dict[int, int] = field(default_factory=dict)


def _pfns(match: re.Match, first: int) -> tuple[int, int]:
    return int(match.group(first), 16) >> PAGE_SHIFT, (int(match.group(first + 1), 16) + 1) >> PAGE_SHIFT


def read_figures(text: str) -> KernelFigures:
    """Collect the kernel's derived memory figures from a boot log's text."""
    figures = KernelFigures()
    in_zone_ranges = False
    node = None
    for line in log_lines(text):
        if "Zone ranges:" in line:
            in_zone_ranges = True
            continue
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


def compare(topology: Topology, figures: KernelFigures) -> tuple[int, list[str]]:
    """Check the model's figures against the kernel's.

    Returns
    -------
    (int, list of str)
        How many figures were compared, and one line per mismatch.
    """
    checked, problems = 0, []

    def check(what: str, kernel, ours):
        nonlocal checked
        checked += 1
        if kernel != ours:
            problems.append(f"{what}: the kernel printed {kernel}, fastinit derives {ours}")

    if figures.zone_ranges:
        ours = derived_zone_ranges(topology, figures.version)
        for name, kernel in figures.zone_ranges.items():
            check(f"zone range {name}", kernel, ours.get(name))
    memory_nids = {n.nid for n in topology.memory_nodes}
    for nid, ranges in figures.node_ranges.items():
        ours = list(topology.node(nid).ranges) if nid in memory_nids else []
        check(f"node {nid} memory ranges", merge_ranges(ranges), merge_ranges(ours))
    for nid, pages in figures.totalpages.items():
        check(f"node {nid} present pages", pages,
              topology.node(nid).present_pages if nid in memory_nids else 0)
    zones = {(z.nid, z.name): z for n in topology.memory_nodes for z in topology.zones(n.nid)}
    for key, pages in figures.zone_present.items():
        check(f"node {key[0]} zone {key[1]} present pages", pages,
              zones[key].present if key in zones else 0)
    ours_unavailable = {(nid, ZONE_NAMES[zid]): pages
                        for (nid, zid), pages in topology.unavailable_pages().items()}
    if figures.unavailable:
        check("pages in unavailable ranges by node and zone", figures.unavailable,
              ours_unavailable)
    if figures.zeroed_unavailable is not None:
        check("pages in unavailable ranges, all nodes", figures.zeroed_unavailable,
              sum(ours_unavailable.values()))
    return checked, problems
