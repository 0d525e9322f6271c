"""Memmap files for any dtype: create one crash-safely, open one without trusting it.

``create_memmap(path, dtype, shape)`` gives a `MemmapFile` whose ``array`` lives in a new
file beside ``path``; ``complete()`` syncs it, writes its checksum, marks it complete and
only then renames it over ``path``; ``fail()`` (or an exception in a ``with`` block)
removes it and leaves whatever was at ``path`` untouched. ``open_memmap(path)`` refuses
anything but a complete, undamaged file of this format. See `fastinit.arrays.fileformat`
for the format and `fastinit.arrays.atomic` for the replace and locking rules.
"""

from __future__ import annotations

import datetime
import mmap
import os
from contextlib import ExitStack

import numpy as np

from fastinit.arrays import atomic, fileformat as fmt, lease as leases, locks, snapshot
from fastinit.arrays.checksum import NAME as CHECKSUM_NAME, data_checksum
from fastinit.arrays.errors import (DamagedMemmapError, IncompleteMemmapError,
                                    MemmapFileError)
from fastinit.arrays.handle import MemmapFile
from fastinit.arrays.header_checks import REDO as _REDO, checked_header as _checked_header
from fastinit.engine.interrupts import interrupts_deferred
from fastinit.validate import check_bool
from fastinit.units import gib

_UNFINISHED = {
    fmt.INITIALIZING: "the run that wrote it did not finish (killed or still running)",
    fmt.FAILED: "the run that wrote it stopped with an error",
    fmt.CLOSED: "it was opened for writing, written, and closed (or its program ended) "
                "without complete()"}


def create_file(path, arrays, metadata=None, *, kind: str = "array", force: bool = False,
                replace_any_file: bool = False) -> MemmapFile:
    """A new memmap file holding ``arrays``, a list of ``(name, dtype, shape)``.

    See `create_memmap`; ``kind`` names what the file holds (checked by `open_file`).
    """
    import fastinit
    check_bool(force, "force")
    check_bool(replace_any_file, "replace_any_file")
    triples = []
    for name, dtype, shape in arrays:
        dtype = fmt.numpy_dtype(dtype)
        fmt.check_dtype(dtype)
        triples.append((name, dtype, fmt.check_shape(shape)))
    specs, data_bytes = fmt.lay_out(triples)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta = fmt.encode_metadata(kind, specs, metadata, created, fastinit.__version__,
                               CHECKSUM_NAME)
    lay = fmt.layout(specs, data_bytes, len(meta))
    total = lay.total
    shown, directory, name = atomic.split_path(path)
    dfd = atomic.open_directory(shown, directory)
    lock = temp = fd = None
    try:
        # Once before locking, so nothing is ever created beside a device or a FIFO, and
        # once with the lock held, which is the check that counts.
        atomic.check_replaceable(shown, dfd, name, force=force, replace_any=replace_any_file,
                                 is_ours=fmt.is_ours)
        lock = locks.PathLock(shown, dfd, name, exclusive=True)
        old = atomic.check_replaceable(shown, dfd, name, force=force,
                                       replace_any=replace_any_file, is_ours=fmt.is_ours)
        atomic.remove_orphans(dfd, name, fmt.is_ours)
        stat = os.statvfs(dfd)
        free = stat.f_bavail * stat.f_frsize
        if total > free:
            beside = " beside the old one (replaced only when complete)" if old else ""
            raise MemmapFileError(f"the memmap file needs {gib(total)}{beside} but "
                                  f"{directory} has {gib(free)} free; choose a path "
                                  f"(--memmap-file) on a disk with room")
        with interrupts_deferred():  # an interrupt before we hold its fd would leak it
            temp, fd = atomic.create_temp(dfd, name, old.st_mode if old else None)
        try:
            # fastinit's header first (at the end: the file grows, sparse, to its size),
            # so a run killed while the blocks are reserved leaves a file that says it is
            # ours (and so is cleaned up), never a header-less one; then NumPy's.
            os.pwrite(fd, meta + fmt.pack_header(fmt.INITIALIZING, meta), lay.meta_offset)
            os.pwrite(fd, lay.npy, 0)
            os.posix_fallocate(fd, 0, total)
            region = mmap.mmap(fd, total, flags=mmap.MAP_SHARED)
        except OSError as error:
            raise MemmapFileError(f"cannot allocate {gib(total)} in {shown}: "
                                  f"{error.strerror}; choose a path (--memmap-file) on a "
                                  f"disk with room") from None
        region.flush()  # the headers: nothing else is written yet
        document = fmt.decode_metadata(meta)[0]
        return MemmapFile((shown, dfd, name), fd, lock, region, document, specs, "w",
                          raw_meta=meta, layout=lay, state=fmt.INITIALIZING, temp=temp,
                          replaces=old)
    except BaseException:
        with interrupts_deferred():
            if fd is not None:
                atomic.remove_temp(dfd, temp, fd)
            if lock is not None:
                lock.release()
            os.close(dfd)
        raise


