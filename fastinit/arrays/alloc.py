"""`empty`: a big array in huge-page-aligned memory, faulted in by parallel threads.

NumPy's ``empty`` returns memory the kernel has not mapped yet: the first write to each
page faults, and those faults can cost more than the fill (4 GiB on 4 KiB pages: 1.3 s of
faults for a 0.12 s fill, measured by perf/fill_bench.py; on huge pages 0.2 s). Faulting
in up front takes that cost out of the fill; it does not make it smaller (the kernel
zeroes every page either way).
`empty` maps the memory on a 2 MiB boundary, advises huge pages (one fault and one zeroing
per 2 MiB instead of per 4 KiB), and faults it all in up front on several threads with
``MADV_POPULATE_WRITE`` (Linux 5.14; older kernels answer EINVAL and a touch kernel
writes one byte per 4 KiB page instead). With ``path``, the array lives in a new memmap
file (`fastinit.create_memmap`: blocks reserved up front, never replacing a file without
``force``, and at ``path`` only once complete). A file is not faulted in: pages of a
shared file mapping faulted in for writing are dirty zeros, which writeback sends to the
disk before the fill writes them again (measured, a 4 GiB file: empty + fill + complete
2.3-2.6 s with the first touch, 1.8-2.1 s without; perf/fill_bench.py --part file).

The array is a plain ``numpy.ndarray``: it works wherever NumPy and Numba arrays do. Its
memory belongs to an `Allocation` object at the end of the array's ``.base`` chain, so
every view (slice, reshape, ``.view``, ``.T``) keeps it mapped, and it is unmapped when the
last of them is gone. `allocation` finds that object, with how the memory was touched and
how long it took; a copy or a computed result is new NumPy memory and has none.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastinit.arrays import fileformat as fmt
from fastinit.arrays.create_open import create_memmap
from fastinit.arrays.touch import advise, first_touch
from fastinit.host.memory import available_memory
from fastinit.validate import (check_bool, check_callable, check_int, check_threads,
                               check_type)
from fastinit.layout import HPAGE_PMD_SIZE
from fastinit.units import gib

# Leave a tenth of the free memory to everything else, as page memmaps do.
MEMORY_MARGIN = 0.9
# Lines of /proc/self/smaps that count memory mapped by huge pages.
_HUGE_FIELDS = ("AnonHugePages:", "ShmemPmdMapped:", "FilePmdMapped:")


class Allocation:
    """The memory behind arrays made by `empty`, and how it was made ready.

    Attributes
    ----------
    nbytes : int
        Bytes of the array.
    address : int
        Where the array starts: a multiple of 2 MiB in memory, of 4 KiB in a file.
    base : object
        What owns the memory: the anonymous ``mmap``, or the memmap file's own array (so
        `fastinit.MemmapFile.of` finds the file through any view).
    path : str or None
        The memmap file's path, None for anonymous memory.
    huge_pages : bool
        Whether the memory was advised to use transparent huge pages (MADV_HUGEPAGE; with
        ``huge_pages=False`` it was advised against them, MADV_NOHUGEPAGE). Advice, not a
        promise: see `huge_page_bytes` for what the kernel gave.
    touched_by : str
        ``"MADV_POPULATE_WRITE"``, ``"touch kernel"`` (kernels without it), or
        ``"nothing"`` (an empty array, or a file: see the module's notes).
    first_touch : float
        Seconds the parallel first touch took (every page faulted in and zeroed).
    threads : int
        Threads that took part in it.
    """

    def __init__(self, base, address: int, nbytes: int, path: str | None = None):
        self.base = base  # the memory stays mapped while this object (any view) lives
        self.address, self.nbytes, self.path = address, nbytes, path
        self.huge_pages = False
        self.touched_by = "nothing"
        self.first_touch = 0.0
        self.threads = 0
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "version": 3,
                                    "data": (address, False)}

    def __repr__(self) -> str:
        where = self.path or "memory"
        return (f"<fastinit.Allocation {gib(self.nbytes)} in {where} at {self.address:#x}, "
                f"touched by {self.touched_by} in {self.first_touch:.3f} s on "
                f"{self.threads} threads>")

    def huge_page_bytes(self) -> int:
        """Bytes of the array the kernel backs with transparent huge pages right now.

        The sum of ``AnonHugePages``, ``ShmemPmdMapped`` and ``FilePmdMapped`` over the
        mappings of /proc/self/smaps that hold the array (advice splits one mapping in up
        to three); 0 if it cannot be read.
        """
        end = self.address + self.nbytes
        total, inside = 0, False
        try:
            with open("/proc/self/smaps") as smaps:
                for line in smaps:
                    head = line.split(None, 1)[0]
                    if not head.endswith(":"):  # a mapping's first line: "low-high perms ..."
                        low, high = (int(part, 16) for part in head.split("-"))
                        inside = low < end and high > self.address
                    elif inside and head in _HUGE_FIELDS:
                        total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            return 0
        return total


def allocation(array: np.ndarray) -> Allocation:
    """The `Allocation` behind an array made by `empty`, or behind any view of one.

    Raises
    ------
    ValueError
        If the array's memory did not come from `empty` (NumPy memory, a copy, the
        result of a computation).
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"allocation needs a NumPy array, got {type(array).__name__}")
    base = array
    while base is not None:
        if isinstance(base, Allocation):
            return base
        base = getattr(base, "base", None) if isinstance(base, np.ndarray) else \
            getattr(base, "obj", None)
    raise ValueError("this array's memory was not allocated by fastinit.empty (it is NumPy "
                     "memory, a copy, or a computed result); allocate it with "
                     "fastinit.empty(shape, dtype)")


