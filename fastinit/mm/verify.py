"""Check a boot: the parallel result against the serial reference, and the model's invariants.

Four checks, each over the whole memmap:

1. **Serial reference**: every section a deferred job covered is redone on one thread
   with the plain two-pass kernel, from the state before deferred init, and the job's
   free pages must match byte for byte, except the list links of free-block heads (list
   order depends on which chunk finished first); the pageblock migratetypes must match too.
2. **Free lists**: every list of every zone is walked: links point at descriptors and
   agree both ways, entries are free-block heads of the list's order, aligned, inside the
   zone, on the list of their pageblock's migratetype (or of the one it had when the
   kernel freed them, where another node's deferred init changed it later:
   `fastinit.kernels.check_lists.migratetype_fits`), each block on one list only, counts
   equal ``nr_free``, and no free-block head is missing from the lists.
3. **Canonical buddy state**: the free blocks are exactly the buddy decomposition of each
   zone's free pages (memory minus reserved), and ``managed`` counts them.
4. **Expected state**: every descriptor holds what the boot gives it (node and zone
   links, reserved, counts, the fields init leaves zero, lru links), and every pageblock
   its migratetype.

How: the lists are walked first, on one thread (`fastinit.kernels.check_lists`); then
checks 1, 3 and 4 run together in one pass over the sections
(`fastinit.kernels.check_sections`), in parallel through the padata engine, each thread
with a one-section scratch copy, so memory stays bounded (2 MiB per thread and a bit per
descriptor) whatever the memmap's size. Nothing read from the memmap is trusted: every
link is checked before it is followed, every walk is bounded by what the layout allows,
and every value used as an index is checked first (see the two kernel modules).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from fastinit.host.cpus import usable_cpus
from fastinit.host.memory import available_memory
from fastinit.engine.progress import Tally
from fastinit.engine.padata import Job, do_multithreaded
from fastinit.kernels import check_descriptors as kinds
from fastinit.kernels import check_lists as lists
from fastinit.kernels.check_sections import check_sections
from fastinit.kernels.descriptors import largest_order, new_local_lists, page_links, zone_id
from fastinit.layout import (MIGRATE_TYPES, MIGRATETYPE_NAMES, PAGE_DTYPE, PAGEBLOCK_NR_PAGES,
                             PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION)
from fastinit.mm.expected import (ExpectedState, deferred_free, expected_state,
                                  late_pageblocks)
from fastinit.mm.run import BootResult
from fastinit.mm.verify_report import Check, VerifyReport

# Sections per kernel call: progress is reported after each batch (32 MiB of descriptors).
_BATCH = 16
# What each thread of the section pass holds (`_SectionPass.scratch`): a section's
# descriptors and two bytes per page, its pageblocks.
_SCRATCH_BYTES = PAGES_PER_SECTION * (PAGE_DTYPE.itemsize + 2) + PAGEBLOCKS_PER_SECTION


def section_pass_threads(threads: int | None) -> int:
    """Threads for the section pass: as asked (None: the usable CPUs), but no more than
    a quarter of the memory left holds scratch for. 64 CPUs in a container of 256 MiB
    had 64 threads' scratch (135 MiB) push the memmap file's pages out as it was read."""
    wanted = threads if threads is not None else usable_cpus()
    return max(1, min(wanted, available_memory() // 4 // _SCRATCH_BYTES))


def buddy_decomposition(start: int, end: int) -> list[tuple[int, int]]:
    """Largest naturally aligned blocks (order <= MAX_ORDER) covering ``[start, end)``."""
    blocks, pfn = [], start
    while pfn < end:
        order = largest_order(pfn, end)
        blocks.append((pfn, order))
        pfn += 1 << order
    return blocks


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view: what the check kernels take (a memmap file is mapped read-only)."""
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def _zone_name(result: BootResult, pfn: int) -> str:
    for node in result.plan.nodes:
        for zone in node.zones:
            if zone.start_pfn <= pfn < zone.end_pfn:
                return f"node {node.nid} zone {zone.name}"
    return "no zone"


