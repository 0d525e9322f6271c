"""Descriptor arithmetic, written once, for the kernels and for Python alike.

Where a pfn's descriptor lives, the address of its ``lru`` list_head, the address of a
zone's free-list head, the node and zone bits of ``flags``, the local free lists a kernel
call builds, and the walk that cuts free ranges into max-order pieces.

Every helper is an ordinary Python function registered with Numba (``_jit.inline_helper``):
a kernel compiles it into its own machine code (inlined, so it costs nothing), and Python
code calls it as it is, on ints, NumPy scalars or NumPy arrays. Addresses are uint64, pfns
and indices int64; each helper converts its arguments explicitly, because both Numba and
NumPy turn a uint64 mixed with an int64 into a float64, which would silently round an
address.

Local lists (``lists``): an int64 array of shape (3, NR_ORDERS, MIGRATE_TYPES) whose rows
`FIRST`, `LAST` and `COUNT` hold the first pfn, the last pfn (-1 when empty) and the length
of each list one kernel call built; both ends of a local list point at the zone's list
head, and `fastinit.mm.buddy.ZoneFreeArea.splice` appends it to the zone's list.
"""

from __future__ import annotations

import numpy as np

from fastinit.kernels._jit import inline_helper as _inline
from fastinit.kernels._jit import loop_helper as _loop
from fastinit.layout import (FREE_AREA_BASE, LIST_HEAD_SIZE, LRU_OFFSET, MAX_NR_ZONES,
                             MAX_ORDER, MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE, MIGRATE_TYPES,
                             NODES_MASK, NODES_PGSHIFT, NR_ORDERS, PAGE_DTYPE,
                             PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, PAGES_PER_SECTION,
                             SECTION_SHIFT, VMEMMAP_START, ZONES_MASK, ZONES_PGSHIFT)

# Rows of a local-lists array.
FIRST, LAST, COUNT = 0, 1, 2

_SECTION_MASK = PAGES_PER_SECTION - 1
_STRIDE = PAGE_DTYPE.itemsize
_LRU_BASE = VMEMMAP_START + LRU_OFFSET
# page_zone_id(): node and zone together sit above ZONES_PGSHIFT (no section bits).
ZONEID_PGSHIFT = ZONES_PGSHIFT


@_inline
def descriptor_index(slots, base_pfn, pfn):
    """Position of ``pfn``'s descriptor in the sparse memmap (int64).

    ``slots`` (int64, shape (nr_sections,)) maps each section from the section-aligned
    ``base_pfn`` on to its slot; the section of ``pfn`` must have one.
    """
    p = np.int64(pfn)
    return slots[(p - np.int64(base_pfn)) >> SECTION_SHIFT] * PAGES_PER_SECTION + (p & _SECTION_MASK)


@_inline
def pageblock_index(slots, base_pfn, pfn):
    """Position of the migratetype byte of ``pfn``'s pageblock (int64)."""
    return descriptor_index(slots, base_pfn, pfn) >> PAGEBLOCK_ORDER


@_loop
def set_pageblock_types(pageblock_mt, slots, base_pfn, spfn, epfn, migratetype):
    """Give the pageblocks that start in ``[spfn, epfn)`` (``spfn`` pageblock-aligned)
    ``migratetype`` in ``pageblock_mt`` (uint8, one byte per pageblock of the memmap)."""
    for block in range(spfn, epfn, PAGEBLOCK_NR_PAGES):
        pageblock_mt[pageblock_index(slots, base_pfn, block)] = migratetype


@_inline
def page_address(pfn):
    """Address (uint64) of the descriptor of ``pfn`` in the vmemmap (a ``struct page *``)."""
    # The array first: NumPy's scalar.__add__(array) takes a path 40x slower.
    return np.uint64(pfn) * np.uint64(_STRIDE) + np.uint64(VMEMMAP_START)


@_inline
def lru_address(pfn):
    """Address (uint64) of the ``lru`` list_head in the descriptor of ``pfn``."""
    return np.uint64(pfn) * np.uint64(_STRIDE) + np.uint64(_LRU_BASE)


