"""The e820 lines of a boot log, read in order: printed tables, then the edits that follow.

A table line (``BIOS-e820: [mem a-b] type``, also ``user:``, ``modified:``, ...) starts a new
table when its label changes; an ``e820: update`` / ``e820: remove`` line edits the table
as the kernel had it then (sanitized first, as the kernel's tables are before any edit).
Linux 7.x also prints the holes between entries (``BIOS-e820: [gap a-b]``): they describe
no memory and are only checked for form. Type names of every kernel are read by
`fastinit.machine.e820.parse_type` (``usable``/``System RAM``, ``reserved``/``device
reserved``, ...).
"""

from __future__ import annotations

import re

from fastinit.layout import MAX_NUMNODES, PAGE_SHIFT, pfn_up
from fastinit.machine import e820
from fastinit.machine.loglines import MEM_RANGE, check_count, e820_type, line_error, mem_range

LABELS = r"(BIOS-e820|user|modified|reserve setup_data|extended)"
# A printed e820 table line: "BIOS-e820: [mem a-b] type", also "user:", "modified:", ...
# Type texts run to the end of the line and are stripped later: a lazy group before "\s*$"
# backtracks quadratically on a long run of blanks (20000 blanks took a second).
_TABLE = re.compile(rf"{LABELS}: {MEM_RANGE}\s+(.*)")
# Linux 2.6 printed "BIOS-e820: 0000000000000000 - 000000000009fc00 (usable)", end exclusive.
_TABLE_OLD = re.compile(r"BIOS-e820: ([0-9a-fA-F]{8,16}) - ([0-9a-fA-F]{8,16}) \((.*)\)\s*$")
# Linux 7.x: the hole before the next entry, "BIOS-e820: [gap a-b]" (nothing else follows).
_GAP = re.compile(rf"{LABELS}: {MEM_RANGE.replace('mem', 'gap')}\s*$")
_UPDATE = re.compile(rf"e820: update {MEM_RANGE} (.+?) ==> (.+)")
_REMOVE = re.compile(rf"e820: remove {MEM_RANGE}(.*)")
# How the lines above begin: one that begins so but does not match in full (cut short,
# garbled) must not be skipped, or the machine would silently lose memory.
STARTS = (rf"{LABELS}: \[(?:mem|gap) |BIOS-e820: [0-9a-fA-F]|"
          rf"e820: (?:update|remove) \[mem")
# The kernel's cap, E820_MAX_ENTRIES (128 + 3 * MAX_NUMNODES), bounds entries and edits.
E820_MAX_ENTRIES = 128 + 3 * MAX_NUMNODES


class E820Log:
    """The e820 table of a log as it stood after each line read.

    Attributes
    ----------
    table : list of (int, int, int)
        The current table (as printed, or sanitized once an edit came).
    tables_seen : int
        How many tables were printed.
    user_map : bool
        The current table is the "user-defined physical RAM map" (``user:`` lines):
        ``mem=``/``memmap=`` are already in it.
    memblock_table : list or None
        The table as memblock took it, once a ``last_pfn`` line followed a table: e820
        edits printed after it come after ``e820__memblock_setup()`` and only reserve
        memory (EFI ESRT, memreserve); they go to ``late_reserved`` (pfn ranges).
    kernel_not_ram : bool
        The map left the kernel's image out of RAM: the kernel adds it back, and says
        where only in a KERN_DEBUG ``e820: remove`` line (without a type) right after.
    """

    def __init__(self, source: str):
        self.source = source
        self.table: list[e820.Entry] = []
        self.tables_seen = 0
        self.user_map = False
        self.memblock_table: list[e820.Entry] | None = None
        self.late_reserved: list[tuple[int, int]] = []
        self.kernel_not_ram = False
        self._label: str | None = None
        self._edits = 0
        # Table lines are kept as printed; the table is sanitized once, before the next edit.
        self._sanitized = True

    def read(self, line: str, number: int) -> bool:
        """Take one line; True if it was an e820 table, gap or edit line."""
        if (match := _TABLE.search(line) or _TABLE_OLD.search(line)) is not None:
            self._table_line(match, line, number)
            return True
        if _GAP.search(line) is not None:
            return True
        if (match := _UPDATE.search(line) or _REMOVE.search(line)) is not None:
            if not self._sanitized:
                self.table, self._sanitized = e820.sanitize(self.table), True
            self._edit_line(match, line, number)
            self._label = None
            self._edits += 1
            check_count(self._edits, E820_MAX_ENTRIES, "e820 edits", self.source, number,
                        line)
            return True
        return False

    def table_ends(self) -> None:
        """A "physical RAM map" header: the next table line starts a new table."""
        self._label = None

    def memblock_takes(self) -> None:
        """A ``last_pfn`` line: memblock takes the table as it is now."""
        if self.tables_seen:
            # No copy needed: edits build new lists and table lines copy before appending.
            self.memblock_table, self.late_reserved = self.table, []

    @property
    def final(self) -> list[e820.Entry]:
        """The table memblock was set up from, sanitized."""
        return e820.sanitize(self.table if self.memblock_table is None
                             else self.memblock_table)

    def _table_line(self, match: re.Match, line: str, number: int) -> None:
        old_format = match.re is _TABLE_OLD
        label = "BIOS-e820" if old_format else match.group(1)
        start, end = mem_range(match, 1 if old_format else 2, self.source, number, line,
                               inclusive=not old_format)
        kind = e820_type(match.group(3 if old_format else 4), self.source, number, line)
        if label != self._label:  # a newly printed table replaces the old one
            self.table, self._label = [], label
            self.tables_seen += 1
            self.user_map = label == "user"
            self.memblock_table, self.late_reserved = None, []
        elif self.table is self.memblock_table:
            self.table = list(self.table)  # memblock's snapshot stays as it was
        self.table.append((start, end, kind))
        self._sanitized = False
        check_count(len(self.table), E820_MAX_ENTRIES, "e820 entries", self.source, number,
                    line)

    def _edit_line(self, match: re.Match, line: str, number: int) -> None:
        """One ``e820: update`` or ``e820: remove`` line, applied to the sanitized table."""
        source = self.source
        start, end = mem_range(match, 1, source, number, line, clip=True)
        if match.re is _REMOVE:
            old_text = match.group(3).strip()
            old = e820_type(old_text, source, number, line) if old_text else None
            self.table = e820.edit(self.table, start, end, old, None)
            if self.kernel_not_ram and old is None:
                # e820_add_kernel_range(): the image's range, cut out above, comes back as RAM.
                self.table = e820.sanitize(self.table + [(start, end, e820.E820_RAM)])
                self.kernel_not_ram = False
            return
        old = e820_type(match.group(3), source, number, line)
        new = e820_type(match.group(4), source, number, line)
        if old == e820.E820_RAM and new == e820.E820_RAM:
            new = e820.E820_RESERVED_KERN  # setup_data: still RAM, printed "usable"
        self.table = e820.edit(self.table, start, end, old, new)
        if self.memblock_table is not None and not e820.is_memory(new):
            self.late_reserved.append((start >> PAGE_SHIFT, pfn_up(end)))
