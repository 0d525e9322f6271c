"""Slow, obviously correct reference versions of the kernels, one page at a time.

Each function does what its kernel does in the plainest Python we could write, so a test can
compare the two field by field on small arrays.
"""

import numpy as np

from fastinit.kernels.descriptors import lru_address, zone_id
from fastinit.layout import MAPCOUNT_NONE, PAGES_PER_SECTION, PG_RESERVED


def descriptor_index(slots, base_pfn, pfn):
    """Where the descriptor of ``pfn`` lives in the sparse memmap."""
    section = (pfn - base_pfn) // PAGES_PER_SECTION
    return int(slots[section]) * PAGES_PER_SECTION + pfn % PAGES_PER_SECTION


def init_single_page(pages, index, pfn, links, reserved):
    """``__init_single_page()``: zero, set links, refcount 1, mapcount -1, lru to itself."""
    pages[index] = np.zeros((), pages.dtype)
    pages["flags"][index] = links | (PG_RESERVED if reserved else 0)
    pages["refcount"][index] = 1
    pages["mapcount"][index] = MAPCOUNT_NONE
    pages["lru_next"][index] = lru_address(pfn)
    pages["lru_prev"][index] = lru_address(pfn)


def init_pages_range(pages, slots, base_pfn, start_pfn, end_pfn, links, reserved):
    for pfn in range(start_pfn, end_pfn):
        init_single_page(pages, descriptor_index(slots, base_pfn, pfn), pfn, links, reserved)
    return end_pfn - start_pfn


# --- buddy allocator -----------------------------------------------------------------
# A different formulation from the kernels: free blocks live in a dict and in Python lists
# per (order, migratetype); descriptors get their list links only at the end.

from fastinit.layout import (LIST_POISON1, LIST_POISON2, MAX_ORDER, MIGRATE_MOVABLE,  # noqa: E402
                           MIGRATE_TYPES, NR_ORDERS, PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES,
                           PAGEBLOCK_ORDER)


class NaiveLists:
    """Free lists kept as Python lists of head pfns per (order, migratetype), over the
    descriptors of one sparse memmap; what each list step does to a descriptor, written once
    for `NaiveBuddy` and ``naive_hugetlb.NaiveZone``."""

    def __init__(self, pages, pageblock_mt, slots, base_pfn, list_base):
        self.pages, self.pageblock_mt = pages, pageblock_mt
        self.slots, self.base_pfn, self.list_base = slots, base_pfn, int(list_base)
        self.lists = {(o, m): [] for o in range(NR_ORDERS) for m in range(MIGRATE_TYPES)}

    def index(self, pfn):
        return descriptor_index(self.slots, self.base_pfn, pfn)

    def pageblock(self, pfn):
        return self.index(pfn) // PAGEBLOCK_NR_PAGES

    def head(self, order, mt):
        """Address of the list head ``free_area[order].free_list[mt]`` (16 bytes each)."""
        return self.list_base + (order * MIGRATE_TYPES + mt) * 16

    def prepare(self, pfn, count):
        """Pages about to be freed: not reserved, no references."""
        for p in range(pfn, pfn + count):
            i = self.index(p)
            self.pages["flags"][i] = int(self.pages["flags"][i]) & ~PG_RESERVED
            self.pages["refcount"][i] = 0

    def remove(self, pfn, order, mt):
        """Take the block at ``pfn`` off its list: poisoned links, no longer a buddy."""
        self.lists[(order, mt)].remove(pfn)
        i = self.index(pfn)
        self.pages["lru_next"][i] = LIST_POISON1
        self.pages["lru_prev"][i] = LIST_POISON2
        self.pages["mapcount"][i] = -1
        self.pages["private"][i] = 0

    def mark_free(self, pfn, order):
        """The head descriptor of a free block: its order, and the buddy mapcount."""
        i = self.index(pfn)
        self.pages["private"][i] = order
        self.pages["mapcount"][i] = PAGE_BUDDY_MAPCOUNT

    def retype(self, pfn, order, mt):
        """Every pageblock of the block at ``pfn`` becomes migratetype ``mt``."""
        for block in range(pfn, pfn + (1 << order), PAGEBLOCK_NR_PAGES):
            self.pageblock_mt[self.pageblock(block)] = mt

    def buddy_type(self, buddy, order, zone):
        """Migratetype of ``buddy`` if it heads a free block of ``order`` in ``zone``, else
        None."""
        raise NotImplementedError  # each reference finds its free blocks its own way

    def coalesce(self, pfn, order, mt):
        """Merge the block at ``pfn`` of migratetype ``mt`` with its free buddies, order by
        order, as ``__free_one_page()`` does; return the merged block's (pfn, order)."""
        zone = zone_id(self.pages["flags"][self.index(pfn)])
        while order < MAX_ORDER:
            buddy = pfn ^ (1 << order)
            buddy_mt = self.buddy_type(buddy, order, zone)
            if buddy_mt is None:
                break
            # Above a pageblock, isolated and CMA blocks (types 3 and up) merge only alike.
            if order >= PAGEBLOCK_ORDER and buddy_mt != mt and (mt >= 3 or buddy_mt >= 3):
                break
            self.remove(buddy, order, buddy_mt)
            if buddy_mt != mt:
                self.retype(buddy, order, mt)
            pfn &= buddy
            order += 1
        return pfn, order

    def link(self, order, mt):
        """Write the list links of list (order, mt) into its descriptors; return the
        addresses in list order, the head at both ends."""
        entries = self.lists[(order, mt)]
        head = self.head(order, mt)
        addresses = [head] + [int(lru_address(p)) for p in entries] + [head]
        for k, pfn in enumerate(entries):
            i = self.index(pfn)
            self.pages["lru_prev"][i] = addresses[k]
            self.pages["lru_next"][i] = addresses[k + 2]
        return addresses


