"""Sorted, disjoint ranges of pfns ``[start, end)``: the arithmetic every part of the model
uses on memory, holes and reservations."""

from __future__ import annotations

import bisect

import numpy as np

from fastinit.layout import PAGES_PER_SECTION, SECTION_SHIFT, align_up

Range = tuple[int, int]


def section_align_up(pfn: int) -> int:
    """Round ``pfn`` up to a section boundary (SECTION_ALIGN_UP)."""
    return align_up(pfn, PAGES_PER_SECTION)


def intersect(ranges: tuple[Range, ...] | list[Range], lo: int, hi: int) -> list[Range]:
    """The parts of sorted, disjoint ``ranges`` inside ``[lo, hi)``."""
    if lo >= hi:  # nothing is inside; the loop below would yield an inverted range
        return []
    # Ends are sorted too, so the first range ending after lo is found by bisection.
    first = bisect.bisect_right(ranges, lo, key=lambda r: r[1])
    result = []
    for index in range(first, len(ranges)):
        s, e = ranges[index]
        if s >= hi:
            break
        result.append((max(s, lo), min(e, hi)))
    return result


def merge_ranges(ranges) -> list[Range]:
    """Sort ranges and merge the overlapping and touching ones."""
    merged: list[Range] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def subtract(ranges: list[Range], holes: list[Range]) -> list[Range]:
    """Sorted ``ranges`` minus the union of ``holes`` (both lists of [start, end))."""
    result = []
    holes = sorted(holes)
    for start, end in ranges:
        position = start
        for hole_start, hole_end in holes:
            # An empty hole removes nothing, so it must not split the range either.
            if hole_end <= position or hole_start >= end or hole_start >= hole_end:
                continue
            if hole_start > position:
                result.append((position, hole_start))
            position = max(position, hole_end)
        if position < end:
            result.append((position, end))
    return result


def alloc_top_down(free: list[Range], pages: int, align: int, lo: int = 0,
                   hi: int | None = None) -> Range | None:
    """memblock's default placement: the highest ``align``-aligned ``pages`` inside ``free``
    and ``[lo, hi)``, or None. Never pfn 0: ``memblock_find_in_range_node()`` starts at
    PAGE_SIZE (the memmap and the crash kernel both allocate this way)."""
    lo = max(lo, 1)
    for start, end in reversed(free if hi is None else intersect(free, lo, hi)):
        place = (end - pages) // align * align
        if place >= max(start, lo):
            return place, place + pages
    return None


def section_runs(memory_ranges) -> list[tuple[int, int, int]]:
    """``(first, end, nid)`` runs of present sections, in address order, from sorted,
    disjoint ``(start, end, nid)`` memory ranges. A section belongs to the first range
    touching it: ``memory_present()`` marks it with the node of the first range it meets,
    and ``sparse_init()`` groups sections by that node. The one walk over sections:
    `Topology.present_sections` and the memmap's placement both use it."""
    runs: list[tuple[int, int, int]] = []
    next_section = 0
    for start, end, nid in memory_ranges:
        first = max(start >> SECTION_SHIFT, next_section)
        last = (end - 1) >> SECTION_SHIFT
        if first <= last:
            if runs and runs[-1][1] == first and runs[-1][2] == nid:
                runs[-1] = (runs[-1][0], last + 1, nid)
            else:
                runs.append((first, last + 1, nid))
            next_section = last + 1
    return runs


def present_runs(sections: np.ndarray, start: int, end: int) -> list[Range]:
    """The parts of ``[start, end)`` inside the sorted present ``sections``, as pfn ranges
    (adjacent sections merged): the pfns ``pfn_valid()`` accepts, which have descriptors."""
    if start >= end:
        return []
    lo, hi = np.searchsorted(sections, [start >> SECTION_SHIFT,
                                        ((end - 1) >> SECTION_SHIFT) + 1])
    runs: list[Range] = []
    for section in sections[lo:hi].tolist():
        s = max(start, section << SECTION_SHIFT)
        e = min(end, (section + 1) << SECTION_SHIFT)
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    return runs
