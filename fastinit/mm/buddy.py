"""Zone free areas of the buddy allocator model: list heads, counts, managed pages.

Each zone keeps, per order and migratetype, a circular doubly linked list through the
descriptors' ``lru`` fields, with its head in the zone (a simulated address, see
`fastinit.kernels.descriptors.free_list_address`). Kernels build lists local to one call
(`fastinit.kernels.descriptors.new_local_lists`); `splice` appends
them to the zone's lists under the zone's lock, the only lock deferred init takes besides
the engine's.
"""

from __future__ import annotations

import threading

import numpy as np

from fastinit.kernels.descriptors import (COUNT, FIRST, LAST, list_head, lru_address, lru_pfn,
                                          zone_list_base)
from fastinit.layout import MIGRATE_TYPES, NR_ORDERS
from fastinit.mm.memmap import Memmap


class ZoneFreeArea:
    """The free lists and counters of one zone of one node.

    Attributes
    ----------
    nid, zid : int
    heads : ndarray of uint64, shape (NR_ORDERS, MIGRATE_TYPES, 2)
        ``(next, prev)`` of each list head; an empty list points at itself.
    nr_free : ndarray of int64, shape (NR_ORDERS, MIGRATE_TYPES)
        Free blocks per order and migratetype.
    managed : int
        Pages handed to the buddy allocator (``zone->managed_pages``).
    """

    def __init__(self, nid: int, zid: int):
        self.nid, self.zid = nid, zid
        self.list_base = zone_list_base(nid, zid)
        own = list_head(self.list_base, np.arange(NR_ORDERS)[:, None],
                        np.arange(MIGRATE_TYPES)[None, :])
        self.heads = np.stack([own, own], axis=-1).astype(np.uint64)
        self.nr_free = np.zeros((NR_ORDERS, MIGRATE_TYPES), dtype=np.int64)
        self.managed = 0
        self.lock = threading.Lock()

    def head_address(self, order: int, migratetype: int) -> int:
        return int(list_head(self.list_base, order, migratetype))

    def splice(self, memmap: Memmap, lists: np.ndarray, freed: int) -> None:
        """Append a kernel call's local lists to this zone's lists (tail, like FPI_TO_TAIL).

        Parameters
        ----------
        memmap : Memmap
        lists : ndarray of int64, shape (3, NR_ORDERS, MIGRATE_TYPES)
            As filled by the buddy kernels; both ends already point at the zone's heads.
        freed : int
            Pages the call freed (added to ``managed``).
        """
        prev_field = memmap.pages["lru_prev"]
        next_field = memmap.pages["lru_next"]
        with self.lock:
            for order, migratetype in zip(*np.nonzero(lists[COUNT])):
                order, migratetype = int(order), int(migratetype)
                first, last = int(lists[FIRST, order, migratetype]), int(lists[LAST, order, migratetype])
                tail = int(self.heads[order, migratetype, 1])
                prev_field[memmap.index(first)] = tail
                if tail == self.head_address(order, migratetype):
                    self.heads[order, migratetype, 0] = lru_address(first)
                else:
                    next_field[memmap.index(lru_pfn(tail))] = lru_address(first)
                self.heads[order, migratetype, 1] = lru_address(last)
                self.nr_free[order, migratetype] += lists[COUNT, order, migratetype]
            self.managed += freed

    def free_by_order(self) -> list[int]:
        """Free blocks per order, all migratetypes together (11 counts)."""
        return [int(n) for n in self.nr_free.sum(axis=1)]

    def free_pages(self) -> int:
        return int(sum(count << order for order, count in enumerate(self.free_by_order())))
