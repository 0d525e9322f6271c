"""Descriptor checks of the memory HugeTLB pools own or changed (for `fastinit.mm.hugetlb.verify`).

- `check_page`: every descriptor of one pool page, as Linux 6.1 writes a HugeTLB page
  (see `fastinit.kernels.compound`), read as the kernel reads it: with HVO every page of
  descriptors after the first reads as the first (a tail at a page boundary shows the
  head, which ``page_fixed_fake_head()`` resolves through the next ``compound_head``);
- `check_blocks`: every other descriptor of the max-order blocks the pools changed after
  deferred init (the halves split off pool pages, the vmemmap HVO freed): free blocks
  exactly where the buddy decomposition of the free memory starts them, each on a free
  list, and every descriptor in the state boot and the buddy allocator leave it.
"""

from __future__ import annotations

import numpy as np

from fastinit.kernels.descriptors import largest_order, lru_address, page_address, page_links
from fastinit.kernels.compound import (HPG_VMEMMAP_OPTIMIZED, HUGETLB_PAGE_DTOR, PG_HEAD,
                                       TAIL_MAPPING)
from fastinit.layout import (DESCRIPTORS_PER_PAGE, LIST_POISON1, LIST_POISON2, MAPCOUNT_NONE,
                             MAX_ORDER, PAGE_BUDDY_MAPCOUNT, PG_RESERVED)
from fastinit.mm.hugetlb.plan import zone_of


def check_page(result, pfn: int, order: int, nid: int) -> list[str]:
    """What is wrong with the descriptors of the pool page at ``pfn`` (empty: nothing)."""
    memmap = result.memmap
    first = memmap.index(pfn)
    count = 1 << order
    rows = memmap.pages[first:first + count]
    zid = zone_of(result.plan.topology, nid, pfn)
    links = np.uint64(page_links(nid, zid))
    head_address = page_address(pfn)
    optimized = bool(int(rows[0]["private"]) & HPG_VMEMMAP_OPTIMIZED)
    wrong = []
    if int(rows[0]["flags"]) != int(links | np.uint64(PG_HEAD)):
        wrong.append("head flags")
    if int(rows[0]["lru_next"]) == int(lru_address(pfn)):
        wrong.append("head on no free list")
    written = DESCRIPTORS_PER_PAGE if optimized else count
    tails = rows[1:written]
    if np.any(tails["flags"] != links) or np.any(rows[:written]["refcount"] != 0):
        wrong.append("flags or refcount of a tail")
    if np.any(tails["lru_next"] != head_address + np.uint64(1)):
        wrong.append("compound_head of a tail")
    if np.any(tails["mapcount"] != MAPCOUNT_NONE) or np.any(tails["private"] != 0):
        wrong.append("mapcount or private of a tail")
    # Buddy pages' tails get TAIL_MAPPING (prep_compound_tail()); boot pages' keep 0.
    mapping = np.uint64(0 if order > MAX_ORDER else TAIL_MAPPING)
    if np.any(tails[1:]["mapping"] != mapping):
        wrong.append("mapping of a tail")
    info = int(rows[1]["lru_prev"])
    if (info & 0xFF, (info >> 8) & 0xFF, info >> 32) != (HUGETLB_PAGE_DTOR, order,
                                                       0xFFFFFFFF) or \
            int(rows[1]["mapping"]) != count << 32:
        wrong.append("the first tail's compound fields")
    if optimized:
        words = rows.view(np.uint64).reshape(count // DESCRIPTORS_PER_PAGE,
                                             DESCRIPTORS_PER_PAGE, 8)
        if np.any(words[1:] != words[0]):
            wrong.append("a remapped vmemmap page reads unlike the kept one")
        elif not _fake_heads_resolve(words, int(head_address)):
            wrong.append("a fake head does not resolve to its head")
    return wrong


