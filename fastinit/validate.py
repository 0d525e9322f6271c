"""One way to check an argument: TypeError for the wrong kind, ValueError for a wrong value.

As NumPy and CPython do (``range(1.5)`` is a TypeError, ``range(1, 2, 0)`` a ValueError).
Every message names the argument as the caller wrote it, shows the value, and says how to
fix it. Standard library only, below every layer (beside `fastinit.units`): every layer
checks its callers' arguments with it.
"""

from __future__ import annotations

import operator
from typing import Any


def _shown(value: Any) -> str:
    """``repr(value)``, cut short: a pasted megabyte does not belong in a message."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(value: Any, name: str, *, minimum: int | None = None,
              maximum: int | None = None, fix: str = "") -> int:
    """``value`` as a Python int, or an error naming ``name``, the value and the fix.

    Anything with ``__index__`` is an integer (``int``, ``numpy.int64``, ``numpy.uint8``);
    ``bool`` is not (``True`` for a count is a mistake, never a count of one), nor are
    floats, even whole ones, nor strings.

    Parameters
    ----------
    value : object
        What the caller passed.
    name : str
        The argument as the caller knows it, e.g. ``"Job.max_threads"`` or ``"threads"``.
    minimum, maximum : int or None
        Inclusive bounds; None for no bound.
    fix : str
        How to fix a bad value, appended after ``"; "``.

    Returns
    -------
    int

    Raises
    ------
    TypeError
        ``value`` is not an integer.
    ValueError
        ``value`` is an integer outside ``[minimum, maximum]``.
    """
    suffix = f"; {fix}" if fix else ""
    # numpy.bool_ has no __index__ and fails below; Python's bool has one.
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}{suffix}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {_shown(value)} "
                        f"({type(value).__name__}){suffix}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {number}{suffix}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {_shown(number)}{suffix}")
    return number


def check_threads(value: Any, name: str = "threads", *,
                  fix: str = "use threads=None for every usable CPU") -> int | None:
    """A thread count (an integer >= 1, as `check_int` checks it) or None, which callers
    read as their default (every usable CPU, an arch profile's cap)."""
    return None if value is None else check_int(value, name, minimum=1, fix=fix)


def check_callable(value: Any, name: str, signature: str, *, optional: bool = False) -> None:
    """TypeError unless ``value`` is callable (or None, when ``optional``).

    Parameters
    ----------
    value : object
    name : str
        The argument as the caller knows it.
    signature : str
        How it will be called, e.g. ``"progress(done, total)"``.
    optional : bool
        Whether None is allowed.
    """
    if value is None and optional:
        return
    if not callable(value):
        allowed = " or None" if optional else ""
        raise TypeError(f"{name} must be callable as {signature}{allowed}, got {_shown(value)}")


def check_type(value: Any, kinds: type | tuple[type, ...], name: str, expected: str, *,
               optional: bool = False, fix: str = "") -> None:
    """TypeError unless ``value`` is one of ``kinds`` (or None, when ``optional``).

    Parameters
    ----------
    value : object
    kinds : type or tuple of type
        What ``isinstance`` accepts.
    name : str
        The argument as the caller knows it.
    expected : str
        What it must be, in words (``"a path"``, ``"a fastinit.Job"``).
    optional : bool
        Whether None is allowed.
    fix : str
        How to get a right one, if that is not obvious.
    """
    if (value is None and optional) or isinstance(value, kinds):
        return
    allowed = " or None" if optional else ""
    suffix = f"; {fix}" if fix else ""
    raise TypeError(f"{name} must be {expected}{allowed}, got {type(value).__name__}{suffix}")


def check_bool(value: Any, name: str) -> None:
    """TypeError unless ``value`` is True or False (a NumPy bool too): a flag given as
    ``"yes"`` or 1 is a mistake to name, not a truth value to guess."""
    kind = type(value)
    # numpy.bool_ by name: the engine imports no NumPy (its class is "bool" since NumPy 2).
    if kind is not bool and not (kind.__module__ == "numpy"
                                 and kind.__name__ in ("bool", "bool_")):
        raise TypeError(f"{name} must be True or False, got {_shown(value)}")


def check_event(value: Any, name: str) -> None:
    """TypeError unless ``value`` is None or looks like a `threading.Event` (is_set, set)."""
    if value is not None and not (callable(getattr(value, "is_set", None))
                                  and callable(getattr(value, "set", None))):
        raise TypeError(f"{name} must be a threading.Event or None, got {_shown(value)}")
