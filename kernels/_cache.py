"""Where fastinit's kernels keep their machine code, and when it is stale.

Numba's own cache is keyed on the kernel's source file alone, so an edit to anything the
kernel compiles in from elsewhere (the descriptor layout, a helper in ``_layout.py``, an
intrinsic) would leave stale machine code in it. Our kernels get their own Numba cache
(`kernel_cache`) whose key covers every file a kernel may depend on: all of ``kernels/``
and ``fastinit/layout.py``, plus the Numba version and NUMBA_BOUNDSCHECK (which changes the
code but not Numba's key). An edit to any of them recompiles every kernel once.

Only our kernels use it: nothing here touches ``numba.config``, so another library's
``@njit(cache=True)`` functions cache where Numba would put them anyway.

The folder: ``fastinit/kernels-<tree>`` below NUMBA_CACHE_DIR if the user set one, else
below ``$XDG_CACHE_HOME`` (``~/.cache``), else below the temporary directory; ``<tree>``
tells two checkouts apart, so they do not overwrite each other's cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from pathlib import Path

import numba
from numba.core import caching

_KERNELS = Path(__file__).resolve().parent


def dependency_files() -> list[Path]:
    """Every file a kernel may compile code from: ``kernels/*.py`` and the layout."""
    import fastinit.layout
    return sorted(_KERNELS.glob("*.py")) + [Path(fastinit.layout.__file__).resolve()]


def dependency_digest(files: list[Path]) -> str:
    """SHA-256 over ``files``' names and contents, the Numba version and NUMBA_BOUNDSCHECK."""
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(os.environ.get("NUMBA_BOUNDSCHECK", "").encode())
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _stamp() -> str:
    return dependency_digest(dependency_files())


def cache_roots() -> list[Path]:
    """Candidate folders for the cache, best first."""
    tree = "kernels-" + hashlib.sha1(str(_KERNELS).encode()).hexdigest()[:12]
    roots = []
    if os.environ.get("NUMBA_CACHE_DIR"):
        roots.append(Path(os.environ["NUMBA_CACHE_DIR"]))
    roots.append(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"))
    roots.append(Path(tempfile.gettempdir()) / f"fastinit-{os.getuid()}")
    return [root / "fastinit" / tree for root in roots]


class _KernelLocator(caching._CacheLocator):
    """Numba cache locator of our kernels: our folder, our staleness stamp."""

    def __init__(self, py_func, path: Path):
        self._lineno = py_func.__code__.co_firstlineno
        self._path = path
        # Numba names this file in its warning about a kernel it cannot cache.
        self._py_file = py_func.__code__.co_filename

    def get_cache_path(self) -> str:
        return str(self._path)

    def get_source_stamp(self) -> str:
        # Numba throws a function's cached code away when its stored stamp differs.
        return _stamp()

    def get_disambiguator(self) -> str:
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        for path in cache_roots():
            locator = cls(py_func, path)
            try:
                locator.ensure_cache_path()
            except OSError:
                continue
            return locator
        return None


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_KernelLocator]


class _KernelCache(caching.FunctionCache):
    _impl_class = _KernelCacheImpl


def kernel_cache(py_func):
    """The cache of one kernel, or None where no folder is writable (compile every time)."""
    try:
        return _KernelCache(py_func)
    except RuntimeError:  # Numba found no usable locator
        return None
