"""Record functions for fill tests, generated from a dtype: one simple expression of the
index per scalar, each different, so a value written to the wrong place shows up."""

import numba
import numpy as np


def _expression(kind: str, j: int) -> str:
    if kind == "b":
        return f"(i + {j}) % 3 == 0"
    if kind in "iu":
        # int64 arithmetic; narrower fields wrap, negative values occur for small i.
        return f"i * {2 * j + 3} + {7 * j - 20}"
    if kind == "f":
        return f"i * 0.25 + {j} - 3.5"
    return f"complex(i * 0.5, {j} - i)"


def _value(dtype: np.dtype, counter: list[int]) -> str:
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        inner = np.dtype((base, shape[1:])) if len(shape) > 1 else base
        return "(" + "".join(_value(inner, counter) + ", " for _ in range(shape[0])) + ")"
    if dtype.names is not None:
        return "(" + "".join(_value(dtype.fields[name][0], counter) + ", "
                             for name in dtype.names) + ")"
    counter[0] += 1
    return _expression(dtype.kind, counter[0])


def make_record(dtype):
    """A ``numba.njit`` function ``record(i)`` returning a value of ``dtype``'s shape."""
    source = f"def record(i):\n    return {_value(np.dtype(dtype), [0])}\n"
    namespace = {}
    exec(source, namespace)
    return numba.njit(namespace["record"])
