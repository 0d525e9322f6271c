"""`open_memmap` as NumPy spells it: an array from a file, with fastinit's checks.

``numpy.lib.format.open_memmap(filename, mode="r+", dtype=None, shape=None, ...)`` returns
an array; so does this one, over a fastinit memmap file (which is also a .npy file).
What differs is what fastinit adds: a file is checked before it is used (header,
metadata, data checksum), a new one appears at its path only when complete, and another
process is kept out while one writes. The file's handle (state, metadata, `complete`)
is ``fastinit.MemmapFile.of(array)``; ``fastinit.open_memmap_file`` returns it directly.
"""

from __future__ import annotations

import numpy as np

from fastinit.arrays.create_open import create_memmap, open_file

MODES = ("r", "r+", "w+", "c")


def open_memmap(filename, mode: str = "r+", dtype=None, shape=None, fortran_order=False,
                version=None, *, metadata=None, force: bool = False,
                replace_any_file: bool = False) -> np.ndarray:
    """Open (or, with ``mode="w+"``, create) a fastinit memmap file as an array.

    Parameters
    ----------
    filename : str or os.PathLike
    mode : {"r+", "r", "w+", "c"}
        As NumPy's: "r" read-only; "r+" read and write in place (the default; fastinit
        holds the file exclusively, and it says initializing until
        ``fastinit.MemmapFile.of(array).complete()``, so a crash meanwhile leaves it
        incomplete, never silently changed; unchanged, it is complete again when
        dropped); "w+" a new file of ``dtype`` and ``shape``, written beside
        ``filename`` and put there by ``complete()`` (an existing file is replaced only
        with ``force``); "c" copy-on-write (writes stay in memory, the file is never
        changed).
    dtype, shape
        For "w+": the array's dtype and shape (required). Ignored otherwise, as NumPy
        ignores them: the file says what it holds.
    fortran_order : bool
        Only False: fastinit files hold C-ordered arrays.
    version : None
        The NPY format version is chosen by the header the dtype needs.
    metadata : JSON-serializable, optional
        For "w+": stored with the file (``MemmapFile.of(array).metadata``).
    force, replace_any_file : bool
        For "w+": as `fastinit.create_memmap`.

    Returns
    -------
    numpy.ndarray
        The file's array; ``fastinit.MemmapFile.of(array)`` is its handle (state,
        metadata, ``complete()``, ``fail()``, ``close()``). A file written ("w+", or
        changed with "r+") and dropped without ``complete()`` is never lost: it is
        kept (a new one as ``NAME.fastinit-unfinished-RANDOM``) with a warning.

    Raises
    ------
    ValueError
        A mode not in ``("r", "r+", "w+", "c")``, "w+" without dtype or shape,
        ``fortran_order=True`` or a ``version``.
    fastinit.MemmapFileError
        The file is not to be trusted or not usable (see `fastinit.open_memmap_file`),
        or for "w+" the path is taken (without ``force``) or the disk lacks the room.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(map(repr, MODES))} "
                         f"(numpy.lib.format.open_memmap's modes)")
    if fortran_order is not False:
        raise ValueError(f"fortran_order={fortran_order!r}: fastinit memmap files hold "
                         f"C-ordered arrays; pass fortran_order=False (and transpose)")
    if version is not None:
        raise ValueError(f"version={version!r}: fastinit writes the NPY format version its "
                         f"header needs; pass version=None")
    if mode == "w+":
        if dtype is None or shape is None:
            raise ValueError("mode 'w+' creates a file: pass dtype= and shape=")
        return create_memmap(filename, dtype, shape, metadata, force=force,
                             replace_any_file=replace_any_file).array
    return open_file(filename, mode, kind="array").array