_LIST_PROBLEMS = {
    lists.BAD_LINK: "link {value:#x} points to no descriptor",
    lists.PREV_BROKEN: "pfn {value:#x} prev link is broken",
    lists.NOT_A_FREE_BLOCK: "pfn {value:#x} is not a free block of that order in that zone",
    lists.WRONG_MIGRATETYPE: "pfn {value:#x} sits on the wrong migratetype",
    lists.LISTED_TWICE: "pfn {value:#x} is listed twice or the list loops",
    lists.TOO_LONG: "the list goes on past nr_free = {nr_free} entries (at pfn {value:#x})",
    lists.HEAD_PREV: "head's prev is not the last entry",
    lists.COUNT_MISMATCH: "{value} entries but nr_free says {nr_free}",
    lists.NR_FREE_IMPOSSIBLE: "nr_free = {value} is more than the zone's {span} pages hold",
}


def check_free_lists(result: BootResult, check: Check) -> tuple[np.ndarray, int]:
    """Walk every zone's lists. Returns the bit per descriptor of the listed blocks
    (uint8, shape (ceil(nr_pages / 8),)) and how many blocks the lists hold."""
    memmap = result.memmap
    pages, pageblock_mt = _readonly(memmap.pages), _readonly(memmap.pageblock_mt)
    present = _readonly(memmap.sections)
    listed = np.zeros((len(pages) + 7) // 8, np.uint8)
    blocks = 0
    deferred = deferred_free(result.plan)
    for (nid, zid), area in sorted(result.zones.items()):
        zone = result.plan.topology.zone(nid, zid)
        found = np.zeros((lists.NR_KINDS, 4), np.int64)
        nr_free = np.ascontiguousarray(area.nr_free, np.int64)
        deferred_from, late = late_pageblocks(deferred, zone)
        late = _readonly(late)
        blocks += lists.walk_free_lists(pages, pageblock_mt, present,
                                        np.ascontiguousarray(area.heads, np.uint64), nr_free,
                                        zone.start_pfn, zone.end_pfn,
                                        zone_id(page_links(nid, zid)), area.list_base,
                                        late, deferred_from, listed, found)
        for kind, (count, order, migratetype, value) in enumerate(found.tolist()):
            if not count:
                continue
            if kind == lists.BAD_LINK:
                value &= (1 << 64) - 1
            text = _LIST_PROBLEMS[kind].format(value=value, span=zone.spanned,
                                               nr_free=int(nr_free[order, migratetype]))
            more = f" ({count} such problems in the zone's lists)" if count > 1 else ""
            check.problem(f"node {nid} zone {zone.name} order {order} list {migratetype} "
                          f"({MIGRATETYPE_NAMES[migratetype]}): {text}{more}")
    check.summary = f"free lists well-formed ({blocks} blocks)"
    return listed, blocks


class _SectionPass:
    """What every chunk of the section pass needs (the job's ``fn_arg``)."""

    def __init__(self, result: BootResult, expected: ExpectedState, listed: np.ndarray,
                 progress: Callable[[int], None] | None):
        memmap = result.memmap
        words = memmap.pages.view(np.uint64) if memmap.pages.size else np.zeros(0, np.uint64)
        self.arrays = (_readonly(words), _readonly(memmap.pageblock_mt),
                       _readonly(memmap.sections))
        self.expected = tuple(_readonly(a) for a in (
            expected.pieces, expected.piece_links, expected.piece_reserved, expected.movable,
            expected.jobs, expected.job_links, expected.job_list_base, expected.job_free,
            expected.job_free_bounds, listed))
        self.progress = progress
        self.lock = threading.Lock()
        self.spare: list[tuple] = []
        self.out = np.zeros((kinds.NR_KINDS, 2), np.int64)

    def scratch(self) -> tuple:
        with self.lock:
            if self.spare:
                return self.spare.pop()
        pages = np.empty(PAGES_PER_SECTION, PAGE_DTYPE)
        return (pages, pages.view(np.uint64), np.empty(PAGEBLOCKS_PER_SECTION, np.uint8),
                new_local_lists(), np.empty(PAGES_PER_SECTION, np.int8),
                np.empty(PAGES_PER_SECTION, np.uint8))

    def close(self) -> None:
        """Let go of the memmap and the scratch memory when the checks end, not when this
        object is collected: a memmap file stays locked while its arrays live."""
        self.arrays = self.expected = None
        self.spare.clear()

    def add(self, out: np.ndarray, scratch: tuple) -> None:
        with self.lock:
            self.spare.append(scratch)
            for kind in np.flatnonzero(out[:, 0]):
                if self.out[kind, 0] == 0 or out[kind, 1] < self.out[kind, 1]:
                    self.out[kind, 1] = out[kind, 1]
            self.out[:, 0] += out[:, 0]


def _check_slots(start: int, end: int, ctx: _SectionPass) -> None:
    """The job's thread function: checks 1, 3 and 4 over the sections in slots [start, end)."""
    scratch = ctx.scratch()
    out = np.zeros((kinds.NR_KINDS, 2), np.int64)
    try:
        for lo in range(start, end, _BATCH):
            hi = min(lo + _BATCH, end)
            check_sections(*ctx.arrays, lo, hi, *ctx.expected, *scratch, out)
            if ctx.progress is not None:
                ctx.progress((hi - lo) * PAGES_PER_SECTION)
    finally:
        ctx.add(out, scratch)


def _report_sections(result: BootResult, expected: ExpectedState, out: np.ndarray,
                     blocks: int, report: VerifyReport, pool_checks=None) -> None:
    # pool_checks: fastinit.mm.hugetlb.verify for a boot with pools (managed counts more).
    reference, free_lists, buddy, state = report.checks
    count = {kind: int(out[kind, 0]) for kind in range(kinds.NR_KINDS)}
    first = {kind: int(out[kind, 1]) for kind in range(kinds.NR_KINDS)}
    if count[kinds.REFERENCE_DIFFERS]:
        reference.problem(f"descriptor of pfn {first[kinds.REFERENCE_DIFFERS]:#x} differs "
                          f"from the serial reference ({count[kinds.REFERENCE_DIFFERS]} "
                          f"descriptors differ)")
    if count[kinds.REFERENCE_MIGRATETYPE_DIFFERS]:
        reference.problem(f"pageblock migratetypes differ from the serial reference "
                          f"({count[kinds.REFERENCE_MIGRATETYPE_DIFFERS]} pageblocks, the "
                          f"first at pfn {first[kinds.REFERENCE_MIGRATETYPE_DIFFERS]:#x})")
    if count[kinds.REFERENCE_SKIPPED]:
        reference.problem(f"{count[kinds.REFERENCE_SKIPPED]} sections could not be redone "
                          f"(a pageblock migratetype out of range), the first at pfn "
                          f"{first[kinds.REFERENCE_SKIPPED]:#x}")
    reference.summary = (f"deferred init equals the serial reference "
                         f"({count[kinds.COMPARED]} descriptors byte for byte, free-block "
                         f"links aside)")
    if count[kinds.NOT_LISTED]:
        free_lists.problem(f"{count[kinds.NOT_LISTED]} descriptors are free-block heads on "
                           f"no free list, the first at pfn {first[kinds.NOT_LISTED]:#x} "
                           f"(the lists hold {blocks} blocks, {count[kinds.HEADS]} "
                           f"descriptors head one)")
    if count[kinds.NOT_CANONICAL]:
        pfn = first[kinds.NOT_CANONICAL]
        buddy.problem(f"free blocks are not the buddy decomposition of the free pages: "
                      f"{count[kinds.NOT_CANONICAL]} descriptors differ, the first at pfn "
                      f"{pfn:#x} ({_zone_name(result, pfn)})")
    for (nid, zid), free in expected.zone_free.items():
        if pool_checks is not None:
            pages = pool_checks.expected_managed(result, nid, zid)
        else:
            pages = int((free[:, 1] - free[:, 0]).sum()) if len(free) else 0
        if result.zones[(nid, zid)].managed != pages:
            buddy.problem(f"node {nid} zone {result.plan.topology.zone(nid, zid).name}: "
                          f"managed {result.zones[(nid, zid)].managed}, free pages {pages}")
    buddy.summary = "free blocks are the canonical buddy decomposition; managed counts them"
    _report_states(result, count, first, state)


def _report_states(result: BootResult, count: dict, first: dict, state: Check) -> None:
    memmap = result.memmap
    if count[kinds.WRONG_STATE]:
        state.problem(f"{count[kinds.WRONG_STATE]} descriptors hold a wrong state, first "
                      f"pfn {first[kinds.WRONG_STATE]:#x}")
    for kind, what in ((kinds.MIGRATETYPE_INVALID, f"a migratetype >= {MIGRATE_TYPES}"),
                       (kinds.MIGRATETYPE_WRONG, "the wrong migratetype")):
        if count[kind]:
            value = int(memmap.pageblock_mt[memmap.index(first[kind]) // PAGEBLOCK_NR_PAGES])
            state.problem(f"{count[kind]} pageblocks hold {what}, the first at pfn "
                          f"{first[kind]:#x} ({value})")
    state.summary = (f"every descriptor holds its expected state ({count[kinds.CHECKED]} "
                     f"descriptors, {len(memmap.pageblock_mt)} pageblocks)")


def verify(result: BootResult, *, threads: int | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyReport:
    """Run the four checks on a finished boot; its time goes to ``result.timings["verify"]``.

    Parameters
    ----------
    result : BootResult
        A boot's result, or `fastinit.mm.run.load` of a memmap file.
    threads : int or None
        Threads for the section pass (None: the usable CPUs).
    progress : callable or None
        ``progress(done, total)`` in descriptors checked, as the section pass advances
        (any thread; ``total`` is ``len(memmap.pages)``).

    Returns
    -------
    VerifyReport
        ``ok`` is True only if every check passed.
    """
    began = time.perf_counter()
    report = VerifyReport([Check("serial reference"), Check("free lists"),
                           Check("canonical buddy state"), Check("expected state")])
    expected = expected_state(result.plan)
    pool_checks = None
    if result.pools is not None:
        # Imported for boots with pools only: it brings the pool kernels (see
        # fastinit.mm.hugetlb). The pools changed some blocks after deferred init: those
        # are checked on their own.
        from fastinit.mm.hugetlb import verify as pool_checks
        expected = pool_checks.with_pools(expected, result)
    listed, blocks = check_free_lists(result, report.checks[1])
    tally = Tally(progress, len(result.memmap.sections) * PAGES_PER_SECTION)
    ctx = _SectionPass(result, expected, listed, tally.add if progress is not None else None)
    try:
        do_multithreaded(Job(_check_slots, start=0, size=len(result.memmap.sections), align=1,
                             min_chunk=1, max_threads=section_pass_threads(threads),
                             fn_arg=ctx))
    finally:
        ctx.close()
    _report_sections(result, expected, ctx.out, blocks, report, pool_checks)
    if pool_checks is not None:
        report.checks.append(Check("HugeTLB pools"))
        pool_checks.check_pools(result, report.checks[-1], listed)
    report.tallies = {name.lower(): (int(ctx.out[kind, 0]),
                                     int(ctx.out[kind, 1]) if ctx.out[kind, 0] else -1)
                      for kind, name in enumerate(kinds.KIND_NAMES)}
    report.elapsed = result.timings["verify"] = time.perf_counter() - began
    return report
