"""Walk a zone's free lists as a verifier must: nothing read from the descriptors is trusted.

Unlike the buddy kernels, which follow the links they wrote themselves, this walk follows
links read from a memmap that may come from a damaged or forged file. Every link is checked
to be the ``lru`` address of a descriptor the memmap holds before it is followed, every
list stops after as many entries as the zone could hold, and every descriptor is visited
at most once over all lists (a bit per descriptor): the walk ends in time bounded by the
memmap's size whatever the file says, and reads nothing outside the arrays.

Problems are recorded, not raised: per kind, how many and the first one's order,
migratetype and value (a pfn or, for `BAD_LINK`, the link: an address, as int64 bits).
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import (RO_PAGEBLOCK_TYPES, RO_PAGES, RO_PFN_RANGES, RO_PFNS,
                                   kernel)
from fastinit.kernels.descriptors import (first_range_after, list_head, lru_address, lru_pfn,
                                          zone_id)
from fastinit.layout import (MAX_ORDER, MAX_PFN, MIGRATE_TYPES, MIGRATE_UNMOVABLE,
                             PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER,
                             PAGES_PER_SECTION, SECTION_SHIFT)

# Problem kinds.
BAD_LINK, PREV_BROKEN, NOT_A_FREE_BLOCK, WRONG_MIGRATETYPE, LISTED_TWICE, TOO_LONG, \
    HEAD_PREV, COUNT_MISMATCH, NR_FREE_IMPOSSIBLE = range(9)
NR_KINDS = 9



@kernel(types.int64(RO_PFNS, types.uint64))
def descriptor_of_link(sections, address):
    """Index of the descriptor whose ``lru`` is at ``address``, or -1 if there is none.

    ``sections`` (int64, sorted) are the memmap's present sections, one slot each.
    """
    pfn = lru_pfn(address)
    # Below the vmemmap the subtraction wraps to a pfn far above MAX_PFN (or below 0).
    if pfn < 0 or pfn >= MAX_PFN or lru_address(pfn) != address:
        return -1
    slot = np.searchsorted(sections, pfn >> SECTION_SHIFT)
    if slot >= sections.shape[0] or sections[slot] != pfn >> SECTION_SHIFT:
        return -1
    return slot * PAGES_PER_SECTION + (pfn & (PAGES_PER_SECTION - 1))


@kernel(types.void(types.int64[:, ::1], types.int64, types.int64, types.int64, types.int64))
def _note(problems, kind, order, migratetype, value):
    """Count a problem of ``kind``, and keep the first one's details."""
    if problems[kind, 0] == 0:
        problems[kind, 1] = order
        problems[kind, 2] = migratetype
        problems[kind, 3] = value
    problems[kind, 0] += 1


@kernel(types.boolean(types.int64, types.int64, types.int64, RO_PFN_RANGES, types.int64))
def migratetype_fits(pfn, migratetype, current, late, deferred_from):
    """Whether a free block at ``pfn`` may sit on the list of ``migratetype`` when its
    pageblock's migratetype is now ``current``.

    ``__free_one_page()`` lists a block with its pageblock's migratetype at the time of the
    free, and in Linux 6.1 a boot changes a pageblock's type only once: from UNMOVABLE
    (the bitmap is allocated zeroed) to MOVABLE, by ``memmap_init_range()`` before any
    page is freed, or by ``deferred_free_range()`` just before it frees the pageblock's
    first pfn. A pageblock shared by two nodes whose first pfn another node's deferred
    init frees (``late``: sorted, disjoint ranges of the other zones' deferred free
    memory) turns MOVABLE after this zone's early part was freed into it: those blocks
    stay on UNMOVABLE (below ``deferred_from``, this zone's first deferred pfn), and
    blocks this zone's own deferred init frees there meet either type, as the two nodes'
    jobs run at once. Everywhere else the list is the pageblock's type.
    """
    first = pfn & ~np.int64(PAGEBLOCK_NR_PAGES - 1)
    r = first_range_after(late, first)
    if r < late.shape[0] and late[r, 0] <= first:
        return migratetype == MIGRATE_UNMOVABLE or (pfn >= deferred_from
                                                    and migratetype == current)
    return migratetype == current


