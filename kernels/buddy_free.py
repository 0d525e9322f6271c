"""Free pages into buddy free lists kept local to one kernel call.

A call owns every free list entry it creates: lists are threaded through the descriptors'
``lru`` fields, and both ends of a local list point at the zone's list head, as if the
zone list were empty. The caller then splices each local list onto the zone's list under
the zone lock, patching only the first entry and the zone's old tail. Merging only ever
meets entries of the same call, because a buddy lies in the same max-order block, and a
call covers whole max-order blocks (deferred chunks are section-aligned; early init frees
a zone at once).

``lists`` holds the local lists (see `fastinit.kernels.descriptors`).
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import (LISTS, PAGEBLOCK_TYPES, PAGES, PFN_RANGES, PFNS, inline_helper,
                                   kernel, loop_helper)
from fastinit.kernels.descriptors import (COUNT, FIRST, LAST, descriptor_index, largest_order,
                                          list_append_run, list_head, lru_address, lru_pfn,
                                          max_order_pieces, pageblock_index, range_pages,
                                          set_pageblock_types, zone_id)
from fastinit.kernels.page_init import init_single_page
from fastinit.layout import (LIST_POISON1, LIST_POISON2, MAPCOUNT_NONE, MAX_ORDER,
                             MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE, PAGE_BUDDY_MAPCOUNT,
                             PAGE_DTYPE, PAGEBLOCK_NR_PAGES, PAGEBLOCK_ORDER, PG_RESERVED)

# Migratetypes below MIGRATE_PCPTYPES may merge with each other at pageblock order.
_MIGRATE_PCPTYPES = 3
_STRIDE = np.uint64(PAGE_DTYPE.itemsize)


@inline_helper
def set_buddy(pages, i, order):
    """``set_buddy_order()``: descriptor ``i`` heads a free block of ``order``."""
    pages[i]["private"] = order
    pages[i]["mapcount"] = PAGE_BUDDY_MAPCOUNT


@inline_helper
def clear_buddy(pages, i):
    """What taking descriptor ``i``'s block off a free list leaves: ``list_del()`` poisons
    its links, and it stops being a buddy (mapcount -1, private 0)."""
    pages[i]["lru_next"] = np.uint64(LIST_POISON1)
    pages[i]["lru_prev"] = np.uint64(LIST_POISON2)
    pages[i]["mapcount"] = MAPCOUNT_NONE
    pages[i]["private"] = 0


@kernel(types.void(PAGES, PFNS, types.int64, types.int64, types.int64, types.int64,
                   types.uint64, LISTS))
def _add_to_tail(pages, slots, base_pfn, pfn, order, migratetype, list_base, lists):
    head = list_head(list_base, order, migratetype)
    i = descriptor_index(slots, base_pfn, pfn)
    last = list_append_run(lists, order, migratetype, pfn, pfn, 1)
    pages[i]["lru_next"] = head
    if last < 0:
        pages[i]["lru_prev"] = head
    else:
        pages[i]["lru_prev"] = lru_address(last)
        pages[descriptor_index(slots, base_pfn, last)]["lru_next"] = lru_address(pfn)


@inline_helper
def _del_from_list(pages, slots, base_pfn, pfn, order, migratetype, list_base, lists, counts):
    """Take the free block at ``pfn`` off its local list; ``counts`` is ``lists`` again (its
    COUNT row), the signature `merge_free_block` calls (a zone's heads and counts are apart)."""
    head = list_head(list_base, order, migratetype)
    i = descriptor_index(slots, base_pfn, pfn)
    next_address = pages[i]["lru_next"]
    prev_address = pages[i]["lru_prev"]
    if prev_address == head:
        lists[FIRST, order, migratetype] = -1 if next_address == head else lru_pfn(next_address)
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(prev_address))]["lru_next"] = next_address
    if next_address == head:
        lists[LAST, order, migratetype] = -1 if prev_address == head else lru_pfn(prev_address)
    else:
        pages[descriptor_index(slots, base_pfn, lru_pfn(next_address))]["lru_prev"] = prev_address
    counts[COUNT, order, migratetype] -= 1
    clear_buddy(pages, i)


