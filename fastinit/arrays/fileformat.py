"""The fastinit memmap file format: a NumPy .npy file with a checked trailer.

Layout (little-endian)::

    0              an NPY header (`fastinit.arrays.npyheader`) describing the first
                   array, padded with spaces to a page boundary: NumPy opens the file
    data_offset    the arrays in order, each starting on a 64-byte boundary
    meta_offset    data_offset + the data's size: metadata, JSON (format version, kind,
                   the arrays (name, dtype, shape), the data checksum's name, and the
                   user's own metadata)
    size - 128     fixed header, 128 bytes: magic, format version, state, metadata length
                   and SHA-256, data checksum, reserved zeros, SHA-256 of these 96 bytes;
                   the file ends with it

NumPy reads the NPY header and the first array and never looks past them, so fastinit's
own header sits at the end, where the file's size (a fact, not a claim) finds it. Every
other offset and size is derived from the metadata, never stored: the NPY header must be
byte for byte the one the metadata implies, and the file's size exactly what its parts
need. Nothing of a file is believed before its checksums match and every field has been
checked for type and range (a file is untrusted input). This module holds the format;
creating, opening and completing files is `fastinit.arrays.create_open`.

Format history: version 1 (fastinit 0.1) had a 64-byte fixed header, page memmaps only
and no data checksum; version 2 had the fixed header and metadata first, so only
fastinit could read it. This version refuses both, naming them.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

from fastinit.arrays.dtypes import (MAX_ITEMSIZE, MAX_NDIM, check_mappable,  # noqa: F401
                                    check_dtype, dtype_from_json, dtype_to_json, header_int,
                                    numpy_dtype)
from fastinit.arrays.errors import MemmapFileError
from fastinit.arrays.npyheader import PAGE, is_npy, npy_header
from fastinit.layout import align_up

MAGIC = b"FASTINIT-MEMMAP\0"
FORMAT_VERSION = 3
# magic, version, state, metadata length, metadata SHA-256, data checksum, reserved
_FIXED = struct.Struct("<16sIIQ32sQ24s")
HEADER_BYTES = _FIXED.size + 32  # then the SHA-256 of the fixed fields
# closed: opened for writing, written, and closed (or its program ended) without complete()
STATES = {1: "initializing", 2: "complete", 3: "failed", 4: "closed"}
INITIALIZING, COMPLETE, FAILED, CLOSED = 1, 2, 3, 4
ARRAY_ALIGN = 64  # a cache line: streaming stores write whole lines

# Caps: a header may not make a reader spend more than its layout could need.
MAX_METADATA_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_DATA_BYTES = 1 << 50  # 1 PiB
MAX_ARRAYS = 16
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


@dataclass(frozen=True)
class Header:
    """The fixed header's fields, checked against its own SHA-256."""

    version: int
    state: int
    meta_len: int
    meta_sha256: bytes
    data_checksum: int


def pack_header(state: int, meta: bytes, data_checksum: int = 0) -> bytes:
    """The 128 bytes of a file's fixed header (its last bytes)."""
    fixed = _FIXED.pack(MAGIC, FORMAT_VERSION, state, len(meta), hashlib.sha256(meta).digest(),
                        data_checksum, bytes(24))
    return fixed + hashlib.sha256(fixed).digest()


