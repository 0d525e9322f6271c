"""Zone watermarks and lowmem reserves, as Linux 6.1 sets them before HugeTLB pools are
allocated (``init_per_zone_wmark_min()``, a postcore initcall, after deferred init).

An allocation of order ``o`` may take pages from a zone only while, after it, the zone
keeps more free pages than its watermark plus its lowmem reserve for the allocation's
highest zone (``__zone_watermark_ok()``): ``free - (2**o - 1) > mark + lowmem_reserve``.
The fast path checks the ``low`` mark, the slow path the ``min`` mark.

- ``min_free_kbytes = clamp(int_sqrt(lowmem_kbytes * 16), 128, 262144)``, ``lowmem_kbytes``
  being the managed memory of every zone up to Normal (``nr_free_buffer_pages()`` while
  the high watermarks are still 0);
- each zone's ``min`` is its share of ``min_free_kbytes / 4`` pages by managed pages (x86-64
  has no highmem, so ZONE_MOVABLE takes a share too); ``low = min + gap`` and ``high =
  low + gap`` with ``gap = max(min / 4, managed * 10 / 10000)`` (watermark_scale_factor 10);
- a zone's lowmem reserve against allocations that may use zone ``j`` is the managed pages
  of the node's zones above it up to ``j``, divided by its ratio (DMA 256, DMA32 256,
  Normal 32); 0 for a zone without managed pages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fastinit.layout import PAGE_SHIFT, ZONE_MOVABLE, ZONE_NORMAL

# sysctl_lowmem_reserve_ratio: DMA, DMA32, Normal, Movable.
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)
WATERMARK_SCALE_FACTOR = 10
MIN_FREE_KBYTES_RANGE = (128, 262144)


@dataclass(frozen=True)
class ZoneMarks:
    """One zone's watermarks, in pages.

    Attributes
    ----------
    min, low, high : int
    reserve : tuple of int
        ``lowmem_reserve[j]`` for each highest zone ``j`` an allocation may use (4 entries).
    """

    min: int
    low: int
    high: int
    reserve: tuple[int, ...]


def min_free_kbytes(managed: dict[tuple[int, int], int]) -> int:
    """``calculate_min_free_kbytes()`` from the managed pages per ``(nid, zid)``."""
    lowmem = sum(pages for (_, zid), pages in managed.items() if zid <= ZONE_NORMAL)
    kbytes = lowmem << (PAGE_SHIFT - 10)
    low, high = MIN_FREE_KBYTES_RANGE
    return min(max(math.isqrt(kbytes * 16), low), high)


def zone_marks(managed: dict[tuple[int, int], int]) -> dict[tuple[int, int], ZoneMarks]:
    """Watermarks and lowmem reserves of every zone.

    Parameters
    ----------
    managed : dict
        ``(nid, zid) -> managed pages`` of every populated zone (others count as 0).

    Returns
    -------
    dict
        ``(nid, zid) -> ZoneMarks``.
    """
    pages_min = min_free_kbytes(managed) >> (PAGE_SHIFT - 10)
    lowmem_pages = sum(managed.values())
    result = {}
    for (nid, zid), pages in managed.items():
        zone_min = pages_min * pages // lowmem_pages if lowmem_pages else 0
        gap = max(zone_min >> 2, pages * WATERMARK_SCALE_FACTOR // 10000)
        reserve = []
        for highest in range(ZONE_MOVABLE + 1):
            ratio = LOWMEM_RESERVE_RATIO[zid]
            if highest <= zid or not ratio or not pages:
                reserve.append(0)
                continue
            above = sum(managed.get((nid, upper), 0) for upper in range(zid + 1, highest + 1))
            reserve.append(above // ratio)
        result[(nid, zid)] = ZoneMarks(zone_min, zone_min + gap, zone_min + 2 * gap,
                                       tuple(reserve))
    return result


def allocations_allowed(free: int, blocks: int, order: int, mark: int) -> int:
    """How many order-``order`` allocations a zone with ``free`` free pages and ``blocks``
    free blocks of that order or more can serve before ``mark`` (watermark plus lowmem
    reserve) stops it: allocation ``k`` passes while ``free - k * 2**order - (2**order - 1)
    > mark``."""
    size = 1 << order
    return max(0, min(blocks, (free - mark) // size))