def create_memmap(path, dtype, shape, metadata=None, *, force: bool = False,
                  replace_any_file: bool = False) -> MemmapFile:
    """Create a memmap file for one array, crash-safely.

    The file is written beside ``path`` under a temporary name, its blocks reserved up
    front (a disk too small fails now, leaving nothing), and appears at ``path`` only
    when `MemmapFile.complete` has synced it; until then, or after `MemmapFile.fail`,
    ``path`` keeps what it had. Used as a context manager, the file is completed when
    the block ends normally and failed when it raises; dropped (or left at exit) without
    either, it is kept as ``NAME.fastinit-unfinished-RANDOM`` with a warning. The file
    is also a .npy file: ``numpy.load(path, mmap_mode="r")`` gives the array.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : dtype-like
        Any NumPy dtype without Python objects (records up to 1 MiB).
    shape : int or tuple of int
    metadata : JSON-serializable, optional
        Stored with the file (at most 1 MiB as JSON), returned as ``.metadata``.
    force : bool
        Replace an existing fastinit memmap file at ``path``.
    replace_any_file : bool
        With ``force``, replace any regular file. Never a directory, device, FIFO,
        socket or symbolic link.

    Returns
    -------
    MemmapFile
        ``.array`` is the writable array (C-contiguous, ``dtype``, ``shape``).

    Raises
    ------
    MemmapFileError
        The path is taken (without ``force``), not a regular file, in a directory that
        cannot be used, or the disk lacks the room.
    MemmapBusyError
        Another fastinit is writing or reading ``path``.
    """
    return create_file(path, [("data", dtype, shape)], metadata, force=force,
                       replace_any_file=replace_any_file)


def open_file(path, mode: str = "r", *, kind: str | None = None,
              allow_incomplete: bool = False, check_data: bool = True) -> MemmapFile:
    """Open a memmap file after checking all of its header; see `open_memmap`.

    ``kind`` (if given) must be the file's; ``allow_incomplete`` opens files whose
    writer did not finish (read-only); ``check_data`` compares the data checksum.
    """
    if mode not in ("r", "r+", "c"):
        raise ValueError(f"mode must be 'r', 'r+' or 'c', got {mode!r}")
    shown, directory, name = atomic.split_path(path)
    with ExitStack() as held:  # until the handle owns them: released on any failure
        dfd = atomic.open_directory(shown, directory)
        held.callback(os.close, dfd)
        try:
            os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            note = atomic.temp_note(dfd, name)  # a writer killed or at work: incomplete
            raise (IncompleteMemmapError if note else MemmapFileError)(
                f"{shown} does not exist{note}") from None
        atomic.check_regular(shown, dfd, name)
        lock = locks.PathLock(shown, dfd, name, exclusive=mode == "r+")
        held.callback(lock.release)
        fd = _open_locked(shown, dfd, name, "r+" if mode == "r+" else "r")
        held.callback(os.close, fd)
        lease = None
        if mode != "r+":  # before its size is read: a file that shrinks from now on is seen
            lease = leases.take(shown, fd)
            if lease is not None:
                held.callback(lease.release)
        header, raw, document, specs, lay = _checked_header(shown, fd, kind)
        if header.state != fmt.COMPLETE and not (allow_incomplete and mode != "r+"):
            raise IncompleteMemmapError(f"{shown} is incomplete (state "
                                        f"{fmt.STATES[header.state]}): "
                                        f"{_UNFINISHED[header.state]}; its data cannot be "
                                        f"trusted; {_REDO}")
        region = _map(shown, fd, lay.total, mode, lease)
        handle = MemmapFile((shown, dfd, name), fd, lock, region, document, specs, mode,
                            raw_meta=raw, layout=lay, state=header.state,
                            checksum=header.data_checksum, lease=lease)
        held.pop_all()  # the handle owns them now: closing it releases them
    try:
        if check_data and header.state == fmt.COMPLETE and \
                data_checksum(handle.data) != header.data_checksum:
            raise DamagedMemmapError(f"{shown} is damaged: its data no longer matches the "
                                     f"checksum written when it was completed; {_REDO}")
        if mode == "r+":
            handle._start_update()
    except BaseException:
        handle.close()
        raise
    return handle


