"""Checked entry points to the page kernels, for library users.

The kernels trust their input: they have no bounds checks (they run at memory bandwidth),
so a pfn without a descriptor or a migratetype out of range would make them write outside
the arrays. A boot calls them only with ranges its plan produced. These functions are for
everyone else: each checks its arguments against the memmap and raises ValueError naming
the value and the fix before any kernel runs.
"""

from __future__ import annotations

import numpy as np

from fastinit.validate import check_bool, check_int
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.early import free_into_zone, init_range
from fastinit.mm.hugetlb.hvo import aliased_descriptors
from fastinit.mm.memmap import Memmap
from fastinit.kernels.descriptors import page_links, zone_id
from fastinit.layout import (MAX_NUMNODES, MAX_ORDER_NR_PAGES, MAX_PFN, MIGRATE_TYPES,
                             PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGES_PER_SECTION,
                             SECTION_SHIFT, ZONE_NAMES, align_up)


def _integer(name: str, value, lo: int, hi: int) -> int:
    """TypeError for a non-integer (`check_int`), ValueError naming the range for the rest."""
    number = check_int(value, name)
    if not lo <= number <= hi:
        raise ValueError(f"{name} = {number} is outside {lo}..{hi}")
    return number


def _writable_memmap(memmap) -> Memmap:
    if not isinstance(memmap, Memmap):
        raise ValueError(f"memmap must be a fastinit.mm.memmap.Memmap, got "
                         f"{type(memmap).__name__}; make one with Memmap.in_memory(sections)")
    if not memmap.pages.flags.writeable and len(aliased_descriptors(memmap)):
        raise ValueError("HVO (hugetlb_free_vmemmap=on) mapped pages of this memmap's "
                         "descriptors onto others, so it is read-only; boot with "
                         "hugetlb_free_vmemmap=off to change descriptors")
    if not memmap.pages.flags.writeable:
        raise ValueError(f"the memmap in {memmap.storage} is read-only (opened for checking); "
                         f"boot into a new one to change descriptors")
    return memmap


def _check_present(memmap: Memmap, start: int, end: int) -> None:
    """Every pfn of ``[start, end)`` must have a descriptor."""
    if start < end and memmap.present_runs(start, end) != [(start, end)]:
        missing = [(s, e) for s, e in _gaps(memmap.present_runs(start, end), start, end)]
        raise ValueError(f"pfns [{missing[0][0]:#x}, {missing[0][1]:#x}) have no descriptors "
                         f"(their sections are not in the memmap); pass ranges inside the "
                         f"memmap's sections")


def _check_not_aliased(memmap: Memmap, start: int, end: int) -> None:
    """No descriptor of ``[start, end)`` (all present) may be one HVO mapped onto another:
    those pages are mapped read-only, and a kernel writing there would kill the process."""
    aliased = aliased_descriptors(memmap)
    if not len(aliased):
        return
    for s, e in memmap.present_runs(start, end):
        lo = memmap.index(s)
        hit = np.flatnonzero((aliased[:, 0] < lo + e - s) & (aliased[:, 1] > lo))
        if len(hit):
            first, last = (max(int(aliased[hit[0], 0]), lo),
                           min(int(aliased[hit[-1], 1]), lo + e - s))
            raise ValueError(f"pfns [{_pfn_at(memmap, first):#x}, "
                             f"{_pfn_at(memmap, last - 1) + 1:#x}) have descriptors HVO "
                             f"(hugetlb_free_vmemmap=on) mapped onto others, read-only; "
                             f"leave them out, or boot with hugetlb_free_vmemmap=off")


def _pfn_at(memmap: Memmap, index: int) -> int:
    slot, offset = divmod(index, PAGES_PER_SECTION)
    return (int(memmap.sections[slot]) << SECTION_SHIFT) + offset


def _gaps(runs, start, end):
    position = start
    for s, e in runs + [(end, end)]:
        if s > position:
            yield position, s
        position = e


def init_pages(memmap: Memmap, start_pfn: int, end_pfn: int, nid: int, zid: int,
               reserved: bool = False) -> int:
    """Initialize the descriptors of ``[start_pfn, end_pfn)`` as ``memmap_init()`` does.

    Parameters
    ----------
    memmap : Memmap
        Writable; its ``pages`` (PAGE_DTYPE, shape (nr_sections * PAGES_PER_SECTION,)) are
        written.
    start_pfn, end_pfn : int
        The range; every pfn in it must have a descriptor.
    nid : int
        Node, 0 <= nid < MAX_NUMNODES.
    zid : int
        Zone index: 0 DMA, 1 DMA32, 2 Normal.
    reserved : bool
        Also set PG_reserved.

    Returns
    -------
    int
        Descriptors initialized.

    Raises
    ------
    ValueError
        For any argument out of range, before anything is written.
    """
    memmap = _writable_memmap(memmap)
    start = _integer("start_pfn", start_pfn, 0, MAX_PFN)
    end = _integer("end_pfn", end_pfn, start, MAX_PFN)
    nid = _integer("nid", nid, 0, MAX_NUMNODES - 1)
    zid = _integer("zid", zid, 0, len(ZONE_NAMES) - 1)
    check_bool(reserved, "reserved")
    _check_present(memmap, start, end)
    _check_not_aliased(memmap, start, end)
    return init_range(memmap, start, end, nid, zid, bool(reserved))


