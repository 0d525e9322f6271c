"""A machine from a kernel boot log (dmesg): e820 map and its edits, SRAT nodes, CPUs.

Only the lines the kernel itself derives memory from are inputs: the printed e820 tables
(``BIOS-e820:``, ``user:``, ``reserve setup_data:``, ``modified:``), the ``e820: update`` and
``e820: remove`` edits in log order, SRAT memory affinity and ``PXM -> APIC`` lines, and the
boot-time reservations the log shows (NODE_DATA, RAMDISK, crashkernel). What the kernel
printed from them ("Early memory node ranges", zone figures) is read by `fastinit.logfigures`
and only ever compared, never used as input.

Lines may carry any prefix (``[    0.000000] ``, ``[Tue Nov  4 21:29:37 2025] ``, syslog or
journal ``host kernel: ``); patterns are searched, not anchored.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fastinit import e820
from fastinit.page import MAX_NUMNODES, PAGE_SHIFT, PAGE_SIZE
from fastinit.topology import Node, Topology, intersect, merge_ranges

_HEX = r"(?:0x)?([0-9a-fA-F]+)"
_MEM = rf"\[mem {_HEX}-{_HEX}\]"
# A printed e820 table line: "BIOS-e820: [mem a-b] type", also "user:", "modified:", ...
_TABLE = re.compile(rf"(BIOS-e820|user|modified|reserve setup_data|extended): {_MEM}\s+(.*?)\s*$")
# Linux 2.6 printed "BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)", end exclusive.
_TABLE_OLD = re.compile(r"BIOS-e820: ([0-9a-fA-F]{8,16}) - ([0-9a-fA-F]{8,16}) \((.*)\)\s*$")
_UPDATE = re.compile(rf"e820: update {_MEM} (.+?) ==> (.+?)\s*$")
_REMOVE = re.compile(rf"e820: remove {_MEM}\s*(.*?)\s*$")
_SRAT_MEM = re.compile(rf"SRAT: Node (\d+) PXM (\d+) {_MEM}(.*)$")
_SRAT_CPU = re.compile(r"SRAT: PXM (\d+) -> (?:x2)?APIC (0x[0-9a-fA-F]+) -> Node (\d+)")
_CPUS_UP = re.compile(r"(?:smp: Brought up|x86: Booted up) (\d+) nodes?, (\d+) CPUs")
_CPUS_ALLOWED = re.compile(r"(?:smpboot|CPU topo): Allowing (\d+) (?:present )?CPUs"
                           r"(?:,| plus) (\d+) hotplug CPUs")
_CRASH_HEX = re.compile(r"crashkernel reserved: 0x([0-9a-fA-F]+) - 0x([0-9a-fA-F]+) ")
_CRASH_MB = re.compile(r"Reserving (\d+)MB of memory at (\d+)MB for crashkernel")
_RESERVED = [re.compile(rf"NODE_DATA(?:\(\d+\) allocated)? {_MEM}"),
             re.compile(rf"RAMDISK: {_MEM}"), _CRASH_HEX, _CRASH_MB]
_VERSION = re.compile(r"Linux version (\d+)\.(\d+)")
# The kernel's own caps: E820_MAX_ENTRIES (128 + 3 * MAX_NUMNODES), NR_NODE_MEMBLKS.
E820_MAX_ENTRIES = 128 + 3 * MAX_NUMNODES
NR_NODE_MEMBLKS = 2 * MAX_NUMNODES
_NO_NUMA = ("No NUMA configuration found", "Faking a node at", "NUMA turned off",
            "SRAT not used", "NUMA: nodes only cover")


@dataclass
class _Srat:
    nid: int
    start: int
    end: int
    hotplug: bool
    line: int


@dataclass
class BootLog:
    """What a boot log says, before the model is built from it."""

    source: str
    table: list[e820.Entry] = field(default_factory=list)
    srat: list[_Srat] = field(default_factory=list)
    apic_nodes: dict[int, set[int]] = field(default_factory=dict)
    cpus_up: int | None = None
    numa_off: bool = False
    reserved: list[tuple[int, int]] = field(default_factory=list)
    version: tuple[int, int] | None = None
    tables_seen: int = 0
    # The table as memblock took it: e820 edits printed after the last "last_pfn" line
    # come after e820__memblock_setup() and only reserve memory (EFI ESRT, memreserve).
    memblock_table: list[e820.Entry] | None = None
    late_reserved: list[tuple[int, int]] = field(default_factory=list)


def _error(source: str, number: int, line: str, problem: str, fix: str) -> ValueError:
    return ValueError(f"{source}:{number}: {problem}: {line.strip()[:160]!r}; {fix}")


def _mem_range(match: re.Match, first: int, source: str, number: int, line: str,
               inclusive: bool = True) -> tuple[int, int]:
    start, last = int(match.group(first), 16), int(match.group(first + 1), 16)
    end = last + 1 if inclusive else last
    if end <= start:
        raise _error(source, number, line, "range ends before it starts",
                     "fix or delete the line")
    if end > e820.MAX_ADDRESS:
        raise _error(source, number, line, "address beyond 52-bit physical memory",
                     "fix or delete the line")
    return start, end


def _type(text: str, source: str, number: int, line: str) -> int:
    try:
        return e820.parse_type(text)
    except ValueError as error:
        raise _error(source, number, line, str(error),
                     "use a type the kernel prints (usable, reserved, ACPI data, ACPI NVS, "
                     "unusable, persistent (type N), type N)") from None


def _check_count(count: int, limit: int, what: str, source: str, number: int, line: str):
    if count > limit:
        raise _error(source, number, line, f"more than {limit} {what}",
                     f"no kernel keeps more ({what} are capped at {limit}); "
                     f"this is not one boot's log")


def scan(text: str, source: str) -> BootLog:
    """Collect the input lines of a boot log, applying e820 edits in order."""
    log = BootLog(source)
    table_label = None
    edits = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        if "physical RAM map" in line:
            table_label = None
        elif "e820" in line or ": [mem" in line:
            match = _TABLE.search(line) or _TABLE_OLD.search(line)
            if match is not None:
                old_format = match.re is _TABLE_OLD
                label = "BIOS-e820" if old_format else match.group(1)
                start, end = _mem_range(match, 1 if old_format else 2, source, number, line,
                                        inclusive=not old_format)
                kind = _type(match.group(3 if old_format else 4), source, number, line)
                if label != table_label:  # a newly printed table replaces the old one
                    log.table, table_label = [], label
                    log.tables_seen += 1
                    log.memblock_table, log.late_reserved = None, []
                log.table.append((start, end, kind))
                _check_count(len(log.table), E820_MAX_ENTRIES, "e820 entries", source,
                             number, line)
                continue
            if (match := _UPDATE.search(line)) is not None:
                start, end = _mem_range(match, 1, source, number, line)
                old = _type(match.group(3), source, number, line)
                new = _type(match.group(4), source, number, line)
                if old == e820.E820_RAM and new == e820.E820_RAM:
                    new = e820.E820_RESERVED_KERN  # setup_data: still RAM, printed "usable"
                log.table = e820.update(e820.sanitize(log.table), start, end, old, new)
                if log.memblock_table is not None and not e820.is_memory(new):
                    log.late_reserved.append((start >> PAGE_SHIFT, -(-end // PAGE_SIZE)))
            elif (match := _REMOVE.search(line)) is not None:
                start, end = _mem_range(match, 1, source, number, line)
                old = _type(match.group(3), source, number, line) if match.group(3) else None
                log.table = e820.remove(e820.sanitize(log.table), start, end, old)
            else:
                continue
            table_label = None
            edits += 1
            _check_count(edits, E820_MAX_ENTRIES, "e820 edits", source, number, line)
            continue
        if "last_pfn = " in line and log.tables_seen:
            log.memblock_table, log.late_reserved = list(log.table), []
            continue
        if "SRAT" in line:
            if (match := _SRAT_MEM.search(line)) is not None:
                start, end = _mem_range(match, 3, source, number, line)
                nid = int(match.group(1))
                if nid >= MAX_NUMNODES:
                    raise _error(source, number, line, f"node {nid} beyond {MAX_NUMNODES - 1}",
                                 "fix the node number")
                log.srat.append(_Srat(nid, start, end, "hotplug" in match.group(5), number))
                _check_count(len(log.srat), NR_NODE_MEMBLKS, "SRAT memory ranges", source,
                             number, line)
            elif (match := _SRAT_CPU.search(line)) is not None:
                nid = int(match.group(3))
                if nid < MAX_NUMNODES:
                    log.apic_nodes.setdefault(nid, set()).add(int(match.group(2), 16))
            continue
        if (match := _CPUS_UP.search(line)) is not None:
            log.cpus_up = int(match.group(2))
        elif (match := _CPUS_ALLOWED.search(line)) is not None and log.cpus_up is None:
            log.cpus_up = max(int(match.group(1)) - int(match.group(2)), 1)
        if any(marker in line for marker in _NO_NUMA):
            log.numa_off = True
        _scan_reserved(log, line, number)
        if log.version is None and (match := _VERSION.search(line)) is not None:
            log.version = (int(match.group(1)), int(match.group(2)))
    return log


def _scan_reserved(log: BootLog, line: str, number: int) -> None:
    for pattern in _RESERVED:
        if (match := pattern.search(line)) is not None:
            if pattern is _CRASH_MB:
                start = int(match.group(2)) << 20
                end = start + (int(match.group(1)) << 20)
            else:
                start, end = _mem_range(match, 1, log.source, number, line,
                                        inclusive=pattern is not _CRASH_HEX)
            log.reserved.append((start >> PAGE_SHIFT, -(-end // PAGE_SIZE)))
            return


def _node_memory(log: BootLog, memory: list[tuple[int, int]],
                 notes: list[str]) -> dict[int, list[tuple[int, int]]]:
    """Split memory between nodes by SRAT, or one node when NUMA is off or unusable."""
    if log.numa_off or not log.srat:
        return {0: memory}
    blocks = sorted(log.srat, key=lambda b: b.start)
    for a, b in zip(blocks, blocks[1:]):
        if b.start < a.end and a.nid != b.nid:
            raise ValueError(f"{log.source}:{b.line}: SRAT gives [mem {b.start:#x}-"
                             f"{min(a.end, b.end) - 1:#x}] to node {b.nid}, but line {a.line} "
                             f"gives it to node {a.nid}; a log with contradicting SRAT "
                             f"entries cannot describe one machine: remove one of the lines")
    top = max(e for _, e in memory) << PAGE_SHIFT
    for block in blocks:
        if block.start >= top and not block.hotplug:
            raise ValueError(f"{log.source}:{block.line}: SRAT range [mem {block.start:#x}-"
                             f"{block.end - 1:#x}] of node {block.nid} lies beyond all usable "
                             f"RAM (which ends at {top - 1:#x}); the e820 map looks truncated: "
                             f"add the missing BIOS-e820 lines or mark the range hotplug")
    nodes: dict[int, list[tuple[int, int]]] = {}
    covered = 0
    for block in blocks:
        lo, hi = -(-block.start // PAGE_SIZE), block.end >> PAGE_SHIFT
        parts = intersect(memory, lo, hi)
        nodes.setdefault(block.nid, []).extend(parts)
        covered += sum(e - s for s, e in parts)
    total = sum(e - s for s, e in memory)
    # The kernel gives up on NUMA when SRAT leaves 1 MiB or more of RAM without a node.
    if total - covered >= (1 << 20) >> PAGE_SHIFT:
        notes.append(f"SRAT covers only {covered << PAGE_SHIFT >> 20} of "
                     f"{total << PAGE_SHIFT >> 20} MiB of RAM; like the kernel, using one node")
        return {0: memory}
    if covered < total:
        notes.append(f"{total - covered} pages of RAM are in no SRAT range and get no node")
    return nodes


def _cpus_per_node(log: BootLog, nids: list[int], notes: list[str]) -> dict[int, int]:
    if log.apic_nodes and not log.numa_off:
        return {nid: len(log.apic_nodes.get(nid, ())) for nid in nids}
    total = log.cpus_up
    if total is None:
        notes.append("the log names no CPU count; assuming 1 CPU per node")
        return {nid: 1 for nid in nids}
    share, extra = divmod(total, len(nids))
    return {nid: share + (i < extra) for i, nid in enumerate(nids)}


def parse_bootlog(text: str, source: str = "dmesg") -> Topology:
    """Build a `Topology` from the text of a kernel boot log.

    Raises
    ------
    ValueError
        Naming the line and the fix, for a log the model cannot use.
    """
    log = scan(text, source)
    if log.tables_seen == 0:
        raise ValueError(f"{source}: no e820 memory map found; expected lines like "
                         f"'BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable' "
                         f"(pass the log from the very start of boot)")
    table = e820.sanitize(log.table if log.memblock_table is None else log.memblock_table)
    memory = e820.memory_pfn_ranges(table)
    if not memory:
        raise ValueError(f"{source}: the e820 map has no usable RAM of a whole page; "
                         f"check that the BIOS-e820 lines are complete")
    notes: list[str] = []
    by_node = _node_memory(log, memory, notes)
    cpu_nids = set() if log.numa_off else set(log.apic_nodes)
    nids = sorted(set(by_node) | cpu_nids)
    cpus = _cpus_per_node(log, nids, notes)
    nodes = tuple(Node(nid, cpus[nid], tuple(merge_ranges(by_node.get(nid, [])))) for nid in nids)
    reserved = tuple(merge_ranges([r for s, e in log.reserved + log.late_reserved
                                   for r in intersect(memory, s, e)]))
    return Topology(nodes, reserved=reserved, source=source, notes=tuple(notes))


def read_bootlog(path: str) -> tuple[Topology, str]:
    """Read and parse a boot log file (``-`` for stdin); returns the topology and the text."""
    if path == "-":
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        source = "<stdin>"
    else:
        try:
            text = Path(path).read_bytes().decode("utf-8", errors="replace")
        except OSError as error:
            raise ValueError(f"cannot read boot log {path!r}: {error.strerror}") from None
        source = path
    return parse_bootlog(text, source), text
