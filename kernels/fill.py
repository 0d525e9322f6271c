"""Fill kernels for any record layout, generated per (record function, dtype).

A user's ``record(i)`` returns the values of record ``i``. The kernels call it inline and
write its bytes exactly as NumPy lays out the dtype, padding zeroed. Each record is first
packed into uint64 words in registers: every field's bits shifted to their byte offset, a
field that straddles two words split between them. The words then reach memory one of
three ways:

- whole 64-byte lines with streaming stores (`store_record_nt`), which write memory
  without reading it first, so the memory bus carries each byte once instead of twice.
  Lines are filled in *batches*, the shortest runs of records that start and end on a line
  (for 24-byte records, 8 records in 3 lines; for 72-byte records, 8 in 9 lines):

  - a record of whole lines (64, 128, ... bytes) is a batch by itself, and its words go
    from registers straight to memory (`direct_source`);
  - smaller or odd records are written into a 2 KiB block that stays in the L1 cache, a
    record at a time, and the block is streamed out line by line (`staged_source`). The
    record loop is long, so LLVM's loop vectorizer computes several records at once where
    ``record`` allows. (Unrolling a batch and assembling each line from its records in
    registers was measured slower, 0.77x memset against 1.00x for 8- and 24-byte records:
    Numba turns off the SLP vectorizer, so each line took eight scalar inserts.)
- plain unaligned stores, one record at a time (`plain_source`), for records that share a
  line with memory the kernels must not overwrite: the array's head and tail, or all of it
  when its address lets no record start a line.

All trust their input: the caller (`fastinit.arrays.fill`) checked the dtype, the record
function's types, the array and the ranges.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np
from numba import types

from fastinit.kernels._jit import generated_kernel
from fastinit.kernels._stores import raw_bits, store_unaligned
from fastinit.kernels.streaming import store_fence, store_record_nt

LINE = 64
# The staging block: small enough to stay in L1 (32 KiB and up), long enough a record loop
# to vectorize. Between 1 and 16 KiB it hardly matters: fill/memset, median of 9 paired
# runs over 2 GiB (perf/fill_bench.py --part stage), 1/2/4/8/16 KiB, 1 thread: 8-byte
# records 0.96 0.94 0.91 0.97 0.89, 24-byte 0.97 1.02 1.03 0.95 0.96; 2 threads: 8-byte
# 1.08 0.97 0.98 0.95 0.95, 24-byte 0.99 0.99 0.99 1.00 0.95.
STAGE_BYTES = 2048

STREAM_SIGNATURE = types.int64(types.uint64[::1], types.int64, types.int64)
PLAIN_SIGNATURE = types.int64(types.uint8[::1], types.int64, types.int64)

# NumPy's constructors double as Numba's value casts (C semantics: ints wrap).
_CASTS = {"b1": np.bool_, "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
          "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64,
          "f4": np.float32, "f8": np.float64, "c8": np.complex64, "c16": np.complex128}


@dataclass(frozen=True)
class Leaf:
    """One scalar of a record: where its value sits in ``record(i)``'s result and where
    its bytes go.

    Attributes
    ----------
    path : tuple of int
        Tuple indices leading to the value (``()`` when ``record`` returns a scalar).
    offset : int
        Byte offset in the record.
    code : str
        Kind and size, a key of ``_CASTS`` (``"u4"``, ``"f8"``, ``"c16"``...).
    """

    path: tuple[int, ...]
    offset: int
    code: str


def records_per_batch(itemsize: int) -> int:
    """Records in the smallest run that starts and ends on a 64-byte line boundary."""
    return LINE // gcd(itemsize, LINE)


@dataclass(frozen=True)
class FillKernels:
    """The compiled kernels of one (record function, dtype).

    Attributes
    ----------
    plain : numba dispatcher
        ``plain(raw, first, start) -> int``: writes ``raw.size // itemsize`` records into
        ``raw`` (ndarray of uint8, shape (count * itemsize,)), record ``r`` being
        ``record(start + first + r)``; returns the count.
    stream : numba dispatcher
        ``stream(words, first, start) -> int``: the same for whole batches into ``words``
        (ndarray of uint64, shape (nr_batches * batch_bytes // 8,), 64-byte aligned) with
        streaming stores, then a store fence.
    records_per_batch : int
    batch_bytes : int
        Bytes per batch: a multiple of 64.
    """

    plain: object
    stream: object
    records_per_batch: int
    batch_bytes: int


def _pieces(leaves, lines):
    """Emit the call of ``record(i)`` and its scalars' bits; return each scalar's
    (variable, byte offset in the record, size)."""
    lines.append("v = record(i)")
    pieces = []
    for j, leaf in enumerate(leaves):
        value = "v" + "".join(f"[{k}]" for k in leaf.path)
        size = int(leaf.code[1:])
        if leaf.code[0] == "c":  # two floats, real part first
            lines.append(f"c{j} = cast_{leaf.code}({value})")
            lines.append(f"b{j}r = bits(c{j}.real)")
            lines.append(f"b{j}i = bits(c{j}.imag)")
            pieces += [(f"b{j}r", leaf.offset, size // 2),
                       (f"b{j}i", leaf.offset + size // 2, size // 2)]
        else:
            lines.append(f"b{j} = bits(cast_{leaf.code}({value}))")
            pieces.append((f"b{j}", leaf.offset, size))
    return pieces


def _record_words(leaves, itemsize: int) -> list[str]:
    """Statements computing ``w0 ..`` (one per 8 bytes, the last maybe partial) of record
    ``i``."""
    body = []
    _words(_pieces(leaves, body), -(-itemsize // 8), body)
    return body


def _words(pieces, nwords, lines):
    """Emit ``w0 .. w{nwords-1}``, each the OR of the pieces' bits that fall in it."""
    terms = [[] for _ in range(nwords)]
    for name, offset, size in pieces:
        word, shift = divmod(offset, 8)
        terms[word].append(name if shift == 0 else f"({name} << SHIFT{shift * 8})")
        if shift + size > 8:  # straddles a word boundary: the high bytes go in the next
            terms[word + 1].append(f"({name} >> SHIFT{64 - shift * 8})")
    for w, parts in enumerate(terms):
        lines.append(f"w{w} = " + (" | ".join(parts) if parts else "ZERO"))


def direct_source(leaves, itemsize: int) -> str:
    """Python source of `FillKernels.stream` for records of whole lines: each record's
    words go from registers to memory, a line per streaming store."""
    nwords = itemsize // 8
    stores = [f"store_nt(words, at + {w}, ({', '.join(f'w{k}' for k in range(w, w + 8))}))"
              for w in range(0, nwords, 8)]
    return "\n".join([
        "def stream(words, first, start):",
        f"    count = words.shape[0] // {nwords}",
        "    for r in range(count):",
        "        i = start + first + r",
        f"        at = r * {nwords}",
        *("        " + line for line in _record_words(leaves, itemsize) + stores),
        # Streaming stores are weakly ordered: fence before anyone may read the lines.
        "    store_fence()",
        "    return count",
    ])


def _record_stores(leaves, itemsize: int, target: str) -> list[str]:
    """Statements writing record ``i`` at byte ``at`` of the uint8 array ``target``, with
    plain unaligned stores: whole words, then the last bytes in 4-, 2- and 1-byte stores."""
    body = _record_words(leaves, itemsize)
    for w in range(-(-itemsize // 8)):
        offset, left = w * 8, min(8, itemsize - w * 8)
        shift = 0
        for width, cast in ((8, "u8"), (4, "u4"), (2, "u2"), (1, "u1")):
            if left >= width:
                value = f"w{w}" if shift == 0 else f"(w{w} >> SHIFT{shift * 8})"
                body.append(f"store({target}, at + {offset + shift}, cast_{cast}({value}))")
                shift, left = shift + width, left - width
    return body


def plain_source(leaves, itemsize: int) -> str:
    """Python source of the record-by-record kernel (see `FillKernels.plain`)."""
    return "\n".join([
        "def plain(raw, first, start):",
        f"    count = raw.shape[0] // {itemsize}",
        "    for r in range(count):",
        "        i = start + first + r",
        f"        at = r * {itemsize}",
        *("        " + line for line in _record_stores(leaves, itemsize, "raw")),
        "    return count",
    ])


def staged_source(leaves, itemsize: int) -> str:
    """Python source of `FillKernels.stream` for records smaller than a line or not a
    multiple of one: blocks of whole batches are written into ``stage`` (L1-resident),
    then streamed out."""
    records = records_per_batch(itemsize)
    batch_words = records * itemsize // 8
    per_block = max(1, STAGE_BYTES // (batch_words * 8))
    if itemsize % 8 == 0:
        # Whole words: indexed stores, which the loop vectorizer can interleave.
        body = _record_words(leaves, itemsize)
        body += [f"stage[r * {itemsize // 8} + {w}] = w{w}" for w in range(itemsize // 8)]
    else:
        body = [f"at = r * {itemsize}"] + _record_stores(leaves, itemsize, "staged")
    lanes = ", ".join(f"stage[line + {k}]" for k in range(8))
    return "\n".join([
        "def stream(words, first, start):",
        f"    stage = np.zeros({batch_words * per_block}, np.uint64)",
        "    staged = stage.view(np.uint8)",
        f"    batches = words.shape[0] // {batch_words}",
        "    done = 0",
        "    while done < batches:",
        f"        now = min(batches - done, {per_block})",
        f"        base = start + first + done * {records}",
        f"        for r in range(now * {records}):",
        "            i = base + r",
        *("            " + line for line in body),
        f"        out = done * {batch_words}",
        f"        for line in range(0, now * {batch_words}, 8):",
        f"            store_nt(words, out + line, ({lanes}))",
        "        done += now",
        "    store_fence()",
        f"    return batches * {records}",
    ])


def _compile(source: str, name: str, record, signature, key: str | None):
    # Named as this module: a cached kernel's environment is rebuilt by importing it.
    namespace = {"__name__": __name__, "np": np, "record": record, "bits": raw_bits, "store": store_unaligned,
                 "store_nt": store_record_nt, "store_fence": store_fence,
                 "ZERO": np.uint64(0)}
    namespace.update({f"cast_{code}": cast for code, cast in _CASTS.items()})
    namespace.update({f"SHIFT{s}": np.uint64(s) for s in range(8, 64, 8)})
    exec(compile(source, f"<fastinit fill kernel {name}>", "exec"), namespace)
    return generated_kernel(namespace[name], key, signature)


def build_fill_kernels(record, leaves, itemsize: int, key=None) -> FillKernels:
    """Generate and compile the fill kernels of ``record`` for a layout.

    Parameters
    ----------
    record : numba dispatcher
        ``record(i)`` for int64 ``i``, returning values that cast to the leaves' kinds.
    leaves : sequence of Leaf
        Every scalar of the record, not overlapping, inside ``itemsize``.
    itemsize : int
        Bytes per record.
    key : callable or None
        ``key(sources)``: the cache key of kernels generated from ``sources`` (see
        `fastinit.arrays.fill_key`), or None for kernels compiled for this process only.
    """
    records = records_per_batch(itemsize)
    sources = [plain_source(leaves, itemsize),
               (direct_source if records == 1 else staged_source)(leaves, itemsize)]
    cache_key = None if key is None else key(sources)
    plain = _compile(sources[0], "plain", record, PLAIN_SIGNATURE,
                     cache_key and cache_key + "-plain")
    stream = _compile(sources[1], "stream", record, STREAM_SIGNATURE,
                      cache_key and cache_key + "-stream")
    return FillKernels(plain, stream, records, records * itemsize)
