"""The memmap: page descriptors for present sections only, like the sparse vmemmap.

Descriptors live in one flat array of `PAGE_DTYPE`, a slot of PAGES_PER_SECTION records
per present section, in section order; a machine with terabytes of holes pays nothing for
them. Next to it, one byte per pageblock holds the migratetype (the kernel's pageblock
bitmap). The storage is anonymous memory advised to use huge pages, or a file with a
header (`fastinit.mm.page_file`) for memmaps larger than RAM.
"""

from __future__ import annotations

import numpy as np

from fastinit.arrays.alloc import map_anonymous
from fastinit.machine.ranges import present_runs
from fastinit.units import gib
from fastinit.layout import (MAX_PFN, PAGE_DTYPE, PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION,
                             SECTION_SHIFT)


def memmap_bytes(nr_sections: int) -> int:
    """Bytes a memmap of ``nr_sections`` present sections needs (descriptors + pageblocks)."""
    return nr_sections * (PAGES_PER_SECTION * PAGE_DTYPE.itemsize + PAGEBLOCKS_PER_SECTION)


def check_sections(sections) -> np.ndarray:
    """Section numbers as a read-only int64 array; ValueError unless strictly increasing
    and inside the 52-bit physical address space (a slot is found by bisection)."""
    try:
        array = np.array(sections, dtype=np.int64, copy=True)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"sections must be integers, got {sections!r}") from None
    if array.ndim != 1:
        raise ValueError(f"sections must be a 1-D array, got shape {array.shape}")
    if len(array) and (array[0] < 0 or array[-1] >= MAX_PFN >> SECTION_SHIFT):
        raise ValueError(f"sections must be in 0..{(MAX_PFN >> SECTION_SHIFT) - 1}")
    if np.any(np.diff(array) <= 0):
        raise ValueError(f"sections must be sorted and unique, got {array[:8].tolist()}...; "
                         f"pass np.unique(sections)")
    array.setflags(write=False)
    return array


