"""From what the firmware describes to the machine the kernel sets up.

Boot logs and specs both end here: an e820 table, SRAT blocks and CPUs, and the kernel
command line. In the kernel's order: the command line's ``mem=``/``memmap=`` edits (unless
the source's table already shows them), the BIOS trims (page 0, 640K-1M), memblock memory,
NUMA nodes from SRAT or one node (``numa=off``, ``numa=noacpi``, or SRAT the kernel would not
use), NUMA emulation (``numa=fake=``), then the nodes' CPUs and the reservations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fastinit.layout import PAGE_SHIFT
from fastinit.machine import e820
from fastinit.machine.cmdline import KernelCmdline
from fastinit.machine.crashkernel import place_crashkernel
from fastinit.machine.kernel_rules import NEWEST_RULES, KernelRules
from fastinit.machine.numa_emu import emulate
from fastinit.machine.ranges import Range, intersect, merge_ranges
from fastinit.machine.srat import MemBlock, SratBlock, cpus_per_node, node_memory, srat_meminfo
from fastinit.machine.topology import Node, Topology

@dataclass
class Firmware:
    """What a source says about the machine before the kernel's command line acts.

    Attributes
    ----------
    table : list of (int, int, int)
        The e820 table (bytes, end exclusive).
    srat : list of SratBlock
        SRAT memory blocks in table order (empty: no SRAT).
    apic_nodes : dict
        ``nid -> APIC ids`` from SRAT's CPU entries.
    cpus_up : int or None
        CPUs the kernel brought up, when known.
    numa_off : bool
        The source says the kernel used no NUMA information.
    user_map : bool
        The table is the "user-defined" one: the command line's e820 edits are in it.
    reserved : list of (int, int)
        memblock reservations the source shows (pfn ranges).
    crash_logged : bool
        The source shows where crashkernel= memory went (a log); otherwise it is placed.
    """

    table: list[e820.Entry]
    srat: list[SratBlock] = field(default_factory=list)
    apic_nodes: dict[int, set[int]] = field(default_factory=dict)
    cpus_up: int | None = None
    numa_off: bool = False
    user_map: bool = False
    reserved: list[Range] = field(default_factory=list)
    crash_logged: bool = True


def end_of_ram_pfn(table: list[e820.Entry]) -> int:
    """``e820__end_of_ram_pfn()``: the end of the last RAM entry, in whole pages."""
    return max((end >> PAGE_SHIFT for _, end, kind in table if kind == e820.E820_RAM),
               default=0)


def assemble(firmware: Firmware, cmdline: KernelCmdline, source: str,
             notes: list[str], kernel: KernelRules = NEWEST_RULES) -> Topology:
    """The machine the kernel sets up from ``firmware`` with ``cmdline``, under the rules
    of ``kernel``.

    Raises
    ------
    ValueError
        When no RAM is left, or SRAT cannot describe one machine.
    """
    table = firmware.table
    if cmdline.e820_edits and not firmware.user_map:
        table = e820.apply_edits(table, cmdline.e820_edits)
    table = e820.trim_bios(table, page0=not kernel.has("page0_e820_ram"))
    memory = e820.memory_pfn_ranges(table)
    if not memory:
        raise ValueError(f"{source}: the e820 map has no usable RAM of a whole page; "
                         f"check that the BIOS-e820 lines (and mem=/memmap= options) "
                         f"leave some")
    max_pfn = max(end_of_ram_pfn(table), memory[-1][1])
    notes += list(cmdline.warnings)
    blocks = None
    if not (firmware.numa_off or cmdline.numa_off or cmdline.numa_noacpi):
        blocks = srat_meminfo(firmware.srat, memory, max_pfn, source, notes,
                              ram_cut=bool(cmdline.e820_edits))
    numa = blocks is not None
    parsed = sorted({b.nid for b in firmware.srat} | set(firmware.apic_nodes)) if numa else [0]
    # Without NUMA the kernel fakes one node over all of RAM (dummy_numa_init()).
    blocks = blocks if numa else [MemBlock(0, 0, max_pfn << PAGE_SHIFT)]
    cpus = cpus_per_node(firmware.apic_nodes, firmware.cpus_up, parsed, numa, notes)
    if cmdline.numa_fake is not None:
        emulated = emulate(cmdline.numa_fake, blocks, parsed, memory, max_pfn, notes,
                           generic=kernel.has("numa_emu_generic"))
        if emulated is not None:
            blocks, to_physical = emulated
            # Each fake node has the CPUs of the physical node it was cut from.
            cpus = {nid: cpus.get(phys, 0) for nid, phys in to_physical.items()}
            parsed = sorted(to_physical)
    by_node = node_memory(blocks, memory)
    nodes = tuple(Node(nid, cpus.get(nid, 0), tuple(by_node.get(nid, []))) for nid in parsed)
    # Clipped to the memory nodes got: RAM in no SRAT range is no node's to reserve.
    noded = merge_ranges(r for node in nodes for r in node.ranges)
    reserved = [r for s, e in firmware.reserved for r in intersect(noded, s, e)]
    if not firmware.crash_logged:
        reserved += place_crashkernel(cmdline.crashkernel, noded, merge_ranges(reserved),
                                      notes)
    return Topology(nodes, reserved=tuple(merge_ranges(reserved)), source=source,
                    notes=tuple(notes), cmdline=cmdline, kernel=kernel)