@loop_helper
def merge_free_block(pages, pageblock_mt, slots, base_pfn, pfn, order, unlist, list_base,
                     lists, counts):
    """The merging of ``__free_one_page()``, written once for local and for zone lists.

    While the buddy of the free block ``[pfn, pfn + 2**order)`` is a free block of the same
    order in the same zone (and, at pageblock order and above, of a compatible
    migratetype), the buddy is taken off its list and the two become one block of the next
    order, with the freed block's migratetype, pageblock by pageblock.

    Parameters
    ----------
    pfn, order : int
        The free block (refcount 0, PG_reserved clear), not yet listed.
    unlist : helper
        Takes a free buddy off its list: ``unlist(pages, slots, base_pfn, pfn, order,
        migratetype, list_base, lists, counts)``: `_del_from_list` for local lists,
        `fastinit.kernels.buddy_alloc.zone_list_del` for a zone's own (a helper, not a
        kernel: see `fastinit.kernels._jit.loop_helper`).
    list_base, lists, counts
        The lists, as ``unlist`` takes them.

    Returns
    -------
    (int, int, int)
        The merged block's pfn and order, and the migratetype of the list it belongs on.
    """
    migratetype = np.int64(pageblock_mt[pageblock_index(slots, base_pfn, pfn)])
    zone = zone_id(pages[descriptor_index(slots, base_pfn, pfn)]["flags"])
    while order < MAX_ORDER:
        buddy_pfn = pfn ^ (1 << order)
        buddy = pages[descriptor_index(slots, base_pfn, buddy_pfn)]
        if (buddy["mapcount"] != PAGE_BUDDY_MAPCOUNT or buddy["private"] != order
                or zone_id(buddy["flags"]) != zone):
            break
        buddy_mt = migratetype
        if order >= PAGEBLOCK_ORDER:
            buddy_mt = np.int64(pageblock_mt[pageblock_index(slots, base_pfn, buddy_pfn)])
            if buddy_mt != migratetype and (migratetype >= _MIGRATE_PCPTYPES
                                            or buddy_mt >= _MIGRATE_PCPTYPES):
                break
        unlist(pages, slots, base_pfn, buddy_pfn, order, buddy_mt, list_base, lists, counts)
        if buddy_mt != migratetype:
            set_pageblock_types(pageblock_mt, slots, base_pfn, buddy_pfn,
                                buddy_pfn + (1 << order), migratetype)
        pfn &= buddy_pfn
        order += 1
    return pfn, order, migratetype


@kernel(types.void(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, types.int64, types.int64,
                   types.uint64, LISTS))
def free_one_page(pages, pageblock_mt, slots, base_pfn, pfn, order, list_base, lists):
    """``__free_one_page()``: merge the free block with free buddies, then list it.

    The block ``[pfn, pfn + 2**order)`` must already have refcount 0 and PG_reserved clear.
    It goes to the list of its pageblock's migratetype, at the tail (``FPI_TO_TAIL``).
    """
    pfn, order, migratetype = merge_free_block(pages, pageblock_mt, slots, base_pfn, pfn,
                                               order, _del_from_list, list_base, lists, lists)
    set_buddy(pages, descriptor_index(slots, base_pfn, pfn), order)
    _add_to_tail(pages, slots, base_pfn, pfn, order, migratetype, list_base, lists)


@kernel(types.void(PAGES, PFNS, types.int64, types.int64, types.int64))
def prepare_free(pages, slots, base_pfn, pfn, count):
    """``__free_pages_core()`` before the free: clear PG_reserved, refcount 0."""
    i = descriptor_index(slots, base_pfn, pfn)
    keep = ~np.uint64(PG_RESERVED)
    for j in range(i, i + count):
        pages[j]["flags"] = pages[j]["flags"] & keep
        pages[j]["refcount"] = 0


@kernel(types.int64(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, PFN_RANGES, types.uint64,
                    LISTS))
