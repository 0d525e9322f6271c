"""What `fill` may write: a dtype's scalars and a record function whose values fit them.

A dtype is flattened into *leaves*, one per scalar it holds: fields in order (NumPy's order
of a record tuple), nested structures and sub-arrays included, each with its byte offset.
``record(i)`` must return a value of the same shape: a scalar for a plain dtype; for a
structured one a tuple with one entry per field, a nested tuple for a nested structure,
and nested tuples of the sub-array's shape for a sub-array field (``(2, 3)`` is a tuple of
2 tuples of 3). Each value is converted to its field's type as a C cast does (NumPy's
``astype``: integers wrap, floats round to nearest), and only conversions that keep the
kind of number or widen it are accepted: booleans into any field, integers (signed or not)
into integer, float and complex fields, floats into float and complex fields, complex into
complex. A float into an integer field, or a number into a bool field, is refused: it
almost always means a forgotten conversion.
"""

from __future__ import annotations

import itertools

import numpy as np
from numba import types
from numba.core.dispatcher import Dispatcher
from numba.core.registry import cpu_target
from numba.np.numpy_support import as_dtype

from fastinit.kernels.fill import Leaf

# Scalar kinds the fill kernels write (`fastinit.kernels.fill._CASTS`).
SUPPORTED = {"b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "c8", "c16"}
# Larger records need more code than is worth generating: fill them with your own kernel.
MAX_ITEMSIZE = 4096
MAX_LEAVES = 512

# A value converts into a field of its own rank or higher (integers wrap as in C).
_RANK = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}
_FIX_DTYPE = ("fill writes booleans, integers, float32/64 and complex64/128 in native byte "
              "order, in fields, nested structures and sub-arrays")


def leaves_of(dtype: np.dtype) -> list[Leaf]:
    """Every scalar of ``dtype`` as a `Leaf`, in record-tuple order.

    Raises
    ------
    TypeError
        A field of a kind fill cannot write (object, string, datetime, float16, another
        byte order), overlapping fields, or a record too large (``MAX_ITEMSIZE`` bytes,
        ``MAX_LEAVES`` scalars).
    """
    dtype = np.dtype(dtype)
    if dtype.itemsize > MAX_ITEMSIZE:
        raise TypeError(f"fill writes records of at most {MAX_ITEMSIZE} bytes, got {dtype} "
                        f"of {dtype.itemsize}; split the record or fill it with your own "
                        f"kernel and fastinit.do_multithreaded")
    leaves: list[Leaf] = []
    _collect(dtype, (), 0, leaves, "the dtype")
    if len(leaves) > MAX_LEAVES:
        raise TypeError(f"fill writes records of at most {MAX_LEAVES} scalars, {dtype} has "
                        f"{len(leaves)}; group them or fill with your own kernel")
    spans = sorted((leaf.offset, leaf.offset + int(leaf.code[1:])) for leaf in leaves)
    for (_, end), (start, _) in itertools.pairwise(spans):
        if start < end:
            raise TypeError(f"{dtype} has overlapping fields (at byte {start}); fill needs "
                            f"each byte to belong to one field")
    return leaves


def _collect(dtype, path, offset, leaves, where):
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        for index in np.ndindex(*shape):
            flat = int(np.ravel_multi_index(index, shape)) if shape else 0
            _collect(base, path + index, offset + flat * base.itemsize, leaves, where)
        return
    if dtype.names is not None:
        for position, name in enumerate(dtype.names):
            field, field_offset = dtype.fields[name][:2]
            _collect(field, path + (position,), offset + field_offset, leaves,
                     f"field {name!r}")
        return
    code = f"{dtype.kind}{dtype.itemsize}"
    if code not in SUPPORTED or not dtype.isnative:
        raise TypeError(f"fill cannot write {where}, of type {dtype.str!r}; {_FIX_DTYPE}")
    leaves.append(Leaf(path, offset, code))


def return_type(record) -> types.Type:
    """The Numba type ``record(i)`` returns for an int64 ``i`` (compiling it if needed).

    Raises
    ------
    TypeError
        ``record`` is not a Numba-compiled function, is ``parallel=True``, or cannot be
        called with one int64.
    """
    if not isinstance(record, Dispatcher):
        raise TypeError(f"record must be a Numba-compiled function such as "
                        f"@numba.njit def record(i): ..., got {record!r}; decorate it "
                        f"with numba.njit")
    if record.targetoptions.get("parallel"):
        # Helper threads would each enter Numba's parallel runtime at once, which the
        # workqueue threading layer aborts on; fastinit supplies the threads.
        raise TypeError(f"record {record.py_func.__name__} is compiled with parallel=True; "
                        f"drop it: fill runs record on its own threads")
    context = cpu_target.typing_context
    context.refresh()
    try:
        signature = context.resolve_function_type(types.Dispatcher(record), (types.int64,),
                                                  {})
    except Exception as error:  # Numba's TypingError and friends, with its explanation
        raise TypeError(f"record {record.py_func.__name__}(i) does not compile for an "
                        f"int64 index i: {str(error).strip().splitlines()[0]}") from None
    if signature is None or signature.args != (types.int64,):
        found = signature.args if signature is not None else "none"
        raise TypeError(f"record {record.py_func.__name__} must take one int64 index, its "
                        f"signatures take {found}; remove its explicit signature or declare "
                        f"(int64,)")
    return signature.return_type


def check_record_type(returned: types.Type, dtype: np.dtype, name: str) -> None:
    """Check that values of Numba type ``returned`` fit every leaf of ``dtype``.

    Raises
    ------
    TypeError
        Naming the first field whose value has the wrong shape or kind.
    """
    _check(returned, np.dtype(dtype), f"record {name}(i)", name)


def _check(value, dtype, where, name):
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        _check_tuple(value, shape[0], where, f"a sub-array of shape {shape}")
        inner = np.dtype((base, shape[1:])) if len(shape) > 1 else base
        for k in range(shape[0]):
            _check(value[k], inner, f"{where}[{k}]", name)
        return
    if dtype.names is not None:
        _check_tuple(value, len(dtype.names), where,
                     f"a structure of {len(dtype.names)} fields {dtype.names}")
        for position, field_name in enumerate(dtype.names):
            _check(value[position], dtype.fields[field_name][0],
                   f"{where}[{position}] (field {field_name!r})", name)
        return
    if not isinstance(value, (types.Boolean, types.Integer, types.Float, types.Complex)):
        raise TypeError(f"{where} is {value}, but the dtype holds a {dtype} there; return "
                        f"a number")
    found = as_dtype(value)
    if _RANK[found.kind] > _RANK[dtype.kind]:
        raise TypeError(f"{where} is {found}, which fill does not convert into a {dtype} "
                        f"field (it would lose the kind of number); convert it in {name} "
                        f"(e.g. np.{dtype.name}(value))")


def _check_tuple(value, length, where, holds):
    if not isinstance(value, types.BaseTuple) or len(value) != length:
        raise TypeError(f"{where} is {value}, but the dtype holds {holds} there; return "
                        f"a tuple of {length} values")
