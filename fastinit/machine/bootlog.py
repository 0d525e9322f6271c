"""A machine from a kernel boot log (dmesg): e820 map and its edits, SRAT nodes, CPUs.

Only the lines the kernel itself derives memory from are inputs: the printed e820 tables
(``BIOS-e820:``, ``user:``, ``reserve setup_data:``, ``modified:``), the ``e820: update`` and
``e820: remove`` edits in log order, SRAT memory affinity and ``PXM -> APIC`` lines, and the
boot-time reservations the log shows (NODE_DATA, RAMDISK, crashkernel). What the kernel
printed from them ("Early memory node ranges", zone figures) is read by `fastinit.machine.figures`
and only ever compared, never used as input.

Lines may carry any prefix (``[    0.000000] ``, ``[Tue Nov  4 21:29:37 2025] ``, syslog or
journal ``host kernel: ``); patterns are searched, not anchored. Every pattern runs in time
linear in the line and every number is bounded before use, so any text either parses or
fails with a ValueError naming the line.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace

from fastinit.layout import MAX_NUMNODES, NR_CPUS, PAGE_SHIFT, pfn_up
from fastinit.machine import e820
from fastinit.machine.assemble import Firmware, assemble
from fastinit.machine.cmdline import COMMAND_LINE_SIZE, parse_cmdline
from fastinit.machine.e820_log import STARTS, E820Log
from fastinit.machine.hugetlb_sizes import gbpages_in_log
from fastinit.machine.kernel_image import kernel_image_pfns
from fastinit.machine.kernel_rules import KernelRules, rules_in_log
from fastinit.machine.logfile import read_capped, read_log_bytes
from fastinit.machine.loglines import (MEM_RANGE, bounded_decimal, check_count, line_error,
                                       log_lines, mem_range)
from fastinit.machine.srat import SratBlock
from fastinit.machine.topology import Topology

_SRAT_MEM = re.compile(rf"SRAT: Node (\d+) PXM (\d+) {MEM_RANGE}(.*)")
# How the memory lines begin: one that begins so but does not match in full (cut short,
# garbled) must not be skipped, or the machine would silently lose memory or a node.
_MEMORY_LINE = re.compile(rf"{STARTS}|SRAT: Node \d+ PXM \d+ \[mem")
_SRAT_CPU = re.compile(r"SRAT: PXM (\d+) -> (?:x2)?APIC (0x[0-9a-fA-F]+) -> Node (\d+)")
# x86 announce_cpu(): each secondary CPU as it comes up, under its node's heading. From 6.12
# the SRAT APIC lines are pr_debug, so these are the log's only word on which node a CPU is.
_ANNOUNCE = re.compile(r"\.\.\.\. node  +#(\d+), CPUs:((?: +#\d+)*)")
_CPUS_UP = re.compile(r"(?:smp: Brought up|x86: Booted up) (\d+) nodes?, (\d+) CPUs")
_CPUS_ALLOWED = re.compile(r"(?:smpboot|CPU topo): Allowing (\d+) (?:present )?CPUs"
                           r"(?:,| plus) (\d+) hotplug CPUs")
_CRASH_HEX = re.compile(r"crashkernel reserved: 0x([0-9a-fA-F]+) - 0x([0-9a-fA-F]+) ")
_CRASH_MB = re.compile(r"Reserving (\d+)MB of memory at (\d+)MB for crashkernel")
# swiotlb's bounce buffer (64 MiB below 4 GiB), printed late but taken in mem_init(); the
# end it prints is exclusive, like crashkernel's.
_SWIOTLB = re.compile(rf"software IO TLB: mapped {MEM_RANGE}")
_RESERVED = [re.compile(rf"NODE_DATA(?:\(\d+\) allocated)? {MEM_RANGE}"),
             re.compile(rf"RAMDISK: {MEM_RANGE}"), _CRASH_HEX, _CRASH_MB, _SWIOTLB]
# setup_arch() prints the command line first; start_kernel() again, as "Kernel command line".
_CMDLINE = re.compile(r"Command line: (.*)")
_KERNEL_CMDLINE = re.compile(r"Kernel command line: (.*)")
_KERNEL_NOT_RAM = ".text .data .bss are not marked as E820_TYPE_RAM"
# The kernel's own cap on SRAT memory ranges.
NR_NODE_MEMBLKS = 2 * MAX_NUMNODES
_NO_NUMA = ("No NUMA configuration found", "Faking a node at", "NUMA turned off",
            "SRAT not used", "NUMA: nodes only cover")


@dataclass
class BootLog:
    """What a boot log says, before the model is built from it."""

    source: str
    srat: list[SratBlock] = field(default_factory=list)
    apic_nodes: dict[int, set[int]] = field(default_factory=dict)
    apic_count: int = 0
    # Secondary CPU -> node, from the "... node  #N, CPUs: #a #b" lines.
    announced: dict[int, int] = field(default_factory=dict)
    cpus_up: int | None = None
    numa_off: bool = False
    reserved: list[tuple[int, int]] = field(default_factory=list)
    command_line: str | None = None
    kernel_command_line: str | None = None
    # Where the command line used was printed, for errors: (line number, line).
    command_line_at: tuple[int, str] = (0, "")
    # NUMA emulation printed fake nodes; the zones were printed (the log reaches past
    # emulation, so no "Faking node" line means there were none).
    faked_nodes: bool = False
    zones_printed: bool = False
    # The e820 tables and their edits, as the log printed them.
    e820_log: E820Log = field(default_factory=lambda: E820Log("dmesg"))


def scan(text: str, source: str) -> BootLog:
    """Collect the input lines of a boot log, applying e820 edits in order."""
    log = BootLog(source, e820_log=E820Log(source))
    table = log.e820_log
    for number, line in enumerate(log_lines(text), start=1):
        if "physical RAM map" in line:
            table.table_ends()
        elif ("e820" in line or ": [mem" in line or ": [gap" in line) \
                and table.read(line, number):
            continue
        # Checked before the SRAT lines: the kernel says "SRAT: SRAT not used." itself.
        if any(marker in line for marker in _NO_NUMA):
            log.numa_off = True
        if ("[mem" in line or "[gap" in line or "BIOS-e820" in line) \
                and _MEMORY_LINE.search(line) is not None and _SRAT_MEM.search(line) is None:
            raise line_error(source, number, line, "cannot read this memory map line",
                             "it looks cut short or garbled: restore it from the original log "
                             "or delete it")
        if "SRAT" in line:
            _scan_srat(log, line, number)
            continue
        if "last_pfn = " in line:
            table.memblock_takes()
            continue
        _scan_cpus(log, line, number)
        _scan_reserved(log, line, number)
        if "ommand line: " in line:
            _scan_command_line(log, line, number)
        elif _KERNEL_NOT_RAM in line:
            table.kernel_not_ram = True
        elif "Faking node " in line:
            log.faked_nodes = True
        elif "Zone ranges:" in line:
            log.zones_printed = True
    return log


def _scan_srat(log: BootLog, line: str, number: int) -> None:
    source = log.source
    if (match := _SRAT_MEM.search(line)) is not None:
        start, end = mem_range(match, 3, source, number, line)
        nid = bounded_decimal(match.group(1), MAX_NUMNODES - 1, "node", source, number, line)
        log.srat.append(SratBlock(nid, start, end, "hotplug" in match.group(5), number))
        check_count(len(log.srat), NR_NODE_MEMBLKS, "SRAT memory ranges", source,
                    number, line)
    elif (match := _SRAT_CPU.search(line)) is not None:
        nid = bounded_decimal(match.group(3), MAX_NUMNODES - 1, "node", source, number, line)
        apic, cpus = int(match.group(2), 16), log.apic_nodes.setdefault(nid, set())
        log.apic_count += apic not in cpus
        cpus.add(apic)
        check_count(log.apic_count, NR_CPUS, "CPUs", source, number, line)


def _scan_cpus(log: BootLog, line: str, number: int) -> None:
    if (match := _ANNOUNCE.search(line)) is not None:
        nid = bounded_decimal(match.group(1), MAX_NUMNODES - 1, "node", log.source, number,
                              line)
        for cpu in match.group(2).split():
            log.announced[bounded_decimal(cpu[1:], NR_CPUS - 1, "CPU", log.source, number,
                                          line)] = nid
    elif (match := _CPUS_UP.search(line)) is not None:
        log.cpus_up = bounded_decimal(match.group(2), NR_CPUS, "CPU count", log.source,
                                      number, line)
    elif (match := _CPUS_ALLOWED.search(line)) is not None and log.cpus_up is None:
        allowed, hotplug = (bounded_decimal(match.group(group), NR_CPUS, "CPU count",
                                            log.source, number, line) for group in (1, 2))
        log.cpus_up = max(allowed - hotplug, 1)


def _scan_command_line(log: BootLog, line: str, number: int) -> None:
    # Only the first of each: a later one would be another boot's (or a quoted message).
    if log.command_line is None and (match := _CMDLINE.search(line)) is not None:
        log.command_line = match.group(1)[:COMMAND_LINE_SIZE]
        log.command_line_at = (number, line)
    elif log.kernel_command_line is None and (match := _KERNEL_CMDLINE.search(line)):
        log.kernel_command_line = match.group(1)[:COMMAND_LINE_SIZE]
        if log.command_line is None:
            log.command_line_at = (number, line)


def _scan_reserved(log: BootLog, line: str, number: int) -> None:
    for pattern in _RESERVED:
        if (match := pattern.search(line)) is not None:
            if pattern is _CRASH_MB:
                size, at = (bounded_decimal(match.group(group), e820.MAX_ADDRESS >> 20,
                                            "MB value", log.source, number, line)
                            for group in (1, 2))
                start, end = at << 20, (at + size) << 20
            else:
                start, end = mem_range(match, 1, log.source, number, line,
                                       inclusive=pattern not in (_CRASH_HEX, _SWIOTLB))
            log.reserved.append((start >> PAGE_SHIFT, pfn_up(end)))
            return


def announced_nodes(log: BootLog) -> dict[int, set[int]]:
    """Each node's CPUs from the secondary CPUs' announce lines, for a log without SRAT's
    APIC lines (6.12 on). The boot CPU is never announced: it is taken to be on the lowest
    node the log names (SRAT gives the boot CPU's PXM the first node on QEMU and on the
    usual firmware). Empty (fall back to an even share) unless the announced CPUs and the
    boot CPU make up every CPU brought up."""
    if not log.announced or log.cpus_up != len(log.announced) + 1 or 0 in log.announced:
        return {}
    named = {block.nid for block in log.srat} | set(log.announced.values())
    nodes: dict[int, set[int]] = {min(named): {0}}
    for cpu, nid in log.announced.items():
        nodes.setdefault(nid, set()).add(cpu)
    return nodes


def parse_bootlog(text: str, source: str = "dmesg",
                  kernel: KernelRules | None = None) -> Topology:
    """Build a `Topology` from the text of a kernel boot log.

    ``kernel`` models the log under another generation's rules (default: those of the
    log's ``Linux version`` line, the newest without one).

    Raises
    ------
    ValueError
        Naming the line and the fix, for a log the model cannot use.
    """
    log = scan(text, source)
    if log.e820_log.tables_seen == 0:
        raise ValueError(f"{source}: no e820 memory map found; expected lines like "
                         f"'BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable' "
                         f"(pass the log from the very start of boot)")
    table = log.e820_log.final
    text_line = log.command_line if log.command_line is not None else log.kernel_command_line
    try:
        cmdline = parse_cmdline(text_line or "")
    except ValueError as error:
        raise line_error(source, *log.command_line_at, str(error),
                         "edit the command line in the log") from None
    # The kernel's image, where the log lets us know it (nokaslr): memblock's first
    # reservation.
    image = kernel_image_pfns(text, cmdline, source)
    rules = kernel if kernel is not None else rules_in_log(text)
    reserved = log.reserved + log.e820_log.late_reserved + ([image] if image else [])
    firmware = Firmware(table, log.srat, log.apic_nodes or announced_nodes(log),
                        log.cpus_up, log.numa_off,
                        log.e820_log.user_map, reserved, crash_logged=True)
    notes = []
    if log.e820_log.kernel_not_ram:
        notes.append("the kernel's image lies outside the RAM of the e820 map ('.text .data "
                     ".bss are not marked as E820_TYPE_RAM!') and the log does not say where "
                     "(the kernel prints it only at loglevel=8): the memory ranges derived "
                     "here miss it")
    if cmdline.numa_fake is not None and log.zones_printed and not log.faked_nodes:
        # A build without CONFIG_NUMA_EMU (Debian's cloud kernels) ignores numa=fake=;
        # only the log tells, by printing no fake node.
        notes.append("numa=fake= made no fake nodes (the log has no 'Faking node' line: a "
                     "kernel built without CONFIG_NUMA_EMU, or emulation gave up): "
                     "modelled without NUMA emulation")
        cmdline = replace(cmdline, numa_fake=None)
    topology = assemble(firmware, cmdline, source, notes, rules)
    if gbpages_in_log(text) is False:
        topology = replace(topology, gbpages=False)
    return topology


def read_bootlog(path: str, kernel: KernelRules | None = None) -> tuple[Topology, str]:
    """Read and parse a boot log file (``-`` for stdin); returns the topology and the text.

    ``kernel`` as for `parse_bootlog`."""
    if path == "-":
        text = read_capped(sys.stdin.buffer, "<stdin>").decode("utf-8", errors="replace")
        source = "<stdin>"
    else:
        text = read_log_bytes(path).decode("utf-8", errors="replace")
        source = path
    return parse_bootlog(text, source, kernel), text
