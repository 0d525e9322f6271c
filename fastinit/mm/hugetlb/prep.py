"""Writing the pool pages' descriptors: streamed where what was there is known, the
reference's plain stores everywhere else.

The streaming kernels (`fastinit.kernels.hugetlb_stream`) write a tail without reading it,
so they may only write tails whose old contents follow from the boot: a 2 MiB page's
tails if its max-order block was free memory whole when the boot freed it (a block with
reserved memory in it was freed in pieces, and merging those leaves list poison in some
tails), and every gigantic boot page's (reserved pages early init wrote). HVO writes only
the first 64 descriptors either way; a page HVO could not remap after all is written in
full by the reference (`in_full`), which reads what the remapper put back.
"""

from __future__ import annotations

import numpy as np

from fastinit.kernels.descriptors import page_links
from fastinit.kernels.compound import prep_buddy_huge_pages, prep_gigantic_pages
from fastinit.kernels.hugetlb_stream import stream_buddy_huge_pages, stream_gigantic_pages
from fastinit.layout import DESCRIPTORS_PER_PAGE, MAX_ORDER_NR_PAGES, PAGE_DTYPE, align_up

# A streaming store writes a whole, aligned 64-byte line.
_LINE = 64


def can_stream(memmap) -> bool:
    """The memmap's descriptors start on a cache line (always so for ours; a user's
    buffer might not)."""
    return memmap.words.ctypes.data % _LINE == 0 and PAGE_DTYPE.itemsize == _LINE


def whole_blocks(plan, key: tuple[int, int]) -> np.ndarray:
    """``[start, end)`` pfn runs of the max-order blocks of zone ``key`` that were free
    memory whole at boot, shape (n, 2) int64."""
    zone = plan.topology.zone(*key)
    free = plan.free_ranges(key[0], zone.start_pfn, zone.end_pfn)
    starts = (free[:, 0] + MAX_ORDER_NR_PAGES - 1) & ~np.int64(MAX_ORDER_NR_PAGES - 1)
    ends = free[:, 1] & ~np.int64(MAX_ORDER_NR_PAGES - 1)
    keep = starts < ends
    return np.stack([starts[keep], ends[keep]], axis=1).reshape(-1, 2)


def in_whole_blocks(runs: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """For each head, whether its max-order block is one of ``runs`` (bool array)."""
    at = np.searchsorted(runs[:, 0], heads, side="right") - 1
    inside = at >= 0
    inside[inside] &= heads[inside] < runs[at[inside], 1]
    return inside


def tails(order: int, optimize: bool) -> int:
    """Descriptors written per page: all, or the first 64 under HVO."""
    return DESCRIPTORS_PER_PAGE if optimize else 1 << order


def prep_buddy(state, key, heads: np.ndarray, order: int, optimize: bool) -> None:
    """Make blocks just taken from zone ``key``'s buddy allocator HugeTLB pages."""
    base, slots = state.slots[key]
    pages, count = state.memmap.pages, tails(order, optimize)
    known = in_whole_blocks(state.whole_blocks[key], heads) if state.stream else \
        np.zeros(len(heads), dtype=bool)
    if known.any():
        stream_buddy_huge_pages(state.memmap.words, slots, base,
                                np.ascontiguousarray(heads[known]), order, count,
                                np.uint64(page_links(*key)), optimize)
    if not known.all():
        prep_buddy_huge_pages(pages, slots, base, np.ascontiguousarray(heads[~known]),
                              order, count, optimize)


def prep_gigantic(state, key, heads: np.ndarray, order: int, optimize: bool) -> None:
    """Make memblock's boot pages of zone ``key`` HugeTLB pages."""
    base, slots = state.slots[key]
    links = np.uint64(page_links(*key))
    if state.stream:
        stream_gigantic_pages(state.memmap.words, slots, base, heads, order,
                              tails(order, optimize), links, optimize)
    else:
        prep_gigantic_pages(state.memmap.pages, slots, base, heads, order,
                            tails(order, optimize), links, False, optimize)


def in_full(state, key, order: int, gigantic: bool):
    """What writes every descriptor of pages HVO could not remap after all (the process
    ran out of mappings): buddy pages from what the remapper put back; gigantic pages
    initialized first, as early init skipped them past their first 64."""
    base, slots = state.slots[key]
    pages, count, links = state.memmap.pages, 1 << order, np.uint64(page_links(*key))
    if not gigantic:
        return lambda heads: prep_buddy_huge_pages(pages, slots, base, heads, order, count,
                                                   False)
    return lambda heads: prep_gigantic_pages(pages, slots, base, heads, order, count, links,
                                             True, False)
