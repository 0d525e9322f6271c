"""The arrays an open memmap file hands out, and the way back from any of them to the file.

Every array a `fastinit.arrays.handle.MemmapFile` hands out is a view of one `_Owner`,
which keeps the file (and its lock) alive as long as any view of the data lives;
`FileViews.of` walks an array's bases back to it. `FileViews` is the handle's read side,
kept apart from its states (complete, fail, close) in handle.py.
"""

from __future__ import annotations

import numpy as np


class _Owner:
    """Base of every array a `MemmapFile` hands out: keeps the file (and its lock) alive
    while any view of its memory exists."""

    def __init__(self, handle, address: int, nbytes: int, writable: bool):
        self.handle = handle
        self.__array_interface__ = {"data": (address, not writable), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}


class FileViews:
    """What a `MemmapFile` shows of its data; the handle sets ``_specs``, ``_base``,
    ``_offset``, ``_meta`` and ``mode``, and says whether it is ``writing``."""

    @property
    def data(self) -> np.ndarray:
        """Every byte of the data region: ndarray of uint8, shape (data_bytes,)."""
        end = self._specs[-1].offset + self._specs[-1].nbytes
        owner = _Owner(self, self._base.ctypes.data + self._offset, end,
                       self.writing or self.mode == "c")
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

    @classmethod
    def of(cls, array) -> FileViews | None:
        """The file whose memory ``array`` (or a view of it) is, or None."""
        base = array
        while base is not None:
            if isinstance(base, _Owner):
                return base.handle
            base = getattr(base, "base", None)
        return None
