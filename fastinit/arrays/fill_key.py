"""The key under which a fill kernel's machine code is cached across processes.

A fill kernel compiles the user's ``record`` function into its own code, with every global
and closure value ``record`` reads frozen in as a constant (as Numba does). So its cached
code is valid exactly while the generated source, ``record``'s code and options, and those
values are the same: `record_digest` hashes all of them, following the compiled functions
``record`` calls. A record that reads anything we cannot hash by value (an object, a
module of the user's whose attributes it reads) gets no key, and is compiled in every
process as before rather than risk stale code.
"""

from __future__ import annotations

import builtins
import hashlib
import os
import pickle
import types as pytypes

import numpy as np
from numba.core.dispatcher import Dispatcher

from fastinit.kernels._cache import cache_roots, stamp

# Modules whose attributes a record may read and still be cached: their code is covered
# by the versions in the kernels' key (``stamp``), and the standard library's by Python's.
_KNOWN_MODULES = ("numpy", "numba", "math", "cmath", "operator")
_SCALARS = (bool, int, float, complex, str, bytes, type(None))


def fill_key(record_key: str, sources: list[str], returned) -> str:
    """Key of the fill kernels compiled from ``sources`` for a record of digest
    ``record_key`` returning ``returned`` (a Numba type)."""
    digest = hashlib.sha256(stamp().encode())
    for part in (record_key, str(returned), *sources):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def record_digest(record: Dispatcher) -> str | None:
    """SHA-256 of everything ``record``'s machine code depends on, or None if some of it
    cannot be hashed by value."""
    digest = hashlib.sha256()
    return digest.hexdigest() if _feed_function(digest, record, set()) else None


def _feed_function(digest, dispatcher: Dispatcher, seen: set) -> bool:
    if id(dispatcher) in seen:
        return True
    seen.add(id(dispatcher))
    function = dispatcher.py_func
    _feed_code(digest, function.__code__)
    digest.update(repr(sorted(dispatcher.targetoptions.items())).encode())
    # A function declared with explicit signatures compiles only those: two functions of
    # the same code, one declared (int32,), are not the same record (the declared one is
    # refused). Compiled on demand, its signatures so far vary by process: not hashed.
    if not dispatcher._can_compile:
        digest.update(repr(sorted(map(str, dispatcher.signatures))).encode())
    # Sorted: a set's order changes from process to process (string hashing is seeded).
    values = [(name, function.__globals__[name]) for name in sorted(_names(function.__code__))
              if name in function.__globals__]
    values += [(str(k), cell.cell_contents)
               for k, cell in enumerate(function.__closure__ or ())]
    for name, value in values:
        digest.update(name.encode() + b"\0")
        if not _feed_value(digest, value, seen):
            return False
    return True


def _feed_code(digest, code: pytypes.CodeType) -> None:
    """Hash what a code object computes. Not marshal.dumps: its bytes depend on reference
    counts (which objects it writes as back-references), so they differ between
    processes for the same code."""
    for part in (code.co_code, code.co_names, code.co_varnames, code.co_freevars,
                 code.co_cellvars, code.co_argcount, code.co_kwonlyargcount, code.co_flags):
        digest.update(repr(part).encode() + b"\0")
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            _feed_code(digest, const)
        elif isinstance(const, frozenset):  # `x in {...}`: its order is seeded too
            digest.update(f"frozenset:{sorted(map(repr, const))}\0".encode())
        else:
            digest.update(f"{type(const).__name__}:{const!r}\0".encode())


def _names(code: pytypes.CodeType) -> set[str]:
    """Every global name ``code`` and the code nested in it may read."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            names |= _names(const)
    return names


def _feed_value(digest, value, seen: set) -> bool:
    """Hash ``value`` as a compiled function reads it; False if it cannot be."""
    if isinstance(value, Dispatcher):
        return _feed_function(digest, value, seen)
    if isinstance(value, pytypes.ModuleType):
        digest.update(value.__name__.encode())
        return value.__name__.split(".")[0] in _KNOWN_MODULES
    if isinstance(value, _SCALARS):
        digest.update(f"{type(value).__name__}:{value!r}".encode())
        return True
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        digest.update(f"{array.dtype.str}{array.dtype.descr}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
        return True
    if isinstance(value, tuple):
        return all(_feed_value(digest, item, seen) for item in value)
    # NumPy's and Python's functions, ufuncs and types, named by where they live.
    module = getattr(value, "__module__", None) or ""
    if module.split(".")[0] in _KNOWN_MODULES or value is getattr(builtins, getattr(
            value, "__name__", ""), None) or isinstance(value, (np.ufunc, np.dtype)):
        digest.update(f"{module}.{getattr(value, '__qualname__', repr(value))}".encode())
        return True
    return False


def _type_file(digest: str):
    for folder in cache_roots("fill"):
        if folder.is_dir() or _made(folder):
            return folder / f"record-{digest[:32]}.type"
    return None


def _made(folder) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return True
    except OSError:
        return False


def remembered_return_type(digest: str):
    """The Numba type a record of ``digest`` returns, as an earlier process found it, or
    None: knowing it, a process whose fill kernels are cached never compiles ``record``."""
    path = _type_file(digest)
    try:
        return pickle.loads(path.read_bytes()) if path is not None else None
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def remember_return_type(digest: str, returned) -> None:
    """Store ``returned`` for `remembered_return_type` (written aside, then renamed)."""
    path = _type_file(digest)
    if path is None:
        return
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        aside.write_bytes(pickle.dumps(returned))
        os.replace(aside, path)
    except OSError:
        aside.unlink(missing_ok=True)
