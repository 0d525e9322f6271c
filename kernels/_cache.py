"""Where fastinit's kernels keep their machine code, and when it is stale.

Numba's own cache is keyed on the kernel's source file alone, so an edit to anything the
kernel compiles in from elsewhere (the descriptor layout, a helper in ``descriptors.py``, an
intrinsic) would leave stale machine code in it. Our kernels get their own Numba cache
(`kernel_cache`) whose key covers every file a kernel may depend on: all of ``kernels/``
and ``fastinit/layout.py``, plus the Numba and NumPy versions and NUMBA_BOUNDSCHECK (which
changes the code but not Numba's key). An edit to any of them recompiles every kernel once.

The folder is named by that key (``fastinit/kernels-<key>``), not by where the package
sits: a build step (``python -m fastinit.kernels._precompile``, run by the install) fills
the folder the installed package then reads, wherever pip puts it, and two checkouts
of the same code share one cache while different code never shares a folder.

Fill kernels generated for a user's record function (`generated_cache`) are cached the
same way, in ``fastinit/fill-<key>``, each under a key of everything it is compiled from.

Only our kernels use these caches: nothing here touches ``numba.config``, so another
library's ``@njit(cache=True)`` functions cache where Numba would put them anyway.

The root: NUMBA_CACHE_DIR if the user set one, else ``$XDG_CACHE_HOME`` (``~/.cache``),
else the temporary directory.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numba
import numpy as np
from numba.core import caching

_KERNELS = Path(__file__).resolve().parent
# Hex digits of the key in a folder's name: enough that two codes never meet.
_NAME_DIGITS = 16


def dependency_files() -> list[Path]:
    """Every file a kernel may compile code from: ``kernels/*.py`` and the layout."""
    import fastinit.layout
    return sorted(_KERNELS.glob("*.py")) + [Path(fastinit.layout.__file__).resolve()]


def dependency_digest(files: list[Path]) -> str:
    """SHA-256 over ``files``' names and contents, the Numba and NumPy versions and
    NUMBA_BOUNDSCHECK."""
    digest = hashlib.sha256(f"{numba.__version__} {np.__version__}".encode())
    digest.update(os.environ.get("NUMBA_BOUNDSCHECK", "").encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def stamp() -> str:
    """The key of this tree's kernels (`dependency_digest` of `dependency_files`)."""
    return dependency_digest(dependency_files())


def cache_roots(kind: str = "kernels") -> list[Path]:
    """Candidate folders for the cache of ``kind`` (``kernels`` or ``fill``), best first."""
    roots = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    roots.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"))
    roots.append(Path(tempfile.gettempdir()) / f"fastinit-{os.getuid()}")
    folder = f"{kind}-{stamp()[:_NAME_DIGITS]}"
    return [root / "fastinit" / folder for root in roots]


# Exactly the folders this module names: nothing else under a cache root is ever removed.
_FOLDER = re.compile(rf"(kernels|fill)-[0-9a-f]{{{_NAME_DIGITS}}}")


def prune(keep: int = 3, days: float = 30, parents: list[Path] | None = None) -> list[Path]:
    """Remove the cache folders of other kernel keys (older installs and checkouts) that
    are neither among the ``keep`` most recently written of their kind nor written in the
    last ``days``; returns what was removed.

    Run by the install (`fastinit.kernels._precompile`): each code change makes a new
    key, and without this every old folder stayed forever. The current key's folders are
    never removed, and checkouts used side by side keep theirs (at worst one of them
    compiles once more). ``parents``: the folders holding the caches (every root's
    ``fastinit/`` by default).
    """
    current = {f"{kind}-{stamp()[:_NAME_DIGITS]}" for kind in ("kernels", "fill")}
    oldest = time.time_ns() - int(days * 86400e9)
    removed = []
    for parent in parents or {path.parent for path in cache_roots()}:
        try:
            folders = [entry for entry in os.scandir(parent) if entry.is_dir(
                follow_symlinks=False) and _FOLDER.fullmatch(entry.name)
                and entry.name not in current]
        except OSError:
            continue
        for kind in ("kernels", "fill"):
            mine = sorted((f for f in folders if f.name.startswith(kind + "-")),
                          key=lambda f: f.stat(follow_symlinks=False).st_mtime_ns,
                          reverse=True)
            for entry in mine[keep:]:
                if entry.stat(follow_symlinks=False).st_mtime_ns > oldest:
                    continue
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    return removed


class _Locator(caching._CacheLocator):
    """Numba cache locator of our kernels: our folder, our staleness stamp."""

    kind = "kernels"

    def __init__(self, py_func, path: Path):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = path
        # Numba names this file in its warning about a kernel it cannot cache.
        self._py_file = py_func.__code__.co_filename
        # A generated kernel carries its own key (`generated_cache`).
        self._key = getattr(py_func, "_fastinit_key", None)

    def get_cache_path(self) -> str:
        return str(self._path)

    def get_source_stamp(self) -> str:
        # Numba throws a function's cached code away when its stored stamp differs.
        return self._key or stamp()

    def get_disambiguator(self) -> str:
        return self._key[:2 * _NAME_DIGITS] if self._key else str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        kind = "fill" if getattr(py_func, "_fastinit_key", None) else "kernels"
        for path in cache_roots(kind):
            locator = cls(py_func, path)
            try:
                locator.ensure_cache_path()
            except OSError:
                continue
            return locator
        return None


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_Locator]


class _KernelCache(caching.FunctionCache):
    _impl_class = _KernelCacheImpl


def kernel_cache(py_func):
    """The cache of one kernel, or None where no folder is writable (compile every time)."""
    try:
        return _KernelCache(py_func)
    except RuntimeError:  # Numba found no usable locator
        return None


def generated_cache(py_func, key: str):
    """The cache of a kernel generated at run time, whose machine code is a function of
    ``key`` alone (a hex digest: the caller hashes the generated source and everything it
    calls), or None where no folder is writable."""
    py_func._fastinit_key = key
    return kernel_cache(py_func)