class Memmap:
    """Descriptors and pageblock migratetypes of the present sections.

    Attributes
    ----------
    sections : ndarray of int64, shape (nr_sections,)
        Present section numbers, sorted; ``sections[slot]`` is the section of a slot.
    pages : ndarray of PAGE_DTYPE, shape (nr_sections * PAGES_PER_SECTION,)
    pageblock_mt : ndarray of uint8, shape (nr_sections * PAGEBLOCKS_PER_SECTION,)
    words : ndarray of uint64, shape (nr_sections * PAGES_PER_SECTION * 8,)
        The descriptors as 64-bit words (for the streaming kernel).
    raw : ndarray of uint8, shape (nbytes,)
        All of it as bytes: the descriptors, then the pageblock migratetypes.
    storage : str
        "memory" or the backing file's path.
    file : PageFile or None
        The memmap file behind a file-backed memmap (`fastinit.mm.page_file`).

    Every attribute is read-only; ``sections`` is a read-only array.
    """

    def __init__(self, sections: np.ndarray, buffer, storage: str, owner=None, file=None):
        self._sections = check_sections(sections)
        nr_pages = len(self._sections) * PAGES_PER_SECTION
        raw = np.frombuffer(buffer, dtype=np.uint8, count=memmap_bytes(len(self._sections)))
        self._raw = raw
        self._pages = raw[:nr_pages * PAGE_DTYPE.itemsize].view(PAGE_DTYPE)
        self._words = raw[:nr_pages * PAGE_DTYPE.itemsize].view(np.uint64)
        self._pageblock_mt = raw[nr_pages * PAGE_DTYPE.itemsize:]
        self.storage = storage
        self._file = file
        self._owner = owner  # keeps the mmap or file mapping alive

    # The arrays are read-only attributes: the checked entry points (fastinit.mm.pages)
    # validate pfns against `sections` and trust that the other arrays match it, so none
    # of them may be swapped for an array of another length after construction.
    sections = property(lambda self: self._sections, doc="Present sections (read-only).")
    pages = property(lambda self: self._pages, doc="The descriptors.")
    pageblock_mt = property(lambda self: self._pageblock_mt, doc="Pageblock migratetypes.")
    words = property(lambda self: self._words, doc="The descriptors as 64-bit words.")
    raw = property(lambda self: self._raw, doc="Descriptors and migratetypes as bytes.")
    file = property(lambda self: self._file, doc="The memmap file behind it, or None.")

    @classmethod
    def in_memory(cls, sections: np.ndarray) -> Memmap:
        """Anonymous memory with huge-page advice, not yet touched (`fastinit.empty`'s).

        Raises
        ------
        ValueError
            If it does not fit in the memory available now (names the size and the fix).
        """
        size = memmap_bytes(len(check_sections(sections)))
        owner = map_anonymous(size, huge_pages=True, what="the memmap",
                              fix=f"back it with a file instead: --memmap-file PATH (on a "
                                  f"disk with {gib(size)} free)")
        return cls(sections, np.asarray(owner), "memory", owner=owner)

    @property
    def nbytes(self) -> int:
        return memmap_bytes(len(self.sections))

    def slots(self, start_pfn: int, end_pfn: int) -> tuple[int, np.ndarray]:
        """Section slots covering ``[start_pfn, end_pfn)`` for the kernels.

        Returns
        -------
        base_pfn : int
            ``start_pfn`` rounded down to a section.
        slots : ndarray of int64, shape (nr_sections_in_range,)
            Slot of each section from ``base_pfn`` on, -1 where it has no descriptors.
        """
        first = start_pfn >> SECTION_SHIFT
        last = max(end_pfn - 1, start_pfn) >> SECTION_SHIFT
        wanted = np.arange(first, last + 1, dtype=np.int64)
        found = np.searchsorted(self.sections, wanted)
        found[found == len(self.sections)] = 0
        slots = np.where(self.sections[found] == wanted, found, -1).astype(np.int64)
        return first << SECTION_SHIFT, slots

    def present_runs(self, start_pfn: int, end_pfn: int) -> list[tuple[int, int]]:
        """The parts of ``[start_pfn, end_pfn)`` that have descriptors, as pfn ranges."""
        return present_runs(self.sections, start_pfn, end_pfn)

    def has(self, pfn):
        """Whether ``pfn`` (scalar or array) has a descriptor: its section is present."""
        present = self._present(np.asarray(pfn, dtype=np.int64) >> SECTION_SHIFT)[1]
        return bool(present) if present.ndim == 0 else present

    def index(self, pfn):
        """Position of ``pfn``'s descriptor in `pages` (scalar or array).

        Raises
        ------
        ValueError
            For a pfn without descriptors (its section is absent): ask `has` first where
            a miss is expected. There is no sentinel: a -1 would index the last descriptor.
        """
        pfn = np.asarray(pfn, dtype=np.int64)
        slot, present = self._present(pfn >> SECTION_SHIFT)
        if not present.all():
            bad = int(pfn) if pfn.ndim == 0 else int(pfn[~present][0])
            raise ValueError(f"pfn {bad:#x} has no descriptor: its section "
                             f"{bad >> SECTION_SHIFT} is not present in this memmap")
        result = slot * PAGES_PER_SECTION + (pfn & (PAGES_PER_SECTION - 1))
        return int(result) if result.ndim == 0 else result

    def _present(self, section: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slot of each section (clipped into range) and whether it is really that one."""
        if not len(self.sections):
            return np.zeros_like(section), np.zeros(section.shape, bool)
        slot = np.minimum(np.searchsorted(self.sections, section), len(self.sections) - 1)
        return slot, self.sections[slot] == section

    def pfns(self) -> np.ndarray:
        """The pfn of every descriptor, shape (nr_pages,) (for checks, not hot paths)."""
        offsets = np.arange(PAGES_PER_SECTION, dtype=np.int64)
        return ((self.sections[:, None] << SECTION_SHIFT) + offsets).ravel()
