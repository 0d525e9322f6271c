"""Allocate from and free into a zone's own free lists (not call-local ones).

After boot, huge pages are taken from the zones' free lists and the memmap pages HVO frees
are given back to them, while other calls may have spliced blocks onto the same lists. So
these kernels work on the zone's list heads themselves (``heads`` and ``nr_free`` of a
`fastinit.mm.buddy.ZoneFreeArea`, updated in place); the caller holds the zone's lock.

- `take_blocks`: ``__rmqueue_smallest()`` for MOVABLE, falling back to the other types
  (largest block first, the block's pageblocks turned MOVABLE: ``steal_suitable_fallback()``
  for orders of a pageblock or more), and ``expand()``: the unused upper halves go back on
  the lists of their orders, at the head (``add_to_free_list()``).
- `free_ranges_to_zone`: ``__free_one_page()`` page by page, merging with free buddies
  wherever they are listed.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import COUNTS, PAGEBLOCK_TYPES, PAGES, PFN_RANGES, PFNS, kernel
from fastinit.kernels._layout import (descriptor_index, list_head, lru_address, lru_pfn,
                                      pageblock_index, zone_id)
from fastinit.layout import (LIST_POISON1, LIST_POISON2, MAPCOUNT_NONE, MAX_ORDER,
                             MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE,
                             PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER,
                             PG_RESERVED)

# A zone's list heads: (next, prev) per order and migratetype.
HEADS = types.uint64[:, :, ::1]
# Migratetypes below this may merge with each other at pageblock order and above.
_MIGRATE_PCPTYPES = 3


@kernel(types.void(PAGES, PFNS, types.int64, HEADS, COUNTS, types.uint64, types.int64,
                   types.int64, types.int64, types.boolean))
def zone_list_add(pages, slots, base_pfn, heads, nr_free, list_base, pfn, order,
                  migratetype, to_tail):
    """Put the free block at ``pfn`` on the zone's list (``add_to_free_list()`` or, with
    ``to_tail``, ``add_to_free_list_tail()``) and mark it a buddy of ``order``."""
    head = list_head(list_base, order, migratetype)
    i = descriptor_index(slots, base_pfn, pfn)
    me = lru_address(pfn)
    if to_tail:
        last = heads[order, migratetype, 1]
        pages[i]["lru_next"] = head
        pages[i]["lru_prev"] = last
        if last == head:
            heads[order, migratetype, 0] = me
        else:
            pages[descriptor_index(slots, base_pfn, lru_pfn(last))]["lru_next"] = me
        heads[order, migratetype, 1] = me
    else:
        first = heads[order, migratetype, 0]
        pages[i]["lru_next"] = first
        pages[i]["lru_prev"] = head
        if first == head:
            heads[order, migratetype, 1] = me
        else:
            pages[descriptor_index(slots, base_pfn, lru_pfn(first))]["lru_prev"] = me
        heads[order, migratetype, 0] = me
    pages[i]["private"] = order
    pages[i]["mapcount"] = PAGE_BUDDY_MAPCOUNT
    nr_free[order, migratetype] += 1


@kernel(types.void(PAGES, PFNS, types.int64, HEADS, COUNTS, types.uint64, types.int64,
                   types.int64, types.int64))
def zone_list_del(pages, slots, base_pfn, heads, nr_free, list_base, pfn, order,
                  migratetype):
    """``del_page_from_free_list()``: unlink, poison the links, stop being a buddy."""
    head = list_head(list_base, order, migratetype)
    i = descriptor_index(slots, base_pfn, pfn)
    next_address = pages[i]["lru_next"]
    prev_address = pages[i]["lru_prev"]
    if prev_address == head:
        heads[order, migratetype, 0] = next_address
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(prev_address))]["lru_next"] = next_address
    if next_address == head:
        heads[order, migratetype, 1] = prev_address
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(next_address))]["lru_prev"] = prev_address
    pages[i]["lru_next"] = np.uint64(LIST_POISON1)
    pages[i]["lru_prev"] = np.uint64(LIST_POISON2)
    pages[i]["mapcount"] = MAPCOUNT_NONE
    pages[i]["private"] = 0
    nr_free[order, migratetype] -= 1


@kernel(types.int64(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, HEADS, COUNTS, types.uint64,
                    types.int64, types.int64, PFNS))
def take_blocks(pages, pageblock_mt, slots, base_pfn, heads, nr_free, list_base, order,
                count, out):
    """Allocate ``count`` blocks of ``order`` (>= pageblock order) for MOVABLE use.

    Each comes from the smallest free block of that order or more on the MOVABLE lists
    (the first on its list), else from the largest on the RECLAIMABLE or UNMOVABLE lists;
    the upper halves left over go back on the lists. The allocated block's head is left
    as ``del_page_from_free_list()`` leaves it (links poisoned, private 0, mapcount -1).

    Returns
    -------
    int
        Blocks taken (fewer than ``count`` when the zone runs out); their pfns in
        ``out[:taken]``.
    """
    for k in range(count):
        found, migratetype = -1, MIGRATE_MOVABLE
        for current in range(order, MAX_ORDER + 1):
            if heads[current, MIGRATE_MOVABLE, 0] != list_head(list_base, current,
                                                                MIGRATE_MOVABLE):
                found = current
                break
        if found < 0:
            for current in range(MAX_ORDER, order - 1, -1):
                for fallback in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE):
                    if heads[current, fallback, 0] != list_head(list_base, current, fallback):
                        found, migratetype = current, fallback
                        break
                if found >= 0:
                    break
        if found < 0:
            return k
        pfn = lru_pfn(heads[found, migratetype, 0])
        zone_list_del(pages, slots, base_pfn, heads, nr_free, list_base, pfn, found,
                      migratetype)
        if migratetype != MIGRATE_MOVABLE:
            # Stealing a whole block of pageblock order or more makes it MOVABLE.
            for block in range(pfn, pfn + (1 << found), PAGEBLOCK_NR_PAGES):
                pageblock_mt[pageblock_index(slots, base_pfn, block)] = MIGRATE_MOVABLE
        while found > order:
            found -= 1
            zone_list_add(pages, slots, base_pfn, heads, nr_free, list_base,
                          pfn + (1 << found), found, MIGRATE_MOVABLE, False)
        out[k] = pfn
    return count


@kernel(types.int64(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, HEADS, COUNTS, types.uint64,
                    PFN_RANGES))
def free_ranges_to_zone(pages, pageblock_mt, slots, base_pfn, heads, nr_free, list_base,
                        ranges):
    """Free reserved, initialized pages one at a time into the zone's lists, merging
    with free buddies (``free_reserved_page()`` of each, as HVO frees vmemmap pages).

    Each page loses PG_reserved and its reference, then goes through
    ``__free_one_page()``: merged while its buddy is a free block of the same order in
    the same zone (and, at pageblock order and above, of a compatible migratetype), and
    listed at the head with its pageblock's migratetype.

    Parameters
    ----------
    ranges : ndarray of int64, shape (n, 2)
        Sorted, disjoint pfn ranges of one zone.

    Returns
    -------
    int
        Pages freed.
    """
    freed = 0
    keep = ~np.uint64(PG_RESERVED)
    for r in range(ranges.shape[0]):
        for page in range(ranges[r, 0], ranges[r, 1]):
            i = descriptor_index(slots, base_pfn, page)
            pages[i]["flags"] = pages[i]["flags"] & keep
            pages[i]["refcount"] = 0
            pfn, order = page, 0
            migratetype = np.int64(pageblock_mt[pageblock_index(slots, base_pfn, pfn)])
            zone = zone_id(pages[i]["flags"])
            while order < MAX_ORDER:
                buddy_pfn = pfn ^ (1 << order)
                buddy = pages[descriptor_index(slots, base_pfn, buddy_pfn)]
                if (buddy["mapcount"] != PAGE_BUDDY_MAPCOUNT or buddy["private"] != order
                        or zone_id(buddy["flags"]) != zone):
                    break
                buddy_mt = migratetype
                if order >= PAGEBLOCK_ORDER:
                    buddy_mt = np.int64(pageblock_mt[pageblock_index(slots, base_pfn,
                                                                     buddy_pfn)])
                    if buddy_mt != migratetype and (migratetype >= _MIGRATE_PCPTYPES
                                                    or buddy_mt >= _MIGRATE_PCPTYPES):
                        break
                zone_list_del(pages, slots, base_pfn, heads, nr_free, list_base, buddy_pfn,
                              order, buddy_mt)
                if buddy_mt != migratetype:
                    for block in range(buddy_pfn, buddy_pfn + (1 << order),
                                       PAGEBLOCK_NR_PAGES):
                        pageblock_mt[pageblock_index(slots, base_pfn, block)] = migratetype
                pfn &= buddy_pfn
                order += 1
            zone_list_add(pages, slots, base_pfn, heads, nr_free, list_base, pfn, order,
                          migratetype, False)
            freed += 1
    return freed
