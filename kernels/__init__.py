"""Numba kernels of fastinit (installed as ``fastinit.kernels``).

Kernels are private and trust their input: the Python layer in ``fastinit`` validates
every range and array before a kernel sees it. All of them use the one decorator in
``_jit.py``.

Their compiled code is cached in fastinit's own folder, keyed on every file they depend
on (``_cache.py``); importing them changes no process-wide Numba setting.
"""

from pathlib import Path

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

