"""dtypes and shapes as a memmap file stores them: as JSON, and checked when read back.

A file is untrusted input: `dtype_from_json` builds only plain NumPy dtypes (type strings,
subarrays, structured records with explicit offsets), bounded in nesting, fields and size,
and `check_mappable` refuses what NumPy could not view as an array.
"""

from __future__ import annotations

import re

import numpy as np

MAX_ITEMSIZE = 1 << 20
MAX_NDIM = 32
MAX_FIELDS = 1024
_TYPESTR = re.compile(r"[<>|=]?[biufcmMSUV]\d{0,7}(\[[a-zA-Z0-9]{1,8}\])?")


def dtype_to_json(dtype: np.dtype):
    """A JSON value that `dtype_from_json` turns back into an equal dtype."""
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return {"base": dtype_to_json(base), "shape": list(shape)}
    if dtype.names is not None:
        return {"names": list(dtype.names),
                "formats": [dtype_to_json(dtype.fields[n][0]) for n in dtype.names],
                "offsets": [dtype.fields[n][1] for n in dtype.names],
                "itemsize": dtype.itemsize, "aligned": dtype.isalignedstruct}
    return dtype.str


def header_int(value, lo: int, hi: int, what: str) -> int:
    """``value``, read from a file's JSON header, if it is an int (no bool) in ``lo..hi``;
    else a ValueError naming ``what`` (with the value cut short: the file is untrusted)."""
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"{what} is {str(value)[:40]}, not an integer in {lo}..{hi}")
    return value


def dtype_from_json(value, depth: int = 0) -> np.dtype:
    """The dtype a file describes; ValueError for anything but a plain record dtype."""
    if depth > 8:
        raise ValueError("dtype nested more than 8 levels")
    if isinstance(value, str):
        if not _TYPESTR.fullmatch(value):
            raise ValueError(f"dtype {value[:40]!r} is not a plain NumPy type string")
        dtype = np.dtype(value)
    elif isinstance(value, dict) and set(value) == {"base", "shape"}:
        if not isinstance(value["shape"], list) or len(value["shape"]) > MAX_NDIM:
            raise ValueError("subarray shape is not a short list")
        shape = tuple(header_int(n, 0, MAX_ITEMSIZE, "subarray extent") for n in value["shape"])
        dtype = np.dtype((dtype_from_json(value["base"], depth + 1), shape))
    elif isinstance(value, dict) and set(value) == {"names", "formats", "offsets",
                                                     "itemsize", "aligned"}:
        names, formats, offsets = value["names"], value["formats"], value["offsets"]
        if not (isinstance(names, list) and isinstance(formats, list)
                and isinstance(offsets, list) and 0 < len(names) <= MAX_FIELDS
                and len(names) == len(formats) == len(offsets)
                and all(isinstance(n, str) and 0 < len(n) <= 256 for n in names)
                and isinstance(value["aligned"], bool)):
            raise ValueError("structured dtype with malformed names, formats or offsets")
        dtype = np.dtype({"names": names,
                          "formats": [dtype_from_json(f, depth + 1) for f in formats],
                          "offsets": [header_int(o, 0, MAX_ITEMSIZE, "field offset")
                                      for o in offsets],
                          "itemsize": header_int(value["itemsize"], 1, MAX_ITEMSIZE, "itemsize")},
                         align=value["aligned"])
    else:
        raise ValueError(f"dtype description {str(value)[:60]!r} is not one fastinit writes")
    check_dtype(dtype)
    return dtype


def numpy_dtype(dtype) -> np.dtype:
    """``np.dtype(dtype)``, or a TypeError that names what was given."""
    try:
        return np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"dtype {dtype!r} is not a NumPy dtype: {error}") from None


def check_dtype(dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise ValueError(f"dtype {dtype} holds Python objects, which a file cannot store")
    if not 0 < dtype.itemsize <= MAX_ITEMSIZE:
        raise ValueError(f"dtype {dtype} has itemsize {dtype.itemsize}; records must be "
                         f"1..{MAX_ITEMSIZE} bytes")


def check_mappable(name: str, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """ValueError, naming the dtype and shape, unless NumPy can view bytes as an array of
    ``shape`` and ``dtype`` as `MemmapFile.arrays` does (a subarray dtype's extents become
    trailing axes): a subarray of subarrays cannot be viewed, and extents whose product
    overflows NumPy's index type cannot be shaped even when one of them is 0."""
    base, extra = dtype.subdtype if dtype.subdtype else (dtype, ())
    try:
        one = np.zeros(dtype.itemsize, np.uint8).view(base)
        np.lib.stride_tricks.as_strided(one, shape + extra, (0,) * len(shape + extra))
    except (ValueError, TypeError) as error:
        raise ValueError(f"array {name!r} of dtype {dtype} and shape {shape} cannot be "
                         f"mapped by NumPy ({error}); use a plain dtype (subarray extents "
                         f"as axes of the shape) and a shape NumPy can make") from None