def unpack_header(shown: str, raw: bytes, redo: str) -> Header:
    """Check and decode a fixed header's `HEADER_BYTES` (any version is named)."""
    if len(raw) < 20 or raw[:16] != MAGIC:
        raise MemmapFileError(f"{shown} is not a fastinit memmap file (no header); check "
                              f"the path")
    version = struct.unpack_from("<I", raw, 16)[0]
    if version != FORMAT_VERSION:
        raise MemmapFileError(f"{shown} has memmap format version {version}, this fastinit "
                              f"reads version {FORMAT_VERSION}; {redo}")
    if len(raw) < HEADER_BYTES:
        raise MemmapFileError(f"{shown} is truncated inside its header; {redo}")
    if hashlib.sha256(raw[:_FIXED.size]).digest() != raw[_FIXED.size:HEADER_BYTES]:
        raise MemmapFileError(f"{shown} has a damaged header (checksum mismatch); {redo}")
    _, version, state, meta_len, meta_sha, checksum, reserved = _FIXED.unpack_from(raw)
    if state not in STATES or any(reserved):
        raise MemmapFileError(f"{shown} has a damaged header (state {state}); {redo}")
    if meta_len > MAX_METADATA_BYTES:
        raise MemmapFileError(f"{shown} claims {meta_len} bytes of metadata, more than the "
                              f"{MAX_METADATA_BYTES} this fastinit reads; {redo}")
    return Header(version, state, meta_len, meta_sha, checksum)


def read_header(shown: str, fd: int, size: int, redo: str) -> Header:
    """The fixed header at the end of the open file ``fd`` of ``size`` bytes, checked.

    A file of an older version (whose header came first) is refused naming its version.
    """
    if os.pread(fd, len(MAGIC), 0) == MAGIC:  # versions 1 and 2 began with the header
        unpack_header(shown, os.pread(fd, HEADER_BYTES, 0), redo)
    if size < HEADER_BYTES or os.pread(fd, len(MAGIC), size - HEADER_BYTES) != MAGIC:
        if is_npy(os.pread(fd, 8, 0)):
            raise MemmapFileError(f"{shown} is a NumPy .npy file without fastinit's header "
                                  f"at its end: not written by fastinit, or truncated or "
                                  f"extended since; {redo}")
        raise MemmapFileError(f"{shown} is not a fastinit memmap file (no header); check "
                              f"the path")
    return unpack_header(shown, os.pread(fd, HEADER_BYTES, size - HEADER_BYTES), redo)


def is_ours(fd: int) -> bool:
    """Whether the open file carries fastinit's magic where a header of some version of
    the format would be (so it may be replaced with ``force``, or cleaned up)."""
    size = os.fstat(fd).st_size
    return os.pread(fd, len(MAGIC), 0) == MAGIC or \
        (size >= HEADER_BYTES and os.pread(fd, len(MAGIC), size - HEADER_BYTES) == MAGIC)


@dataclass(frozen=True)
class Layout:
    """Where a file's parts lie, derived from its checked metadata."""

    npy: bytes  # the NPY header: the file's first bytes, up to the data
    data_bytes: int
    meta_len: int

    @property
    def data_offset(self) -> int:
        return len(self.npy)

    @property
    def meta_offset(self) -> int:
        return self.data_offset + self.data_bytes

    @property
    def header_offset(self) -> int:
        return self.meta_offset + self.meta_len

    @property
    def total(self) -> int:
        return self.header_offset + HEADER_BYTES


def layout(arrays: list[ArraySpec], data_bytes: int, meta_len: int) -> Layout:
    first = arrays[0]
    return Layout(npy_header(first.dtype, first.shape), data_bytes, meta_len)


@dataclass(frozen=True)
class ArraySpec:
    """One array of a file: its name, dtype, shape, and bytes from the data offset."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def check_shape(shape) -> tuple[int, ...]:
    """A shape as a tuple of ints; ValueError unless each extent is in range."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, (bool, np.bool_)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or len(shape) > MAX_NDIM:
        raise ValueError(f"shape {shape!r} must be an int or a tuple of up to {MAX_NDIM} ints")
    result = []
    for extent in shape:
        if isinstance(extent, np.integer) and not isinstance(extent, np.bool_):
            extent = int(extent)
        result.append(header_int(extent, 0, MAX_DATA_BYTES, "shape extent"))
    return tuple(result)


