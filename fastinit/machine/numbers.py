"""Numbers as the kernel reads them from its command line: ``simple_strtoull()`` and
``memparse()`` (``64M``, ``0x1000``, ``2G``, ``1T``; a leading 0 means octal)."""

from __future__ import annotations

U64_MAX = (1 << 64) - 1
# K, M, G, T, P, E: each a further factor of 1024 (memparse() falls through its cases).
_SHIFTS = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_DIGITS = "0123456789abcdef"


def strtoull(text: str, base: int = 0) -> tuple[int, str]:
    """The number at the start of ``text`` and the text after it.

    Base 0 reads ``0x`` as hexadecimal and a leading ``0`` as octal, like the kernel's
    ``simple_strtoull()``. No digits give ``(0, text)``.

    Raises
    ------
    ValueError
        If the number does not fit 64 bits (the kernel would silently wrap it).
    """
    index = 0
    if base in (0, 16) and text[:2].lower() == "0x" and text[2:3].lower() in _DIGITS \
            and text[2:3] != "":
        base, index = 16, 2
    elif base == 0:
        base = 8 if text.startswith("0") else 10
    value, start = 0, index
    while index < len(text):
        digit = _DIGITS.find(text[index].lower())
        if digit < 0 or digit >= base:
            break
        value = value * base + digit
        if value > U64_MAX:
            raise ValueError(f"number {text[:40]!r} does not fit 64 bits")
        index += 1
    if index == start == 0:
        return 0, text
    return value, text[index:]


def memparse(text: str) -> tuple[int, str]:
    """A size with an optional K/M/G/T/P/E suffix (binary), and the text after it.

    Raises
    ------
    ValueError
        If the size does not fit 64 bits.
    """
    value, rest = strtoull(text)
    # Like the kernel, a suffix counts even after no digits ("M" reads as 0 bytes, consumed).
    if rest and rest[0].lower() in _SHIFTS:
        value <<= _SHIFTS[rest[0].lower()]
        rest = rest[1:]
        if value > U64_MAX:
            raise ValueError(f"size {text[:40]!r} does not fit 64 bits")
    return value, rest