@_inline
def lru_pfn(address):
    """The pfn (int64) whose descriptor's ``lru`` is at ``address`` (see `lru_address`);
    for an address that is no such link, a pfn whose `lru_address` differs from it."""
    return np.int64((np.uint64(address) - np.uint64(_LRU_BASE)) // np.uint64(_STRIDE))


@_inline
def page_links(nid, zid):
    """``flags`` (uint64) with only the node and zone set, as ``set_page_links()`` leaves it."""
    return (((np.uint64(nid) & np.uint64(NODES_MASK)) << np.uint64(NODES_PGSHIFT))
            | ((np.uint64(zid) & np.uint64(ZONES_MASK)) << np.uint64(ZONES_PGSHIFT)))


@_inline
def zone_id(flags):
    """Node and zone bits of ``flags`` (uint64) as one number, like ``page_zone_id()``:
    two pages belong to the same zone of the same node exactly when these are equal."""
    return np.uint64(flags) >> np.uint64(ZONEID_PGSHIFT)


@_inline
def zone_list_base(nid, zid):
    """Address (uint64) of ``free_area[0].free_list[0]`` of zone ``zid`` of node ``nid``."""
    slot = (np.int64(nid) * MAX_NR_ZONES + np.int64(zid)) * (NR_ORDERS * MIGRATE_TYPES)
    return np.uint64(slot * LIST_HEAD_SIZE) + np.uint64(FREE_AREA_BASE)


@_inline
def list_head(list_base, order, migratetype):
    """Address (uint64) of ``free_area[order].free_list[migratetype]`` of the zone whose
    `zone_list_base` is ``list_base``."""
    slot = np.int64(order) * MIGRATE_TYPES + np.int64(migratetype)
    return np.uint64(slot * LIST_HEAD_SIZE) + np.uint64(list_base)


def free_list_address(nid, zid, order, migratetype):
    """Address (uint64) of a zone's ``free_area[order].free_list[migratetype]`` head."""
    return list_head(zone_list_base(nid, zid), order, migratetype)


@_inline
def clear_local_lists(lists):
    """Make ``lists`` (int64, shape (3, NR_ORDERS, MIGRATE_TYPES)) empty local lists."""
    lists[FIRST] = -1
    lists[LAST] = -1
    lists[COUNT] = 0


def new_local_lists():
    """Empty local lists: int64 array of shape (3, NR_ORDERS, MIGRATE_TYPES)."""
    lists = np.empty((3, NR_ORDERS, MIGRATE_TYPES), dtype=np.int64)
    clear_local_lists(lists)
    return lists


@_inline
def list_append_run(lists, order, migratetype, first_pfn, last_pfn, count):
    """Record ``count`` >= 1 blocks from ``first_pfn`` to ``last_pfn`` appended to a local list.

    Only the bookkeeping: the caller links the descriptors. Returns the list's previous
    last pfn (-1 if it was empty), whose ``lru.next`` must now point at ``first_pfn``.
    """
    previous = lists[LAST, order, migratetype]
    if previous < 0:
        lists[FIRST, order, migratetype] = first_pfn
    lists[LAST, order, migratetype] = last_pfn
    lists[COUNT, order, migratetype] += count
    return previous


@_inline
def list_append_max_order_run(lists, list_base, spfn, epfn):
    """Record the whole max-order blocks ``[spfn, epfn)`` (aligned, at least one) appended
    to the local MOVABLE list of order MAX_ORDER, where deferred init puts them.

    Returns ``(head, previous)``: the address of the zone's list head, and the list's
    previous last pfn (-1 if it was empty), whose ``lru.next`` must now point at ``spfn``.
    """
    previous = list_append_run(lists, MAX_ORDER, MIGRATE_MOVABLE, spfn,
                               epfn - MAX_ORDER_NR_PAGES, (epfn - spfn) // MAX_ORDER_NR_PAGES)
    return list_head(list_base, MAX_ORDER, MIGRATE_MOVABLE), previous


@_loop
def largest_order(pfn, end):
    """Order of the largest naturally aligned block (<= MAX_ORDER) at ``pfn`` that ends at
    or before ``end``: one step of the buddy decomposition of a range."""
    order = MAX_ORDER
    while order > 0 and ((pfn & ((1 << order) - 1)) != 0 or pfn + (1 << order) > end):
        order -= 1
    return order


@_loop
def first_range_after(ranges, pfn):
    """Index of the first of the sorted, disjoint ``ranges`` (int64, shape (n, 2)) that
    ends after ``pfn`` (n if none)."""
    lo, hi = 0, ranges.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if ranges[mid, 1] <= pfn:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_loop
def range_pages(ranges):
    """Pages (int64) in ``ranges`` (disjoint, int64 shape (n, 2) of ``[start, end)``)."""
    total = 0
    for r in range(ranges.shape[0]):
        total += ranges[r, 1] - ranges[r, 0]
    return np.int64(total)


@_loop
def max_order_pieces(ranges, start_pfn, end_pfn):
    """Cut ``ranges`` (sorted, disjoint, int64 shape (n, 2)) inside ``[start_pfn, end_pfn)``
    into the pieces deferred init handles one at a time.

    Yields ``(spfn, epfn, whole)``: either a run of whole aligned max-order blocks
    (``whole``), or a piece inside one max-order block, up to its end
    (``ALIGN(spfn + 1, MAX_ORDER_NR_PAGES)``) or the range's.
    """
    for r in range(first_range_after(ranges, start_pfn), ranges.shape[0]):
        if ranges[r, 0] >= end_pfn:
            break
        spfn, epfn = max(ranges[r, 0], start_pfn), min(ranges[r, 1], end_pfn)
        while spfn < epfn:
            piece_end = min((spfn + MAX_ORDER_NR_PAGES) & ~(MAX_ORDER_NR_PAGES - 1), epfn)
            whole = piece_end - spfn == MAX_ORDER_NR_PAGES
            if whole:
                piece_end = spfn + (epfn - spfn) // MAX_ORDER_NR_PAGES * MAX_ORDER_NR_PAGES
            yield spfn, piece_end, whole
            spfn = piece_end
