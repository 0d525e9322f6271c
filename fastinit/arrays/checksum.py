"""The data checksum of a memmap file, computed by padata helpers (see `kernels/checksum.py`).

A file's checksum is written when it is marked complete and checked when it is opened, so
a damaged, zeroed or sparse data region is refused before anything reads it.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

from fastinit.host.cpus import usable_cpus
from fastinit.engine.padata import Job, do_multithreaded
from fastinit.kernels.checksum import mix_sum

NAME = "mix64-sum"
# 8 MiB of words per chunk: large enough that the engine's per-chunk cost is noise.
_CHUNK_WORDS = 1 << 20


def data_checksum(data: np.ndarray, threads: int | None = None) -> int:
    """The checksum of ``data``, an int in ``[0, 2**64)``.

    Parameters
    ----------
    data : ndarray of uint8, shape (nbytes,)
        C-contiguous bytes, 8-byte aligned (a file's data region starts on a page).
    threads : int or None
        Helper threads; the usable CPUs by default.
    """
    nwords = len(data) // 8
    words = data[:nwords * 8].view(np.uint64)
    parts: list[int] = []
    lock = threading.Lock()
    # An idle helper thread keeps its last task (and so this closure) until its next
    # one: a strong reference here would keep a file's mapping and lock alive that long.
    held = weakref.ref(words)

    def add(start: int, end: int, arg) -> None:
        part = int(mix_sum(held()[start:end], start))
        with lock:
            parts.append(part)

    if nwords:
        do_multithreaded(Job(add, start=0, size=nwords, align=_CHUNK_WORDS,
                             min_chunk=_CHUNK_WORDS, max_threads=threads or usable_cpus()))
    # The tail, zero-padded into one more word, and the length (so appended zeros count).
    tail = np.zeros(2, dtype=np.uint64)
    tail.view(np.uint8)[:len(data) - nwords * 8] = data[nwords * 8:]
    tail[1] = len(data)
    parts.append(int(mix_sum(tail, nwords)))
    return sum(parts) & ((1 << 64) - 1)
