"""Forge memmap files the way an attacker with a hex editor would: change the metadata or
the data, then recompute every checksum so the file passes the header checks and the
checks behind them are what is tested (or change bytes and leave the checksums, for the
header checks themselves); and list what a directory holds, to see that no temporary file
was left. For tests and the fuzz campaign only."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from fastinit.arrays import fileformat as fmt
from fastinit.arrays.checksum import data_checksum


def listing(directory) -> list[str]:
    """The sorted names of the entries of ``directory`` (str or Path)."""
    return sorted(p.name for p in Path(directory).iterdir())


def npy_length(raw: bytes) -> int:
    """Bytes of the NPY header ``raw`` starts with (where the data region begins)."""
    major = raw[6]
    if major == 1:
        return 10 + struct.unpack_from("<H", raw, 8)[0]
    return 12 + struct.unpack_from("<I", raw, 8)[0]


def header_at(raw: bytes) -> int:
    """Where the fixed header of a file's bytes starts (its last `fmt.HEADER_BYTES`)."""
    return len(raw) - fmt.HEADER_BYTES


def split(raw: bytes) -> tuple[int, bytes, bytes, bytes, int]:
    """``(state, metadata, data, npy header, data checksum)`` of a version-3 file's bytes."""
    at = header_at(raw)
    state, meta_len = struct.unpack_from("<IQ", raw, at + 20)
    checksum = struct.unpack_from("<Q", raw, at + 64)[0]
    start = npy_length(raw)
    return state, raw[at - meta_len:at], raw[start:at - meta_len], raw[:start], checksum


def assemble(npy: bytes, state: int, meta: bytes, data: bytes, checksum: int) -> bytes:
    """A file's bytes from its parts; the NPY header is the one ``meta`` implies when it
    can be decoded, else ``npy`` as given."""
    try:
        specs, data_bytes = fmt.decode_metadata(meta)[1:]
        npy = fmt.layout(specs, data_bytes, len(meta)).npy
    except Exception:  # noqa: BLE001 - metadata damaged on purpose: keep the old header
        pass
    return npy + data + meta + fmt.pack_header(state, meta, checksum)


def parts(path) -> tuple[int, bytes, bytes]:
    """``(state, metadata bytes, data bytes)`` of a version-3 file."""
    return split(Path(path).read_bytes())[:3]


def reseal(path, meta=None, data=None, state=None) -> None:
    """Rewrite ``path`` with new metadata (bytes, a JSON value, or a function of the
    parsed metadata), new data bytes and a new state, all checksums recomputed."""
    old_state, old_meta, old_data, npy, _ = split(Path(path).read_bytes())
    if callable(meta):
        meta = meta(json.loads(old_meta))
    if meta is None:
        meta = old_meta
    elif not isinstance(meta, bytes):
        meta = json.dumps(meta).encode()
    data = old_data if data is None else bytes(data)
    checksum = data_checksum(np.frombuffer(data, dtype=np.uint8))
    Path(path).write_bytes(assemble(npy, old_state if state is None else state, meta, data,
                                    checksum))


def rewrite(path, offset: int, data: bytes) -> None:
    """Overwrite the bytes of ``path`` at ``offset`` (from the file's start) with ``data``,
    checksums left as they were."""
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def mutate_data(path, offset: int, new: bytes) -> None:
    """Overwrite data bytes at ``offset`` (from the data region's start) and reseal."""
    _, _, data = parts(path)
    data = bytearray(data)
    data[offset:offset + len(new)] = new
    reseal(path, data=data)


def array_offset(path, name: str) -> int:
    """Where array ``name`` starts in the data region of ``path``."""
    _, meta, _ = parts(path)
    arrays = fmt.decode_metadata(meta)[1]
    return next(a.offset for a in arrays if a.name == name)
