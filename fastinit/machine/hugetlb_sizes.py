"""The huge page sizes of x86-64, and what the kernel makes of the HugeTLB options for each.

x86-64 has two sizes: 2 MiB (order 9, always) and 1 GiB (order 18, only on CPUs with
``pdpe1gb``, X86_FEATURE_GBPAGES). `HugetlbParams` is what
`fastinit.machine.hugetlb_params.parse_hugetlb` returns: the sizes the kernel registers (one
`HugepageRequest` each) and how many pages of each it will try to allocate. A boot log tells
whether its CPU had 1 GiB pages (`gbpages_in_log`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastinit.layout import HPAGE_PMD_ORDER, NR_ORDERS, PAGE_SHIFT
from fastinit.machine.numbers import memparse

ORDER_2M = HPAGE_PMD_ORDER
ORDER_1G = 18
# Orders of 0 or above MAX_ORDER are "gigantic": allocated from memblock at parse time.
GIGANTIC_MIN_ORDER = NR_ORDERS


def size_text(order: int) -> str:
    """``string_get_size(size, 1, STRING_UNITS_2)`` of a huge page: ``2.00 MiB``."""
    size, unit = (1 << (order + PAGE_SHIFT)), 0
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    while size >= 1024 and unit < len(units) - 1:
        size /= 1024
        unit += 1
    return f"{size:.2f} {units[unit]}"


@dataclass(frozen=True)
class HugepageRequest:
    """One registered huge page size (an hstate) and what the command line asks of it.

    Attributes
    ----------
    order : int
        Pages of 4 KiB per huge page, as a power of two (9 or 18).
    count : int
        ``max_huge_pages``: huge pages to allocate (the sum of ``nodes`` if given per node).
    nodes : tuple of (int, int)
        ``(nid, count)`` for the per-node form, nodes in increasing order; empty for a
        count spread over the nodes.
    parsed_after : int
        For a gigantic size, allocated while the options are handled: how many of the
        kernel's option warnings come before the allocation's own messages.
    """

    order: int
    count: int = 0
    nodes: tuple[tuple[int, int], ...] = ()
    parsed_after: int = 0

    @property
    def gigantic(self) -> bool:
        return self.order >= GIGANTIC_MIN_ORDER

    @property
    def size_kb(self) -> int:
        return 1 << (self.order + PAGE_SHIFT - 10)

    @property
    def name(self) -> str:
        """The sysfs name of the size: ``hugepages-2048kB``."""
        return f"hugepages-{self.size_kb}kB"


@dataclass(frozen=True)
class HugetlbParams:
    """What the kernel makes of the HugeTLB options.

    Attributes
    ----------
    hstates : tuple of HugepageRequest
        Every registered size, in the kernel's order (the order of its report lines).
    default_order : int
        The default huge page size (``default_hugepagesz=``, else 2 MiB).
    free_vmemmap : bool
        ``hugetlb_free_vmemmap``: HugeTLB Vmemmap Optimization (off unless asked for in
        Debian's and most distributions' kernels).
    warnings : tuple of str
        The kernel's messages about the options, in order (``HugeTLB: ...``).
    """

    hstates: tuple[HugepageRequest, ...] = ()
    default_order: int = ORDER_2M
    free_vmemmap: bool = False
    warnings: tuple[str, ...] = ()

    def hstate(self, order: int) -> HugepageRequest | None:
        for request in self.hstates:
            if request.order == order:
                return request
        return None

    @property
    def requested(self) -> bool:
        """True if any huge page is to be allocated at boot."""
        return any(request.count for request in self.hstates)


# "HugeTLB registered" before 6.0 (kernel rule hugetlb_report_colon).
_REGISTERED = re.compile(r"HugeTLB:? registered (\d+\.\d\d [KMGT]iB) page size")
_UNSUPPORTED = re.compile(r"HugeTLB: unsupported (?:default_)?hugepagesz=(\S+)")


def gbpages_in_log(text: str) -> bool | None:
    """Whether the CPU of a boot log had 1 GiB pages, from the kernel's HugeTLB lines.

    With ``pdpe1gb`` the 1 GiB size is always registered (and reported next to 2 MiB);
    without it a ``hugepagesz=1G`` is refused as unsupported. None if the log says neither
    (it ends before ``hugetlb_init()``).
    """
    sizes = set(_REGISTERED.findall(text))
    if size_text(ORDER_1G) in sizes:
        return True
    for value in _UNSUPPORTED.findall(text):
        try:
            if memparse(value)[0] == 1 << (ORDER_1G + PAGE_SHIFT):
                return False
        except ValueError:
            continue
    return False if size_text(ORDER_2M) in sizes else None
