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

from numba import types

from fastinit.kernels._jit import (COUNTS, PAGEBLOCK_TYPES, PAGES, PFN_RANGES, PFNS,
                                   inline_helper, kernel)
from fastinit.kernels.descriptors import (descriptor_index, list_head, lru_address, lru_pfn,
                                          range_pages, set_pageblock_types)
from fastinit.kernels.buddy_free import clear_buddy, merge_free_block, prepare_free, set_buddy
from fastinit.layout import MAX_ORDER, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE

# A zone's list heads: (next, prev) per order and migratetype.
HEADS = types.uint64[:, :, ::1]


@inline_helper
def _link(pages, slots, base_pfn, ends, head, prev, following):
    """Make the list entries at addresses ``prev`` and ``following`` neighbours
    (``prev->next = following``, ``following->prev = prev``); an entry is a page's ``lru``
    or the list head at ``head``, whose links are ``ends`` (uint64, shape (2,): next, prev)."""
    if prev == head:
        ends[0] = following
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(prev))]["lru_next"] = following
    if following == head:
        ends[1] = prev
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(following))]["lru_prev"] = prev


@kernel(types.void(PAGES, PFNS, types.int64, types.int64, types.int64, types.int64, HEADS,
                   COUNTS, types.uint64))
def zone_list_add(pages, slots, base_pfn, pfn, order, migratetype, heads, nr_free, list_base):
    """Put the free block at ``pfn`` at the head of the zone's list (``add_to_free_list()``)
    and mark it a buddy of ``order``."""
    head = list_head(list_base, order, migratetype)
    ends = heads[order, migratetype]
    me = lru_address(pfn)
    following = ends[0]  # read before the first link rewrites it
    _link(pages, slots, base_pfn, ends, head, head, me)
    _link(pages, slots, base_pfn, ends, head, me, following)
    set_buddy(pages, descriptor_index(slots, base_pfn, pfn), order)
    nr_free[order, migratetype] += 1


@inline_helper
def zone_list_del(pages, slots, base_pfn, pfn, order, migratetype, list_base, heads, nr_free):
    """``del_page_from_free_list()``: unlink, poison the links, stop being a buddy."""
    head = list_head(list_base, order, migratetype)
    i = descriptor_index(slots, base_pfn, pfn)
    _link(pages, slots, base_pfn, heads[order, migratetype], head, pages[i]["lru_prev"],
          pages[i]["lru_next"])
    clear_buddy(pages, i)
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
        zone_list_del(pages, slots, base_pfn, pfn, found, migratetype, list_base, heads,
                      nr_free)
        if migratetype != MIGRATE_MOVABLE:
            # Stealing a whole block of pageblock order or more makes it MOVABLE.
            set_pageblock_types(pageblock_mt, slots, base_pfn, pfn, pfn + (1 << found),
                                MIGRATE_MOVABLE)
        while found > order:
            found -= 1
            zone_list_add(pages, slots, base_pfn, pfn + (1 << found), found, MIGRATE_MOVABLE,
                          heads, nr_free, list_base)
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
        Pages freed: every page of ``ranges``, each on its own.
    """
    for r in range(ranges.shape[0]):
        for page in range(ranges[r, 0], ranges[r, 1]):
            prepare_free(pages, slots, base_pfn, page, 1)
            pfn, order, migratetype = merge_free_block(pages, pageblock_mt, slots, base_pfn,
                                                       page, 0, zone_list_del, list_base,
                                                       heads, nr_free)
            zone_list_add(pages, slots, base_pfn, pfn, order, migratetype, heads, nr_free,
                          list_base)
    return range_pages(ranges)
