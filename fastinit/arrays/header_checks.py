"""What an opened memmap file's header must say before anything of it is mapped: its
metadata matches its checksum and decodes, its data checksum is one this fastinit computes,
its kind is the one asked for, its size is the one its layout needs, and its NumPy header
is the one its metadata describes. `fastinit.arrays.create_open.open_file` checks with it.
"""

from __future__ import annotations

import hashlib
import os

from fastinit.arrays import fileformat as fmt
from fastinit.arrays.checksum import NAME as CHECKSUM_NAME
from fastinit.arrays.errors import MemmapFileError

# What every refusal of a damaged file tells its user to do.
REDO = "write it again (the old one is replaced only with force=True)"


def checked_header(shown: str, fd: int, kind: str | None):
    """``(header, raw metadata, document, array specs, layout)`` of the open file ``fd``,
    each checked against the others and the file's size before anything is mapped."""
    size = os.fstat(fd).st_size
    header = fmt.read_header(shown, fd, size, REDO)
    meta_at = size - fmt.HEADER_BYTES - header.meta_len
    raw = os.pread(fd, header.meta_len, meta_at) if meta_at >= 0 else b""
    if len(raw) != header.meta_len or hashlib.sha256(raw).digest() != header.meta_sha256:
        raise MemmapFileError(f"{shown} has a damaged header (metadata checksum "
                              f"mismatch); {REDO}")
    try:
        document, specs, data_bytes = fmt.decode_metadata(raw)
    except (ValueError, TypeError, OverflowError, KeyError, IndexError) as error:
        raise MemmapFileError(f"{shown} has metadata this fastinit cannot use: "
                              f"{error}; {REDO}") from None
    if document["checksum"] != CHECKSUM_NAME:
        raise MemmapFileError(f"{shown} has a data checksum of kind "
                              f"{document['checksum'][:40]!r}, this fastinit computes "
                              f"{CHECKSUM_NAME!r}; {REDO}")
    if kind is not None and document["kind"] != kind:
        raise MemmapFileError(f"{shown} holds {document['kind'][:64]!r}, not {kind!r}; "
                              f"name a {kind} file")
    lay = fmt.layout(specs, data_bytes, header.meta_len)
    if size != lay.total:
        what = "is truncated" if size < lay.total else "is longer than its header says"
        raise MemmapFileError(f"{shown} {what}: {size} bytes where its header needs "
                              f"{lay.total}; {REDO}")
    if os.pread(fd, lay.data_offset, 0) != lay.npy:  # no checksum covers it
        raise MemmapFileError(f"{shown} has a damaged header (its NumPy header is not "
                              f"the one its metadata describes); {REDO}")
    return header, raw, document, specs, lay
