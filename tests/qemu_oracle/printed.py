"""What the kernel printed and reported, read from one boot's serial console.

Written on its own, from the kernel's format strings (mm/page_alloc.c, mm/vmstat.c,
arch/x86/mm/numa*.c of Linux 6.1), and deliberately sharing nothing with fastinit's log
parser: the oracle must not inherit the bugs it is looking for.

The console holds the boot log (at the console level of the command line), then what the
initramfs printed between markers: ``/proc/zoneinfo``, each node's ``nr_hugepages`` per
huge page size, and ``/proc/cmdline``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qemu_oracle import initramfs as marks

PAGE_SHIFT = 12
ZONES = ("DMA", "DMA32", "Normal", "Movable", "Device")

# "[    0.000000] " before every kernel line (CONFIG_PRINTK_TIME); escape codes from the
# firmware may precede the very first one.
_STAMP = re.compile(r"\[\s*\d+\.\d+\] ")
_ADDR = r"0x([0-9a-f]+)"
_ZONE_RANGE = re.compile(rf"^  (DMA32|DMA|Normal|Device)\s+(?:\[mem {_ADDR}-{_ADDR}\]|(empty))$")
_MOVABLE_START = re.compile(rf"^  Node (\d+): {_ADDR}$")
_NODE_RANGE = re.compile(rf"^  node\s+(\d+): \[mem {_ADDR}-{_ADDR}\]$")
_UNAVAILABLE = re.compile(r"^On node (\d+), zone (\w+): (\d+) pages in unavailable ranges")
_ZONEINFO_HEAD = re.compile(r"^Node (\d+), zone\s+(\w+)$")
_ZONEINFO_FIGURE = re.compile(r"^\s+(spanned|present|managed)\s+(\d+)$")
_ZONEINFO_START = re.compile(r"^\s+start_pfn:\s+(\d+)$")
_HUGEPAGES = re.compile(r"/node(\d+)/hugepages/hugepages-(\d+)kB/nr_hugepages (\d+)$")
_DEFERRED = re.compile(r"^node (\d+) deferred pages initialised in (\d+)ms")
_MEMORY = re.compile(r"^Memory: (\d+)K/(\d+)K available")


@dataclass
class KernelReport:
    """The kernel's own figures for one boot (pfns; ranges end-exclusive).

    Attributes
    ----------
    console : str
        The boot log part of the console, as captured (everything before the initramfs
        printed).
    version : str or None
        The ``Linux version`` line's text after ``Linux version``.
    command_line : str or None
        ``Command line:`` as the kernel printed it.
    zone_ranges : dict
        ``"DMA" -> (start, end)`` or None for ``empty``, from "Zone ranges:".
    movable_start : dict
        ``nid -> pfn`` from "Movable zone start for each node".
    node_ranges : dict
        ``nid -> [(start, end), ...]`` from "Early memory node ranges", in print order.
    unavailable : dict
        ``(nid, zone) -> pages``, the sum of that zone's "pages in unavailable ranges" lines.
    zoneinfo : dict
        ``(nid, zone) -> {"spanned", "present", "managed"[, "start_pfn"]}`` from
        /proc/zoneinfo (start_pfn is printed for populated zones only).
    hugepages : dict
        ``nid -> {size_kb: nr_hugepages}`` from sysfs.
    hugetlb_lines : list of str
        The kernel's ``HugeTLB:`` lines (and before 6.0 its ``HugeTLB registered`` ones).
    deferred_ms : dict
        ``nid -> ms`` from "node N deferred pages initialised in Mms".
    physpages_kib : int or None
        The total of "Memory: free/totalK available": every node's present pages, in KiB.
    complete : bool
        The initramfs printed everything and reached power-off.
    panic : str or None
        The kernel's panic line, if it panicked.
    """

    console: str = ""
    version: str | None = None
    command_line: str | None = None
    zone_ranges: dict = field(default_factory=dict)
    movable_start: dict = field(default_factory=dict)
    node_ranges: dict = field(default_factory=dict)
    unavailable: dict = field(default_factory=dict)
    zoneinfo: dict = field(default_factory=dict)
    hugepages: dict = field(default_factory=dict)
    hugetlb_lines: list = field(default_factory=list)
    deferred_ms: dict = field(default_factory=dict)
    physpages_kib: int | None = None
    complete: bool = False
    panic: str | None = None


def _kernel_lines(console: str):
    """The console's kernel messages without their timestamp (other lines skipped)."""
    for raw in console.replace("\r", "").split("\n"):
        match = _STAMP.search(raw)
        if match is not None:
            yield raw[match.end():]


