"""The handle of an open fastinit memmap file: its arrays, state, and the way to finish it.

A `MemmapFile` is what `fastinit.arrays.memmapfile.create_memmap` and ``open_memmap``
return. Every array it hands out keeps it alive (so its lock and its unfinished file live
as long as any view of the data), and `MemmapFile.of` finds it again from any such view.
"""

from __future__ import annotations

import atexit
import os
import weakref

import numpy as np

from fastinit.arrays import atomic, fileformat as fmt
from fastinit.arrays.checksum import data_checksum
from fastinit.arrays.errors import MemmapFileError
from fastinit.engine.interrupts import interrupts_deferred

_WRITERS: weakref.WeakSet = weakref.WeakSet()


class _Owner:
    """Base of every array a `MemmapFile` hands out: keeps the file (and its lock) alive
    while any view of its memory exists."""

    def __init__(self, handle: MemmapFile, address: int, nbytes: int, writable: bool):
        self.handle = handle
        self.__array_interface__ = {"data": (address, not writable), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}


class MemmapFile:
    """An open fastinit memmap file.

    Attributes
    ----------
    path : str
        The path as given (the file being written sits beside it until `complete`).
    mode : str
        "w" (new, not yet at ``path``), "r" (read-only) or "r+" (updated in place).
    kind : str
        What the file holds: "array" for `create_memmap`, or a fastinit subsystem's name.
    metadata : object
        The user's metadata (JSON values).
    """

    def __init__(self, shown, dfd, fd, lock, region, meta, arrays, mode, temp=None):
        self.path, self.mode, self._meta, self._specs = shown, mode, meta, arrays
        self.kind, self.metadata = meta["kind"], meta["metadata"]
        self._dfd, self._fd, self._lock, self._region, self._temp = dfd, fd, lock, region, temp
        self._meta_bytes = None
        self._offset = fmt.data_offset(int.from_bytes(region[24:32], "little"))
        self._base = np.frombuffer(region, dtype=np.uint8)
        self._finished = mode != "w"
        if mode == "w":
            _WRITERS.add(self)

    # the data ---------------------------------------------------------------------

    @property
    def data(self) -> np.ndarray:
        """Every byte of the data region: ndarray of uint8, shape (data_bytes,)."""
        end = self._specs[-1].offset + self._specs[-1].nbytes
        owner = _Owner(self, self._base.ctypes.data + self._offset, end, self.writing)
        return np.asarray(owner)

    @property
    def arrays(self) -> dict[str, np.ndarray]:
        """Every array of the file by name, each C-contiguous with its dtype and shape."""
        data, arrays = self.data, {}
        for s in self._specs:
            # As np.empty does: a subarray dtype's extents become trailing axes.
            dtype, extra = s.dtype.subdtype if s.dtype.subdtype else (s.dtype, ())
            arrays[s.name] = data[s.offset:s.offset + s.nbytes].view(dtype).reshape(
                s.shape + extra)
        return arrays

    @property
    def array(self) -> np.ndarray:
        """The file's array (for files with one, as `create_memmap` makes)."""
        if len(self._specs) != 1:
            raise ValueError(f"{self.path} holds {len(self._specs)} arrays "
                             f"({', '.join(s.name for s in self._specs)}); use .arrays")
        return self.arrays[self._specs[0].name]

    @property
    def layout(self) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
        """``(name, dtype, shape)`` of each array, in file order."""
        return [(s.name, s.dtype, s.shape) for s in self._specs]

    @property
    def header(self) -> dict:
        """The format's own fields: format, kind, fastinit version, created, checksum."""
        return {k: v for k, v in self._meta.items() if k not in ("arrays", "metadata")}

    @property
    def state(self) -> str:
        return fmt.STATES[int.from_bytes(self._region[20:24], "little")]

    @property
    def writing(self) -> bool:
        """True while the file is being written: opened for writing and not yet completed,
        failed or closed. Its arrays must not be written otherwise."""
        return self.mode != "r" and not self._finished

    @classmethod
    def of(cls, array) -> MemmapFile | None:
        """The file whose memory ``array`` (or a view of it) is, or None."""
        base = array
        while base is not None:
            if isinstance(base, _Owner):
                return base.handle
            base = getattr(base, "base", None)
        return None

    # states -----------------------------------------------------------------------

    def _write_state(self, state: int, checksum: int = 0) -> None:
        meta_len = int.from_bytes(self._region[24:32], "little")
        meta = self._region[fmt.HEADER_BYTES:fmt.HEADER_BYTES + meta_len]
        self._region[:fmt.HEADER_BYTES] = fmt.pack_header(state, meta, checksum)
        self._region.flush(0, fmt.PAGE)

    def complete(self) -> None:
        """Sync the data, record its checksum, mark the file complete, and (for a new
        file) rename it over the path. Do not write to the arrays afterwards."""
        if self._finished:
            raise ValueError(f"{self.path} was already completed, failed or closed")
        self._region.flush()  # msync: the data is on disk before the file says complete
        checksum = data_checksum(self.data)
        self._write_state(fmt.COMPLETE, checksum)
        try:
            with interrupts_deferred():
                if self._temp is not None:
                    atomic.commit_temp(self.path, self._dfd, self._temp, self._fd,
                                       os.path.basename(os.path.abspath(self.path)))
                    self._temp = None
                else:
                    os.fsync(self._fd)
                self._finished = True
                self._release()
        except KeyboardInterrupt as stop:
            # Held back until the file was in place: without a word the user would take
            # the interrupt to have kept what the path held before.
            stop.add_note(completed_note(self.path))
            raise

    def fail(self) -> None:
        """Give up: a new file is removed (the path keeps what it had); a file updated in
        place is marked failed."""
        if self._finished:
            return
        with interrupts_deferred():
            self._finished = True
            if self._temp is not None:
                atomic.remove_temp(self._dfd, self._temp, self._fd)
                self._fd = self._temp = None
            else:
                self._write_state(fmt.FAILED)
            self._release()

    def begin_update(self) -> None:
        """Take a completed file back for writing in place: lock it and mark it
        initializing until the next `complete`."""
        if not self._finished or self.mode == "r":
            raise ValueError(f"{self.path} is open read-only or still being written")
        shown, directory, name = atomic.split_path(self.path)
        self._lock = atomic.PathLock(shown, self._dfd, name, exclusive=True)
        try:
            if not atomic.still_names(self._dfd, name, self._fd):
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
        live); one being written and not completed is failed first."""
        self.fail()
        self._finished = True
        self._release()
        for name in ("_fd", "_dfd"):
            fd = getattr(self, name)
            setattr(self, name, None)
            if fd is not None:
                os.close(fd)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        _WRITERS.discard(self)

    def __enter__(self) -> MemmapFile:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None and self.writing:
            self.complete()
        self.close()

    def __del__(self):
        try:
            self.close()
        except (OSError, AttributeError, TypeError):
            pass  # at interpreter exit modules may be gone; the OS releases the rest


@atexit.register
def _fail_unfinished() -> None:
    """A program that exits without completing its files leaves no temporary file."""
    for handle in list(_WRITERS):
        handle.fail()


def completed_note(path: str) -> str:
    """What an interrupt that came after ``path`` was completed must say with it."""
    return f"{path} was complete before the interrupt: it holds the new data"