class NaiveBuddy(NaiveLists):
    """Free lists of one kernel call, kept as Python lists of head pfns."""

    def __init__(self, pages, pageblock_mt, slots, base_pfn, list_base):
        super().__init__(pages, pageblock_mt, slots, base_pfn, list_base)
        self.free = {}                       # head pfn -> (order, migratetype)

    def buddy_type(self, buddy, order, zone):
        """Migratetype of ``buddy`` if it heads a free block of ``order`` in ``zone``."""
        order_mt = self.free.get(buddy)
        if order_mt is None or order_mt[0] != order or \
                zone_id(self.pages["flags"][self.index(buddy)]) != zone:
            return None
        return order_mt[1]

    def remove(self, pfn, order, mt):
        del self.free[pfn]
        super().remove(pfn, order, mt)

    def free_block(self, pfn, order):
        migratetype = int(self.pageblock_mt[self.pageblock(pfn)])
        pfn, order = self.coalesce(pfn, order, migratetype)
        self.free[pfn] = (order, migratetype)
        self.lists[(order, migratetype)].append(pfn)
        self.mark_free(pfn, order)

    def finish(self):
        """Write the list links into the descriptors; return the local-list table."""
        table = np.full((3, NR_ORDERS, MIGRATE_TYPES), -1, dtype=np.int64)
        table[2] = 0
        for (order, mt), heads in self.lists.items():
            self.link(order, mt)
            if heads:
                table[:, order, mt] = heads[0], heads[-1], len(heads)
        return table


def free_pages_ranges(pages, pageblock_mt, slots, base_pfn, ranges, list_base):
    buddy = NaiveBuddy(pages, pageblock_mt, slots, base_pfn, list_base)
    for start, end in ranges:
        pfn = start
        while pfn < end:
            order = MAX_ORDER
            while order and (pfn % (1 << order) or pfn + (1 << order) > end):
                order -= 1
            buddy.prepare(pfn, 1 << order)
            buddy.free_block(pfn, order)
            pfn += 1 << order
    return buddy.finish()


