"""Machines from a short spec such as ``2x384G,cpus=52``, laid out like a real x86 machine.

Grammar::

    spec   := group ("+" group)* ("," option)*
    group  := [COUNT "x"] SIZE [":" CPUS]        e.g. 2x384G, 64G:8, 1x0:4 (CPU-only)
    option := "cpus=" N                           CPUs per node without ":CPUS" (default:
                                                  the CPUs this process may use)
            | "pci_hole=" SIZE                    MMIO hole below 4 GiB (default 1G)
    SIZE   := NUMBER [K|M|G|T] [B|iB]             binary units; a bare number is bytes

Layout: nodes take consecutive slices of the physical address space, each ``SIZE`` long
(the PCI hole below 4 GiB is skipped, not counted). As on real x86 firmware, page 0 and the
legacy hole 640K-1M are not RAM, and boot reserves low memory (the first 1 MiB since Linux
5.13) and a 32 MiB kernel image at 16 MiB.

A kernel command line (``cmdline=``, e.g. ``"mem=6G movablecore=25% numa=fake=4"``) is
applied as on a boot log: the machine becomes an e820 table and an SRAT (with more than one
node), and the kernel's rules take it from there (see `fastinit.machine.assemble`).
"""

from __future__ import annotations

import re
from fractions import Fraction

from fastinit.host.cpus import usable_cpus
from fastinit.validate import check_type
from fastinit.layout import MAX_DMA32_PFN, MAX_NUMNODES, MAX_PFN, NR_CPUS, PAGE_SHIFT
from fastinit.machine import e820
from fastinit.machine.assemble import Firmware, assemble
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.kernel_rules import NEWEST_RULES, KernelRules, low_reserved
from fastinit.machine.srat import SratBlock
from fastinit.machine.topology import Node, Topology, intersect, subtract

_UNITS = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50}
# ASCII digits only: \d also takes other scripts' digits, which then read as surprises.
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:I?B)?", re.IGNORECASE)
# A group is split at "x" and ":" by these and str.partition, never by one regex: the old
# one backtracked cubically on blanks ("1x64G", 1000 blanks, "z" took a second).
_COUNT = re.compile(r"([0-9]+)\s*[xX*]")
_WHOLE = re.compile(r"[0-9]{1,9}")
# Digits a size may have: 4 PiB, the most 52 bits address, takes 16.
_SIZE_DIGITS = 40

# Page 0 and 640K-1M are never RAM on x86 (BIOS data, legacy VGA and ROMs).
_LOW_HOLES = [(0, 1), (0x9F000 >> PAGE_SHIFT, 0x100000 >> PAGE_SHIFT)]
# Low memory as the kernel generation reserves it (the first 1 MiB since Linux 5.13, 64 KiB
# before: fastinit.mm.plan), and a kernel image at 16 MiB.
_KERNEL_IMAGE = (0x1000000 >> PAGE_SHIFT, 0x3000000 >> PAGE_SHIFT)


def parse_size(text: str, what: str) -> int:
    """Bytes in a size such as ``384G``, ``1.5T``, ``512MiB``; ValueError naming ``what``."""
    match = _SIZE.fullmatch(text.strip())
    shown = repr(text.strip()[:60]) + ("..." if len(text.strip()) > 60 else "")
    if not match:
        raise ValueError(f"{what}: cannot read size {shown}; write a number with an optional "
                         f"unit K, M, G or T (binary), e.g. 64G")
    number, unit = match.groups()
    if len(number) > _SIZE_DIGITS:
        raise ValueError(f"{what}: size {shown} has more than {_SIZE_DIGITS} digits; "
                         f"physical memory ends at 4P, e.g. write 64G")
    # Exact: a float made 400 digits inf (OverflowError) and rounded long fractions.
    value = Fraction(number) * (1 << _UNITS[unit.upper()])
    if value.denominator != 1:
        raise ValueError(f"{what}: size {shown} is not a whole number of bytes")
    return int(value)


def _whole(text: str, what: str, limit: int) -> int:
    """A plain decimal 0..limit, or ValueError naming ``what`` and the text."""
    text = text.strip()
    if not _WHOLE.fullmatch(text) or int(text) > limit:
        raise ValueError(f"{what}: {text[:60]!r} is not a whole number from 0 to {limit}")
    return int(text)


