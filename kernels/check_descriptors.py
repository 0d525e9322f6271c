"""One descriptor against what the boot gives it and against the serial reference.

The inner loop of verify's section pass (`fastinit.kernels.check_sections`): it reads every
descriptor of the memmap once, so a descriptor exactly as init leaves it costs a few word
operations and one branch, and anything else takes the detailed path. What it finds is
counted per kind in ``out`` (int64, shape (NR_KINDS, 2)): how many, and the lowest pfn.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import RO_WORDS, kernel
from fastinit.kernels.descriptors import lru_address
from fastinit.layout import (LIST_POISON1, LIST_POISON2, PAGE_BUDDY_MAPCOUNT, PAGE_DTYPE,
                             PAGES_PER_SECTION, PG_RESERVED)

# Kinds of problem (rows of ``out``), and two tallies.
(REFERENCE_DIFFERS, REFERENCE_MIGRATETYPE_DIFFERS, REFERENCE_SKIPPED, MIGRATETYPE_INVALID,
 MIGRATETYPE_WRONG, WRONG_STATE, NOT_CANONICAL, NOT_LISTED, HEADS, CHECKED,
 COMPARED) = range(11)
NR_KINDS = 11
KIND_NAMES = ("REFERENCE_DIFFERS", "REFERENCE_MIGRATETYPE_DIFFERS", "REFERENCE_SKIPPED",
              "MIGRATETYPE_INVALID", "MIGRATETYPE_WRONG", "WRONG_STATE", "NOT_CANONICAL",
              "NOT_LISTED", "HEADS", "CHECKED", "COMPARED")

OUT = types.int64[:, ::1]
RO_BYTES = types.Array(types.uint8, 1, "C", readonly=True)
WORDS_PER_PAGE = PAGE_DTYPE.itemsize // 8
# Word 6 of a descriptor: mapcount in the low half (PageBuddy's value marks a free block's
# head), refcount in the high half.
LOW_HALF = np.uint64(0xFFFFFFFF)
BUDDY = np.uint64(PAGE_BUDDY_MAPCOUNT & 0xFFFFFFFF)
_POISON1, _POISON2 = np.uint64(LIST_POISON1), np.uint64(LIST_POISON2)
_STRIDE = np.uint64(PAGE_DTYPE.itemsize)


@kernel(types.void(OUT, types.int64, types.int64, types.int64))
def note(out, kind, count, pfn):
    """Add ``count`` problems of ``kind``, the first at ``pfn``."""
    if count:
        if out[kind, 0] == 0 or pfn < out[kind, 1]:
            out[kind, 1] = pfn
        out[kind, 0] += count


@kernel(types.void(RO_WORDS, types.int64, types.int64, types.int64, types.uint64, types.boolean,
                   types.int8[::1], RO_BYTES, types.uint64[::1], types.boolean, OUT))
def _check_descriptor(words, index, pfn, j, flags, reserved, expected_order, listed,
                      scratch_words, compare, out):
    """Checks 1, 3 and 4 of one descriptor (``words`` index ``index``, section offset ``j``)
    in detail: the slow path, for heads of free blocks and for anything not as expected."""
    w, r = index * WORDS_PER_PAGE, j * WORDS_PER_PAGE
    word6 = words[w + 6]
    head = word6 & LOW_HALF == BUDDY
    order = expected_order[j]
    if head != (order >= 0) or head and words[w + 5] != np.uint64(max(order, 0)):
        note(out, NOT_CANONICAL, 1, pfn)
    refcount = np.uint64(1 if reserved else 0) << np.uint64(32)
    bad = (words[w] ^ flags) | words[w + 3] | words[w + 4] | words[w + 7]
    if head:
        out[HEADS, 0] += 1
        bad |= word6 ^ (refcount | BUDDY)
        if not listed[index >> 3] & (1 << (index & 7)):
            note(out, NOT_LISTED, 1, pfn)
    else:
        own = lru_address(pfn)
        bad |= (word6 ^ (refcount | LOW_HALF)) | words[w + 5]
        # list_del() of a buddy merged into a larger block leaves its links poisoned.
        if not (words[w + 1] == own and words[w + 2] == own) and (
                reserved or words[w + 1] != _POISON1 or words[w + 2] != _POISON2):
            bad = np.uint64(1)
    if bad:
        note(out, WRONG_STATE, 1, pfn)
    if compare:
        delta = np.uint64(0)
        for k in (0, 3, 4, 5, 6, 7):
            delta |= words[w + k] ^ scratch_words[r + k]
        # A head's links depend on which chunk finished first: the lists are walked instead.
        if not head and scratch_words[r + 6] & LOW_HALF != BUDDY:
            delta |= (words[w + 1] ^ scratch_words[r + 1]) | (words[w + 2] ^ scratch_words[r + 2])
        if delta:
            note(out, REFERENCE_DIFFERS, 1, pfn)


@kernel(types.void(RO_WORDS, types.int64, types.int64, types.int64, types.int64, types.uint64,
                   types.boolean, types.int8[::1], RO_BYTES, types.uint64[::1], types.uint8[::1],
                   types.boolean, OUT))
def check_piece(words, slot, first_pfn, start, end, links, reserved, expected_order, listed,
                scratch_words, redone, compare, out):
    """Checks 1 (if ``compare``, where ``redone`` marks a section offset the reference
    wrote), 3 and 4 for ``[start, end)``, a piece of the section with one node and zone
    (``links``) and one reserved flag.

    The reference writes only its own node's free ranges; the rest of its scratch copy is
    the memmap copied with free-block heads disguised (so the reference never merges with
    them), which says nothing about the boot: a neighbour node's free blocks in a section
    the job shares must not be compared with their disguise.

    This loop reads every descriptor of the memmap, so its common case (a descriptor
    exactly as init leaves it, equal to the reference, heading no block) costs a few
    word operations and one branch; anything else takes `_check_descriptor`.
    """
    flags = links | np.uint64(PG_RESERVED if reserved else 0)
    word6 = (np.uint64(1 if reserved else 0) << np.uint64(32)) | LOW_HALF
    base = slot * PAGES_PER_SECTION
    own = lru_address(start)
    for pfn in range(start, end):
        j = pfn - first_pfn
        w, r = (base + j) * WORDS_PER_PAGE, j * WORDS_PER_PAGE
        delta = ((words[w] ^ flags) | (words[w + 1] ^ own) | (words[w + 2] ^ own) | words[w + 3]
                 | words[w + 4] | words[w + 5] | (words[w + 6] ^ word6) | words[w + 7])
        here = compare and redone[j] != 0
        if here:
            for k in range(WORDS_PER_PAGE):
                delta |= words[w + k] ^ scratch_words[r + k]
        if delta or expected_order[j] >= 0:
            _check_descriptor(words, base + j, pfn, j, flags, reserved, expected_order, listed,
                              scratch_words, here, out)
        own += _STRIDE