def lay_out(arrays) -> tuple[list[ArraySpec], int]:
    """Place ``(name, dtype, shape)`` triples one after another, each 64-byte aligned.

    Returns the placed arrays and the data region's size; ValueError if names repeat or
    the data would exceed `MAX_DATA_BYTES`.
    """
    if not 0 < len(arrays) <= MAX_ARRAYS:
        raise ValueError(f"a file holds 1..{MAX_ARRAYS} arrays, not {len(arrays)}")
    placed, offset, names = [], 0, set()
    for name, dtype, shape in arrays:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name in names:
            raise ValueError(f"array name {name!r} is not a unique identifier")
        names.add(name)
        offset = align_up(offset, ARRAY_ALIGN)
        spec = ArraySpec(name, dtype, shape, offset)
        # Extents are bounded, so this product is a few hundred bits at most.
        if spec.nbytes > MAX_DATA_BYTES - offset:
            raise ValueError(f"array {name!r} of shape {shape} and {dtype.itemsize}-byte "
                             f"records needs more than {MAX_DATA_BYTES >> 50} PiB")
        check_mappable(name, dtype, shape)
        placed.append(spec)
        offset += spec.nbytes
    return placed, offset


def encode_metadata(kind: str, arrays: list[ArraySpec], user, created: str,
                    version: str, checksum: str) -> bytes:
    """The metadata JSON of a new file; ValueError if ``user`` is not plain JSON."""
    document = {"format": FORMAT_VERSION, "kind": kind, "fastinit": version,
                "created": created, "checksum": checksum,
                "arrays": [{"name": a.name, "dtype": dtype_to_json(a.dtype),
                            "shape": list(a.shape)} for a in arrays],
                "metadata": user}
    try:
        text = json.dumps(document, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as error:
        raise ValueError(f"metadata must be plain JSON (dict, list, str, finite numbers, "
                         f"bool, None): {error}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise ValueError(f"metadata takes {len(text)} bytes as JSON; keep it under "
                         f"{MAX_METADATA_BYTES}")
    check_depth(document)
    return text


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number a fastinit file holds")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is not a finite number")
    return number


def check_depth(document) -> None:
    """ValueError if JSON nests deeper than `MAX_JSON_DEPTH` (walked without recursion)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_JSON_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else \
            value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children)


def decode_metadata(raw: bytes) -> tuple[dict, list[ArraySpec], int]:
    """The format's fields of a file's metadata, checked: ``(document, arrays, data_bytes)``.

    Raises ValueError (naming the problem, not the file) for anything malformed.
    """
    try:
        document = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"metadata nests deeper than {MAX_JSON_DEPTH} levels") from None
    except UnicodeDecodeError:
        raise ValueError("metadata is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"metadata is not JSON ({error.msg} at byte {error.pos})") from None
    check_depth(document)
    expected = {"format", "kind", "fastinit", "created", "checksum", "arrays", "metadata"}
    if not isinstance(document, dict) or set(document) != expected:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise ValueError(f"metadata fields are {found}, not {sorted(expected)}")
    if document["format"] != FORMAT_VERSION or type(document["format"]) is not int:
        raise ValueError(f"metadata says format {document['format']!r}, the header "
                         f"{FORMAT_VERSION}")
    for key in ("kind", "fastinit", "created", "checksum"):
        if not isinstance(document[key], str) or len(document[key]) > 256:
            raise ValueError(f"metadata field {key!r} is not a short string")
    listed = document["arrays"]
    if not isinstance(listed, list) or not 0 < len(listed) <= MAX_ARRAYS:
        raise ValueError(f"metadata lists no arrays, or more than {MAX_ARRAYS}")
    triples = []
    for entry in listed:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise ValueError("an array entry is not {name, dtype, shape}")
        if not isinstance(entry["shape"], list):
            raise ValueError(f"array {str(entry['name'])[:64]!r} has a shape that is not a list")
        triples.append((entry["name"], dtype_from_json(entry["dtype"]),
                        check_shape(entry["shape"])))
    arrays, data_bytes = lay_out(triples)
    return document, arrays, data_bytes
