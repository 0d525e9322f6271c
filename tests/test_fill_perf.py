"""Performance facts of fastinit.fill (``pytest -m perf``): what the generated kernels compile
to, and one loose same-run ratio against memset. Figures: perf/fill_bench.py."""

import time

import numba
import numpy as np
import pytest
from numba import types
from numba.core.caching import NullCache

from fastinit.arrays.alloc import empty
from fastinit.arrays.fill import fill, kernels_for
from fastinit.bench.membw import memset_limit

pytestmark = pytest.mark.perf

LAYOUTS = {
    8: np.dtype("<u8"),
    24: np.dtype([("a", "<u8"), ("b", "<f8"), ("c", "<i8")]),
    64: np.dtype([(f"w{k}", "<u8") for k in range(8)]),
    72: np.dtype([("a", "<u8"), ("b", "<f4"), ("c", "<i2"), ("d", "u1"), ("e", "<f8", (7,)),
                  ("g", "i1")], align=True),
}


@numba.njit
def r8(i):
    return i


@numba.njit
def r24(i):
    return i, i * 0.5, i + 7


@numba.njit
def r64(i):
    return i, i + 1, i + 2, 7, 0, i * 64, 3, 1


@numba.njit
def r72(i):
    return i, 1.5, 3, 4, (i * 0.5, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0), 6


RECORDS = {8: r8, 24: r24, 64: r64, 72: r72}


@pytest.mark.parametrize("size", list(LAYOUTS))
def test_generated_kernels_are_nopython_nogil_unchecked_and_cached_on_disk(size):
    kernels, _ = kernels_for(RECORDS[size], LAYOUTS[size])
    for dispatcher in (kernels.plain, kernels.stream):
        options = dispatcher.targetoptions
        assert options["nogil"] and options["boundscheck"] is False
        # Cached under a key of the record's code (see _jit.generated_kernel)
        assert not isinstance(dispatcher._cache, NullCache)
        assert not any(overload.objectmode for overload in dispatcher.overloads.values())


@pytest.mark.parametrize("size", list(LAYOUTS))
def test_stream_kernel_streams_fences_and_inlines_record(size):
    record = RECORDS[size]
    kernels, _ = kernels_for(record, LAYOUTS[size])
    asm = kernels.stream.inspect_asm(kernels.stream.signatures[0])
    assert "vmovnt" in asm or "movnt" in asm
    assert "sfence" in asm
    callee = record.overloads[(types.int64,)].fndesc.mangled_name
    calls = [line for line in asm.splitlines() if "call" in line and callee in line]
    assert calls == [], "record is called, not inlined"


def test_fill_of_a_gib_of_64_byte_records_at_least_60_percent_of_memset():
    array = empty(1 << 24, LAYOUTS[64])  # 1 GiB, faulted in: no first touch timed
    fill(array[:1000], r64)  # compile outside the timing

    def fill_seconds():
        began = time.perf_counter()
        fill(array, r64, threads=1)
        return time.perf_counter() - began

    filled = min(fill_seconds() for _ in range(5))
    memset = memset_limit(array.view(np.uint8), 1, 5)
    assert filled <= memset / 0.6, f"fill {filled * 1e3:.0f} ms, memset {memset * 1e3:.0f} ms"