def deferred_init_chunk(pages, pageblock_mt, slots, base_pfn, ranges, start_pfn, end_pfn,
                        links, list_base):
    buddy = NaiveBuddy(pages, pageblock_mt, slots, base_pfn, list_base)
    for range_start, range_end in ranges:
        spfn, epfn = max(range_start, start_pfn), min(range_end, end_pfn)
        while spfn < epfn:
            piece_end = min((spfn // 1024 + 1) * 1024, epfn)
            for pfn in range(spfn, piece_end):
                init_single_page(pages, buddy.index(pfn), pfn, links, False)
            if piece_end - spfn == 1024:
                for block in (spfn, spfn + PAGEBLOCK_NR_PAGES):
                    pageblock_mt[buddy.pageblock(block)] = MIGRATE_MOVABLE
                buddy.prepare(spfn, 1024)
                buddy.free_block(spfn, MAX_ORDER)
            else:
                for pfn in range(spfn, piece_end):
                    if pfn % PAGEBLOCK_NR_PAGES == 0:
                        pageblock_mt[buddy.pageblock(pfn)] = MIGRATE_MOVABLE
                    buddy.prepare(pfn, 1)
                    buddy.free_block(pfn, 0)
            spfn = piece_end
    return buddy.finish()


# --- fastinit.fill ----------------------------------------------------------------------
# NumPy does the layout and the conversions here (field names, astype), not the leaves and
# casts the kernels are generated from.

def _assign(target, value):
    """Write ``value`` into ``target``, a view (0-d, or a sub-array), converting with astype."""
    if target.ndim:
        for k in range(target.shape[0]):
            _assign(target[k, ...], value[k])
    elif target.dtype.names is not None:
        for position, name in enumerate(target.dtype.names):
            _assign(target[name], value[position])
    else:
        target[...] = np.asarray(value).astype(target.dtype)


def fill(array, record, start=0):
    """``fastinit.fill``: element k (flat, C order) = record(start + k); padding zero."""
    out = np.zeros(array.size, array.dtype)
    for k in range(array.size):
        _assign(out[k, ...], record(start + k))
    # Bytes, not elements: assigning a structured array skips the padding.
    array.reshape(-1).view(np.uint8)[...] = out.view(np.uint8)
    return array


# --- verify ----------------------------------------------------------------------------
# What a boot leaves, computed per pfn with Python sets and NumPy masks from the plan, to
# compare with the check kernels' tallies (fastinit.kernels.check_sections).

from fastinit.kernels.descriptors import page_links  # noqa: E402
from fastinit.layout import PAGEBLOCKS_PER_SECTION, SECTION_SHIFT  # noqa: E402
from fastinit.machine.topology import intersect, subtract  # noqa: E402


def _pieces(plan):
    """(start, end, links, reserved) covering every pfn that has a descriptor."""
    topology, pieces = plan.topology, []
    for node in plan.nodes:
        for zone in node.zones:
            links = int(page_links(node.nid, zone.zid))
            memory = intersect(topology.node(node.nid).ranges, zone.start_pfn, zone.end_pfn)
            free = [tuple(r) for r in plan.free_ranges(node.nid, zone.start_pfn,
                                                       zone.end_pfn).tolist()]
            pieces += [(s, e, links, False) for s, e in free]
            pieces += [(s, e, links, True) for s, e in subtract(memory, free)]
    for hole in topology.unavailable_ranges():
        pieces.append((hole.start_pfn, hole.end_pfn, int(page_links(hole.nid, hole.zid)), True))
    return sorted(pieces)


def wrong_descriptors(result):
    """Sorted pfns whose descriptor does not hold what the boot gives it (verify's check 4)."""
    plan, memmap = result.plan, result.memmap
    pieces, wrong = _pieces(plan), []
    for slot, section in enumerate(memmap.sections.tolist()):
        pfns = (section << SECTION_SHIFT) + np.arange(PAGES_PER_SECTION, dtype=np.int64)
        pages = memmap.pages[slot * PAGES_PER_SECTION:(slot + 1) * PAGES_PER_SECTION]
        expected = np.full(len(pfns), 1 << 63, dtype=np.uint64)  # no piece: nothing fits
        reserved = np.ones(len(pfns), dtype=bool)
        for s, e, links, is_reserved in pieces:
            inside = (pfns >= s) & (pfns < e)
            expected[inside] = links
            reserved[inside] = is_reserved
        bad = pages["flags"] != (expected | np.where(reserved, np.uint64(PG_RESERVED),
                                                     np.uint64(0)))
        bad |= pages["refcount"] != reserved.astype(np.int32)
        heads = pages["mapcount"] == PAGE_BUDDY_MAPCOUNT
        bad |= ~heads & ((pages["mapcount"] != MAPCOUNT_NONE) | (pages["private"] != 0))
        bad |= (pages["mapping"] != 0) | (pages["index"] != 0) | (pages["memcg_data"] != 0)
        own = lru_address(pfns)
        linked_to_self = (pages["lru_next"] == own) & (pages["lru_prev"] == own)
        poisoned = (pages["lru_next"] == np.uint64(LIST_POISON1)) & \
            (pages["lru_prev"] == np.uint64(LIST_POISON2)) & ~reserved
        bad |= ~heads & ~linked_to_self & ~poisoned
        wrong.append(pfns[bad])
    return np.concatenate(wrong) if wrong else np.zeros(0, np.int64)


def misplaced_heads(result):
    """Sorted pfns where a free-block head is, or should be, but not of the canonical order."""
    expected = {}
    for s, e, _, is_reserved in _pieces(result.plan):
        pfn = s
        while pfn < e and not is_reserved:
            order = MAX_ORDER
            while order and (pfn % (1 << order) or pfn + (1 << order) > e):
                order -= 1
            expected[pfn] = order
            pfn += 1 << order
    pages, odd = result.memmap.pages, set()
    heads = np.flatnonzero(pages["mapcount"] == PAGE_BUDDY_MAPCOUNT)
    found = dict(zip(result.memmap.pfns()[heads].tolist(), pages["private"][heads].tolist()))
    for pfn in set(expected) | set(found):
        if expected.get(pfn) != found.get(pfn):
            odd.add(pfn)
    return np.array(sorted(odd), dtype=np.int64)


def wrong_pageblocks(result):
    """Sorted first pfns of pageblocks whose migratetype is not what the boot leaves:
    MOVABLE where early init marked memory (any node's: a shard shares pageblocks with its
    neighbours) or deferred init freed the pageblock's start."""
    plan, memmap = result.plan, result.memmap
    movable = []
    for node in plan.topology.memory_nodes:
        first = plan.topology.first_deferred_pfn(node.nid)
        movable += intersect(node.ranges, 0, first if first is not None else node.end_pfn)
    for node in plan.nodes:
        if node.first_deferred_pfn is not None:
            movable += plan.free_ranges(node.nid, node.first_deferred_pfn,
                                        node.deferred_zone.end_pfn).tolist()
    starts = ((memmap.sections[:, None] << SECTION_SHIFT)
              + PAGEBLOCK_NR_PAGES * np.arange(PAGEBLOCKS_PER_SECTION)).ravel()
    want = np.zeros(len(starts), np.uint8)
    for s, e in movable:
        want[(starts >= s) & (starts < e)] = MIGRATE_MOVABLE
    return starts[memmap.pageblock_mt != want]