def _pfn_range(start_hex: str, last_hex: str) -> tuple[int, int]:
    # The kernel prints the last byte; ranges here end at the first pfn after it.
    return int(start_hex, 16) >> PAGE_SHIFT, (int(last_hex, 16) + 1) >> PAGE_SHIFT


def _read_console(report: KernelReport) -> None:
    block = None  # which multi-line block the previous lines opened
    for line in _kernel_lines(report.console):
        if line.startswith("Linux version ") and report.version is None:
            report.version = line[len("Linux version "):].strip()
        elif line.startswith("Command line: ") and report.command_line is None:
            report.command_line = line[len("Command line: "):].strip()
        elif line.startswith("Zone ranges:"):
            block = "zones"
            continue
        elif line.startswith("Movable zone start for each node"):
            block = "movable"
            continue
        elif line.startswith("Early memory node ranges"):
            block = "nodes"
            continue
        elif line.startswith(("HugeTLB:", "HugeTLB registered")):  # no colon before 6.0
            report.hugetlb_lines.append(line.strip())
        elif "Kernel panic" in line and report.panic is None:
            report.panic = line.strip()
        if block == "zones" and (match := _ZONE_RANGE.match(line)):
            report.zone_ranges[match.group(1)] = None if match.group(4) else \
                _pfn_range(match.group(2), match.group(3))
            continue
        if block == "movable" and (match := _MOVABLE_START.match(line)):
            report.movable_start[int(match.group(1))] = int(match.group(2), 16) >> PAGE_SHIFT
            continue
        if block == "nodes" and (match := _NODE_RANGE.match(line)):
            report.node_ranges.setdefault(int(match.group(1)), []).append(
                _pfn_range(match.group(2), match.group(3)))
            continue
        block = None
        if match := _UNAVAILABLE.match(line):
            key = (int(match.group(1)), match.group(2))
            report.unavailable[key] = report.unavailable.get(key, 0) + int(match.group(3))
        elif match := _DEFERRED.match(line):
            report.deferred_ms[int(match.group(1))] = int(match.group(2))
        elif (match := _MEMORY.match(line)) and report.physpages_kib is None:
            report.physpages_kib = int(match.group(2))


def _section(lines: list[str], begin: str, end: str) -> list[str] | None:
    try:
        first = lines.index(begin)
        last = lines.index(end, first)
    except ValueError:
        return None
    return lines[first + 1:last]


def _read_zoneinfo(report: KernelReport, lines: list[str]) -> None:
    key = None
    for line in lines:
        if match := _ZONEINFO_HEAD.match(line):
            key = (int(match.group(1)), match.group(2))
            report.zoneinfo[key] = {}
        elif key is not None and (match := _ZONEINFO_FIGURE.match(line)):
            # "present" also appears among per-node stats of newer kernels: first one wins.
            report.zoneinfo[key].setdefault(match.group(1), int(match.group(2)))
        elif key is not None and (match := _ZONEINFO_START.match(line)):
            report.zoneinfo[key]["start_pfn"] = int(match.group(1))


def read_report(serial: str) -> KernelReport:
    """Parse one boot's console (the whole serial output)."""
    lines = serial.replace("\r", "").split("\n")
    # The console part is kept byte for byte (CRLF, firmware escapes): it is what a user
    # would capture and hand to fastinit.
    cut = serial.find(marks.ZONEINFO_BEGIN)
    console = serial if cut < 0 else serial[:serial.rfind("\n", 0, cut) + 1]
    report = KernelReport(console=console)
    _read_console(report)
    zoneinfo = _section(lines, marks.ZONEINFO_BEGIN, marks.ZONEINFO_END)
    hugepages = _section(lines, marks.HUGEPAGES_BEGIN, marks.HUGEPAGES_END)
    if zoneinfo is not None:
        _read_zoneinfo(report, zoneinfo)
    for line in hugepages or ():
        if match := _HUGEPAGES.search(line):
            sizes = report.hugepages.setdefault(int(match.group(1)), {})
            sizes[int(match.group(2))] = int(match.group(3))
    report.complete = (zoneinfo is not None and hugepages is not None
                       and marks.DONE_MARK in lines)
    return report
