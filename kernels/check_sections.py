"""Check a booted memmap section by section, as verify's parallel pass does.

For each section, one read of its descriptors (a section is 2 MiB of them: it stays in
cache while it is checked three ways):

- **serial reference**: where a deferred job covers the section, its free ranges are
  redone with the plain two-pass kernel (`deferred_init_chunk`) in a one-section scratch
  copy, from the state before deferred init (the free descriptors scribbled over, their
  pageblocks UNMOVABLE); the real descriptors the reference wrote (the job's free ranges,
  not a neighbour node's memory in a section the job shares) must equal it byte for byte
  except the list links of free-block heads (list order depends on which chunk finished
  first), and so must the pageblock migratetypes;
- **canonical buddy state**: a descriptor heads a free block exactly where the buddy
  decomposition of the free ranges starts one, with that order, and every head is on a
  free list (the bits `fastinit.kernels.check_lists.walk_free_lists` set);
- **expected state** of every descriptor (node and zone links, reserved, counts, the
  fields init leaves zero, lru links) and of every pageblock's migratetype.

Nothing read from the memmap can steer a write: pageblock migratetypes are checked before
the reference kernel uses them as list indices (a section holding one out of range is not
redone), and in the scratch copy a descriptor outside the free ranges never looks like a
free block, so the reference kernel never merges with it nor follows its links.

Problems are counted per kind in ``out`` (see `fastinit.kernels.check_descriptors`).
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import (LISTS, PAGEBLOCK_TYPES, PAGES, PFN_RANGES,
                                   RO_PAGEBLOCK_TYPES, RO_PFN_RANGES, RO_PFNS, RO_U64, RO_WORDS,
                                   kernel)
from fastinit.kernels.descriptors import clear_local_lists, first_range_after, largest_order
from fastinit.kernels.buddy_free import deferred_init_chunk
from fastinit.kernels.check_descriptors import (BUDDY, CHECKED, COMPARED, LOW_HALF, OUT,
                                                REFERENCE_MIGRATETYPE_DIFFERS,
                                                REFERENCE_SKIPPED, RO_BYTES, WORDS_PER_PAGE,
                                                WRONG_STATE, MIGRATETYPE_INVALID,
                                                MIGRATETYPE_WRONG, check_piece, note)
from fastinit.layout import (MIGRATE_MOVABLE, MIGRATE_TYPES, MIGRATE_UNMOVABLE,
                             PAGEBLOCK_NR_PAGES, PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION,
                             SECTION_SHIFT)

# A piece whose descriptors another check covers (max-order blocks HugeTLB pools changed
# after deferred init: neither the reference nor the expected state applies there).
CHECKED_ELSEWHERE = 2
# Garbage where deferred init writes, so a read before a write shows in the comparison.
_SCRIBBLE = np.uint64(0xA5A5A5A5A5A5A5A5)


@kernel(types.boolean(RO_PFN_RANGES, types.int64))
def _inside(ranges, pfn):
    """Whether ``pfn`` lies in one of the sorted, disjoint ``ranges``."""
    r = first_range_after(ranges, pfn)
    return r < ranges.shape[0] and ranges[r, 0] <= pfn


@kernel(types.boolean(RO_PAGEBLOCK_TYPES, types.int64, types.int64, RO_PFN_RANGES, OUT))
def _check_pageblocks(pageblock_mt, slot, first_pfn, movable, out):
    """Each pageblock of the section: a valid migratetype, MOVABLE exactly where one of
    ``movable`` holds its first pfn. Returns whether all are valid list indices."""
    valid = True
    for b in range(PAGEBLOCKS_PER_SECTION):
        migratetype = pageblock_mt[slot * PAGEBLOCKS_PER_SECTION + b]
        pfn = first_pfn + b * PAGEBLOCK_NR_PAGES
        if migratetype >= MIGRATE_TYPES:
            valid = False
            note(out, MIGRATETYPE_INVALID, 1, pfn)
        expected = MIGRATE_MOVABLE if _inside(movable, pfn) else MIGRATE_UNMOVABLE
        if migratetype != expected:
            note(out, MIGRATETYPE_WRONG, 1, pfn)
    return valid


@kernel(types.void(RO_WORDS, types.int64, types.int64, types.int64, types.int64, OUT))
def _check_untouched(words, slot, first_pfn, lo, hi, out):
    """Descriptors of ``[lo, hi)``, in no piece, must hold no state at all (all zero).

    In a whole machine's memmap every pfn of a present section is in a piece; in one
    node's shard (`fastinit.mm.plan.BootPlan.shard`) the pfns of a section it shares with
    a neighbour node are that node's, and the shard's boot must not have written them.
    """
    begin = (slot * PAGES_PER_SECTION + lo - first_pfn) * WORDS_PER_PAGE
    for j in range(hi - lo):
        state = np.uint64(0)
        for k in range(WORDS_PER_PAGE):
            state |= words[begin + j * WORDS_PER_PAGE + k]
        if state:
            note(out, WRONG_STATE, 1, lo + j)


@kernel(types.void(types.int8[::1], types.int64, types.int64, types.int64, RO_PFN_RANGES,
                   RO_BYTES))
def _expected_heads(expected_order, first_pfn, lo, hi, pieces, reserved):
    """Order of the free block the buddy decomposition starts at each pfn of ``[lo, hi)``
    (-1: none), at its offset from ``first_pfn``."""
    expected_order[lo - first_pfn:hi - first_pfn] = -1
    r = first_range_after(pieces, lo)
    while r < pieces.shape[0] and pieces[r, 0] < hi:
        if not reserved[r]:
            pfn, end = max(pieces[r, 0], lo), min(pieces[r, 1], hi)
            while pfn < end:
                order = largest_order(pfn, end)
                expected_order[pfn - first_pfn] = order
                pfn += 1 << order
        r += 1


@kernel(types.void(RO_WORDS, types.int64, types.uint64[::1], types.int64, types.int64))
def _copy_span(words, slot, scratch_words, lo, hi):
    """Copy the descriptors at section offsets ``[lo, hi)`` into the scratch copy, where
    none may look like a free block: the reference kernel must never merge with one it did
    not free itself, nor follow its links."""
    begin = slot * PAGES_PER_SECTION * WORDS_PER_PAGE
    scratch_words[lo * WORDS_PER_PAGE:hi * WORDS_PER_PAGE] = words[begin + lo * WORDS_PER_PAGE:begin + hi * WORDS_PER_PAGE]
    for j in range(lo, hi):
        if scratch_words[j * WORDS_PER_PAGE + 6] & LOW_HALF == BUDDY:
            scratch_words[j * WORDS_PER_PAGE + 6] |= LOW_HALF


@kernel(types.void(RO_WORDS, types.int64, types.uint64[::1], PAGEBLOCK_TYPES, types.uint8[::1],
                   PFN_RANGES, types.int64, types.int64, types.int64, types.int64, types.int64,
                   types.boolean))
def _before_deferred_init(words, slot, scratch_words, scratch_mt, redone, free, first_pfn, lo,
                          hi, start, end, copy):
    """The span ``[lo, hi)`` as deferred init of ``[start, end)`` found it, in the scratch
    copy: garbage in the descriptors of the ``free`` ranges (so a read before a write
    shows), their pageblocks UNMOVABLE (the kernel allocates the bitmap zeroed), and, if
    ``copy``, the rest of the span as the memmap holds it. ``redone`` marks the pfns the
    reference will write (section offsets): only those are compared with the memmap."""
    done = lo - first_pfn
    for r in range(free.shape[0]):
        s, e = max(free[r, 0], start) - first_pfn, min(free[r, 1], end) - first_pfn
        if s < e:
            if copy:
                _copy_span(words, slot, scratch_words, done, s)
            scratch_words[s * WORDS_PER_PAGE:e * WORDS_PER_PAGE] = _SCRIBBLE
            redone[s:e] = 1
            for j in range(s + (-s & (PAGEBLOCK_NR_PAGES - 1)), e, PAGEBLOCK_NR_PAGES):
                scratch_mt[j // PAGEBLOCK_NR_PAGES] = MIGRATE_UNMOVABLE
            done = e
    if copy:
        _copy_span(words, slot, scratch_words, done, hi - first_pfn)


@kernel(types.UniTuple(types.int64, 2)(
    RO_WORDS, RO_PAGEBLOCK_TYPES, types.int64, types.int64, types.boolean, RO_PFN_RANGES,
    RO_U64, RO_U64, RO_PFN_RANGES, RO_PFNS, PAGES, types.uint64[::1], PAGEBLOCK_TYPES, LISTS,
    types.uint8[::1], OUT))
def _redo_deferred_init(words, pageblock_mt, slot, first_pfn, valid, jobs, job_links,
                        job_list_base, job_free, job_free_bounds, scratch, scratch_words,
                        scratch_mt, scratch_lists, redone, out):
    """Serial reference: redo each deferred job's part of the section in the scratch copy
    and compare the pageblocks. Returns the span of the jobs' parts redone, ``[lo, hi)``
    (empty if none); ``redone`` marks the pfns in it the reference wrote."""
    end_pfn = first_pfn + PAGES_PER_SECTION
    compare_lo, compare_hi = end_pfn, first_pfn
    scratch_mt[:] = pageblock_mt[slot * PAGEBLOCKS_PER_SECTION:
                                 (slot + 1) * PAGEBLOCKS_PER_SECTION]
    one_slot = np.zeros(1, np.int64)
    x = first_range_after(jobs, first_pfn)
    while x < jobs.shape[0] and jobs[x, 0] < end_pfn:
        start, end = max(jobs[x, 0], first_pfn), min(jobs[x, 1], end_pfn)
        free = job_free[job_free_bounds[x]:job_free_bounds[x + 1]]
        r = first_range_after(free, start)
        if r < free.shape[0] and free[r, 0] < end:
            if not valid:
                note(out, REFERENCE_SKIPPED, 1, first_pfn)
                return end_pfn, first_pfn
            # The few ranges the part touches, as the C array the kernel takes.
            nearby = free[r:first_range_after(free, end - 1) + 1].copy()
            # The first job copies the section but its free ranges; a second one's free
            # ranges lie in what the first copied. (``redone`` is read only where a job
            # was redone.)
            if compare_lo >= compare_hi:
                redone[:] = 0
            _before_deferred_init(words, slot, scratch_words, scratch_mt, redone, nearby,
                                  first_pfn, first_pfn, end_pfn, start, end,
                                  compare_lo >= compare_hi)
            clear_local_lists(scratch_lists)
            deferred_init_chunk(scratch, scratch_mt, one_slot, first_pfn, nearby, start, end,
                                job_links[x], job_list_base[x], scratch_lists)
            compare_lo, compare_hi = min(compare_lo, start), max(compare_hi, end)
            out[COMPARED, 0] += end - start
        x += 1
    if compare_lo < compare_hi:
        for b in range(PAGEBLOCKS_PER_SECTION):
            if pageblock_mt[slot * PAGEBLOCKS_PER_SECTION + b] != scratch_mt[b]:
                note(out, REFERENCE_MIGRATETYPE_DIFFERS, 1, first_pfn + b * PAGEBLOCK_NR_PAGES)
    return compare_lo, compare_hi


@kernel(types.void(RO_WORDS, types.int64, types.int64, RO_PFN_RANGES, RO_U64, RO_BYTES,
                   types.int8[::1], RO_BYTES, types.uint64[::1], types.uint8[::1], types.int64,
                   types.int64, OUT))
def _check_pieces(words, slot, first_pfn, pieces, piece_links, piece_reserved, expected_order,
                  listed, scratch_words, redone, compare_lo, compare_hi, out):
    """Every descriptor of the section, piece by piece (a pfn in no piece should have no
    state at all, and a piece `CHECKED_ELSEWHERE` is skipped); against the reference too
    where the reference wrote it (``redone``, inside ``[compare_lo, compare_hi)``)."""
    end_pfn = first_pfn + PAGES_PER_SECTION
    position = first_pfn
    r = first_range_after(pieces, first_pfn)
    while r < pieces.shape[0] and pieces[r, 0] < end_pfn:
        start, end = max(pieces[r, 0], first_pfn), min(pieces[r, 1], end_pfn)
        _check_untouched(words, slot, first_pfn, position, start, out)
        position = end
        r += 1
        if piece_reserved[r - 1] == CHECKED_ELSEWHERE:
            continue
        # The part the reference redid (cuts 1 to 2), and the parts around it.
        middle = min(max(compare_lo, start), end) if compare_lo < compare_hi else end
        cuts = (start, middle, min(max(compare_hi, middle), end), end)
        for c in range(3):
            if cuts[c] < cuts[c + 1]:
                check_piece(words, slot, first_pfn, cuts[c], cuts[c + 1], piece_links[r - 1],
                            piece_reserved[r - 1] != 0, expected_order, listed, scratch_words,
                            redone, c == 1, out)
    _check_untouched(words, slot, first_pfn, position, end_pfn, out)


@kernel(types.void(RO_WORDS, RO_PAGEBLOCK_TYPES, RO_PFNS, types.int64, types.int64,
                   RO_PFN_RANGES, RO_U64, RO_BYTES, RO_PFN_RANGES, RO_PFN_RANGES, RO_U64, RO_U64,
                   RO_PFN_RANGES, RO_PFNS, RO_BYTES, PAGES, types.uint64[::1], PAGEBLOCK_TYPES,
                   LISTS, types.int8[::1], types.uint8[::1], OUT))
def check_sections(words, pageblock_mt, sections, slot_lo, slot_hi, pieces, piece_links,
                   piece_reserved, movable, jobs, job_links, job_list_base, job_free,
                   job_free_bounds, listed, scratch, scratch_words, scratch_mt, scratch_lists,
                   expected_order, redone, out):
    """Check the sections in slots ``[slot_lo, slot_hi)`` (see the module docstring).

    Parameters
    ----------
    words : ndarray of uint64, shape (nr_pages * 8,)
        The memmap's descriptors, as words.
    pageblock_mt : ndarray of uint8, shape (nr_sections * PAGEBLOCKS_PER_SECTION,)
    sections : ndarray of int64, shape (nr_sections,)
    slot_lo, slot_hi : int
        The slots to check.
    pieces : ndarray of int64, shape (n, 2)
        Sorted, disjoint pfn ranges that have descriptors and what each should hold:
    piece_links : ndarray of uint64, shape (n,)
        ``page_links(nid, zid)`` of each piece;
    piece_reserved : ndarray of uint8, shape (n,)
        1 for reserved memory and holes, 0 for free memory, `CHECKED_ELSEWHERE` for
        memory another check covers (HugeTLB pools: `fastinit.mm.hugetlb.verify`). A pfn
        of a present section outside every piece should have no state at all: any is
        wrong.
    movable : ndarray of int64, shape (m, 2)
        Sorted, disjoint pfn ranges; a pageblock starting in one is MOVABLE, others
        UNMOVABLE.
    jobs : ndarray of int64, shape (k, 2)
        Each node's deferred job ``[start, end)``, sorted.
    job_links, job_list_base : ndarray of uint64, shape (k,)
        Links and free-list base of each job's zone.
    job_free : ndarray of int64, shape (f, 2)
        Each job's free ranges (sorted), one job after the other.
    job_free_bounds : ndarray of int64, shape (k + 1,)
        Job ``x``'s free ranges are ``job_free[job_free_bounds[x]:job_free_bounds[x + 1]]``.
    listed : ndarray of uint8, shape (ceil(nr_pages / 8),)
        A bit per descriptor on a free list.
    scratch, scratch_words, scratch_mt, scratch_lists, expected_order, redone
        One section's worth of working memory (descriptors and the same memory as words,
        pageblocks, local lists, int8 and uint8 per page), owned by the caller's thread.
    out : ndarray of int64, shape (NR_KINDS, 2)
        Problem counts and first pfns, added to.
    """
    for slot in range(slot_lo, slot_hi):
        first_pfn = sections[slot] << SECTION_SHIFT
        valid = _check_pageblocks(pageblock_mt, slot, first_pfn, movable, out)
        compare_lo, compare_hi = _redo_deferred_init(
            words, pageblock_mt, slot, first_pfn, valid, jobs, job_links, job_list_base,
            job_free, job_free_bounds, scratch, scratch_words, scratch_mt, scratch_lists, redone,
            out)
        _expected_heads(expected_order, first_pfn, first_pfn, first_pfn + PAGES_PER_SECTION,
                        pieces, piece_reserved)
        _check_pieces(words, slot, first_pfn, pieces, piece_links, piece_reserved,
                      expected_order, listed, scratch_words, redone, compare_lo, compare_hi, out)
        out[CHECKED, 0] += PAGES_PER_SECTION
