"""Numba kernels of fastinit (installed as ``fastinit.kernels``).

Kernels are private and trust their input: the Python layer in ``fastinit`` validates
every range and array before a kernel sees it. All of them use the one decorator in
``_jit.py``.

Numba keys its on-disk cache on each kernel's own source file only, so an edit to a module
a kernel imports (the page layout, a helper kernel, an intrinsic) would leave stale machine
code in the cache. Unless the user chose a cache directory (NUMBA_CACHE_DIR), kernels cache
in a directory named after a digest of every file they depend on, so any such edit starts
a fresh cache.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import numba

import fastinit


def _check_same_tree() -> None:
    """Refuse to run kernels of one tree under the ``fastinit`` package of another.

    Installed, the kernels sit in ``fastinit/kernels``; in a source tree, in ``kernels/``
    beside the ``fastinit`` folder. Anything else means two checkouts got mixed (say, a
    second clone installed in editable mode): its kernels would not match this package's
    descriptor layout.
    """
    here = Path(__file__).resolve().parent
    package = Path(fastinit.__file__).resolve().parent
    if here not in (package / "kernels", package.parent / "kernels"):
        raise ImportError(f"fastinit.kernels was imported from {here}, but fastinit from "
                          f"{package}: two different trees. Reinstall from one of them "
                          f"(python -m pip install -e .) or run from one checkout only")


_check_same_tree()


def _dependency_digest() -> str:
    import fastinit.layout
    files = sorted(Path(__file__).resolve().parent.glob("*.py"))
    files.append(Path(fastinit.layout.__file__))
    # Bounds checking changes the machine code but not the cache key: keep them apart.
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(os.environ.get("NUMBA_BOUNDSCHECK", "").encode())
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _choose_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    for root in (base, Path(tempfile.gettempdir())):
        candidate = root / "fastinit" / f"numba-{_dependency_digest()}"
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            numba.config.CACHE_DIR = str(candidate)
            return


_choose_cache_dir()
