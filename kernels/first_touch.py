"""Fault in a memmap's memory: one write per 4 KiB page (the sparse_init step).

The kernel's memmap is allocated at boot; ours is anonymous memory or a file whose pages
the OS maps on first touch, which can cost more than initializing the descriptors. Doing
it in parallel, as its own timed step, keeps that cost out of the init measurements.
"""

from __future__ import annotations

from numba import types

from fastinit.kernels._jit import kernel
from fastinit.layout import PAGE_SIZE


@kernel(types.int64(types.uint8[::1], types.int64, types.int64))
def touch_range(raw, start, end):
    """Write a zero byte into every 4 KiB page of ``raw[start:end]``.

    Parameters
    ----------
    raw : ndarray of uint8, shape (nbytes,)
        The memmap's bytes.
    start, end : int
        Byte offsets; ``start`` is page-aligned.

    Returns
    -------
    int
        Pages touched.
    """
    count = 0
    for offset in range(start, end, PAGE_SIZE):
        raw[offset] = 0
        count += 1
    return count
