"""x86 NUMA emulation (``numa=fake=``): fake nodes cut out of the physical nodes' blocks.

Three forms, as ``numa_emulation()`` reads its argument: ``N`` fake nodes of equal memory
interleaved over the physical nodes; ``SIZE`` (with ``M`` or ``G``) nodes of at least that
much memory; ``NU`` each physical node split into ``N`` nodes of equal span. Sizes count only
memory, not holes, and move in steps of ``FAKE_NODE_MIN_SIZE`` (32 MiB); a node stretches to
4 GiB if the next one could not get 32 MiB of DMA32 memory, and to the end of its physical
block if the next one could not get its share. The rules are the kernel's
(arch/x86/mm/numa_emulation.c to Linux 6.11; from 6.12 mm/numa_emulation.c over
mm/numa_memblks.c, whose meminfo starts at memblock's first page: kernel rule
``numa_emu_generic``), rewritten.
"""

from __future__ import annotations

import bisect

from fastinit.layout import MAX_DMA32_PFN, MAX_NUMNODES, PAGE_SHIFT, align_up, pfn_up
from fastinit.machine.srat import MemBlock, cleanup_meminfo
from fastinit.machine.topology import Range, intersect

FAKE_NODE_MIN_SIZE = 32 << 20
# NR_NODE_MEMBLKS: the meminfo holds at most this many blocks.
NR_NODE_MEMBLKS = 2 * MAX_NUMNODES
_DMA32_END = MAX_DMA32_PFN << PAGE_SHIFT


class _EmulationFailed(Exception):
    """The kernel gives up on emulation (and keeps the physical nodes)."""