def _map(shown: str, fd: int, total: int, mode: str, lease) -> mmap.mmap:
    """The file's ``total`` bytes as ``mode`` asks, never a mapping a truncation by
    another process could turn into SIGBUS while no read lease guards it."""
    if mode == "r+":
        return mmap.mmap(fd, total, access=mmap.ACCESS_WRITE)
    if mode == "c" and lease is not None:
        return mmap.mmap(fd, total, access=mmap.ACCESS_COPY)
    # Without a lease a private copy (arrays.snapshot), which is also what "c" asks for.
    return snapshot.map_for_reading(shown, fd, total, lease)


def _open_locked(shown: str, dfd: int, name: str, mode: str) -> int:
    """The file opened for ``mode`` and flocked (shared for "r", exclusive for "r+").

    For "r+" the lock is taken on a read-only descriptor first: opening for writing
    breaks the read lease of every reader (`fastinit.arrays.lease`), which must not
    happen to one that holds the file (through another name) when we are refused.
    """
    fd = atomic.open_regular(shown, dfd, name)
    locks.lock_file(shown, fd, exclusive=mode == "r+")
    if mode == "r":
        return fd
    try:
        writable = atomic.open_regular(shown, dfd, name, writable=True)
        checked = os.fstat(fd)
    finally:
        os.close(fd)  # its lock goes with it: retaken at once on the writable one
    try:
        locks.lock_file(shown, writable, exclusive=True)
        now = os.fstat(writable)
        if (now.st_ino, now.st_dev) != (checked.st_ino, checked.st_dev):
            raise MemmapFileError(f"{shown} was replaced while being opened; open it again")
    except BaseException:
        os.close(writable)
        raise
    return writable


def open_memmap_file(path, mode: str = "r") -> MemmapFile:
    """Open a memmap file `create_memmap` wrote, refusing anything not to be trusted, and
    return its handle (`fastinit.open_memmap` returns the array, as NumPy's does).

    Parameters
    ----------
    path : str or os.PathLike
    mode : {"r", "r+", "c"}
        "r": read-only arrays, while other fastinit processes may read it too. "r+":
        writable in place, exclusively; the file says initializing until `complete`
        (a crash meanwhile leaves it incomplete, never silently changed). "c":
        copy-on-write: writable arrays whose changes never reach the file.

    Returns
    -------
    MemmapFile
        ``.array`` / ``.arrays``, ``.metadata``, ``.state``.

    Raises
    ------
    IncompleteMemmapError
        Its writer was killed or failed.
    DamagedMemmapError
        Its data does not match the checksum written at completion.
    MemmapFileError
        Not a regular file, not a fastinit memmap file, another format version, a
        damaged or truncated header, or metadata out of range.
    MemmapBusyError
        Another fastinit is writing it (or, for "r+", reading it).
    """
    return open_file(path, mode, kind="array")
