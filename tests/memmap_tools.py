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


def parts(path) -> tuple[int, bytes, bytes]:
    """``(state, metadata bytes, data bytes)`` of a version-2 file."""
    raw = Path(path).read_bytes()
    state, meta_len = struct.unpack_from("<IQ", raw, 20)
    return state, raw[fmt.HEADER_BYTES:fmt.HEADER_BYTES + meta_len], \
        raw[fmt.data_offset(meta_len):]


def reseal(path, meta=None, data=None, state=None) -> None:
    """Rewrite ``path`` with new metadata (bytes, a JSON value, or a function of the
    parsed metadata), new data bytes and a new state, all checksums recomputed."""
    old_state, old_meta, old_data = parts(path)
    if callable(meta):
        meta = meta(json.loads(old_meta))
    if meta is None:
        meta = old_meta
    elif not isinstance(meta, bytes):
        meta = json.dumps(meta).encode()
    data = old_data if data is None else bytes(data)
    checksum = data_checksum(np.frombuffer(data, dtype=np.uint8))
    header = fmt.pack_header(old_state if state is None else state, meta, checksum)
    padding = bytes(fmt.data_offset(len(meta)) - fmt.HEADER_BYTES - len(meta))
    Path(path).write_bytes(header + meta + padding + data)


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
