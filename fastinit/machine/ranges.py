"""Sorted, disjoint ranges of pfns ``[start, end)``: the arithmetic every part of the model
uses on memory, holes and reservations."""

from __future__ import annotations

import bisect

from fastinit.layout import PAGES_PER_SECTION, align_up

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
