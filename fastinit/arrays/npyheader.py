"""The NPY header a memmap file starts with, so NumPy opens it without fastinit.

``numpy.load(path, mmap_mode="r")`` reads the magic ``\\x93NUMPY``, a format version, the
header's length and a Python dict literal (descr, fortran_order, shape), and maps the
array right after it; it never looks past the array's last byte. So a fastinit file
starts with such a header describing its first array (as `MemmapFile.arrays` presents
it: a subarray dtype's extents as trailing axes), padded with spaces up to the next page
boundary, where fastinit's data region begins; fastinit's own header and metadata come
after the data (`fastinit.arrays.fileformat`).

The header is written the way NumPy writes it (keys sorted, ``repr`` of each value,
spaces, a newline) and is never parsed by fastinit: a reader builds the header the
checked metadata implies and compares it byte for byte with the file's.
"""

from __future__ import annotations

import struct

import numpy as np

from fastinit.layout import align_up

NPY_MAGIC = b"\x93NUMPY"
PAGE = 4096
# NumPy refuses headers longer than this unless told otherwise (numpy.load's
# max_header_size): files whose dtype needs more say so in their docs, not here.
NUMPY_MAX_HEADER = 10000


def describe(dtype: np.dtype, shape: tuple[int, ...]) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape NumPy sees: a subarray dtype's extents join the shape."""
    if dtype.subdtype is not None:
        base, extra = dtype.subdtype
        return base, tuple(shape) + tuple(extra)
    return dtype, tuple(shape)


def _descr(dtype: np.dtype):
    # What numpy.lib.format.dtype_to_descr gives, without its warnings for dtypes a file
    # cannot hold anyway (those with Python objects are refused before this).
    return dtype.descr if dtype.names is not None else dtype.str


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The NPY header for a C-ordered array of ``dtype`` and ``shape``, padded so the
    data after it starts on a page boundary (format 1.0, or 2.0 when the header is too
    long for 1.0's 16-bit length, or 3.0 when field names need UTF-8)."""
    dtype, shape = describe(dtype, shape)
    fields = {"descr": _descr(dtype), "fortran_order": False,
              "shape": tuple(int(n) for n in shape)}
    text = "{" + "".join(f"{key!r}: {value!r}, " for key, value in sorted(fields.items())) \
        + "}"
    try:
        body, major = text.encode("latin1"), 1
    except UnicodeEncodeError:
        body, major = text.encode("utf8"), 3
    prefix = 2 if major == 1 else 4  # the length field's bytes
    length = align_up(len(NPY_MAGIC) + 2 + prefix + len(body) + 1, PAGE) \
        - (len(NPY_MAGIC) + 2 + prefix)
    if length > 0xFFFF:
        major, prefix = max(major, 2), 4
        length = align_up(len(NPY_MAGIC) + 6 + len(body) + 1, PAGE) - (len(NPY_MAGIC) + 6)
    packed = struct.pack("<H" if prefix == 2 else "<I", length)
    return NPY_MAGIC + bytes([major, 0]) + packed + body + b" " * (length - len(body) - 1) \
        + b"\n"


def is_npy(head: bytes) -> bool:
    """Whether bytes start like an NPY file (any version)."""
    return head[:len(NPY_MAGIC)] == NPY_MAGIC