def _range_table(ranges) -> np.ndarray:
    """``ranges`` as sorted, disjoint, non-empty pfn pairs, shape (n, 2) int64, n >= 1."""
    try:
        table = np.array(ranges, dtype=np.int64, ndmin=2)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"ranges must be integer pairs [[start, end], ...], got "
                         f"{ranges!r}") from None
    if table.ndim != 2 or table.shape[1] != 2 or len(table) == 0:
        raise ValueError(f"ranges must have shape (n, 2) with n >= 1, got {table.shape}")
    starts, ends = table[:, 0], table[:, 1]
    if (starts < 0).any() or (ends > MAX_PFN).any() or (starts >= ends).any():
        bad = int(np.flatnonzero((starts < 0) | (ends > MAX_PFN) | (starts >= ends))[0])
        raise ValueError(f"range {bad} [{starts[bad]}, {ends[bad]}) must be non-empty and "
                         f"inside 0..{MAX_PFN}")
    if (starts[1:] < ends[:-1]).any():
        bad = int(np.flatnonzero(starts[1:] < ends[:-1])[0]) + 1
        raise ValueError(f"range {bad} starts at {starts[bad]}, before range {bad - 1} ends "
                         f"({ends[bad - 1]}); sort the ranges and merge overlaps")
    return table


def free_pages(memmap: Memmap, area: ZoneFreeArea, ranges) -> int:
    """Free initialized pfn ranges of one zone into its buddy free lists, merging buddies.

    Parameters
    ----------
    memmap : Memmap
        Writable.
    area : ZoneFreeArea
        The zone's free area; the descriptors must belong to its node and zone.
    ranges : array_like of int, shape (n, 2)
        Sorted, disjoint, non-empty ``[start, end)`` pfn ranges, n >= 1. No page in the
        max-order blocks they touch may be free already (each block is freed by one call).

    Returns
    -------
    int
        Pages freed (added to ``area.managed``).

    Raises
    ------
    ValueError
        For any argument out of range, before anything is written.
    """
    memmap = _writable_memmap(memmap)
    if not isinstance(area, ZoneFreeArea):
        raise ValueError(f"area must be a fastinit.mm.buddy.ZoneFreeArea, got "
                         f"{type(area).__name__}")
    table = _range_table(ranges)
    zone = zone_id(page_links(area.nid, area.zid))
    for start, end in table.tolist():
        _check_present(memmap, start, end)
        # Freeing merges buddies across the max-order blocks around the range.
        _check_not_aliased(memmap, start & ~(MAX_ORDER_NR_PAGES - 1),
                           align_up(end, MAX_ORDER_NR_PAGES))
        first = memmap.index(start)
        if (zone_id(memmap.pages["flags"][first:first + end - start]) != zone).any():
            raise ValueError(f"descriptors in [{start:#x}, {end:#x}) are not initialized for "
                             f"node {area.nid} zone {ZONE_NAMES[area.zid]}; run init_pages "
                             f"on them first")
        # Whole max-order blocks lie in one present section, so one slice covers them.
        lo = memmap.index(start & ~(MAX_ORDER_NR_PAGES - 1))
        hi = memmap.index(align_up(end, MAX_ORDER_NR_PAGES) - 1) + 1
        if (memmap.pages["mapcount"][lo:hi] == PAGE_BUDDY_MAPCOUNT).any():
            raise ValueError(f"the max-order blocks around [{start:#x}, {end:#x}) already "
                             f"hold free pages; free each block's pages in one call")
        if (memmap.pageblock_mt[lo // PAGEBLOCK_NR_PAGES:align_up(hi, PAGEBLOCK_NR_PAGES) // PAGEBLOCK_NR_PAGES]
                >= MIGRATE_TYPES).any():
            raise ValueError(f"pageblocks around [{start:#x}, {end:#x}) hold a migratetype "
                             f">= {MIGRATE_TYPES}; set memmap.pageblock_mt first")
    return free_into_zone(memmap, area, table)
