"""The process's ``vm.max_map_count`` budget, shared by every HVO boot in it, and which
pool pages each boot's HVO remaps of it (`decide_hvo`, before early init).

Each page HVO aliases is a mapping of its own (`fastinit.mm.hugetlb.hvo`), and Linux
refuses a process more than ``vm.max_map_count`` of them. A boot gives out the budget
before early init (`decide_hvo`) and makes the mappings much later, after deferred init:
two boots at once in one process would each see the whole budget free and together ask
for more than the limit. So what a boot chose is reserved here until its mappings exist
(and are counted in /proc/self/maps), and the next boot's budget is what is left.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

from fastinit.layout import DESCRIPTORS_PER_PAGE
from fastinit.machine.ranges import Range, merge_ranges

# Mappings left for everything else the process maps (libraries, arenas, numpy).
MAP_COUNT_MARGIN = 4096
_MAP_COUNT_PATH = "/proc/sys/vm/max_map_count"

_lock = threading.Lock()
_reserved = 0


def mappings_per_page(order: int) -> int:
    """Mappings HVO of one huge page of ``order`` needs: one per page of its descriptors
    (the kept one and each alias), and one more where it splits the anonymous memmap."""
    return (1 << order) // DESCRIPTORS_PER_PAGE + 1


def map_count_budget() -> int:
    """Mappings this process may still create, less a margin for everything else (the
    reservations of boots still to map are not subtracted: see `reserve`)."""
    try:
        with open(_MAP_COUNT_PATH) as handle:
            limit = int(handle.read())
        with open("/proc/self/maps", "rb") as handle:
            used = handle.read().count(b"\n")
    except (OSError, ValueError):
        return 0
    return max(0, limit - used - MAP_COUNT_MARGIN)


def reserved() -> int:
    """Mappings chosen by boots of this process that have not made them yet."""
    with _lock:
        return _reserved


def _release(count: int) -> None:
    global _reserved
    with _lock:
        _reserved -= count


class Reservation:
    """Mappings one boot chose; given back by `release` (once its mappings exist or it
    gave up), or when the boot's decision is garbage collected after a failed boot."""

    def __init__(self, count: int):
        self.count = count
        self._finalizer = weakref.finalize(self, _release, count)

    def release(self) -> None:
        self._finalizer()  # runs _release at most once


def reserve(choose) -> tuple[int, Reservation]:
    """Give a boot its share: ``choose(budget)`` returns the mappings it takes of the
    ``budget`` left (this process's free mappings less what other boots reserved), and
    those are reserved before any other boot may choose.

    Returns
    -------
    budget : int
    reservation : Reservation
    """
    global _reserved
    with _lock:
        budget = max(0, map_count_budget() - _reserved)
        taken = choose(budget)
        if not 0 <= taken <= budget:
            raise AssertionError(f"HVO chose {taken} mappings of a budget of {budget}")
        _reserved += taken
        return budget, Reservation(taken)


@dataclass(frozen=True)
class HvoDecision:
    """Which pool pages HVO remaps, decided before early init.

    Attributes
    ----------
    enabled : bool
        ``hugetlb_free_vmemmap`` is on.
    buddy_units : dict
        ``order -> n``: the first ``n`` pages of each buddy-allocated size are remapped.
    gigantic : tuple of bool
        For each gigantic page of the plan, in order.
    budget : int
        Mappings the process could still make when it was decided (less those other
        boots in it had reserved).
    reservation : Reservation or None
        The mappings chosen, held from other boots until they are made.
    """

    enabled: bool = False
    buddy_units: dict = field(default_factory=dict)
    gigantic: tuple[bool, ...] = ()
    budget: int = 0
    reservation: object = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """The remapping is done (its mappings now count in /proc/self/maps) or will not
        happen: give the reserved budget back."""
        if self.reservation is not None:
            self.reservation.release()

    @property
    def pages(self) -> int:
        return sum(self.buddy_units.values()) + sum(self.gigantic)

    def noinit(self, plan) -> list[Range]:
        """Descriptors early init never writes: those of remapped gigantic pages past
        their first 64, in the deferred part (Linux 6.9: MEMBLOCK_RSRV_NOINIT)."""
        ranges = []
        for (pfn, order, nid), remapped in zip(plan.pools.gigantic, self.gigantic):
            split = plan.node(nid).first_deferred_pfn
            if remapped and split is not None:
                ranges.append((max(pfn + DESCRIPTORS_PER_PAGE, split), pfn + (1 << order)))
        return merge_ranges(r for r in ranges if r[0] < r[1])


def decide_hvo(plan) -> HvoDecision:
    """Give out the process's mapping budget (what other boots in it have not reserved):
    the 2 MiB pages first (the kernel optimizes them first), then the gigantic pages,
    each while it fits. What is chosen stays reserved until `HvoDecision.release`."""
    pools = plan.pools
    gigantic = pools.gigantic if pools is not None else ()
    if pools is None or not pools.params.free_vmemmap:
        return HvoDecision(gigantic=tuple(False for _ in gigantic))
    units, chosen = {}, []

    def choose(budget: int) -> int:
        left = budget
        for request in pools.params.hstates:
            if not request.gigantic:
                cost = mappings_per_page(request.order)
                units[request.order] = min(pools.total(request.order), left // cost)
                left -= units[request.order] * cost
        for _, order, _ in gigantic:
            chosen.append(left >= mappings_per_page(order))
            left -= mappings_per_page(order) if chosen[-1] else 0
        return budget - left

    budget, reservation = reserve(choose)
    return HvoDecision(True, units, tuple(chosen), budget, reservation)
