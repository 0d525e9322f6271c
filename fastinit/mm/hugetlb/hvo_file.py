"""HVO on a memmap file: the tails' blocks released, the kept page mapped over them.

In a memmap file (`fastinit.mm.page_file`) the page HVO keeps of a huge page's
descriptors is already a page of a file mapping, so no memfd is needed: every other page
of those descriptors is mapped read-only (``MAP_FIXED``) onto the file's own kept page,
and the file's blocks under them are released (``fallocate(PUNCH_HOLE | KEEP_SIZE)``).
The saving is on disk (``du`` below ``ls -l``) and in memory (one page cache page read
through every alias), as the kernel's HVO saves the vmemmap pages.

The file records what it aliased in an array of its own, ``hvo`` (`HVO_DTYPE`, one row
per remapped huge page, in the order they were remapped, zeros after the last): a file
opened again maps the same aliases (`alias_recorded`) before anything reads it, so its
tails read as they did when it was completed, and its data checksum, computed then with
the aliases mapped, holds over what the file logically holds, holes included.

A file read without a read lease is not mapped at all but copied into private memory
(`fastinit.arrays.snapshot`), so that another process truncating it ends the read with a
clean error, never SIGBUS. Mapping its aliases from the file would undo that (a read of
an alias past the file's new end is SIGBUS), so there each tail page is given its kept
page's bytes inside the copy instead (`FileRemapper.copied`): the same bytes the aliases
would show, no mapping of the file, none of the process's mappings spent.

Aliases are mapped first and the blocks released last (the first page's at once, to learn
whether the file system can; the others' when the file is completed,
`FileRemapper.settle`): a remapping the process has no mappings for, or a file system that
cannot punch holes, leaves the file's data as it was and the page's descriptors are mapped
linearly again (`FileRemapper.remap` returns False, and the caller writes them in full, as
for the in-memory HVO).
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import threading
import weakref

import numpy as np

from fastinit.layout import DESCRIPTORS_PER_PAGE, PAGE_DTYPE, PAGE_SIZE
from fastinit.mm.hugetlb import hvo_budget
from fastinit.host.libc import MAP_FAILED as _MAP_FAILED, MAP_FIXED as _MAP_FIXED, libc as _libc
from fastinit.mm.hugetlb.hvo import _remapped, file_ident, file_mappings, unrestorable

# One row per remapped huge page: its first descriptor page (in pages of the memmap) and
# how many pages of descriptors it has (the first kept, the others aliases of it).
HVO_DTYPE = np.dtype([("first", "<i8"), ("pages", "<i8")])
# <linux/falloc.h>
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02


class FileRemapper:
    """Aliases of a memmap file's huge pages' descriptor pages onto their first page.

    The same figures as `fastinit.mm.hugetlb.hvo.Remapper` (``remapped``,
    ``released_bytes``, ``mappings``, ``aliases``), and ``ident``, the file as
    /proc/self/maps names it. Holds a descriptor of the file until it is collected (a
    verification checks the released blocks through it).
    """

    def __init__(self, memmap, record: np.ndarray | None = None):
        # Not the memmap itself: it holds this (memmap.file.hvo), and a cycle would keep
        # the file locked until the garbage collector ran.
        self.nbytes = memmap.pages.nbytes
        self.base = memmap.raw.ctypes.data
        self.fd, self.offset = memmap.file.handle.data_file()
        self._closer = weakref.finalize(self, os.close, self.fd)
        self.ident = file_ident(self.fd)
        self.record = record
        self.lock, self._probe = threading.Lock(), threading.Lock()
        self._punches: bool | None = None
        self.remapped = self.released_bytes = self.mappings = 0
        self.aliases: list[tuple[int, int]] = []
        self.writable = memmap.file.handle.writing
        # True when the memmap is a private copy of the file (see `alias_recorded`): the
        # tails hold copies of their kept page, nothing maps the file.
        self.copied = False
        _remapped[memmap] = (self.lock, self.aliases)
        memmap.file.hvo = self

    def close(self) -> None:
        """Nothing to close early: the mappings are the file's own."""

    def _mmap(self, page: int, pages: int, writable: bool, file_page: int) -> bool:
        """Map ``pages`` pages of the file from ``file_page`` (pages of the memmap) at the
        memmap's page ``page``; False if the process could not."""
        address = self.base + page * PAGE_SIZE
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        got = _libc.mmap(address, pages * PAGE_SIZE, prot, mmap.MAP_SHARED | _MAP_FIXED,
                         self.fd, self.offset + file_page * PAGE_SIZE)
        return got not in (None, _MAP_FAILED) and got == address

    def _alias(self, first: int, count: int) -> bool:
        """Map pages ``first + 1 .. first + count - 1`` read-only onto page ``first``."""
        return all(self._mmap(first + page, 1, False, first) for page in range(1, count))

    def _linear(self, first: int, count: int) -> None:
        """The pages after ``first`` mapped as the file lays them out again."""
        if not self._mmap(first + 1, count - 1, self.writable, first + 1):
            # The descriptors are unreadable now: stop the boot, clearly.
            raise unrestorable(f"the memmap file's pages at {first + 1}")

    def remap(self, head_index: int, order: int, keep_tails: bool = True) -> bool:
        """Alias the descriptor pages of the huge page whose head is at ``head_index``
        onto its first page and release their blocks; False (nothing changed) if the
        process lacks the mappings or the file system cannot punch holes."""
        count = (1 << order) // DESCRIPTORS_PER_PAGE
        start = head_index * PAGE_DTYPE.itemsize
        if head_index < 0 or start % PAGE_SIZE or \
                start + count * PAGE_SIZE > self.nbytes:
            raise ValueError(f"HVO cannot remap the descriptors of order {order} from index "
                             f"{head_index}: they are not whole pages of this memmap's "
                             f"{self.nbytes // PAGE_DTYPE.itemsize} descriptors")
        first = start // PAGE_SIZE
        if not self._alias(first, count):
            self._linear(first, count)
            return False
        if not self._can_punch(first, count):
            self._linear(first, count)  # the blocks are still there, and their data
            return False
        self._count(first, count)
        return True

    def _count(self, first: int, count: int) -> None:
        with self.lock:
            if self.record is not None:
                self.record[len(self.aliases)] = (first, count)
            self.aliases.append((first, count))
            self.remapped += 1
            self.released_bytes += (count - 1) * PAGE_SIZE
            self.mappings += 0 if self.copied else count

    def maps_file(self) -> bool:
        """Whether the memmap's first page is a mapping of the file (else it is a private
        copy, `fastinit.arrays.snapshot`): asked of /proc/self/maps, what the process
        really maps, not of how the file was opened."""
        page = self.base // PAGE_SIZE
        return any(start <= page < end for start, end, _ in file_mappings(self.ident))

    def _fill(self, first: int, count: int) -> None:
        """Pages ``first + 1 .. first + count - 1`` of a private copy made copies of page
        ``first``: what their aliases would show (the copy's mapping is writable; the
        arrays users get of it are not)."""
        block = (ctypes.c_char * (count * PAGE_SIZE)).from_address(self.base +
                                                                   first * PAGE_SIZE)
        pages = np.frombuffer(block, dtype=np.uint8).reshape(count, PAGE_SIZE)
        pages[1:] = pages[0]

    def _can_punch(self, first: int, count: int) -> bool:
        """Whether the file system releases blocks: the first remapped page's are, the
        others' once nothing writes the memmap any more (`settle`)."""
        with self._probe:
            if self._punches is None:
                self._punches = self._punch(first, count)
            return self._punches

    def _punch(self, first: int, count: int) -> bool:
        """Release the file's blocks under pages ``first + 1 .. first + count - 1``."""
        return not _libc.fallocate(self.fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
                                   self.offset + (first + 1) * PAGE_SIZE,
                                   (count - 1) * PAGE_SIZE)

    def settle(self) -> None:
        """Release the aliased pages' blocks, once nothing writes the memmap any more
        (before the file is completed).

        Not as each page is remapped: the page cache may hold a kept page and the pages
        after it in one large folio, which a punched hole cannot always split, and a
        write to the kept page after the punch (the pool's list links) dirties the whole
        folio, whose writeback allocates the released blocks again. Written back first,
        then punched, the folios are clean and stay so.
        """
        os.fsync(self.fd)  # not msync: see fastinit.arrays.handle.MemmapFile.complete
        for first, count in self.aliases:
            # Only where data is: a punch costs a journal transaction, hole or not.
            if self._holds_data(first, count) and not self._punch(first, count):
                raise OSError(ctypes.get_errno(), "HVO could not release the memmap "
                              "file's blocks under its aliases")

    def _holds_data(self, first: int, count: int) -> bool:
        """The file still has blocks (or dirty page cache) under the aliases of ``first``."""
        lo = self.offset + (first + 1) * PAGE_SIZE
        hi = self.offset + (first + count) * PAGE_SIZE
        try:
            return os.lseek(self.fd, lo, os.SEEK_DATA) < hi
        except OSError as error:  # ENXIO: no data from there to the end
            if error.errno != errno.ENXIO:
                raise
            return False

    def unreleased(self) -> int:
        """Aliased ranges whose blocks the file still holds (0: every one is a hole)."""
        return sum(self._holds_data(first, count) for first, count in self.aliases)

    def allocated_bytes(self) -> int:
        """Bytes the file takes on disk (``du``), beside its size (``ls -l``)."""
        return os.fstat(self.fd).st_blocks * 512