def free_pages_ranges(pages, pageblock_mt, slots, base_pfn, ranges, list_base, lists):
    """Free initialized ranges the way ``memblock_free_all()`` does.

    Each range is cut into the largest naturally aligned blocks (at most MAX_ORDER) and
    each block is freed with merging.

    Parameters
    ----------
    pages : ndarray of PAGE_DTYPE, shape (nr_slots * PAGES_PER_SECTION,)
    pageblock_mt : ndarray of uint8, shape (nr_slots * PAGEBLOCKS_PER_SECTION,)
    slots : ndarray of int64, shape (nr_sections,)
        Slot of each section from ``base_pfn`` on (see `page_init`).
    base_pfn : int
        Section-aligned pfn of ``slots[0]``.
    ranges : ndarray of int64, shape (n, 2)
        Sorted, disjoint ``[start, end)`` pfn ranges of one zone.
    list_base : uint64
        Address of the zone's ``free_area[0].free_list[0]``.
    lists : ndarray of int64, shape (3, NR_ORDERS, MIGRATE_TYPES)
        Local lists (see the module docstring); updated.

    Returns
    -------
    int
        Pages freed.
    """
    for r in range(ranges.shape[0]):
        pfn, end = ranges[r, 0], ranges[r, 1]
        while pfn < end:
            order = largest_order(pfn, end)
            prepare_free(pages, slots, base_pfn, pfn, 1 << order)
            free_one_page(pages, pageblock_mt, slots, base_pfn, pfn, order, list_base, lists)
            pfn += 1 << order
    return range_pages(ranges)


@kernel(types.void(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, types.int64, types.int64,
                   types.uint64, types.uint64, LISTS))
def init_free_piece(pages, pageblock_mt, slots, base_pfn, spfn, epfn, links, list_base,
                    lists):
    """Init then free ``[spfn, epfn)``, a piece inside one max-order block (two passes).

    A whole aligned max-order block is freed at once, anything less page by page, as
    ``deferred_free_pages()`` does; pageblocks starting in the piece become MOVABLE.
    """
    i = descriptor_index(slots, base_pfn, spfn)
    lru = lru_address(spfn)
    for j in range(i, i + epfn - spfn):
        init_single_page(pages, j, links, lru)
        lru += _STRIDE
    if epfn - spfn == MAX_ORDER_NR_PAGES and (spfn & (MAX_ORDER_NR_PAGES - 1)) == 0:
        set_pageblock_types(pageblock_mt, slots, base_pfn, spfn, epfn, MIGRATE_MOVABLE)
        prepare_free(pages, slots, base_pfn, spfn, epfn - spfn)
        free_one_page(pages, pageblock_mt, slots, base_pfn, spfn, MAX_ORDER, list_base, lists)
    else:
        for pfn in range(spfn, epfn):
            if (pfn & (PAGEBLOCK_NR_PAGES - 1)) == 0:
                pageblock_mt[pageblock_index(slots, base_pfn, pfn)] = MIGRATE_MOVABLE
            prepare_free(pages, slots, base_pfn, pfn, 1)
            free_one_page(pages, pageblock_mt, slots, base_pfn, pfn, 0, list_base, lists)


@kernel(types.int64(PAGES, PAGEBLOCK_TYPES, PFNS, types.int64, PFN_RANGES, types.int64,
                    types.int64, types.uint64, types.uint64, LISTS))
def deferred_init_chunk(pages, pageblock_mt, slots, base_pfn, ranges, start_pfn, end_pfn,
                        links, list_base, lists):
    """``deferred_init_memmap_chunk()``: init then free the free ranges in a chunk.

    For every max-order piece of every free range inside ``[start_pfn, end_pfn)`` (see
    `fastinit.kernels.descriptors.max_order_pieces`; a run of whole blocks block by block), the
    descriptors are initialized, then freed (`init_free_piece`). Two passes per piece, as
    the kernel does, with plain stores: this is the reference path.

    Parameters
    ----------
    ranges : ndarray of int64, shape (n, 2)
        The node's free ranges in the deferred zone, sorted and disjoint; those outside
        the chunk are skipped and the others clipped to it.
    start_pfn, end_pfn : int
        The chunk.
    links : uint64
        ``page_links(nid, zid)`` of the zone.

    Other parameters are as for `free_pages_ranges`.

    Returns
    -------
    int
        Pages initialized (and freed).
    """
    done = 0
    for spfn, epfn, whole in max_order_pieces(ranges, start_pfn, end_pfn):
        step = MAX_ORDER_NR_PAGES if whole else epfn - spfn
        for piece in range(spfn, epfn, step):
            init_free_piece(pages, pageblock_mt, slots, base_pfn, piece, piece + step, links,
                            list_base, lists)
        done += epfn - spfn
    return done
