"""The handle of an open fastinit memmap file: its arrays, state, and the way to finish it.

A `MemmapFile` is what `fastinit.arrays.create_open.create_memmap` and ``open_memmap_file``
return (and what ``open_memmap``'s arrays lead to). Every array it hands out keeps it alive (so its lock and its unfinished file live
as long as any view of the data), and `MemmapFile.of` finds it again from any such view.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import warnings
import weakref

import numpy as np

from fastinit.arrays import atomic, fileformat as fmt, locks
from fastinit.arrays.checksum import data_checksum
from fastinit.arrays.errors import MemmapFileError
from fastinit.arrays.views import FileViews
from fastinit.engine.interrupts import interrupts_deferred

_WRITERS: weakref.WeakSet = weakref.WeakSet()


class MemmapFile(FileViews):
    """An open fastinit memmap file.

    Attributes
    ----------
    path : str
        The path as given (the file being written sits beside it until `complete`).
    mode : str
        "w" (new, not yet at ``path``), "r" (read-only), "r+" (updated in place) or "c"
        (copy-on-write: the arrays are writable, the file never changes).
    kind : str
        What the file holds: "array" for `create_memmap`, or a fastinit subsystem's name.
    metadata : object
        The user's metadata (JSON values).
    """

    def __init__(self, where, fd, lock, region, meta, arrays, mode, *, raw_meta: bytes,
                 layout: fmt.Layout, state: int, checksum: int | None = None, temp=None,
                 replaces=None, lease=None):
        # What the header said was read once, checked, and is kept here: the mapping's
        # header may change under us (another process can write the file), this may not.
        self._layout = layout
        self._offset = layout.data_offset
        end = layout.total
        if end > len(region):
            raise MemmapFileError(f"{where[0]} maps {len(region)} bytes where its arrays "
                                  f"need {end}")
        self.path, self.mode, self._meta, self._specs = where[0], mode, meta, arrays
        self.kind, self.metadata = meta["kind"], meta["metadata"]
        (_, self._dfd, self._name), self._fd, self._lock = where, fd, lock
        self._region, self._temp, self._replaces = region, temp, replaces
        self._raw_meta, self._state = raw_meta, state
        # The data checksum while the file is complete: a file opened "r+" and closed
        # unwritten goes back to complete (see `_end_state`).
        self._complete_checksum = checksum if state == fmt.COMPLETE else None
        self._base = np.frombuffer(region, dtype=np.uint8)
        self._lease = lease  # a read lease (fastinit.arrays.lease) guarding the mapping
        if lease is not None:
            lease.guard(self._base.ctypes.data, len(region))
        self._finished = mode != "w"
        self.kept: str | None = None  # where an unfinished new file was kept (see close)
        if mode == "w":
            _WRITERS.add(self)

    # the data: data, arrays, array, layout, header, of (fastinit.arrays.views) ------

    def data_file(self) -> tuple[int, int]:
        """``(fd, offset)``: a new descriptor of the open file (the caller closes it) and
        where the data region starts in it, for mapping parts of the data again (HVO)."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        return os.dup(self._fd), self._offset

    @property
    def completed_checksum(self) -> int | None:
        """The data checksum written when the file was completed (None: not complete)."""
        return self._complete_checksum

    @property
    def state(self) -> str:
        return fmt.STATES[self._state]

    @property
    def writing(self) -> bool:
        """True while the file is being written: opened for writing and not yet completed,
        failed or closed. Its arrays must not be written otherwise."""
        return self.mode in ("w", "r+") and not self._finished

    # states -----------------------------------------------------------------------

    def _write_state(self, state: int, checksum: int = 0) -> None:
        at = self._layout.header_offset
        self._region[at:at + fmt.HEADER_BYTES] = fmt.pack_header(state, self._raw_meta,
                                                                 checksum)
        page = at - at % fmt.PAGE  # msync takes a page-aligned start
        self._region.flush(page, self._layout.total - page)
        self._state = state
        if state != fmt.INITIALIZING:
            self._complete_checksum = checksum if state == fmt.COMPLETE else None

    def _end_state(self, state: int, threads: int | None = None) -> tuple[int, int]:
        """``(state, checksum)`` to leave a file updated in place with, unless completed:
        complete again if its data is what it was when complete (nobody wrote it)."""
        before = self._complete_checksum
        if before is not None and data_checksum(self.data, threads) == before:
            return fmt.COMPLETE, before
        return state, 0

    def complete(self) -> None:
        """Sync the data, record its checksum, mark the file complete, and (for a new
        file) rename it over the path. Do not write to the arrays afterwards."""
        if self._finished:
            raise ValueError(f"{self.path} was already completed, failed or closed")
        # The data is on disk before the file says complete. fsync writes back what the
        # mapping dirtied as msync does (Linux's msync is an fsync of each mapping of
        # the range), with one flush of the disk's cache where msync flushes it once per
        # mapping: HVO's aliases (fastinit.mm.hugetlb.hvo_file) are thousands of them.
        os.fsync(self._fd)
        checksum = data_checksum(self.data)
        self._write_state(fmt.COMPLETE, checksum)
        try:
            with interrupts_deferred():
                if self._temp is not None:
                    self._commit()
                else:
                    os.fsync(self._fd)
                self._finished = True
                self._release()
        except KeyboardInterrupt as stop:
            # Held back until the file was in place: without a word the user would take
            # the interrupt to have kept what the path held before.
            stop.add_note(completed_note(self.path))
            raise

    def _commit(self) -> None:
        try:
            atomic.commit_temp(self.path, self._dfd, self._temp, self._fd, self._name,
                               self._replaces)
        except MemmapFileError:  # kept under another name, complete: not ours to remove
            self._temp, self._finished = None, True
            self._release()
            raise
        self._temp = None

    def fail(self) -> None:
        """Give up: a new file is removed (the path keeps what it had); a file updated in
        place is marked failed."""
        self._stop(fmt.FAILED)

    def _stop(self, state: int, threads: int | None = None) -> None:
        if self._finished:
            return
        with interrupts_deferred():
            self._finished = True
            if self._temp is not None and state == fmt.CLOSED and self.kind == "array":
                self._keep_unfinished()
            elif self._temp is not None:
                atomic.remove_temp(self._dfd, self._temp, self._fd)
                self._fd = self._temp = None
            elif state == fmt.FAILED:  # said by the writer: whatever the data holds
                self._write_state(state)
            else:
                self._write_state(*self._end_state(state, threads))
            self._release()
        if self.kind == "array" and self._state == fmt.CLOSED:
            self._warn_closed()

    def _keep_unfinished(self) -> None:
        # A user's new file dropped (or left at exit) without complete() or fail(): kept,
        # marked closed, under a name no cleanup removes (NumPy users write with plain
        # assignments: their data must not vanish); `_warn_closed` says where.
        self._write_state(fmt.CLOSED)
        try:
            kept = atomic.keep(self._dfd, self._temp, atomic.UNFINISHED_INFIX)
        except OSError:
            kept = self._temp
        self.kept, self._temp = os.path.join(os.path.dirname(self.path), kept), None

    def _warn_closed(self) -> None:
        where = (f"its new data is kept, unchecked, in {self.kept} (delete it if you do not "
                 f"need it)" if self.kept else "it is marked closed, not complete")
        warnings.warn(f"fastinit: {self.path} was written and dropped (or the program ended) "
                      f"without complete() or fail(): {where}; numpy.load opens it, fastinit "
                      f"refuses it as incomplete. Call fastinit.MemmapFile.of(array)"
                      f".complete() once the array is written (or use create_memmap in a "
                      f"with block)", RuntimeWarning, stacklevel=3)

    def begin_update(self) -> None:
        """Take a completed file back for writing in place: lock it and mark it
        initializing until the next `complete`."""
        if not self._finished or self.mode in ("r", "c"):
            raise ValueError(f"{self.path} is open read-only or still being written")
        shown, name = self.path, self._name
        self._lock = locks.PathLock(shown, self._dfd, name, exclusive=True)
        try:
            locks.lock_file(shown, self._fd, exclusive=True)
            if not locks.still_names(self._dfd, name, self._fd):
                raise MemmapFileError(f"{shown} was replaced by another file since it was "
                                      f"written; open it again")
        except (OSError, MemmapFileError) as error:
            self._release()
            if isinstance(error, MemmapFileError):
                raise
            raise MemmapFileError(f"{shown} is gone: {error.strerror}") from None
        self._start_update()

    def _start_update(self) -> None:
        self._write_state(fmt.INITIALIZING)
        self._finished = False
        _WRITERS.add(self)

    def close(self) -> None:
        """Release the file (its lock and descriptors; arrays stay readable while they
        live). A new file of one array (`create_memmap`, ``empty(path=)``) not completed is
        kept, marked closed, as ``NAME.fastinit-unfinished-RANDOM`` with a warning (a
        fastinit subsystem's new file is removed); updated in place, it is complete again
        if nothing was written, else marked closed uncompleted."""
        self._stop(fmt.CLOSED)
        self._finished = True
        self._release()
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        for name in ("_fd", "_dfd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self.mode in ("w", "r+") and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)  # written: now as unlocked as before
        _WRITERS.discard(self)

    def __enter__(self) -> MemmapFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None and self.writing:
            self.complete()
        elif kind is not None and self._temp is not None:
            self.fail()  # a new file whose block raised: the path keeps what it had
        self.close()

    def __del__(self):
        try:
            self.close()
        except (OSError, AttributeError, TypeError):
            pass  # at interpreter exit modules may be gone; the OS releases the rest


@atexit.register
def _fail_unfinished() -> None:
    """A program that exits without completing its files leaves no temporary file: a
    user's new array file is kept (with a warning), a subsystem's removed."""
    for handle in list(_WRITERS):
        handle._stop(fmt.CLOSED, threads=1)  # no new threads while the interpreter exits


def completed_note(path: str) -> str:
    """What an interrupt that came after ``path`` was completed must say with it."""
    return f"{path} was complete before the interrupt: it holds the new data"
