"""First touch of a mapping on several threads: MADV_POPULATE_WRITE, or a touch kernel.

``madvise(MADV_POPULATE_WRITE)`` (Linux 5.14) faults a range in as if written, without
writing it: huge pages where the mapping allows them, no byte changed. Each thread calls
it on its own chunk through ctypes, which releases the GIL (Python's ``mmap.madvise`` does
not). A kernel that does not know the advice answers EINVAL; then every chunk from there on
is touched by `fastinit.kernels.first_touch.touch_range`, one byte per 4 KiB page, which
writes a zero where nothing was written yet (a fresh anonymous mapping or a file's
reserved blocks read as zeros).
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from fastinit.engine.padata import Job, JobReport, do_multithreaded
from fastinit.host.libc import libc as _libc
from fastinit.kernels.first_touch import touch_range
from fastinit.layout import HPAGE_PMD_SIZE, PAGE_SIZE, align_up, div_up

# From <linux/mman.h>; Python's mmap module lacks it. A module attribute so a test can
# swap in an advice the kernel refuses and run the fallback of kernels before 5.14.
MADV_POPULATE_WRITE = 23
# Chunks are whole huge pages, at least 32 MiB each (a thread's start-up is worth that).
MIN_CHUNK_HUGE_PAGES = 16

POPULATE = "MADV_POPULATE_WRITE"
TOUCH = "touch kernel"


def advise(address: int, nbytes: int, advice: int) -> int:
    """``madvise`` over ``[address, address + nbytes)``; 0 or the errno it failed with."""
    if _libc.madvise(address, nbytes, advice) == 0:
        return 0
    return ctypes.get_errno()


def first_touch(raw: np.ndarray, *, threads: int | None,
                progress: Callable[[int, int], Any] | None = None,
                nice: int | None = None) -> tuple[str, JobReport]:
    """Fault in every page of ``raw`` on up to ``threads`` threads.

    Parameters
    ----------
    raw : ndarray of uint8, shape (nbytes,)
        The memory, starting on a page boundary (on a 2 MiB one, chunks are whole huge
        pages).
    threads : int or None
        Most threads, the caller's included; None for every usable CPU.
    progress : callable or None
        ``progress(done_bytes, total_bytes)`` on the caller's thread as chunks finish.
    nice : int or None
        The helper threads' niceness (`fastinit.Job`).

    Returns
    -------
    (str, JobReport)
        How it was touched (`POPULATE`, or `TOUCH` if the kernel refused the advice for
        any chunk) and the job's report.

    Raises
    ------
    MemoryError
        The kernel could not find the memory (ENOMEM: a cgroup limit or memory taken
        by others since the size was checked).
    OSError
        Any other madvise failure.
    """
    address, nbytes = raw.ctypes.data, raw.size
    # Whole pages: madvise rounds the length up, and the array's last page is ours.
    end = align_up(nbytes, PAGE_SIZE)
    refused = threading.Event()

    def touch(start: int, stop: int, arg) -> None:
        low, high = start * HPAGE_PMD_SIZE, min(stop * HPAGE_PMD_SIZE, end)
        if not refused.is_set():
            failed = advise(address + low, high - low, MADV_POPULATE_WRITE)
            if failed == 0:
                return
            if failed != errno.EINVAL:
                if failed == errno.ENOMEM:
                    raise MemoryError(f"the kernel could not fault in {high - low} bytes at "
                                      f"offset {low} (ENOMEM: out of memory or over a "
                                      f"cgroup limit)")
                raise OSError(failed, f"madvise(MADV_POPULATE_WRITE) failed: "
                                      f"{os.strerror(failed)}")
            refused.set()
        touch_range(raw, low, min(high, nbytes))

    def on_progress(done: int, total: int) -> None:
        progress(min(done * HPAGE_PMD_SIZE, nbytes), nbytes)

    job = Job(touch, start=0, size=div_up(nbytes, HPAGE_PMD_SIZE), align=1,
              min_chunk=MIN_CHUNK_HUGE_PAGES, max_threads=threads, nice=nice)
    report = do_multithreaded(job, progress=on_progress if progress is not None else None)
    return (TOUCH if refused.is_set() else POPULATE), report