class _Emulator:
    """The state of one emulation: physical blocks being consumed, fake blocks made."""

    def __init__(self, blocks: list[MemBlock], memory: list[Range], max_pfn: int,
                 notes: list[str]):
        self.physical = [[b.nid, b.start, b.end] for b in blocks]
        self.memory, self.max_addr, self.notes = memory, max_pfn << PAGE_SHIFT, notes
        self.fake: list[MemBlock] = []
        self.emu_to_phys: dict[int, int] = {}
        # Entry 0 as the kernel's array keeps it after its last block is removed (the
        # 'U' form reads blk[0] even then).
        self.stale_first = list(self.physical[0]) if self.physical else [0, 0, 0]

    def hole(self, start: int, end: int) -> int:
        """``mem_hole_size()``: bytes of [start, end) that are not memory (whole pages)."""
        first, last = pfn_up(start), end >> PAGE_SHIFT
        if first >= last:
            return 0
        present = sum(e - s for s, e in intersect(self.memory, first, last))
        return (last - first - present) << PAGE_SHIFT

    def present(self, start: int, end: int) -> int:
        return end - start - self.hole(start, end)

    def find_block(self, nid: int) -> int | None:
        return next((i for i, b in enumerate(self.physical) if b[0] == nid), None)

    def in_turn(self, mask: list[int]):
        """Physical blocks to cut the next fake node from: one of each node of ``mask`` in
        turn, again and again, a node leaving once it has no block left (the kernels'
        ``while (nodes_remaining(physnode_mask))`` loops). Lazy: each block is looked up
        after the caller has cut the one before.

        Yields
        ------
        int
            An index into ``self.physical``.
        """
        mask = list(mask)
        while mask:
            for phys in list(mask):
                index = self.find_block(phys)
                if index is None:
                    mask.remove(phys)
                else:
                    yield index

    def grow(self, start: int, end: int, limit: int, size: int) -> int:
        """Extend ``end`` by 32 MiB steps until [start, end) holds ``size`` bytes of memory,
        or set it to ``limit`` once a step passes it (the kernel's loop, by bisection)."""
        if self.present(start, end) >= size:
            return end
        steps = (limit - end) // FAKE_NODE_MIN_SIZE if limit > end else 0
        if steps == 0 or self.present(start, end + steps * FAKE_NODE_MIN_SIZE) < size:
            return limit
        k = bisect.bisect_left(range(1, steps + 1), True,
                               key=lambda k: self.present(start, end + k * FAKE_NODE_MIN_SIZE)
                               >= size) + 1
        return end + k * FAKE_NODE_MIN_SIZE

    def stretch(self, end: int, limit: int, size: int | None) -> int:
        """The two stretches: to 4 GiB (DMA32), and to the block's end (``size`` given)."""
        if end < _DMA32_END and self.present(end, _DMA32_END) < FAKE_NODE_MIN_SIZE:
            end = _DMA32_END
        # Unsigned in the kernel: an end past the limit never stretches.
        if size is not None and end <= limit and self.present(end, limit) < size:
            end = limit
        return end

    def setup(self, nid: int, index: int, size: int) -> None:
        """``emu_setup_memblk()``: the first ``size`` bytes of physical block ``index``."""
        if len(self.fake) >= NR_NODE_MEMBLKS:
            self.notes.append("NUMA: Too many emulated memblks, failing emulation")
            raise _EmulationFailed
        phys_nid, start, _ = self.physical[index]
        self.fake.append(MemBlock(nid, start, start + size))
        self.emu_to_phys.setdefault(nid, phys_nid)
        self.physical[index][1] += size
        if self.physical[index][1] >= self.physical[index][2]:
            self.stale_first = list(self.physical[0]) if index == 0 else self.stale_first
            del self.physical[index]

    def interleave(self, parsed: list[int], count: int) -> None:
        """``split_nodes_interleave()``: ``count`` nodes of equal memory."""
        if count <= 0:
            raise _EmulationFailed
        if count > MAX_NUMNODES:
            self.notes.append(f"numa=fake={count} too large, reducing to {MAX_NUMNODES}")
            count = MAX_NUMNODES
        size = ((self.present(0, self.max_addr) >> PAGE_SHIFT) // count) << PAGE_SHIFT
        big = (size % FAKE_NODE_MIN_SIZE) * count // FAKE_NODE_MIN_SIZE
        size -= size % FAKE_NODE_MIN_SIZE
        if not size:
            self.notes.append("Not enough memory for each node.  NUMA emulation disabled.")
            raise _EmulationFailed
        nid = 0
        for index in self.in_turn(sorted(parsed)):
            _, start, limit = self.physical[index]
            end = start + size + (FAKE_NODE_MIN_SIZE if nid < big else 0)
            end = self.stretch(self.grow(start, end, limit, size), limit, size)
            self.setup(nid % count, index, min(end, limit) - start)
            nid += 1

    def by_size(self, parsed: list[int], size: int, count: int = 0, nid: int = 0) -> int:
        """``split_nodes_size_interleave_uniform()``: nodes of ``size`` bytes of memory over
        every physical node, or (``count`` given) ``count`` equal spans of block 0's node."""
        if count:
            first = self.physical[0] if self.physical else self.stale_first
            mask = [first[0]]
            size = (((first[2] >> PAGE_SHIFT) - (first[1] >> PAGE_SHIFT)) // count) \
                << PAGE_SHIFT
            least = size
        else:
            mask = sorted(parsed)
            least = (((self.max_addr - self.hole(0, self.max_addr)) >> PAGE_SHIFT)
                     // MAX_NUMNODES) << PAGE_SHIFT
        least = align_up(max(least, FAKE_NODE_MIN_SIZE), FAKE_NODE_MIN_SIZE)
        if size < least:
            self.notes.append(f"Fake node size {size >> 20}MB too small, increasing to "
                              f"{least >> 20}MB")
            size = least
        size -= size % FAKE_NODE_MIN_SIZE
        for index in self.in_turn(mask):
            _, start, limit = self.physical[index]
            end = start + size if count else self.grow(start, start + size, limit, size)
            end = self.stretch(end, limit, None if count else size)
            self.setup(nid % MAX_NUMNODES, index, min(end, limit) - start)
            nid += 1
        return nid

    def uniform(self, parsed: list[int], count: int) -> None:
        """The ``NU`` form: every physical node split into ``count`` nodes."""
        nid = 0
        for phys in sorted(parsed):
            created = self.by_size(parsed, 0, count, nid)
            if created == nid:
                continue  # no memory found for this physical node
            if created - nid < count:
                self.notes.append(f"numa_emulation: phys: {phys} only got {created - nid} of "
                                  f"{count} nodes, failing")
                raise _EmulationFailed
            nid = created


def emulate(fake, blocks: list[MemBlock], parsed: list[int], memory: list[Range],
            max_pfn: int, notes: list[str],
            generic: bool = True) -> tuple[list[MemBlock], dict[int, int]] | None:
    """Fake nodes for ``numa=fake=``; None when the kernel would give up on emulation.

    Parameters
    ----------
    fake : fastinit.machine.cmdline.NumaFake
    blocks : list of MemBlock
        The physical meminfo (cleaned), in the kernel's order.
    parsed : list of int
        Nodes the firmware named (``numa_nodes_parsed``), memory-less ones included.
    memory : list of (int, int)
        memblock memory, pfn ranges.
    max_pfn : int
    notes : list of str
        Receives what the kernel would print about it.
    generic : bool
        Linux 6.12's generic mm/numa_emulation.c (kernel rule ``numa_emu_generic``), not
        x86's own.

    Returns
    -------
    (list of MemBlock, dict) or None
        The fake meminfo and, for each fake node, the physical node it was cut from.
    """
    if generic:
        blocks = cleanup_meminfo(blocks, memory, max_pfn, to_memblock=True)
    emulator = _Emulator(blocks, memory, max_pfn, notes)
    try:
        if fake.uniform:
            emulator.uniform(parsed, fake.nodes)
        elif fake.size:
            emulator.by_size(parsed, fake.size)
        else:
            emulator.interleave(parsed, fake.nodes)
    except _EmulationFailed:
        return None
    fake_blocks = cleanup_meminfo(emulator.fake, memory, max_pfn, to_memblock=generic)
    nids = {b.nid for b in fake_blocks}
    return fake_blocks, {nid: phys for nid, phys in emulator.emu_to_phys.items() if nid in nids}
