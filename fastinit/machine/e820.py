"""The x86 e820 memory map as the kernel keeps it: typed byte ranges, sanitized and edited.

The firmware's table may overlap and come unsorted; the kernel's sanitizer
(``e820__update_table()``) resolves every overlap in favour of the higher type number and
merges neighbours of the same type. Later ``e820: update`` / ``e820: remove`` edits change
types or cut ranges out. Usable RAM (and RAM reserved for kernel data) becomes memblock
memory, trimmed to whole pages.
"""

from __future__ import annotations

import bisect
import re

from fastinit.layout import PAGE_SHIFT, PAGE_SIZE, pfn_up

E820_RAM = 1
E820_RESERVED = 2
E820_ACPI = 3
E820_NVS = 4
E820_UNUSABLE = 5
E820_PMEM = 7
E820_PRAM = 12
E820_RESERVED_KERN = 128
E820_SOFT_RESERVED = 0xEFFFFFFF

# Physical addresses are at most 52 bits on x86-64.
MAX_ADDRESS = 1 << 52

Entry = tuple[int, int, int]  # (start, end exclusive, type), byte addresses

# The kernel keeps an e820 type in a u32 (enum e820_type).
MAX_TYPE = (1 << 32) - 1


# The names e820_print_type() prints (RESERVED_KERN prints "usable"); 2.6 put them in
# parentheses. Linux 7.x prints "System RAM" and "device reserved" for the first two
# (arch/x86/kernel/e820.c, as Debian's 7.2 prints it): both spellings are read. Matched
# whole: "reserved usable" is no type, not RAM.
_TYPE_NAMES = {"usable": E820_RAM, "system ram": E820_RAM,
               "reserved": E820_RESERVED, "device reserved": E820_RESERVED,
               "acpi data": E820_ACPI, "acpi nvs": E820_NVS, "unusable": E820_UNUSABLE,
               "soft reserved": E820_SOFT_RESERVED}
# "type 20" for types without a name, "persistent (type 7)" / "(type 12)" for PMEM and PRAM,
# "persistent RAM (type 7)" since 7.x.
_NUMBERED = re.compile(r"(?:persistent(?:\s+RAM)?\s*\(\s*)?type\s+(\d+)\s*\)?",
                       re.IGNORECASE)


def parse_type(text: str) -> int:
    """The e820 type number for a type as the kernel prints it (any version).

    Raises
    ------
    ValueError
        For a name no kernel prints.
    """
    name = text.strip()
    if name.startswith("(") and name.endswith(")"):
        name = name[1:-1].strip()
    if (number := _NUMBERED.fullmatch(name)) is not None:
        digits = number.group(1)
        # Checked before int(): CPython refuses decimals over 4300 digits with its own message.
        if len(digits) > 10 or int(digits) > MAX_TYPE:
            raise ValueError(f"e820 type number {digits[:20]}{'...' * (len(digits) > 20)} "
                             f"is beyond {MAX_TYPE} (the kernel keeps types in 32 bits)")
        return int(digits)
    if name.lower() in _TYPE_NAMES:
        return _TYPE_NAMES[name.lower()]
    shown = text.strip()
    raise ValueError(f"unknown e820 type {shown[:40]!r}{'...' * (len(shown) > 40)}")


def is_memory(kind: int) -> bool:
    """True for types that memblock treats as memory (RAM and kernel-reserved RAM)."""
    return kind in (E820_RAM, E820_RESERVED_KERN)


def sanitize(entries: list[Entry]) -> list[Entry]:
    """Sort, resolve overlaps (the higher type number wins) and merge like neighbours.

    A sweep over the entries' boundaries, O(n log n) as the kernel's change-point sort.

    Parameters
    ----------
    entries : list of (int, int, int)
        ``(start, end, type)`` byte ranges, end exclusive, in any order.

    Returns
    -------
    list of (int, int, int)
        Disjoint, sorted, with no two touching entries of the same type.
    """
    events = sorted((p, is_start, kind) for start, end, kind in entries if start < end
                    for p, is_start in ((start, 1), (end, 0)))
    active: dict[int, int] = {}
    result: list[Entry] = []
    position, current = None, None
    for point, is_start, kind in events:
        if current is not None and point > position:
            if result and result[-1][1] == position and result[-1][2] == current:
                result[-1] = (result[-1][0], point, current)
            else:
                result.append((position, point, current))
        if is_start:
            active[kind] = active.get(kind, 0) + 1
        else:
            active[kind] -= 1
            if not active[kind]:
                del active[kind]
        position, current = point, (max(active) if active else None)
    return result