def _fake_heads_resolve(words: np.ndarray, head_address: int) -> bool:
    """``page_fixed_fake_head()`` on each remapped page's first descriptor: it reads as a
    head, and the descriptor after it names the real head."""
    flags, following = words[1:, 0, 0], words[1:, 1, 1]
    return bool(np.all(flags & np.uint64(PG_HEAD)) and
                np.all(following == np.uint64(head_address + 1)))


def check_blocks(result, blocks, free, pool, pieces, listed) -> tuple[int, list[str]]:
    """Every descriptor of ``blocks`` outside the pool pages.

    Parameters
    ----------
    blocks : list of (int, int)
        Max-order aligned pfn ranges the pools changed.
    free : ndarray of int64, shape (n, 2)
        Free memory now (sorted ranges), over all zones.
    pool : list of (int, int)
        Pool pages' pfn ranges (checked by `check_page`).
    pieces : tuple of ndarrays
        ``(pieces, piece_links, piece_reserved)`` of the plan's expected state.
    listed : ndarray of uint8
        A bit per descriptor on a zone's free list.

    Returns
    -------
    (int, list of str)
        Descriptors checked, and problems.
    """
    memmap = result.memmap
    starts, links_of, reserved_of = pieces
    problems, checked = [], 0
    for lo, hi in blocks:
        pfns = np.arange(lo, hi, dtype=np.int64)
        keep = memmap.has(pfns)
        for start, end in pool:
            keep &= ~((pfns >= start) & (pfns < end))
        pfns = pfns[keep]
        index = memmap.index(pfns)
        if not len(pfns):
            continue
        rows = memmap.pages[index]
        piece = np.searchsorted(starts[:, 0], pfns, side="right") - 1
        is_free = _inside(free, pfns)
        links = links_of[piece]
        reserved = (reserved_of[piece] != 0) & ~is_free
        order = _heads(free, lo, hi, pfns)
        head = order >= 0
        bad = rows["flags"] != (links | np.where(reserved, np.uint64(PG_RESERVED), 0))
        bad |= rows["refcount"] != reserved.astype(np.int32)
        bad |= (rows["mapping"] != 0) | (rows["index"] != 0) | (rows["memcg_data"] != 0)
        bad |= rows["mapcount"] != np.where(head, PAGE_BUDDY_MAPCOUNT, MAPCOUNT_NONE)
        bad |= rows["private"] != np.where(head, order, 0).astype(np.uint64)
        own = lru_address(pfns.astype(np.uint64))
        to_self = (rows["lru_next"] == own) & (rows["lru_prev"] == own)
        poisoned = (rows["lru_next"] == np.uint64(LIST_POISON1)) & \
            (rows["lru_prev"] == np.uint64(LIST_POISON2)) & is_free
        bad |= ~head & ~to_self & ~poisoned
        bad |= head & ((listed[index >> 3] & (1 << (index & 7))) == 0)
        if bad.any():
            problems.append(f"{int(bad.sum())} descriptors near the pools hold a wrong "
                            f"state, the first at pfn {int(pfns[np.flatnonzero(bad)[0]]):#x}")
        checked += len(pfns)
    return checked, problems[:5]


def _inside(ranges: np.ndarray, pfns: np.ndarray) -> np.ndarray:
    at = np.searchsorted(ranges[:, 0], pfns, side="right") - 1
    return (at >= 0) & (pfns < ranges[np.maximum(at, 0), 1])


def _heads(free: np.ndarray, lo: int, hi: int, pfns: np.ndarray) -> np.ndarray:
    """Order of the free block the buddy decomposition of ``free`` starts at each of
    ``pfns`` (all in ``[lo, hi)``), -1 where none starts."""
    order = np.full(hi - lo, -1, dtype=np.int64)
    first = np.searchsorted(free[:, 1], lo, side="right")
    for start, end in free[first:].tolist():
        if start >= hi:
            break
        pfn, end = max(start, lo), min(end, hi)
        while pfn < end:
            size = largest_order(pfn, end)
            order[pfn - lo] = size
            pfn += 1 << size
    return order[pfns - lo]
