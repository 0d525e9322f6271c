"""The HugeTLB options of a kernel command line, read the way Linux 6.1 reads them.

``hugepagesz=``, ``hugepages=`` (a count, or per node ``0:N,1:M``), ``default_hugepagesz=``
and ``hugetlb_free_vmemmap=`` are handled in command-line order by handlers that keep state
between them (``mm/hugetlb.c``), so their meaning depends on their order: a ``hugepages=``
applies to the size named before it, a first ``hugepages=`` with no size before it to the
default size, a size given twice is ignored, and so on. `parse_hugetlb` replays those
handlers on `fastinit.machine.cmdline.KernelCmdline.params` and returns the huge page sizes
the kernel registers (in its order), how many pages of each it will try to allocate (and on
which nodes), and every warning the kernel prints on the way, in its words.

The sizes themselves are in `fastinit.machine.hugetlb_sizes`. With ``pdpe1gb`` the 1 GiB
size is registered even
without options (``gigantic_pages_init()``, an arch initcall), after any size the command
line registered and before the 2 MiB size that ``hugetlb_init()`` adds last.
"""

from __future__ import annotations

from fastinit.validate import check_type
from fastinit.layout import MAX_NUMNODES, PAGE_SHIFT
from fastinit.machine.cmdline import KernelCmdline
from fastinit.machine.hugetlb_sizes import (ORDER_1G, ORDER_2M, HugepageRequest, HugetlbParams,
                                            size_text)
from fastinit.machine.kernel_rules import NEWEST_RULES, KernelRules
from fastinit.machine.numbers import U64_MAX, memparse


class _Parser:
    """The state ``mm/hugetlb.c`` keeps between its command-line handlers."""

    def __init__(self, online: frozenset[int], gbpages: bool, per_node: bool = True):
        self.online, self.gbpages, self.per_node = online, gbpages, per_node
        self.orders: list[int] = []
        self.counts: dict[int, int] = {}
        self.nodes: dict[int, dict[int, int]] = {}
        self.parsed: int | None = None          # parsed_hstate, by order
        self.valid = True                       # parsed_valid_hugepagesz
        self.parsed_default = False             # parsed_default_hugepagesz
        self.default_order: int | None = None   # default_hstate_idx, by order
        self.default_max = 0                    # default_hstate_max_huge_pages
        self.default_nodes: dict[int, int] = {}  # default_hugepages_in_node
        self.last_target: object = None          # last_mhp
        self.allocated_at: dict[int, int] = {}   # gigantic order -> warnings before it
        self.free_vmemmap = False
        self.warnings: list[str] = []

    def valid_size(self, size: int) -> bool:
        # arch_hugetlb_valid_size(): PMD_SIZE always, PUD_SIZE with X86_FEATURE_GBPAGES.
        return size == 1 << (ORDER_2M + PAGE_SHIFT) or \
            (size == 1 << (ORDER_1G + PAGE_SHIFT) and self.gbpages)

    def add_hstate(self, order: int) -> None:
        if order in self.orders:
            return
        self.orders.append(order)
        self.counts[order], self.nodes[order] = 0, {}
        self.parsed = order

    def default_hstate(self) -> int | None:
        # default_hstate is hstates[default_hstate_idx]; the index starts at 0.
        return self.default_order if self.default_order is not None else \
            (self.orders[0] if self.orders else None)

    def size_order(self, option: str, text: str) -> int | None:
        """The order of the huge page size ``option=text`` names, or None (and the
        kernel's warning) if this CPU has no such size."""
        size = memparse(text)[0]
        if not self.valid_size(size):
            self.warnings.append(f"HugeTLB: unsupported {option}={text}")
            return None
        return size.bit_length() - 1 - PAGE_SHIFT

    def hugepagesz(self, text: str) -> None:
        self.valid = False
        order = self.size_order("hugepagesz", text)
        if order is None:
            return
        if order in self.orders:
            default = self.default_hstate()
            if not self.parsed_default or order != default or self.counts[order]:
                self.warnings.append(f"HugeTLB: hugepagesz={text} specified twice, ignoring")
                return
            self.parsed, self.valid = order, True
            return
        self.add_hstate(order)
        self.valid = True

    def default_hugepagesz(self, text: str) -> None:
        self.valid = False
        if self.parsed_default:
            self.warnings.append(f"HugeTLB: default_hugepagesz previously specified, "
                                 f"ignoring {text}")
            return
        order = self.size_order("default_hugepagesz", text)
        if order is None:
            return
        # An existing hstate is not made the parsed one (hugetlb_add_hstate() returns).
        self.add_hstate(order)
        self.valid = self.parsed_default = True
        self.default_order = order
        if self.default_max:
            # A gigantic default size is allocated right here, from memblock.
            self.counts[order] = self.default_max
            self.nodes[order] = dict(self.default_nodes)
            self.default_max = 0
            self.allocated_at[order] = len(self.warnings)

    def hugepages(self, text: str) -> None:
        if not self.valid:
            self.warnings.append(f"HugeTLB: hugepages={text} does not follow a valid "
                                 f"hugepagesz, ignoring")
            self.valid = True
            return
        target = "default" if not self.orders else self.parsed
        if target == self.last_target:
            self.warnings.append(f"HugeTLB: hugepages= specified twice without interleaving "
                                 f"hugepagesz=, ignoring hugepages={text}")
            return
        nodes = self.default_nodes if target == "default" else self.nodes[target]
        count = self.default_max if target == "default" else self.counts[target]
        rest = text
        if not self.per_node:
            # Before 5.16 (kernel rule hugepages_per_node): sscanf("%lu") of the leading
            # number, 0 when there is none, the rest ignored, nothing said.
            count, rest = _scan_ulong(text)[0] or 0, ""
        while rest:
            number, after = _scan_ulong(rest)
            if number is None:
                return self.invalid(rest, target)
            if not after.startswith(":"):
                if rest != text:
                    return self.invalid(rest, target)
                count = number
                break
            if number >= MAX_NUMNODES or number not in self.online:
                return self.invalid(rest, target)
            pages, tail = _scan_ulong(after[1:])
            if pages is None:
                return self.invalid(after[1:], target)
            # Each node's count is added to the size's total (a repeated node overwrites
            # its own count but adds again: the kernel's arithmetic).
            nodes[number] = pages
            count = (count + pages) & U64_MAX
            if not tail.startswith(","):
                break
            rest = tail[1:]
        if target == "default":
            self.default_max = count
        else:
            # A gigantic size is allocated right here, from memblock.
            self.counts[target] = count
            self.allocated_at[target] = len(self.warnings)
        self.last_target = target

    def invalid(self, rest: str, target) -> None:
        self.warnings.append(f"HugeTLB: Invalid hugepages parameter {rest}")
        # hugepages_clear_pages_in_node(): forget this size's count and node counts.
        if target == "default":
            self.default_max, self.default_nodes = 0, {}
        else:
            self.counts[target], self.nodes[target] = 0, {}

    def free_vmemmap_param(self, value: str | None) -> None:
        # A bool core_param: no value means on; otherwise kstrtobool().
        text = "1" if value is None else value
        first, second = text[:1], text[1:2]
        if first in ("y", "Y", "t", "T", "1"):
            self.free_vmemmap = True
        elif first in ("n", "N", "f", "F", "0"):
            self.free_vmemmap = False
        elif first in ("o", "O") and second in ("n", "N", "f", "F"):
            self.free_vmemmap = second in ("n", "N")
        else:
            self.warnings.append(f"Booting kernel: `{text}' invalid for parameter "
                                 f"`hugetlb_free_vmemmap'")

    def hugetlb_init(self) -> None:
        """What ``gigantic_pages_init()`` and ``hugetlb_init()`` add after parsing."""
        if self.gbpages:
            self.add_hstate(ORDER_1G)
        self.add_hstate(ORDER_2M)
        if self.parsed_default:
            return
        self.default_order = ORDER_2M
        if self.default_max:
            if self.counts[ORDER_2M]:
                name = size_text(ORDER_2M)
                self.warnings.append(f"HugeTLB: Ignoring hugepages={self.counts[ORDER_2M]} "
                                     f"associated with {name} page size")
                self.warnings.append(f"HugeTLB: Using hugepages={self.default_max} for "
                                     f"number of default huge pages")
            self.counts[ORDER_2M] = self.default_max
            self.nodes[ORDER_2M] = dict(self.default_nodes)


