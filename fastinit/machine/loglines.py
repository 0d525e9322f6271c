"""Reading a kernel log's lines safely: numbering them as editors do, the ``[mem a-b]``
range, and numbers bounded before use, each failure a ValueError naming the line."""

from __future__ import annotations

import re

from fastinit.machine import e820

# "[mem a-b]" (end inclusive): the kernel's 16 hex digits, after any more leading zeros; a
# 17th significant digit is refused (no address has over 64 bits; figures.py prints them).
_HEX = r"(?:0x)?0*([0-9a-fA-F]{1,16})"
MEM_RANGE = rf"\[mem {_HEX}-{_HEX}\]"


def log_lines(text: str) -> list[str]:
    """The lines of a log, numbered as editors and ``grep -n`` number them.

    Lines end at LF, CRLF or a lone CR. ``str.splitlines()`` also splits at form feeds,
    U+2028 and other separators, which would shift the line numbers errors name.
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.split("\n")


def line_error(source: str, number: int, line: str, problem: str, fix: str) -> ValueError:
    """The error for line ``number`` of ``source``: the problem, the line, the fix."""
    return ValueError(f"{source}:{number}: {problem}: {line.strip()[:160]!r}; {fix}")


def bounded_decimal(text: str, limit: int, what: str, source: str, number: int,
                    line: str) -> int:
    """A decimal number of the line, refused past ``limit``."""
    # Bounded before int(): CPython refuses over 4300 digits with a message naming no line.
    if len(text) > 20 or int(text) > limit:
        raise line_error(source, number, line,
                         f"{what} {text[:20]}{'...' * (len(text) > 20)} is beyond {limit}",
                         "fix the number or delete the line")
    return int(text)


def mem_range(match: re.Match, first: int, source: str, number: int, line: str,
               inclusive: bool = True, clip: bool = False) -> tuple[int, int]:
    """``[start, end)`` from hex groups ``first`` and ``first + 1``; ``clip`` cuts an edit
    reaching past physical memory at 52 bits."""
    start, last = int(match.group(first), 16), int(match.group(first + 1), 16)
    end = last + 1 if inclusive else last
    if end <= start:
        raise line_error(source, number, line, "range ends before it starts",
                         "fix or delete the line")
    if clip and start < e820.MAX_ADDRESS:
        # An edit reaching past physical memory ("mem=" removes up to 0xfffffffffffffffe)
        # changes nothing there: only its part below 52 bits matters.
        end = min(end, e820.MAX_ADDRESS)
    if end > e820.MAX_ADDRESS:
        raise line_error(source, number, line, "address beyond 52-bit physical memory",
                         "fix or delete the line")
    return start, end


def e820_type(text: str, source: str, number: int, line: str) -> int:
    """The e820 type the kernel printed as ``text``."""
    try:
        return e820.parse_type(text)
    except ValueError as error:
        raise line_error(source, number, line, str(error),
                         "use a type the kernel prints (usable or System RAM, reserved or "
                         "device reserved, ACPI data, ACPI NVS, unusable, soft reserved, "
                         "persistent (type N), type N)") from None


def check_count(count: int, limit: int, what: str, source: str, number: int, line: str):
    """Refuse a log with more ``what`` than any kernel keeps."""
    if count > limit:
        raise line_error(source, number, line, f"more than {limit} {what}",
                         f"no kernel keeps more ({what} are capped at {limit}); "
                         f"this is not one boot's log")
