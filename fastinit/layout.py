"""The page descriptor: x86-64 ``struct page`` as a NumPy record, and the constants around it.

Everything about the descriptor's layout lives here, once: field offsets, the flag bits,
how node and zone are packed into ``flags``, the buddy markers, and the (simulated) virtual
addresses that free-list links hold. The arithmetic on them (a pfn's descriptor, its
``lru`` address, a free-list head's address, the node and zone of ``flags``) is in
``fastinit.kernels.descriptors``, written once for the kernels and for Python.

Layout, grouped by 8-byte words as in ``include/linux/mm_types.h`` (v5.8, 64 bytes)::

    @0   flags       u64  page flags; node and zone numbers in the top bits
    @8   lru_next    u64  list_head.next: free-list link when free, else points to itself
    @16  lru_prev    u64  list_head.prev
    @24  mapping     u64  address_space pointer (0 here)
    @32  index       u64  offset within mapping (0 here)
    @40  private     u64  buddy order while the page heads a free block
    @48  mapcount    i32  -1 when unmapped; PageBuddy is a page_type bit cleared in it
    @52  refcount    i32  1 after init ("allocated"), 0 once freed to the buddy allocator
    @56  memcg_data  u64  memory cgroup pointer (0 here)
"""

from __future__ import annotations

import numpy as np

# Re-exported: the rounding everyone imports from here is written once, in fastinit.units.
from fastinit.units import align_up, div_up  # noqa: F401

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT

# x86-64: 128 MiB sections.
SECTION_SIZE_BITS = 27
PAGES_PER_SECTION = 1 << (SECTION_SIZE_BITS - PAGE_SHIFT)
SECTION_SHIFT = SECTION_SIZE_BITS - PAGE_SHIFT

# Highest buddy order (Linux 5.8's MAX_ORDER 11 is exclusive; 6.8+ calls this MAX_PAGE_ORDER).
MAX_ORDER = 10
NR_ORDERS = MAX_ORDER + 1
MAX_ORDER_NR_PAGES = 1 << MAX_ORDER

# A PMD-mapped huge page: 2 MiB, order 9. Every 2 MiB of the tree is derived from this order
# (pageblocks, huge-page advice and first touch, the memmap's placement, 2 MiB HugeTLB pages).
HPAGE_PMD_ORDER = 9
HPAGE_PMD_NR = 1 << HPAGE_PMD_ORDER
HPAGE_PMD_SIZE = PAGE_SIZE << HPAGE_PMD_ORDER

# A pageblock is a huge page (pageblock_order = HPAGE_PMD_ORDER); it carries the migratetype.
PAGEBLOCK_ORDER = HPAGE_PMD_ORDER
PAGEBLOCK_NR_PAGES = 1 << PAGEBLOCK_ORDER
PAGEBLOCKS_PER_SECTION = PAGES_PER_SECTION // PAGEBLOCK_NR_PAGES

# NR_CPUS of CONFIG_MAXSMP, the most CPUs an x86-64 kernel boots: the bound of a CPU count.
NR_CPUS = 8192

# x86-64 with 5-level paging addresses 52 bits of physical memory.
MAX_PHYSMEM_BITS = 52
MAX_PFN = 1 << (MAX_PHYSMEM_BITS - PAGE_SHIFT)

PAGE_DTYPE = np.dtype({
    "names": ["flags", "lru_next", "lru_prev", "mapping", "index", "private",
              "mapcount", "refcount", "memcg_data"],
    "formats": ["<u8", "<u8", "<u8", "<u8", "<u8", "<u8", "<i4", "<i4", "<u8"],
    "offsets": [0, 8, 16, 24, 32, 40, 48, 52, 56],
    "itemsize": 64,
}, align=True)

# Our BUILD_BUG_ON: the kernels and the file format rely on this exact layout.
assert PAGE_DTYPE.itemsize == 64
assert PAGE_DTYPE.isalignedstruct
assert [PAGE_DTYPE.fields[name][1] for name in PAGE_DTYPE.names] == \
    [0, 8, 16, 24, 32, 40, 48, 52, 56]

# Descriptors in one 4 KiB page of the vmemmap (all HVO keeps of a huge page), and the
# vmemmap pages of one section (2 MiB: sparse_init allocates a section's map at once).
DESCRIPTORS_PER_PAGE = PAGE_SIZE // PAGE_DTYPE.itemsize
SECTION_MAP_PAGES = PAGES_PER_SECTION // DESCRIPTORS_PER_PAGE

# Zone indices as x86-64 numbers them; ZONE_MOVABLE exists when kernelcore= or movablecore=
# ask for it (ZONE_DEVICE, 4, only ever holds hot-plugged device memory).
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE = 0, 1, 2, 3
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")
MAX_NR_ZONES = 4

# x86-64 zone limits in pfns: DMA below 16 MiB, DMA32 below 4 GiB.
MAX_DMA_PFN = (16 << 20) >> PAGE_SHIFT
MAX_DMA32_PFN = (4 << 30) >> PAGE_SHIFT

# page->flags: with SPARSEMEM_VMEMMAP there are no section bits, so the node sits at the
# top, then the zone (NODES_SHIFT 10 as in MAXSMP distro configs; 3 zone bits because
# MAX_NR_ZONES including ZONE_DEVICE is 5).
NODES_SHIFT = 10
ZONES_SHIFT = 3
MAX_NUMNODES = 1 << NODES_SHIFT
NODES_PGSHIFT = 64 - NODES_SHIFT
ZONES_PGSHIFT = NODES_PGSHIFT - ZONES_SHIFT
NODES_MASK = (1 << NODES_SHIFT) - 1
ZONES_MASK = (1 << ZONES_SHIFT) - 1
PG_RESERVED = 1 << 12

# PageBuddy is a page_type: types live in _mapcount and are set by clearing a bit of -1
# (PG_buddy = 0x80), so a free block's head holds 0xffffff7f.
MAPCOUNT_NONE = -1
PAGE_BUDDY_MAPCOUNT = -1 & ~0x80

# Migratetypes without CMA, with memory isolation (Linux 5.8 order).
MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_HIGHATOMIC, MIGRATE_ISOLATE = range(5)
MIGRATE_TYPES = 5
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "Isolate")

# Simulated kernel virtual addresses, so list links look and compare like the kernel's:
# descriptors live in the vmemmap, free-list heads in the zones (in the direct map). With
# 5-level paging (MAX_PHYSMEM_BITS 52) the vmemmap starts at 0xffd4000000000000 and has room
# for the descriptor of every pfn below MAX_PFN (4-level's 0xffffea0000000000 would wrap
# past 2**64 above 1.4 PiB).
VMEMMAP_START = 0xFFD4000000000000
LRU_OFFSET = 8
FREE_AREA_BASE = 0xFFFF888100000000
LIST_HEAD_SIZE = 16
# list_del() poisons the links of a removed entry (x86-64 POISON_POINTER_DELTA).
LIST_POISON1 = 0xDEAD000000000100
LIST_POISON2 = 0xDEAD000000000122


def pfn_up(address):
    """First whole page at or after byte ``address`` (``PFN_UP()``)."""
    return div_up(address, PAGE_SIZE)
