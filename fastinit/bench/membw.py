"""The streaming-write limit of this machine: glibc memset of a non-zero byte.

glibc's memset uses non-temporal stores for large sizes, so it writes memory without first
reading it: the fastest way a CPU can fill memory. The byte must be non-zero: zero fills
can take a faster path (the hypervisor or the memory controller may treat zero pages
specially) that no descriptor full of non-zero fields can use. memset is called through
ctypes, which releases the GIL, one call per thread over that thread's share of the bytes.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from fastinit.host.libc import libc as _libc
from fastinit.validate import check_int, check_type
from fastinit.layout import PAGE_SIZE, align_up

# The byte memset writes when measuring the limit; any non-zero value will do.
FILL_BYTE = 0x5A


def memset_seconds(buffer: np.ndarray, threads: int, byte: int = FILL_BYTE) -> float:
    """Wall time of filling ``buffer`` with ``byte`` by ``threads`` concurrent memset calls.

    Parameters
    ----------
    buffer : ndarray, C-contiguous
        Any dtype; all of its bytes are overwritten.
    threads : int
        Concurrent calls, each over an equal, 4 KiB-aligned share.
    """
    check_type(buffer, np.ndarray, "buffer", "a NumPy array")
    if not buffer.flags.c_contiguous:
        raise ValueError("buffer must be C-contiguous: memset fills one run of bytes")
    threads = check_int(threads, "threads", minimum=1, fix="memset runs on 1 thread or more")
    base, size = buffer.ctypes.data, buffer.nbytes
    # Equal shares, rounded up to whole 4 KiB pages.
    share = max(align_up(-(-size // threads), PAGE_SIZE), PAGE_SIZE)
    pieces = [(offset, min(share, size - offset)) for offset in range(0, size, share)]
    barrier = threading.Barrier(len(pieces))

    def fill(offset: int, length: int) -> None:
        barrier.wait()
        _libc.memset(base + offset, byte, length)

    workers = [threading.Thread(target=fill, args=piece) for piece in pieces[1:]]
    for worker in workers:
        worker.start()
    barrier.wait()
    began = time.perf_counter()
    _libc.memset(base + pieces[0][0], byte, pieces[0][1])
    for worker in workers:
        worker.join()
    return time.perf_counter() - began


def memset_limit(buffer: np.ndarray, threads: int, repeat: int = 5) -> float:
    """Best of ``repeat`` `memset_seconds` runs (a shared machine is noisy)."""
    return min(memset_seconds(buffer, threads) for _ in range(max(repeat, 1)))