def _cut(entries: list[Entry], start: int, end: int, old: int | None,
         new: int | None) -> list[Entry]:
    """Parts of entries in [start, end) (of type ``old`` if given) retyped to ``new``, or
    removed if ``new`` is None; not sanitized (the kernel edits its raw table in place)."""
    result = []
    for s, e, kind in entries:
        if (old is not None and kind != old) or e <= start or s >= end:
            result.append((s, e, kind))
            continue
        if s < start:
            result.append((s, start, kind))
        if new is not None:
            result.append((max(s, start), min(e, end), new))
        if e > end:
            result.append((end, e, kind))
    return result


def update(entries: list[Entry], start: int, end: int, old: int, new: int) -> list[Entry]:
    """``e820__range_update()``: parts of ``old``-type entries in [start, end) become ``new``."""
    return sanitize(_cut(entries, start, end, old, new))


def remove(entries: list[Entry], start: int, end: int, old: int | None) -> list[Entry]:
    """``e820__range_remove()``: cut [start, end) out of entries (of type ``old`` if given)."""
    return sanitize(_cut(entries, start, end, old, None))


def apply_edits(table: list[Entry], edits) -> list[Entry]:
    """The command line's ``mem=`` and ``memmap=`` edits, in order, then sanitized.

    As ``parse_early_param()`` runs them: on the raw table, each edit seeing the entries the
    previous ones left (an added range overlapping RAM is resolved only by the final
    sanitize, where the higher type wins). Addresses are clipped to 52 bits.

    Parameters
    ----------
    table : list of (int, int, int)
    edits : iterable of fastinit.machine.cmdline.E820Edit
    """
    entries = list(table)
    for change in edits:
        start = min(change.start, MAX_ADDRESS)
        end = min(change.start + change.size, MAX_ADDRESS)
        if change.kind == "exactmap":
            entries = []
        elif change.kind == "limit":
            entries = _cut(entries, start, MAX_ADDRESS, E820_RAM, None)
        elif change.kind == "add":
            if start < end:
                entries.append((start, end, change.type))
        elif change.kind == "update":
            entries = _cut(entries, start, end, change.from_type, change.type)
        elif change.kind == "remove":
            entries = _cut(entries, start, end, change.from_type, None)
        else:
            raise ValueError(f"unknown e820 edit {change.kind!r} ({change.option})")
    return sanitize(entries)


# The BIOS owns page 0 and 640 KiB..1 MiB is the legacy VGA/ROM hole (trim_bios_range()).
BIOS_BEGIN, BIOS_END = 0xA0000, 0x100000


def trim_bios(table: list[Entry], page0: bool = True) -> list[Entry]:
    """``trim_bios_range()``: page 0 becomes reserved (unless ``page0`` is False: kernel
    rule page0_e820_ram) and RAM in 640K..1M is removed.

    Every x86 kernel does this before memblock takes the map; a boot log shows it only in
    KERN_DEBUG lines (``e820: update [mem 0x00000000-0x00000fff] usable ==> reserved``), so
    it must be applied whether or not they are in the log (applying it twice changes
    nothing).
    """
    entries = _cut(table, 0, PAGE_SIZE, E820_RAM, E820_RESERVED) if page0 else table
    return sanitize(_cut(entries, BIOS_BEGIN, BIOS_END, E820_RAM, None))


def edit(table: list[Entry], start: int, end: int, old: int | None,
         new: int | None) -> list[Entry]:
    """One `update` (``new`` given) or `remove` (``new`` None) applied to a sanitized table.

    Only the entries that overlap or touch ``[start, end)`` can change, so only they are
    edited and re-sanitized; entries further away cannot merge with the result because the
    table was sanitized. A log's thousands of edits then cost a list copy each, not a full
    re-sanitize each (which made 3200 entries and 3200 edits take 16 s).

    Parameters
    ----------
    table : list of (int, int, int)
        A table as `sanitize` returns it.
    start, end : int
        The edited byte range, end exclusive.
    old, new : int or None
        As for `update` and `remove`.

    Returns
    -------
    list of (int, int, int)
        The same as ``update(table, ...)`` or ``remove(table, ...)``: sanitized.
    """
    lo = bisect.bisect_left(table, start, key=lambda entry: entry[1])
    hi = bisect.bisect_right(table, end, key=lambda entry: entry[0])
    window = table[lo:hi]
    result = table.copy()  # one copy; the caller may keep the old table (memblock's)
    result[lo:hi] = remove(window, start, end, old) if new is None else \
        update(window, start, end, old, new)
    return result


def memory_pfn_ranges(entries: list[Entry]) -> list[tuple[int, int]]:
    """memblock memory as pfn ranges: RAM entries merged, then trimmed to whole pages."""
    merged: list[list[int]] = []
    for start, end, kind in sorted(entries):
        if not is_memory(kind):
            continue
        if merged and merged[-1][1] >= start:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    ranges = []
    for start, end in merged:
        # The kernel rounds the start up and the end down to whole pages.
        first, last = pfn_up(start), end >> PAGE_SHIFT
        if first < last:
            ranges.append((first, last))
    return ranges
