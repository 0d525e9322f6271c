"""`fill`: write ``record(i)`` into every element of a big array, in parallel, streaming.

The array's bytes are cut into padata chunks whose ends fall on *batch* boundaries: runs of
whole records that also start and end on a 64-byte line (`fastinit.kernels.fill`). Inside
a chunk, whole batches are assembled in registers and streamed to memory; only records that
share a line with memory outside the array (its head and tail) are written with plain
stores. No line is ever written by two threads, so the bytes do not depend on the thread
count or on which thread took which chunk.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba.core.dispatcher import Dispatcher

from fastinit.arrays.fill_key import (fill_key, record_digest, remember_return_type,
                                      remembered_return_type)
from fastinit.arrays.create_open import MemmapFile
from fastinit.arrays.records import check_record_type, leaves_of, return_type
from fastinit.engine.padata import Job, JobReport, do_multithreaded
from fastinit.validate import check_callable, check_event, check_int, check_threads
from fastinit.kernels.fill import LINE, FillKernels, build_fill_kernels
from fastinit.layout import align_up

# Smallest chunk worth a thread: 1 MiB of records (rounded up to whole batches).
MIN_CHUNK_BYTES = 1 << 20
# Compiled kernels kept per process, most recently used first; each holds its record
# function, so an unbounded cache would keep every record function ever used alive.
KERNEL_CACHE_SIZE = 32

_kernels: OrderedDict[tuple, FillKernels] = OrderedDict()
_kernels_lock = threading.Lock()


@dataclass(frozen=True)
class FillReport:
    """What a `fill` did.

    Attributes
    ----------
    records : int
        Elements written.
    nbytes : int
        Bytes written.
    streamed : int
        Of those, bytes written as whole 64-byte lines with streaming stores; the rest
        took plain stores (the array's unaligned head and tail, or every byte when the
        array's address lets no element start a line).
    elapsed : float
        Seconds of the parallel job, the writing alone.
    compile_seconds : float
        Seconds spent generating and compiling kernels for this call (0 when cached).
    job : JobReport
        Threads, chunk size, every chunk with its thread, each thread's work and time.
    completed : str or None
        The memmap file this fill completed (synced, then marked complete), else None.
    complete_seconds : float
        Seconds that took (the sync to disk and the file's checksum).
    """

    records: int
    nbytes: int
    streamed: int
    elapsed: float
    compile_seconds: float
    job: JobReport
    completed: str | None = None
    complete_seconds: float = 0.0


def kernels_for(record, dtype: np.dtype) -> tuple[FillKernels, float]:
    """The compiled kernels of ``record`` for ``dtype``, and the seconds compiling took.

    Raises
    ------
    TypeError
        See `fastinit.arrays.records`: an unsupported dtype, a record function that is
        not compiled, parallel, takes no int64 or returns values that do not fit.
    """
    leaves = leaves_of(dtype)
    digest = record_digest(record) if isinstance(record, Dispatcher) and \
        not record.targetoptions.get("parallel") else None
    # A record whose kernels an earlier process cached is not compiled here at all.
    returned = digest and remembered_return_type(digest)
    if not returned:
        returned = return_type(record)
        if digest:
            remember_return_type(digest, returned)
    check_record_type(returned, dtype, record.py_func.__name__)
    key = (record, tuple(leaves), dtype.itemsize, returned)
    with _kernels_lock:
        if key in _kernels:
            _kernels.move_to_end(key)
            return _kernels[key], 0.0
        began = time.perf_counter()
        # Compiled here, on the caller's thread, before any helper runs a kernel.
        disk_key = None if digest is None else \
            (lambda sources: fill_key(digest, sources, returned))
        built = build_fill_kernels(record, leaves, dtype.itemsize, disk_key)
        _kernels[key] = built
        while len(_kernels) > KERNEL_CACHE_SIZE:
            _kernels.popitem(last=False)
        return built, time.perf_counter() - began


def first_whole_batch(address: int, itemsize: int, records_per_batch: int) -> int | None:
    """Index of the first record that starts on a 64-byte line, or None if none does.

    Record ``k`` starts at ``address + k * itemsize``; the residues modulo 64 repeat every
    ``records_per_batch`` records, so one period decides.
    """
    for k in range(records_per_batch):
        if (address + k * itemsize) % LINE == 0:
            return k
    return None


def _check_array(array) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"fill needs a NumPy array, got {type(array).__name__}; allocate "
                        f"one with fastinit.empty(shape, dtype) or numpy.empty")
    if not array.flags.c_contiguous:
        raise ValueError(f"fill needs a C-contiguous array, got one with strides "
                         f"{array.strides} for shape {array.shape}; fill the array it is "
                         f"a view of, or a contiguous copy (numpy.ascontiguousarray)")
    if not array.flags.writeable:
        raise ValueError("fill needs a writeable array, got a read-only one; open the file "
                         "for writing or fill a copy (array.copy())")
    handle = MemmapFile.of(array)
    if handle is not None and not handle.writing:
        # Its checksum is taken, or its temporary file gone: writing now would change a
        # complete file behind its checksum, or write to nothing.
        raise ValueError(f"the array is in memmap file {handle.path}, which was already "
                         f"completed, failed or closed; open it again to write it: "
                         f"fastinit.open_memmap(path, mode='r+')")


def fill(array: np.ndarray, record, *, start: int = 0, threads: int | None = None,
         progress: Callable[[int, int], Any] | None = None,
         cancel: threading.Event | None = None) -> FillReport:
    """Set every element of ``array`` to ``record(start + k)``, ``k`` its flat index.

    Parameters
    ----------
    array : ndarray, C-contiguous, writeable, any shape
        Any dtype of booleans, integers, float32/64 and complex64/128 (native byte order),
        in fields, nested structures and sub-arrays, up to 4096 bytes per element. Elements
        are numbered in C order; padding bytes between fields become zero.
    record : numba dispatcher
        A function compiled with ``numba.njit`` (not ``parallel=True``) taking one int64
        index and returning the element: a scalar for a plain dtype, a tuple of the
        fields' values for a structured one (nested tuples for nested structures and
        sub-arrays). Values are converted as by ``astype`` (ints wrap, floats round);
        a float into an integer field or a number into a bool field is refused (see
        `fastinit.arrays.records`). It runs on several threads at once.
    start : int
        Index passed for the first element, so a slice of a larger array can be filled
        with the indices it has there.
    threads : int or None
        Most threads to use, the caller's included; None for every CPU this process may
        use. The result does not depend on it.
    progress : callable or None
        ``progress(done_elements, total_elements)``, called on the caller's thread as
        chunks finish.
    cancel : threading.Event or None
        Set it from any thread to stop: running chunks finish, `fastinit.JobCancelled` is
        raised, and the array is left partly written.

    Returns
    -------
    FillReport

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before anything is written (the message names the fix).
    Exception
        The first exception ``record`` raised, after every thread stopped.

    Notes
    -----
    If ``array`` is the whole array of a memmap file being written (from
    ``fastinit.empty(path=...)`` or `fastinit.create_memmap`, or opened with ``mode="r+"``),
    the file is synced and marked complete once every element is written, and not before:
    a fill that fails or is cancelled leaves the file incomplete (fill again, or call
    ``fastinit.MemmapFile.of(array).fail()``).

    The kernels for a (record, dtype) pair are generated and compiled on first use, which
    takes a fraction of a second, kept in memory (the last 32 pairs) and cached on disk,
    so later processes load them: under a key of the generated code, ``record``'s code
    and options, and every constant it reads, following the compiled functions it calls
    (`fastinit.arrays.fill_key`; a record reading other objects compiles per process).
    """
    _check_array(array)
    start = check_int(start, "start", minimum=0, fix="pass the index of the first element")
    threads = check_threads(threads)
    check_callable(progress, "progress", "progress(done, total)", optional=True)
    check_event(cancel, "cancel")
    count = array.size
    if start + count > 2**63:
        raise ValueError(f"start={start} plus {count} elements passes the largest int64 "
                         f"index; use a smaller start")
    kernels, compile_seconds = kernels_for(record, array.dtype)
    raw = array.reshape(-1).view(np.ndarray).view(np.uint8)
    itemsize, per_batch = array.dtype.itemsize, kernels.records_per_batch
    first = first_whole_batch(array.ctypes.data, itemsize, per_batch)
    if first is None or first + per_batch > count:
        first = count  # no whole line: every record takes plain stores
    # Job units are records shifted so that batch boundaries fall on multiples of
    # per_batch: padata's chunk ends are multiples of the chunk size, itself a multiple
    # of align.
    shift = -first % per_batch
    streamed = 0
    streamed_lock = threading.Lock()

    def chunk(begin: int, end: int, arg) -> None:
        nonlocal streamed
        lo, hi = begin - shift, end - shift
        batch_lo = max(first, first + align_up(lo - first, per_batch))
        batch_hi = first + max(hi - first, 0) // per_batch * per_batch
        if first >= count or batch_lo >= batch_hi:
            kernels.plain(raw[lo * itemsize:hi * itemsize], lo, start)
            return
        kernels.plain(raw[lo * itemsize:batch_lo * itemsize], lo, start)
        lines = raw[batch_lo * itemsize:batch_hi * itemsize]
        kernels.stream(lines.view(np.uint64), batch_lo, start)
        kernels.plain(raw[batch_hi * itemsize:hi * itemsize], batch_hi, start)
        with streamed_lock:
            streamed += lines.size

    min_chunk = max(per_batch, MIN_CHUNK_BYTES // itemsize)
    job = Job(chunk, start=shift, size=count, align=per_batch, min_chunk=min_chunk,
              max_threads=threads)
    report = do_multithreaded(job, progress=progress, cancel=cancel)
    completed, complete_seconds = _complete_file(array)
    return FillReport(count, array.nbytes, streamed, report.elapsed, compile_seconds, report,
                      completed, complete_seconds)


def _complete_file(array: np.ndarray) -> tuple[str | None, float]:
    """Complete the memmap file ``array`` is the whole data of, if it is being written.

    Only then: a fill of a slice, or of a file already complete or opened read-only,
    leaves the file as it was. `MemmapFile.complete` syncs the data to disk before the
    header says complete.
    """
    handle = MemmapFile.of(array)
    if handle is None or not handle.writing:
        return None, 0.0
    data = handle.data
    if (array.ctypes.data, array.nbytes) != (data.ctypes.data, data.nbytes):
        return None, 0.0
    began = time.perf_counter()
    handle.complete()
    return handle.path, time.perf_counter() - began
