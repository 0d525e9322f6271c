"""Deferred init in one pass with streaming (non-temporal) stores.

An ordinary store first reads its cache line from memory (read-for-ownership), so a loop
of plain stores moves each descriptor twice across the memory bus. A non-temporal store
writes a whole line straight to memory. Numba has no way to ask for one, so two small
intrinsics emit it: an LLVM ``store <8 x i64>`` marked ``!nontemporal`` (one ``vmovntdq``
of 64 bytes with AVX-512, two or four narrower ones without), and ``sfence``, which every
writer runs before its stores may be read by another thread.

Whole max-order blocks are written in their final state directly: what init followed by
freeing the block at order MAX_ORDER leaves (no merging happens at the top order), with the
block heads linked in pfn order on the MOVABLE list. Pieces smaller than a block take the
two-pass reference path. The result is byte for byte what `deferred_init_chunk` writes.

Every descriptor written here must be 64-byte aligned (a misaligned ``vmovntdq`` faults):
the caller checks the array's address.
"""

from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastinit.kernels._jit import LISTS, PAGEBLOCK_TYPES, PAGES, PFN_RANGES, PFNS, kernel
from fastinit.kernels.descriptors import (descriptor_index, list_append_max_order_run,
                                          lru_address, max_order_pieces, pageblock_index)
from fastinit.kernels.buddy_free import init_free_piece
from fastinit.layout import (MAPCOUNT_NONE, MAX_ORDER, MAX_ORDER_NR_PAGES, MIGRATE_MOVABLE,
                             PAGE_BUDDY_MAPCOUNT, PAGE_DTYPE, PAGEBLOCK_NR_PAGES)

WORDS = types.uint64[::1]
_VECTOR = ir.VectorType(ir.IntType(64), 8)
_X86 = platform.machine().lower() in ("x86_64", "amd64")

# Word 6 of a descriptor is mapcount (low half) and refcount (high half), both final.
WORD6_TAIL = np.uint64(MAPCOUNT_NONE & 0xFFFFFFFF)
_WORD6_HEAD = np.uint64(PAGE_BUDDY_MAPCOUNT & 0xFFFFFFFF)
ZERO_WORD = np.uint64(0)
DESCRIPTOR_STRIDE = np.uint64(PAGE_DTYPE.itemsize)
DESCRIPTOR_WORDS = PAGE_DTYPE.itemsize // 8
_BLOCK_BYTES = np.uint64(MAX_ORDER_NR_PAGES * PAGE_DTYPE.itemsize)


@intrinsic
def store_record_nt(typingctx, words, word_index, values):
    """Store 8 uint64 ``values`` at ``words[word_index:word_index + 8]``, bypassing caches.

    The address must be 64-byte aligned; the store is declared so, which lets LLVM emit a
    single 64-byte ``vmovntdq`` where the CPU has one.
    """
    if not (isinstance(values, types.BaseTuple) and len(values) == 8):
        raise TypeError("store_record_nt needs a tuple of 8 integers")
    signature = types.void(words, word_index, values)

    def codegen(context, builder, sig, args):
        array, index, record = args
        vector = ir.Constant(_VECTOR, ir.Undefined)
        for lane in range(8):
            value = context.cast(builder, builder.extract_value(record, lane),
                                 sig.args[2][lane], types.uint64)
            vector = builder.insert_element(vector, value, ir.IntType(32)(lane))
        data = context.make_array(sig.args[0])(context, builder, array).data
        index = context.cast(builder, index, sig.args[1], types.intp)
        address = builder.bitcast(builder.gep(data, [index], inbounds=True),
                                  _VECTOR.as_pointer())
        store = builder.store(vector, address, align=64)
        store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def store_fence(typingctx):
    """``sfence`` on x86 (orders streaming stores before later stores); a full fence
    elsewhere. LLVM's release fence emits nothing on x86, so the intrinsic is called."""
    def codegen(context, builder, sig, args):
        if _X86:
            fence = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse.sfence")
            builder.call(fence, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@kernel(types.void(WORDS, PAGEBLOCK_TYPES, PFNS, types.int64, types.int64, types.int64,
                   types.uint64, types.uint64, LISTS))
def stream_max_order_blocks(words, pageblock_mt, slots, base_pfn, spfn, epfn, links,
                            list_base, lists):
    """Write the final state of the whole max-order blocks ``[spfn, epfn)`` (aligned).

    Each block becomes a free block of order MAX_ORDER on the MOVABLE list, appended in
    pfn order after whatever the local list already holds.
    """
    if epfn <= spfn:
        return
    head, last = list_append_max_order_run(lists, list_base, spfn, epfn)
    previous = head if last < 0 else lru_address(last)
    for block in range(spfn, epfn, MAX_ORDER_NR_PAGES):
        for pageblock in range(block, block + MAX_ORDER_NR_PAGES, PAGEBLOCK_NR_PAGES):
            pageblock_mt[pageblock_index(slots, base_pfn, pageblock)] = MIGRATE_MOVABLE
        i = descriptor_index(slots, base_pfn, block)
        lru = lru_address(block)
        following = head if block + MAX_ORDER_NR_PAGES >= epfn else \
            lru + _BLOCK_BYTES
        store_record_nt(words, i * DESCRIPTOR_WORDS,
                        (links, following, previous, ZERO_WORD, ZERO_WORD,
                         np.uint64(MAX_ORDER), _WORD6_HEAD, ZERO_WORD))
        # The other pages: no branch, one 64-byte streaming store each.
        for j in range(i + 1, i + MAX_ORDER_NR_PAGES):
            lru += DESCRIPTOR_STRIDE
            store_record_nt(words, j * DESCRIPTOR_WORDS,
                            (links, lru, lru, ZERO_WORD, ZERO_WORD, ZERO_WORD,
                             WORD6_TAIL, ZERO_WORD))
        previous = lru_address(block)
    if last >= 0:
        # The earlier tail now points at this run: a plain store to a line this thread
        # streamed, ordered after that streaming store by the fence.
        store_fence()
        words[descriptor_index(slots, base_pfn, last) * DESCRIPTOR_WORDS + 1] = lru_address(spfn)


@kernel(types.int64(PAGES, WORDS, PAGEBLOCK_TYPES, PFNS, types.int64, PFN_RANGES, types.int64,
                    types.int64, types.uint64, types.uint64, LISTS))
def deferred_init_chunk_stream(pages, words, pageblock_mt, slots, base_pfn, ranges, start_pfn,
                               end_pfn, links, list_base, lists):
    """`deferred_init_chunk` with whole max-order blocks written once, by streaming stores.

    Parameters
    ----------
    pages : ndarray of PAGE_DTYPE, shape (nr_slots * PAGES_PER_SECTION,)
        64-byte aligned.
    words : ndarray of uint64, shape (nr_slots * PAGES_PER_SECTION * 8,)
        The same memory as ``pages``, as words.

    Other parameters and the result are as for `deferred_init_chunk`.
    """
    done = 0
    for spfn, epfn, whole in max_order_pieces(ranges, start_pfn, end_pfn):
        if whole:
            stream_max_order_blocks(words, pageblock_mt, slots, base_pfn, spfn, epfn, links,
                                    list_base, lists)
        else:
            init_free_piece(pages, pageblock_mt, slots, base_pfn, spfn, epfn, links,
                            list_base, lists)
        done += epfn - spfn
    store_fence()
    return done