@kernel(types.int64(RO_PAGES, RO_PAGEBLOCK_TYPES, RO_PFNS, types.uint64[:, :, ::1],
                    types.int64[:, ::1], types.int64, types.int64, types.uint64, types.uint64,
                    RO_PFN_RANGES, types.int64, types.uint8[::1], types.int64[:, ::1]))
def walk_free_lists(pages, pageblock_mt, sections, heads, nr_free, zone_start, zone_end,
                    zone, list_base, late, deferred_from, listed, problems):
    """Walk every free list of one zone and check each entry.

    Parameters
    ----------
    pages : ndarray of PAGE_DTYPE, shape (nr_sections * PAGES_PER_SECTION,)
    pageblock_mt : ndarray of uint8, shape (nr_sections * PAGEBLOCKS_PER_SECTION,)
    sections : ndarray of int64, shape (nr_sections,)
        Present sections, sorted.
    heads : ndarray of uint64, shape (NR_ORDERS, MIGRATE_TYPES, 2)
        The zone's list heads ``(next, prev)``.
    nr_free : ndarray of int64, shape (NR_ORDERS, MIGRATE_TYPES)
        The zone's counts.
    zone_start, zone_end : int
        The zone's span (pfns).
    zone : uint64
        ``zone_id(page_links(nid, zid))``: the node and zone bits its pages carry.
    list_base : uint64
        Address of the zone's ``free_area[0].free_list[0]``.
    late : ndarray of int64, shape (n, 2)
        The other zones' deferred free memory, sorted (see `migratetype_fits`).
    deferred_from : int
        The zone's first deferred pfn (its end if it defers nothing).
    listed : ndarray of uint8, shape (ceil(nr_sections * PAGES_PER_SECTION / 8),)
        A bit per descriptor, set here for every list entry (shared by all zones).
    problems : ndarray of int64, shape (NR_KINDS, 4)
        Per kind of problem: how many (added to), and the first one's order, migratetype
        and value.

    Returns
    -------
    int
        Blocks listed (each descriptor is visited at most once over all calls sharing
        ``listed``).
    """
    visited = 0
    for order in range(MAX_ORDER + 1):
        # Aligned blocks of this order that touch the zone: no list can be longer.
        possible = ((zone_end - 1) >> order) - (zone_start >> order) + 1
        for migratetype in range(MIGRATE_TYPES):
            expected = nr_free[order, migratetype]
            if expected < 0 or expected > possible:
                _note(problems, NR_FREE_IMPOSSIBLE, order, migratetype, expected)
            limit = min(max(expected, 0), possible)
            head = list_head(list_base, order, migratetype)
            previous, address, length, whole = head, heads[order, migratetype, 0], 0, True
            while address != head:
                index = descriptor_of_link(sections, address)
                if index < 0:
                    _note(problems, BAD_LINK, order, migratetype, np.int64(address))
                    whole = False
                    break
                pfn = (sections[index // PAGES_PER_SECTION] << SECTION_SHIFT) + \
                    (index & (PAGES_PER_SECTION - 1))
                bit = np.uint8(1 << (index & 7))
                if listed[index >> 3] & bit or length >= limit:
                    kind = LISTED_TWICE if listed[index >> 3] & bit else TOO_LONG
                    _note(problems, kind, order, migratetype, pfn)
                    whole = False
                    break
                listed[index >> 3] |= bit
                visited += 1
                page = pages[index]
                if page["lru_prev"] != previous:
                    _note(problems, PREV_BROKEN, order, migratetype, pfn)
                if (page["mapcount"] != PAGE_BUDDY_MAPCOUNT or page["private"] != order
                        or pfn & ((1 << order) - 1) or pfn < zone_start or pfn >= zone_end
                        or zone_id(page["flags"]) != zone):
                    _note(problems, NOT_A_FREE_BLOCK, order, migratetype, pfn)
                if not migratetype_fits(pfn, migratetype,
                                        np.int64(pageblock_mt[index >> PAGEBLOCK_ORDER]), late,
                                        deferred_from):
                    _note(problems, WRONG_MIGRATETYPE, order, migratetype, pfn)
                previous, address, length = address, page["lru_next"], length + 1
            if whole and heads[order, migratetype, 1] != previous:
                _note(problems, HEAD_PREV, order, migratetype, 0)
            if whole and length != expected:
                _note(problems, COUNT_MISMATCH, order, migratetype, length)
    return visited