def _check_shape(shape) -> tuple[int, ...]:
    dims = (shape,) if hasattr(shape, "__index__") else shape
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"shape must be an integer or a tuple of integers, got "
                        f"{shape!r}") from None
    return tuple(check_int(dim, f"every extent of shape {shape!r}", minimum=0,
                           fix="extents count elements") for dim in dims)


def _check_dtype(dtype) -> tuple[np.dtype, tuple[int, ...]]:
    """The element dtype and any sub-array shape it carries (NumPy appends it to the
    array's shape, as numpy.empty does)."""
    dtype = fmt.numpy_dtype(dtype)
    extra: tuple[int, ...] = ()
    if dtype.subdtype is not None:
        dtype, extra = dtype.subdtype
    if dtype.hasobject:
        raise TypeError(f"dtype {dtype} holds Python objects, which cannot live in raw "
                        f"memory; use numpy.empty for it")
    if dtype.itemsize == 0:
        raise TypeError(f"dtype {dtype!r} has no bytes; give a sized dtype such as 'S8'")
    return dtype, extra


def map_anonymous(nbytes: int, huge_pages: bool, *, what: str = "the array",
                  fix: str = "put it in a file with fastinit.empty(..., path=PATH) on a "
                             "disk with room") -> Allocation:
    """Anonymous memory on a 2 MiB boundary, advised, not touched (also the memmap's);
    ValueError saying ``what`` needs how much and ``fix`` when it does not fit."""
    available = available_memory()
    if nbytes > available * MEMORY_MARGIN:
        raise ValueError(f"{what} needs {gib(nbytes)}, but only {gib(available)} of "
                         f"memory is available to this process (MemAvailable and cgroup "
                         f"limits); {fix}")
    # Map a huge page more than needed, so the array can start on a huge-page boundary.
    region = mmap.mmap(-1, max(nbytes, 1) + HPAGE_PMD_SIZE,
                       flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    holder = ctypes.c_char.from_buffer(region)  # an export only while we read the address
    start = ctypes.addressof(holder)
    del holder
    owner = Allocation(region, start + -start % HPAGE_PMD_SIZE, nbytes)
    advice = mmap.MADV_HUGEPAGE if huge_pages else mmap.MADV_NOHUGEPAGE
    # Advice a kernel without THP refuses changes nothing: the array still works.
    advised = advise(owner.address, max(nbytes, 1), advice) == 0
    owner.huge_pages = huge_pages and advised
    return owner


def _in_file(path, dtype, shape, force: bool, replace_any_file: bool,
             huge_pages: bool) -> Allocation:
    """An Allocation over a new memmap file's array."""
    handle = create_memmap(path, dtype, shape, force=force, replace_any_file=replace_any_file)
    array = handle.array
    raw = array.reshape(-1).view(np.uint8)
    owner = Allocation(array, raw.ctypes.data, raw.size, handle.path)
    if raw.size:
        advice = mmap.MADV_HUGEPAGE if huge_pages else mmap.MADV_NOHUGEPAGE
        # The mapping starts a page below the array at most; advice needs page alignment.
        low = owner.address - owner.address % mmap.PAGESIZE
        advised = advise(low, owner.address + raw.size - low, advice) == 0
        owner.huge_pages = huge_pages and advised
    return owner


def empty(shape, dtype=float, *, path=None, force: bool = False,
          replace_any_file: bool = False, huge_pages: bool = True, threads: int | None = None,
          progress: Callable[[int, int], Any] | None = None) -> np.ndarray:
    """A new C-contiguous array whose memory is faulted in up front, on several threads.

    Like ``numpy.empty``, but the memory starts on a 2 MiB boundary, is advised to use
    transparent huge pages, and every page is already faulted in (and so zeroed) when it
    returns: the first fill runs at memory speed instead of paying a page fault per page.

    Parameters
    ----------
    shape : int or tuple of int
    dtype : data-type
        Any dtype without Python objects.
    path : str or os.PathLike or None
        Put the array in a new memmap file (`fastinit.create_memmap`) instead of anonymous
        memory. The file is written beside ``path`` under a temporary name and appears at
        ``path`` when complete: `fill` completes it when it writes the whole array, or
        call ``fastinit.MemmapFile.of(array).complete()`` after writing it another way. An
        array dropped (or a process that exits) before leaves ``path`` as it was and keeps
        the data as ``NAME.fastinit-unfinished-RANDOM``, with a warning; ``.fail()``
        discards it. The file is also a .npy file (``numpy.load``). Refused like
        ``create_memmap`` refuses: an existing file without ``force``, a disk without room
        for it (the blocks are reserved now). It may be larger than memory. It is not faulted in: the
        fill faults its pages in on its own threads, which costs less than writing every
        page twice (see the module's notes).
    force : bool
        With ``path``: replace an existing fastinit memmap file (once the new one is
        complete).
    replace_any_file : bool
        With ``path`` and ``force``: replace any regular file, not only fastinit's.
    huge_pages : bool
        Advise transparent huge pages (MADV_HUGEPAGE); False advises against them
        (MADV_NOHUGEPAGE), whatever the system default.
    threads : int or None
        Most threads for the first touch, the caller's included; None for every CPU this
        process may use.
    progress : callable or None
        ``progress(done_bytes, total_bytes)``, called on the caller's thread as the first
        touch advances (in memory; a file is not touched).

    Returns
    -------
    ndarray of ``dtype``, shape ``shape``
        A plain NumPy array, contents zero. ``fastinit.allocation(array)`` (or of any
        view of it) gives its `Allocation`: how it was touched and how long it took. The
        memory is unmapped when the array and every view of it are gone.

    Raises
    ------
    TypeError, ValueError
        A bad shape, dtype or option; or, in memory, an array larger than the memory this
        process may still use (MemAvailable and cgroup limits; the message gives both).
    fastinit.arrays.MemmapFileError
        With ``path``: the path is taken (without ``force``), unusable, or its disk lacks
        the room.
    MemoryError
        The kernel could not provide the memory after all.
    """
    shape = _check_shape(shape)
    dtype, extra = _check_dtype(dtype)
    shape += tuple(extra)
    threads = check_threads(threads)
    check_callable(progress, "progress", "progress(done, total)", optional=True)
    check_type(path, (str, os.PathLike), "path", "a str or os.PathLike", optional=True)
    for name, flag in (("force", force), ("replace_any_file", replace_any_file),
                       ("huge_pages", huge_pages)):
        check_bool(flag, name)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if path is None:
        owner = map_anonymous(nbytes, huge_pages)
    else:
        owner = _in_file(path, dtype, shape, force, replace_any_file, huge_pages)
    raw = np.asarray(owner)
    if nbytes and path is None:
        began = time.perf_counter()
        owner.touched_by, report = first_touch(raw, threads=threads, progress=progress)
        owner.first_touch = time.perf_counter() - began
        owner.threads = report.nworks
    return raw.view(dtype).reshape(shape)