def parse_spec(spec: str, default_cpus: int | None = None,
               cmdline: str | None = None, kernel: KernelRules = NEWEST_RULES) -> Topology:
    """Build a `Topology` from a spec string (see the module docstring).

    Parameters
    ----------
    spec : str
        E.g. ``"2x64G,cpus=8"``.
    default_cpus : int or None
        CPUs per node when the spec names none; None means `usable_cpus()`.
    cmdline : str or None
        A kernel command line to boot the machine with.
    kernel : KernelRules
        The Linux generation to model (`fastinit.machine.kernel_rules`; the newest).

    Returns
    -------
    Topology
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty spec; describe the nodes, e.g. --spec 2x64G,cpus=8")
    # Errors quote the spec, but not all of a pasted megabyte.
    name = f"spec {spec!r}" if len(spec) <= 100 else f"spec {spec[:100]!r}..."
    groups_text, *options = spec.split(",")
    cpus_default = usable_cpus() if default_cpus is None else default_cpus
    pci_hole = 1 << 30
    for option in options:
        key, _, value = option.partition("=")
        key = key.strip().lower()
        if key == "cpus":
            cpus_default = _whole(value, f"{name}, option cpus", NR_CPUS)
            if cpus_default == 0:
                # Memory-only nodes are named one by one; cpus=0 is a slip for cpus=N.
                raise ValueError(f"{name}: cpus=0 gives the nodes no CPUs; write cpus=N with "
                                 f"N >= 1, and a node without CPUs as SIZE:0 (e.g. "
                                 f"2x16G:4+1x8G:0)")

        elif key == "pci_hole":
            pci_hole = parse_size(value, f"{name}, option pci_hole")
            if pci_hole > 3 << 30 or pci_hole % (1 << 20):
                raise ValueError(f"{name}: pci_hole={value.strip()[:60]} must be a whole number "
                                 f"of MiB and at most 3G")
        else:
            raise ValueError(f"{name}: unknown option {option[:60]!r}; known options are "
                             f"cpus=N and pci_hole=SIZE")

    node_sizes: list[tuple[int, int]] = []
    for group in groups_text.split("+"):
        text, count = group.strip(), "1"
        if (match := _COUNT.match(text)) is not None:
            count, text = match.group(1), text[match.end():]
        # Digits counted before int(): no machine has a 10-digit node count.
        if len(count) > 9 or not 1 <= int(count) <= MAX_NUMNODES - len(node_sizes):
            raise ValueError(f"{name}: {count[:20]} nodes; a machine has 1..{MAX_NUMNODES}")
        size_text, colon, cpus_text = text.partition(":")
        if not size_text.strip():
            raise ValueError(f"{name}: cannot read {group[:60]!r}; write COUNTxSIZE[:CPUS], "
                             f"e.g. 2x64G or 64G:8")
        size = parse_size(size_text, name)
        cpus = _whole(cpus_text, f"{name}, CPUs of {group.strip()[:60]!r}",
                      NR_CPUS) if colon else cpus_default
        node_sizes += [(size, cpus)] * int(count)
    source = f"spec {spec.strip()[:100]}{'...' if len(spec.strip()) > 100 else ''}"
    try:
        return layout(node_sizes, pci_hole, source=source, cmdline=cmdline, kernel=kernel)
    except ValueError as error:
        if "no usable memory" not in str(error):
            raise
        # "2x64" is 64 bytes: say so, not only "no usable memory on any node".
        largest = max(size for size, _ in node_sizes)
        if largest == 0:
            raise ValueError(f"{name}: no usable memory: every node has 0 bytes; give at "
                             f"least one node memory, e.g. 2x64G") from None
        raise ValueError(f"{name}: no usable memory on any node: sizes are in bytes unless "
                         f"a unit follows (the largest node here has {largest} bytes); write "
                         f"the unit, e.g. 2x64G") from None


def layout(node_sizes: list[tuple[int, int]], pci_hole: int = 1 << 30,
           source: str = "spec", cmdline: str | None = None,
           kernel: KernelRules = NEWEST_RULES) -> Topology:
    """Lay out nodes of ``(size_bytes, cpus)`` on an x86-like physical address map, booted
    with the kernel command line ``cmdline`` if given."""
    pci_start = MAX_DMA32_PFN - (pci_hole >> PAGE_SHIFT)
    holes = _LOW_HOLES + [(pci_start, MAX_DMA32_PFN)]
    nodes, cursor = [], 0
    for nid, (size, cpus) in enumerate(node_sizes):
        pages = size >> PAGE_SHIFT
        start = cursor
        # The PCI hole is skipped, not counted: a node crossing it extends past 4 GiB.
        end = start + pages + (pci_hole >> PAGE_SHIFT if start < pci_start < start + pages else 0)
        if start >= pci_start and start < MAX_DMA32_PFN:
            start, end = start + (MAX_DMA32_PFN - pci_start), end + (MAX_DMA32_PFN - pci_start)
        if end > MAX_PFN:
            raise ValueError(f"{source}: {sum(s for s, _ in node_sizes) >> 40} TiB in all does "
                             f"not fit the 4 PiB of 52-bit physical memory")
        ranges = subtract([(start, end)], holes) if pages else []
        nodes.append(Node(nid, cpus, tuple(ranges)))
        cursor = end
    memory = [r for node in nodes for r in node.ranges]
    reserved = tuple(r for lo, hi in (low_reserved(kernel), _KERNEL_IMAGE)
                     for r in intersect(memory, lo, hi))
    if cmdline is None:
        return Topology(tuple(nodes), reserved=reserved, source=source, kernel=kernel)
    check_type(cmdline, str, "cmdline", "the text of a kernel command line")
    return assemble(_firmware(nodes, list(reserved)),
                    parse_cmdline(cmdline, sum(size for size, _ in node_sizes)),
                    f"{source} cmdline {cmdline.strip()[:100]!r}", [], kernel)


def _firmware(nodes: list[Node], reserved: list[tuple[int, int]]) -> Firmware:
    """The e820 table and SRAT a firmware would give for the laid-out nodes."""
    table = [(s << PAGE_SHIFT, e << PAGE_SHIFT, e820.E820_RAM) for n in nodes for s, e in n.ranges]
    srat, apic_nodes, apic = [], {}, 0
    if len(nodes) > 1:
        for node in nodes:
            if node.ranges:
                srat.append(SratBlock(node.nid, node.start_pfn << PAGE_SHIFT,
                                      node.end_pfn << PAGE_SHIFT, False, 0))
            apic_nodes[node.nid] = set(range(apic, apic + node.cpus))
            apic += node.cpus
    return Firmware(e820.sanitize(table), srat, apic_nodes, sum(n.cpus for n in nodes),
                    reserved=reserved, crash_logged=False)
