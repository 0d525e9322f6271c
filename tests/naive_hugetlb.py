"""Slow, obviously correct references for the HugeTLB kernels (kernels/buddy_alloc.py,
kernels/compound.py), in the plainest Python: a zone's free lists as Python lists of head
pfns, read from the descriptors and written back at the end; compound pages field by field.
"""


from fastinit.kernels.descriptors import lru_address, lru_pfn, zone_id
from fastinit.layout import (MAX_ORDER, MIGRATE_MOVABLE, MIGRATE_RECLAIMABLE, MIGRATE_TYPES,
                             MIGRATE_UNMOVABLE, NR_ORDERS, PAGE_BUDDY_MAPCOUNT, PG_RESERVED,
                             VMEMMAP_START)
from naive import NaiveLists, descriptor_index

PG_HEAD = 1 << 16
TAIL_MAPPING = 0xDEAD000000000400


class NaiveZone(NaiveLists):
    """A zone's free lists, walked out of the descriptors into Python lists."""

    def __init__(self, pages, pageblock_mt, slots, base_pfn, heads, nr_free, list_base):
        super().__init__(pages, pageblock_mt, slots, base_pfn, list_base)
        self.heads, self.nr_free = heads, nr_free
        for order in range(NR_ORDERS):
            for mt in range(MIGRATE_TYPES):
                head = self.head(order, mt)
                entries, address = [], int(heads[order, mt, 0])
                while address != head:
                    entries.append(int(lru_pfn(address)))
                    address = int(pages["lru_next"][self.index(entries[-1])])
                self.lists[(order, mt)] = entries

    def add(self, pfn, order, mt):
        """At the head of the list, as add_to_free_list() puts it."""
        self.lists[(order, mt)].insert(0, pfn)
        self.mark_free(pfn, order)

    def take(self, order):
        """Smallest MOVABLE block of ``order`` or more, else the largest of a fallback."""
        found = next(((o, MIGRATE_MOVABLE) for o in range(order, MAX_ORDER + 1)
                      if self.lists[(o, MIGRATE_MOVABLE)]), None)
        if found is None:
            found = next(((o, mt) for o in range(MAX_ORDER, order - 1, -1)
                          for mt in (MIGRATE_RECLAIMABLE, MIGRATE_UNMOVABLE)
                          if self.lists[(o, mt)]), None)
        if found is None:
            return None
        current, mt = found
        pfn = self.lists[found][0]
        self.remove(pfn, current, mt)
        if mt != MIGRATE_MOVABLE:
            self.retype(pfn, current, MIGRATE_MOVABLE)
        while current > order:
            current -= 1
            self.add(pfn + (1 << current), current, MIGRATE_MOVABLE)
        return pfn

    def buddy_type(self, buddy, order, zone):
        """Read from the descriptor (a free head: buddy mapcount, its order in private, its
        zone), then the list it is on."""
        b = self.index(buddy)
        if int(self.pages["mapcount"][b]) != PAGE_BUDDY_MAPCOUNT or \
                int(self.pages["private"][b]) != order or \
                zone_id(self.pages["flags"][b]) != zone:
            return None
        return next(m for m in range(MIGRATE_TYPES) if buddy in self.lists[(order, m)])

    def free_page(self, pfn):
        """free_reserved_page(): one page into the lists, merging."""
        self.prepare(pfn, 1)
        mt = int(self.pageblock_mt[self.pageblock(pfn)])
        pfn, order = self.coalesce(pfn, 0, mt)
        self.add(pfn, order, mt)

    def finish(self):
        """Write every list's links, the zone's heads and counts."""
        for (order, mt), entries in self.lists.items():
            addresses = self.link(order, mt)
            self.heads[order, mt] = (addresses[1], addresses[-2])
            self.nr_free[order, mt] = len(entries)


def prep_huge_page(pages, slots, base_pfn, pfn, order, tails, gigantic, optimized):
    """A HugeTLB page as Linux 6.1 leaves it, field by field (tails below ``tails``)."""
    i = descriptor_index(slots, base_pfn, pfn)
    head_address = VMEMMAP_START + pfn * 64
    count = min(tails, 1 << order)
    for t in range(1, count):
        pages["lru_next"][i + t] = head_address + 1
        pages["refcount"][i + t] = 0
        pages["flags"][i + t] = int(pages["flags"][i + t]) & ~PG_RESERVED
        if not gigantic:
            pages["mapping"][i + t] = TAIL_MAPPING
            pages["private"][i + t] = 0
    old = int(pages["lru_prev"][i + 1])
    # dtor 2, the order, then bytes 18-19 as they were, compound_mapcount -1.
    pages["lru_prev"][i + 1] = 2 | (order << 8) | (old & 0xFFFF0000) | (0xFFFFFFFF << 32)
    pages["mapping"][i + 1] = (1 << order) << 32
    for t in (1, 2, 3):
        pages["private"][i + t] = 0
    pages["flags"][i] = (int(pages["flags"][i]) & ~PG_RESERVED) | PG_HEAD
    pages["refcount"][i] = 0
    pages["private"][i] = (1 << 4) if optimized else 0
    pages["lru_next"][i] = pages["lru_prev"][i] = lru_address(pfn)
