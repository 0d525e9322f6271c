"""Check a boot: the parallel result against the serial reference, and the model's invariants.

Three independent checks, each over windows of sections so memory stays bounded:

1. Serial reference: every deferred window is redone on one thread with the plain
   two-pass kernel, from the state before deferred init, and must match byte for byte,
   except the list links of free-block heads (list order depends on which chunk finished
   first) and the pageblock migratetypes must match too.
2. Free lists: every list of every zone is walked: links consistent both ways, entries
   are free-block heads of the list's order, aligned, inside the zone, of the list's
   migratetype, each block on one list only, counts equal to ``nr_free``, no orphan heads.
3. Canonical buddy state: the free blocks are exactly the buddy decomposition of each
   zone's free pages (memory minus reserved), and ``managed`` counts them; every other
   descriptor holds what early init gives it (node and zone links, reserved, refcount).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastinit.mm.run import BootResult
from fastinit.kernels.buddy_free import deferred_init_chunk
from fastinit.mm.memmap import Memmap, memmap_bytes
from fastinit.layout import (LIST_POISON1, LIST_POISON2, MAPCOUNT_NONE, MAX_ORDER,
                           PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES, PAGEBLOCKS_PER_SECTION,
                           PAGES_PER_SECTION, PG_RESERVED, SECTION_SHIFT, ZONES_PGSHIFT,
                           align_up)
from fastinit.kernels._layout import lru_address, new_local_lists, page_links
from fastinit.machine.topology import intersect, subtract

# 16 MiB of descriptors per window: with its copies verify needs ~100 MiB whatever the
# memmap's size, so a memmap file larger than RAM can be checked in a small cgroup.
WINDOW_SECTIONS = 8
_MAX_PROBLEMS = 20


@dataclass
class VerifyReport:
    """Outcome of `verify`: what was checked and every problem found (first few)."""

    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


def buddy_decomposition(start: int, end: int) -> list[tuple[int, int]]:
    """Largest naturally aligned blocks (order <= MAX_ORDER) covering ``[start, end)``."""
    blocks, pfn = [], start
    while pfn < end:
        order = MAX_ORDER
        while order and (pfn & ((1 << order) - 1) or pfn + (1 << order) > end):
            order -= 1
        blocks.append((pfn, order))
        pfn += 1 << order
    return blocks


def _windows(result: BootResult, start: int, end: int):
    step = WINDOW_SECTIONS * PAGES_PER_SECTION
    for lo in range(start, end, step):
        yield lo, min(lo + step, end)


def check_serial_reference(result: BootResult, report: VerifyReport) -> None:
    memmap, plan = result.memmap, result.plan
    compared = 0
    for node in plan.nodes:
        if node.first_deferred_pfn is None:
            continue
        zone = node.deferred_zone
        free = plan.free_ranges(node.nid, node.first_deferred_pfn, zone.end_pfn)
        links = np.uint64(page_links(node.nid, zone.zid))
        area = result.zones[(node.nid, zone.zid)]
        for lo, hi in _windows(result, *node.job):
            sections = memmap.sections[np.searchsorted(memmap.sections, lo >> SECTION_SHIFT):
                                       np.searchsorted(memmap.sections, hi >> SECTION_SHIFT)]
            if not len(sections):
                continue
            scratch = Memmap(sections, bytearray(memmap_bytes(len(sections))), "scratch")
            first = memmap.slot_of_section(int(sections[0]))
            count = len(sections) * PAGES_PER_SECTION
            scratch.pages[:] = memmap.pages[first * PAGES_PER_SECTION:][:count]
            blocks = len(sections) * PAGEBLOCKS_PER_SECTION
            scratch.pageblock_mt[:] = memmap.pageblock_mt[first * PAGEBLOCKS_PER_SECTION:][:blocks]
            window_free = free[(free[:, 1] > lo) & (free[:, 0] < hi)]
            for s, e in window_free.tolist():
                s, e = max(s, lo), min(e, hi)
                # Garbage where deferred init writes, so reading before writing shows.
                scratch.raw[scratch.index(s) * 64:(scratch.index(e - 1) + 1) * 64] = 0xA5
                aligned = np.arange(align_up(s, PAGEBLOCK_NR_PAGES), e,
                                    PAGEBLOCK_NR_PAGES, dtype=np.int64)
                scratch.pageblock_mt[scratch.index(aligned) // PAGEBLOCK_NR_PAGES] = 0
            base, slots = scratch.slots(lo, hi)
            deferred_init_chunk(scratch.pages, scratch.pageblock_mt, slots, base,
                                np.ascontiguousarray(window_free), lo, hi, links,
                                area.list_base, new_local_lists())
            real = memmap.pages[first * PAGES_PER_SECTION:][:count]
            _compare_window(real, scratch, memmap, first, blocks, lo, report)
            compared += count
    report.checks.append(f"deferred init equals the serial reference ({compared} "
                         f"descriptors byte for byte, free-block links aside)")


def _compare_window(real, scratch, memmap, first_slot, blocks, lo, report) -> None:
    words_real = real.view(np.uint64).reshape(-1, 8).copy()
    words_ref = scratch.pages.view(np.uint64).reshape(-1, 8).copy()
    heads = real["mapcount"] == PAGE_BUDDY_MAPCOUNT
    words_real[heads, 1:3] = 0
    words_ref[scratch.pages["mapcount"] == PAGE_BUDDY_MAPCOUNT, 1:3] = 0
    differ = np.flatnonzero(np.any(words_real != words_ref, axis=1))
    if len(differ):
        pfn = int(scratch.pfns()[differ[0]])
        report.problem(f"descriptor of pfn {pfn:#x} differs from the serial reference "
                       f"({len(differ)} descriptors differ in the window at {lo:#x})")
    real_mt = memmap.pageblock_mt[first_slot * PAGEBLOCKS_PER_SECTION:][:blocks]
    if not np.array_equal(real_mt, scratch.pageblock_mt):
        report.problem(f"pageblock migratetypes differ from the serial reference in the "
                       f"window at {lo:#x}")


def check_free_lists(result: BootResult, report: VerifyReport) -> dict:
    """Walk every list; returns {(nid, zid): set of (pfn, order)} of the blocks found."""
    memmap = result.memmap
    pages = memmap.pages
    found: dict[tuple[int, int], set] = {}
    seen_blocks = 0
    for (nid, zid), area in result.zones.items():
        zone = result.plan.topology.zone(nid, zid)
        blocks = found.setdefault((nid, zid), set())
        for order in range(MAX_ORDER + 1):
            for mt in range(area.nr_free.shape[1]):
                head = area.head_address(order, mt)
                previous, address, length = head, int(area.heads[order, mt, 0]), 0
                while address != head:
                    pfn = (address - lru_address(0)) // 64
                    index = memmap.index(pfn) if 0 <= pfn and (address - lru_address(0)) % 64 == 0 else -1
                    where = f"node {nid} zone {zone.name} order {order} list {mt}"
                    if index < 0:
                        report.problem(f"{where}: link {address:#x} points to no descriptor")
                        break
                    page = pages[index]
                    if int(page["lru_prev"]) != previous:
                        report.problem(f"{where}: pfn {pfn:#x} prev link is broken")
                    if (page["mapcount"] != PAGE_BUDDY_MAPCOUNT or page["private"] != order
                            or pfn % (1 << order) or not zone.start_pfn <= pfn < zone.end_pfn
                            or (int(page["flags"]) >> ZONES_PGSHIFT) != (page_links(nid, zid) >> ZONES_PGSHIFT)):
                        report.problem(f"{where}: pfn {pfn:#x} is not a free block of that "
                                       f"order in that zone")
                    if memmap.pageblock_mt[index // PAGEBLOCK_NR_PAGES] != mt:
                        report.problem(f"{where}: pfn {pfn:#x} sits on the wrong migratetype")
                    if (pfn, order) in blocks or length > area.nr_free[order, mt]:
                        report.problem(f"{where}: pfn {pfn:#x} is listed twice or the list loops")
                        break
                    blocks.add((pfn, order))
                    previous, address, length = address, int(page["lru_next"]), length + 1
                if int(area.heads[order, mt, 1]) != previous:
                    report.problem(f"node {nid} zone {zone.name} order {order} list {mt}: "
                                   f"head's prev is not the last entry")
                if length != area.nr_free[order, mt]:
                    report.problem(f"node {nid} zone {zone.name} order {order} list {mt}: "
                                   f"{length} entries but nr_free says {area.nr_free[order, mt]}")
        seen_blocks += len(blocks)
    heads = int(np.count_nonzero(pages["mapcount"] == PAGE_BUDDY_MAPCOUNT))
    if heads != seen_blocks:
        report.problem(f"{heads} descriptors are free-block heads but the lists hold {seen_blocks}")
    report.checks.append(f"free lists well-formed ({seen_blocks} blocks)")
    return found


def check_buddy_state(result: BootResult, found: dict, report: VerifyReport) -> None:
    plan, memmap = result.plan, result.memmap
    for node in plan.nodes:
        for zone in node.zones:
            free = plan.free_ranges(node.nid, zone.start_pfn, zone.end_pfn)
            expected = {b for s, e in free.tolist() for b in buddy_decomposition(s, e)}
            got = found.get((node.nid, zone.zid), set())
            if expected != got:
                report.problem(f"node {node.nid} zone {zone.name}: free blocks are not the "
                               f"buddy decomposition of its free pages "
                               f"({len(expected ^ got)} blocks differ)")
            pages = int((free[:, 1] - free[:, 0]).sum()) if len(free) else 0
            if result.zones[(node.nid, zone.zid)].managed != pages:
                report.problem(f"node {node.nid} zone {zone.name}: managed "
                               f"{result.zones[(node.nid, zone.zid)].managed}, free pages {pages}")
    report.checks.append("free blocks are the canonical buddy decomposition; managed counts them")
    _check_descriptor_states(result, report)


def _check_descriptor_states(result: BootResult, report: VerifyReport) -> None:
    """Every descriptor: links, reserved flag, counts, and the fields init leaves zero."""
    plan, memmap, topology = result.plan, result.memmap, result.plan.topology
    # (start, end, links, reserved) pieces covering every pfn that has a descriptor.
    pieces = []
    for node in plan.nodes:
        for zone in node.zones:
            links = page_links(node.nid, zone.zid)
            memory = intersect(topology.node(node.nid).ranges, zone.start_pfn, zone.end_pfn)
            free = [tuple(r) for r in plan.free_ranges(node.nid, zone.start_pfn,
                                                       zone.end_pfn).tolist()]
            pieces += [(s, e, links, False) for s, e in free]
            pieces += [(s, e, links, True) for s, e in subtract(memory, free)]
    for hole in topology.unavailable_ranges():
        pieces.append((hole.start_pfn, hole.end_pfn, page_links(hole.nid, hole.zid), True))
    pieces.sort()
    wrong, first_wrong, checked = 0, None, 0
    for slot in range(0, len(memmap.sections), WINDOW_SECTIONS):
        sections = memmap.sections[slot:slot + WINDOW_SECTIONS]
        pages = memmap.pages[slot * PAGES_PER_SECTION:][:len(sections) * PAGES_PER_SECTION]
        pfns = ((sections[:, None] << SECTION_SHIFT)
                + np.arange(PAGES_PER_SECTION, dtype=np.int64)).ravel()
        expected = np.full(len(pages), np.uint64(1) << np.uint64(63), dtype=np.uint64)
        reserved = np.ones(len(pages), dtype=bool)
        lo, hi = int(pfns[0]), int(pfns[-1]) + 1
        for s, e, links, is_reserved in pieces:
            if e <= lo or s >= hi:
                continue
            inside = (pfns >= s) & (pfns < e)
            expected[inside] = links
            reserved[inside] = is_reserved
        flags = pages["flags"]
        bad = flags != (expected | np.where(reserved, np.uint64(PG_RESERVED), np.uint64(0)))
        bad |= pages["refcount"] != reserved.astype(np.int32)
        heads = pages["mapcount"] == PAGE_BUDDY_MAPCOUNT
        bad |= ~heads & ((pages["mapcount"] != MAPCOUNT_NONE) | (pages["private"] != 0))
        bad |= (pages["mapping"] != 0) | (pages["index"] != 0) | (pages["memcg_data"] != 0)
        own = lru_address(pfns.astype(np.uint64))
        linked_to_self = (pages["lru_next"] == own) & (pages["lru_prev"] == own)
        poisoned = (pages["lru_next"] == np.uint64(LIST_POISON1)) & \
            (pages["lru_prev"] == np.uint64(LIST_POISON2)) & ~reserved
        bad |= ~heads & ~linked_to_self & ~poisoned
        if bad.any():
            wrong += int(bad.sum())
            first_wrong = first_wrong if first_wrong is not None else \
                int(pfns[np.flatnonzero(bad)[0]])
        checked += len(pages)
    if wrong:
        report.problem(f"{wrong} descriptors hold a wrong state, first pfn {first_wrong:#x}")
    report.checks.append(f"every descriptor holds its expected state ({checked} descriptors)")


def verify(result: BootResult) -> VerifyReport:
    """Run all checks on a finished boot.

    Returns
    -------
    VerifyReport
        ``ok`` is True only if every check passed.
    """
    report = VerifyReport()
    check_serial_reference(result, report)
    found = check_free_lists(result, report)
    check_buddy_state(result, found, report)
    return report
