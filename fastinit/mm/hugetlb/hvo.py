"""HugeTLB Vmemmap Optimization (HVO) on our memmap, for real.

Linux keeps one 4 KiB page of each huge page's descriptors (the head and 63 tails) and
maps every other page of them onto it read-only, giving the pages that held them back to
the buddy allocator: 7 of 8 for a 2 MiB page (28 KiB), 4095 of 4096 for a 1 GiB page
(16380 KiB). A descriptor of those pages then reads as the descriptor 64 places before
it (a tail at a page boundary reads as the head: the kernel's "fake head", which
``page_fixed_fake_head()`` resolves through the next descriptor's ``compound_head``).

User space can alias pages only through mappings of a file: the first page of the huge
page's descriptors is copied into a memfd page and mapped back over itself (read-write),
then the same memfd page is mapped over each other page (read-only, ``MAP_FIXED``), which
releases the anonymous pages there. Linux maps a file linearly in each mapping (VMA), so
every aliased page is a mapping of its own, and a process may have at most
``vm.max_map_count`` of them (65530 by default): `fastinit.mm.hugetlb.hvo_budget` gives
out that budget, shared by every boot in the process, and a huge page that does not fit in
it keeps its descriptors, as the kernel keeps them when its remapping fails (`Remapper`
also gives them back if the process runs out of mappings anyway).

The aliased pages are mapped read-only, as in the kernel: once a boot's pools are ready
its memmap's arrays are read-only to their users (`freeze`), and the checked entry points
refuse the aliased descriptors by name (`aliased_descriptors`).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import threading
import weakref

import numpy as np

from fastinit.host.libc import MAP_FAILED as _MAP_FAILED, MAP_FIXED as _MAP_FIXED, libc as _libc
from fastinit.layout import (DESCRIPTORS_PER_PAGE, PAGE_DTYPE, PAGE_SIZE, PAGES_PER_SECTION,
                             SECTION_MAP_PAGES)
from fastinit.mm.memmap import Memmap
from fastinit.machine.ranges import section_runs

# The memfd's name, by which its mappings are found in /proc/self/maps.
_MEMFD_NAME = "fastinit-hvo"

# Memmap -> (lock, aliases) of the Remapper that remapped it, for `aliased_descriptors`
# (the value must not hold the memmap, or the entry would never go).
_remapped: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Remapper:
    """Maps huge pages' descriptor pages onto their first page (one memfd holds those).

    Parameters
    ----------
    memmap : Memmap
        An in-memory memmap (anonymous, page-aligned).
    pages : int
        Huge pages that will be remapped (sizes the memfd).
    """

    def __init__(self, memmap: Memmap, pages: int):
        if memmap.file is not None or memmap.storage != "memory":
            raise ValueError("hugetlb_free_vmemmap=on remaps the memmap in memory; it "
                             "cannot remap a memmap file: boot without --memmap-file or "
                             "with hugetlb_free_vmemmap=off")
        self.memmap = memmap
        self.base = memmap.raw.ctypes.data
        self.fd = os.memfd_create(_MEMFD_NAME, os.MFD_CLOEXEC)
        os.ftruncate(self.fd, max(pages, 1) * PAGE_SIZE)
        self.ident = file_ident(self.fd)
        self.next_slot = 0
        self.lock = threading.Lock()
        self.remapped = 0
        self.released_bytes = 0
        self.mappings = 0
        # (first memmap page, pages) of each remapped huge page: pages after the first
        # are aliases of it.
        self.aliases: list[tuple[int, int]] = []
        _remapped[memmap] = (self.lock, self.aliases)

    def close(self) -> None:
        """Close the memfd (its pages stay as long as the memmap maps them)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _map(self, address: int, writable: bool, offset: int) -> None:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        got = _libc.mmap(address, PAGE_SIZE, prot, mmap.MAP_SHARED | _MAP_FIXED,
                         self.fd, offset)
        if got in (None, _MAP_FAILED) or got != address:
            error = ctypes.get_errno()
            raise OSError(error, f"HVO could not map the memmap page at {address:#x}")

    def remap(self, head_index: int, order: int, keep_tails: bool = True) -> bool:
        """Keep the first page of the descriptors from ``head_index`` on and map the other
        ``2**order / 64 - 1`` pages onto it (the caller wrote that first page).

        Returns False, with the descriptors back in anonymous memory as they were, if the
        process could not make the mappings (something else in it took the mapping
        budget): the caller then writes the page in full, as the kernel keeps the
        vmemmap of a page whose remapping failed. ``keep_tails`` False: the descriptors
        past the first page need not come back (the caller initializes them anyway).
        """
        address = self.base + head_index * PAGE_DTYPE.itemsize
        # munmap and MAP_FIXED replace whatever is mapped there: only ever our descriptors.
        if head_index < 0 or address % PAGE_SIZE or \
                (head_index + (1 << order)) * PAGE_DTYPE.itemsize > self.memmap.pages.nbytes:
            raise ValueError(f"HVO cannot remap the descriptors of order {order} from index "
                             f"{head_index}: they are not whole pages of this memmap's "
                             f"{len(self.memmap.pages)} descriptors")
        with self.lock:
            slot = self.next_slot
            self.next_slot += 1
        offset = slot * PAGE_SIZE
        count = (1 << order) // DESCRIPTORS_PER_PAGE
        start = head_index * PAGE_DTYPE.itemsize
        kept = self.memmap.raw[start:start + PAGE_SIZE].tobytes()
        tails = self.memmap.raw[start + PAGE_SIZE:start + count * PAGE_SIZE].copy() \
            if keep_tails else None
        os.pwrite(self.fd, kept, offset)
        try:
            # Unmapping the other pages at once first halves the cost of the mappings (no
            # page to replace and flush in each); no other thread reads them meanwhile.
            if _libc.munmap(address + PAGE_SIZE, (count - 1) * PAGE_SIZE):
                error = ctypes.get_errno()
                raise OSError(error, f"HVO could not unmap the memmap at {address:#x}")
            self._map(address, True, offset)
            for page in range(1, count):
                self._map(address + page * PAGE_SIZE, False, offset)
        except OSError:
            self._restore(address, count, kept, tails)
            return False
        with self.lock:
            self.remapped += 1
            self.released_bytes += (count - 1) * PAGE_SIZE
            self.mappings += count
            self.aliases.append((start // PAGE_SIZE, count))
        return True

    def _restore(self, address: int, count: int, kept: bytes, tails) -> None:
        """Private anonymous memory again under a huge page's descriptors, holding what
        they held. One mapping replaces the several the remapping made, so it fits where
        they did not (unmapping them first if the kernel counts before it replaces)."""
        size = count * PAGE_SIZE
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
        prot = mmap.PROT_READ | mmap.PROT_WRITE
        got = _libc.mmap(address, size, prot, flags, -1, 0)
        if got != address:
            _libc.munmap(address, size)
            got = _libc.mmap(address, size, prot, flags, -1, 0)
        if got != address:
            # The descriptors are gone: nothing may read them; stop the boot, clearly.
            raise unrestorable(f"the memmap at {address:#x}")
        start = address - self.base
        self.memmap.raw[start:start + PAGE_SIZE] = np.frombuffer(kept, np.uint8)
        if tails is not None:
            self.memmap.raw[start + PAGE_SIZE:start + size] = tails


def aliased_descriptors(memmap: Memmap) -> np.ndarray:
    """``[first, end)`` descriptor indexes of every page of ``memmap`` that HVO mapped onto
    another (read-only: a write there faults), sorted, shape (n, 2)."""
    lock, aliases = _remapped.get(memmap, (threading.Lock(), []))
    per_page = PAGE_SIZE // PAGE_DTYPE.itemsize
    with lock:
        ranges = sorted(((first + 1) * per_page, (first + pages) * per_page)
                        for first, pages in aliases)
    return np.array(ranges, dtype=np.int64).reshape(-1, 2)


def freeze(memmap: Memmap) -> None:
    """Make the arrays users get of a memmap HVO remapped read-only: NumPy cannot fault
    per page, and a write to an alias would kill the process (SIGSEGV). Its pages stay
    readable; the checked entry points (`fastinit.mm.pages`) refuse it by name."""
    for array in (memmap.raw, memmap.pages, memmap.words, memmap.pageblock_mt):
        array.flags.writeable = False


def vmemmap_backing(plan) -> np.ndarray:
    """Where each present section's descriptors live in physical memory.

    Returns
    -------
    ndarray of int64, shape (nr_sections,)
        For the section in each memmap slot, the first pfn of the 512 pages (2 MiB) holding
        its descriptors: its node's memmap pieces (`fastinit.mm.plan.NodePlan.memmap`),
        section by section in address order, a section shared by two nodes counted with
        the first.
    """
    backing = np.full(len(plan.sections), -1, dtype=np.int64)
    runs = section_runs(plan.topology.memory_ranges())
    for node in plan.nodes:
        sections = np.concatenate([np.arange(first, end, dtype=np.int64) for first, end, nid
                                   in runs if nid == node.nid]
                                  or [np.zeros(0, np.int64)])
        slots = np.searchsorted(plan.sections, sections)
        # The node's memmap pieces hold its sections in order, 2 MiB each.
        maps = np.concatenate([np.arange(start, end, SECTION_MAP_PAGES, dtype=np.int64)
                               for start, end in node.memmap] or [np.zeros(0, np.int64)])
        backing[slots] = maps
    return backing


def freed_vmemmap(backing: np.ndarray, head_index: int, order: int) -> list[tuple[int, int]]:
    """Physical pfn ranges of the vmemmap pages HVO frees for the huge page whose head's
    descriptor is at ``head_index`` in the memmap: every page of its descriptors but the
    first."""
    ranges: list[tuple[int, int]] = []
    count = (1 << order) // DESCRIPTORS_PER_PAGE
    for page in range(1, count):
        index = head_index + page * DESCRIPTORS_PER_PAGE
        slot, within = divmod(index, PAGES_PER_SECTION)
        pfn = int(backing[slot]) + within // DESCRIPTORS_PER_PAGE
        if ranges and ranges[-1][1] == pfn:
            ranges[-1] = (ranges[-1][0], pfn + 1)
        else:
            ranges.append((pfn, pfn + 1))
    return ranges


def resident_bytes(memmap: Memmap, remapper: Remapper | None = None) -> int:
    """Bytes of the memmap's descriptors resident in memory now, each page counted once.

    Read from /proc/self/pagemap (the present bit of every page of the descriptors); a
    page HVO aliased counts with the one page it shows, not again.
    """
    lo = memmap.pages.ctypes.data // PAGE_SIZE
    count = -(-memmap.pages.nbytes // PAGE_SIZE)
    with open("/proc/self/pagemap", "rb") as handle:
        handle.seek(lo * 8)
        entries = np.frombuffer(handle.read(count * 8), dtype=np.uint64)
    present = (entries >> np.uint64(63)).astype(bool)
    if remapper is not None:
        for first, pages in remapper.aliases:
            present[first + 1:first + pages] = False
    return int(np.count_nonzero(present)) * PAGE_SIZE


def file_ident(fd: int) -> tuple[int, int, int]:
    """``(major, minor, inode)`` of an open file, as /proc/self/maps names its mappings."""
    stat = os.fstat(fd)
    return os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino


def file_mappings(ident: tuple[int, int, int] | None = None) -> list[tuple[int, int, int]]:
    """``(first page, end page, file page offset)`` of each mapping in this process of the
    file ``ident`` (`file_ident`), or of HVO's memfds if None, sorted (pages as addresses
    // PAGE_SIZE)."""
    result = []
    with open("/proc/self/maps") as handle:
        for line in handle:
            fields = line.split()
            if ident is None and _MEMFD_NAME not in line:
                continue
            span, _, offset, device, inode = fields[:5]
            if ident is not None and (tuple(int(x, 16) for x in device.split(":")) +
                                      (int(inode),)) != ident:
                continue
            start, end = (int(x, 16) // PAGE_SIZE for x in span.split("-"))
            result.append((start, end, int(offset, 16) // PAGE_SIZE))
    result.sort()
    return result


def memfd_mappings() -> list[tuple[int, int, int]]:
    """Each of HVO's memfd mappings in this process (see `file_mappings`)."""
    return file_mappings(None)


def remapped_pages(memmap: Memmap) -> int:
    """Pages of the memmap's descriptors that HVO mapped onto others (read-only aliases
    and kept pages; in a memmap file, the aliases): such a memmap cannot be booted again."""
    if memmap.file is not None:  # a file's aliases are mappings of the file itself
        aliased = aliased_descriptors(memmap)
        return int((aliased[:, 1] - aliased[:, 0]).sum()) // DESCRIPTORS_PER_PAGE
    lo, hi = memmap.raw.ctypes.data, memmap.raw.ctypes.data + memmap.raw.nbytes
    return sum(max(0, min(end * PAGE_SIZE, hi) - max(start * PAGE_SIZE, lo)) // PAGE_SIZE
               for start, end, _ in memfd_mappings())


def zone_pieces(plan, start: int, end: int):
    """``((nid, zid), (lo, hi))`` pieces of a range of one node's memory, by zone."""
    for node in plan.nodes:
        if not any(s <= start < e for s, e in plan.topology.node(node.nid).ranges):
            continue
        for zone in node.zones:
            lo, hi = max(start, zone.start_pfn), min(end, zone.end_pfn)
            if lo < hi:
                yield (node.nid, zone.zid), (lo, hi)
        return


def unrestorable(what: str) -> MemoryError:
    """The error for descriptors HVO could neither remap nor restore (``what``), with the
    errno of the mapping call that just failed."""
    error = ctypes.get_errno()
    return MemoryError(f"HVO could neither remap nor restore {what} "
                       f"({os.strerror(error)}): the process is out of mappings "
                       f"(vm.max_map_count); boot with hugetlb_free_vmemmap=off")