def _scan_ulong(text: str) -> tuple[int | None, str]:
    """``sscanf(text, "%lu%n")``: blanks, then decimal digits, the value wrapping at 64
    bits over every digit (``simple_strntoull()``). An unsigned conversion takes no sign:
    ``-5`` or ``+5`` converts nothing, and the kernel says the parameter is invalid."""
    index = len(text) - len(text.lstrip(" \t\n\v\f\r"))
    start = index
    while index < len(text) and text[index].isascii() and text[index].isdigit():
        index += 1
    if index == start:
        return None, text
    value = 0
    # In pieces: Python's int() refuses more than 4300 digits at once.
    for piece in range(start, index, _DIGITS_AT_ONCE):
        digits = text[piece:min(index, piece + _DIGITS_AT_ONCE)]
        value = (value * 10 ** len(digits) + int(digits)) & U64_MAX
    return value, text[index:]


_DIGITS_AT_ONCE = 1000


def parse_hugetlb(cmdline: KernelCmdline, online_nodes, gbpages: bool = True,
                  kernel: KernelRules = NEWEST_RULES) -> HugetlbParams:
    """Replay the kernel's HugeTLB option handlers on a command line.

    Parameters
    ----------
    cmdline : KernelCmdline
        The parsed command line (its ``params`` in order).
    online_nodes : iterable of int
        Nodes online when the options are handled (nodes with memory or CPUs): the
        per-node form of ``hugepages=`` accepts only those.
    gbpages : bool
        The CPU has 1 GiB pages (``pdpe1gb``); without it ``hugepagesz=1G`` is refused.
    kernel : KernelRules
        The generation whose handlers run (the per-node form since 5.16).

    Returns
    -------
    HugetlbParams
    """
    check_type(cmdline, KernelCmdline, "cmdline", "a fastinit.machine.cmdline.KernelCmdline")
    parser = _Parser(frozenset(int(n) for n in online_nodes), bool(gbpages),
                     kernel.has("hugepages_per_node"))
    for name, value in cmdline.params:
        key = name.replace("-", "_")
        if key == "hugetlb_free_vmemmap":
            parser.free_vmemmap_param(value)
        elif value is None:
            continue  # __setup("hugepages=") matches only with the '='
        elif key == "hugepagesz":
            parser.hugepagesz(value)
        elif key == "default_hugepagesz":
            parser.default_hugepagesz(value)
        elif key == "hugepages":
            parser.hugepages(value)
    parser.hugetlb_init()
    hstates = tuple(HugepageRequest(order, parser.counts[order],
                                    tuple(sorted((nid, n) for nid, n in
                                                 parser.nodes[order].items() if n)),
                                    parser.allocated_at.get(order, len(parser.warnings)))
                    for order in parser.orders)
    return HugetlbParams(hstates, parser.default_order, parser.free_vmemmap,
                         tuple(parser.warnings))