def recorded_rows(record: np.ndarray, memmap, sizes: set[int]) -> list[tuple[int, int]] | str:
    """The aliases a file's ``hvo`` array records, checked (they decide mappings), or
    what is wrong with them. ``sizes``: the descriptor pages a pool page may have."""
    used = record[record["pages"] != 0]
    if len(used) and not (record["pages"][:len(used)] != 0).all():
        return "its HVO record has a gap"
    if (record[len(used):].view(np.int64) != 0).any():
        return "its HVO record has bytes after its last row"
    pages = len(memmap.pages) // DESCRIPTORS_PER_PAGE
    rows = sorted((int(first), int(count)) for first, count in used.tolist())
    end = 0
    for first, count in rows:
        if count not in sizes or first < end or first + count > pages:
            return (f"its HVO record names {count} pages from page {first}, which is "
                    f"not a pool page's descriptors of this machine")
        end = first + count
    return rows


def alias_recorded(memmap, rows: list[tuple[int, int]]) -> FileRemapper:
    """Map the aliases a file records again (a file opened after its boot); in a private
    copy of the file, copy each kept page over its tails instead (nothing is mapped).

    Raises
    ------
    OSError
        The process cannot make that many mappings (``vm.max_map_count``).
    """
    remapper = FileRemapper(memmap)
    if not remapper.maps_file():
        # A private copy: mapping the file's pages over it would let a truncation by
        # another process SIGBUS its readers again. It holds the file's full length, so
        # the tails get their kept page's bytes in place.
        remapper.copied = True
        for first, count in rows:
            remapper._fill(first, count)
            remapper._count(first, count)
        return remapper
    need = sum(count for _, count in rows)
    budget, reservation = hvo_budget.reserve(lambda left: need if need <= left else 0)
    try:
        if need > budget:
            raise OSError(errno.ENOMEM, f"the file's HVO aliases need {need} mappings and "
                          f"this process may make {budget} more: raise vm.max_map_count "
                          f"(sysctl vm.max_map_count={2 * need + 65530})")
        for first, count in rows:
            if not remapper._alias(first, count):
                raise OSError(ctypes.get_errno(), f"the file's HVO aliases could not be "
                              f"mapped again; raise vm.max_map_count")
            remapper._count(first, count)
        return remapper
    finally:
        reservation.release()
