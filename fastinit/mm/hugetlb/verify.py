"""Checks of a boot's HugeTLB pools, for `fastinit.mm.verify`.

The pools change memory after deferred init, so verify's section pass cannot hold it to
the serial reference nor to the state boot leaves: the max-order blocks they touched
(`touched_ranges`) become pieces this module checks (`with_pools`), and each zone's free
memory and managed pages are what the buddy allocator should hold now (`free_ranges`,
`expected_managed`). `check_pools` then checks:

- the pools hold what the plan says, node by node and size by size;
- every per-node free list of every size is well formed and holds exactly its pages;
- every descriptor of every pool page, and every other descriptor of the touched blocks
  (`fastinit.mm.hugetlb.verify_descriptors`);
- that HVO's remapping is real: every other page of a remapped huge page's descriptors is
  a mapping of the memfd (or file) page its first page maps (in a private copy of a file,
  `fastinit.arrays.snapshot`: a copy of that page, and nothing maps the file), and the
  memmap's resident size is the ideal (its size less what was released; in a file: those
  blocks are holes, read with SEEK_DATA, never through a mapping).
"""

from __future__ import annotations

import bisect
from dataclasses import replace

import numpy as np

from fastinit.kernels.descriptors import lru_pfn
from fastinit.kernels.check_sections import CHECKED_ELSEWHERE
from fastinit.kernels.compound import HPG_FREED
from fastinit.layout import MAX_ORDER, PAGE_SIZE, align_up
from fastinit.machine.ranges import merge_ranges, subtract
from fastinit.mm.expected import expected_state, range_difference
from fastinit.mm.hugetlb.verify_descriptors import check_blocks, check_page
from fastinit.mm.hugetlb.result import freelist_address
from fastinit.mm.hugetlb.hvo import file_mappings, resident_bytes


def pool_ranges(result) -> list[tuple[int, int]]:
    """pfn ranges of every pool page (merged)."""
    pools = result.pools
    return merge_ranges((int(pfn), int(pfn) + (1 << order)) for order in pools.pages
                        for pfn in pools.heads(order))


def free_ranges(result, nid: int, lo: int, hi: int) -> np.ndarray:
    """Free memory of node ``nid`` in ``[lo, hi)`` now: the plan's, less the pages the
    pools took from the buddy allocator, plus the vmemmap pages HVO gave back.

    Returns
    -------
    ndarray of int64, shape (n, 2)
    """
    free = [tuple(r) for r in result.plan.free_ranges(nid, lo, hi).tolist()]
    if result.pools is None:
        return np.array(free, dtype=np.int64).reshape(-1, 2)
    free = subtract(free, pool_ranges(result))
    freed = [(max(s, lo), min(e, hi)) for n, _, s, e in result.pools.freed_vmemmap
             if n == nid and s < hi and e > lo]
    return np.array(merge_ranges(free + freed), dtype=np.int64).reshape(-1, 2)


def touched_ranges(result) -> list[tuple[int, int]]:
    """The max-order blocks the pools changed after deferred init (pool pages, the halves
    split off them, the vmemmap HVO freed and what it merged with), as pfn ranges."""
    if result.pools is None:
        return []
    changed = pool_ranges(result) + [(s, e) for _, _, s, e in result.pools.freed_vmemmap]
    size = 1 << MAX_ORDER
    return merge_ranges((s // size * size, align_up(e, size)) for s, e in changed)


def with_pools(expected, result):
    """`fastinit.mm.expected.ExpectedState` of a boot with pools: the blocks they touched
    become pieces checked here (`CHECKED_ELSEWHERE`), out of the deferred jobs' free
    ranges too (the serial reference redoes deferred init, which they came after), and
    each zone's free ranges are what the buddy allocator holds now."""
    touched = np.array(touched_ranges(result), dtype=np.int64).reshape(-1, 2)
    if not len(touched):
        return expected
    pieces, links, kinds = [], [], []
    for (start, end), link, kind in zip(expected.pieces.tolist(),
                                        expected.piece_links.tolist(),
                                        expected.piece_reserved.tolist()):
        for piece in range_difference(np.array([[start, end]], np.int64), touched).tolist():
            pieces.append(piece)
            links.append(link)
            kinds.append(kind)
    pieces += touched.tolist()
    links += [0] * len(touched)
    kinds += [CHECKED_ELSEWHERE] * len(touched)
    order = np.argsort(np.array(pieces, np.int64)[:, 0], kind="stable")
    jobs_free = []
    bounds = expected.job_free_bounds
    for x in range(len(expected.jobs)):
        jobs_free.append(range_difference(expected.job_free[bounds[x]:bounds[x + 1]], touched))
    zone_free = {(nid, zid): free_ranges(result, nid, *_zone_span(result, nid, zid))
                 for nid, zid in expected.zone_free}
    return replace(expected,
                   pieces=np.ascontiguousarray(np.array(pieces, np.int64)[order]),
                   piece_links=np.array(links, np.uint64)[order],
                   piece_reserved=np.array(kinds, np.uint8)[order],
                   job_free=np.ascontiguousarray(np.concatenate(jobs_free)
                                                 if jobs_free else expected.job_free),
                   job_free_bounds=np.cumsum([0] + [len(f) for f in jobs_free]).astype(np.int64),
                   zone_free=zone_free)


def _zone_span(result, nid: int, zid: int) -> tuple[int, int]:
    zone = result.plan.topology.zone(nid, zid)
    return zone.start_pfn, zone.end_pfn


def expected_managed(result, nid: int, zid: int) -> int:
    """A zone's ``managed`` pages after the pools (without them, its free pages): the free
    memory deferred init left (2 MiB pool pages stay managed) plus what the pools added:
    gigantic pages given back to ``totalram``, vmemmap pages HVO freed."""
    start, end = _zone_span(result, nid, zid)
    plan_free = result.plan.free_ranges(nid, start, end)
    pages = int((plan_free[:, 1] - plan_free[:, 0]).sum()) if len(plan_free) else 0
    return pages + result.pools.managed_added.get((nid, zid), 0)


def check_pools(result, check, listed: np.ndarray) -> None:
    """Every check of the pools; problems go to ``check`` (a `fastinit.mm.verify.Check`).

    ``listed`` holds a bit per descriptor on a zone's free list (verify's list walk).
    """
    pools, plan = result.pools, result.plan
    if pools.counts() != plan.pools.counts():
        check.problem(f"the pools hold {pools.counts()} huge pages per node and size, the "
                      f"plan {plan.pools.counts()}")
    pages = _check_freelists(result, check)
    descriptors = 0
    for order, batches in sorted(pools.pages.items()):
        for heads, nid in batches:
            for pfn in heads.tolist():
                wrong = check_page(result, pfn, order, nid)
                if wrong:
                    check.problem(f"huge page at pfn {pfn:#x} (order {order}, node {nid}): "
                                  f"{', '.join(wrong)}")
                descriptors += 1 << order
    expected = _plan_pieces(result)
    free = np.concatenate([free_ranges(result, node.nid, zone.start_pfn, zone.end_pfn)
                           for node in plan.nodes for zone in node.zones])
    free = free[np.argsort(free[:, 0], kind="stable")]
    around, problems = check_blocks(result, touched_ranges(result), free, pool_ranges(result),
                                    expected, listed)
    for problem in problems:
        check.problem(problem)
    check.summary = (f"HugeTLB pools: {pages} pages on well-formed per-node free lists, "
                     f"{descriptors} descriptors as the kernel writes them, {around} around "
                     f"them as the buddy allocator leaves them")
    if pools.remapper is not None:
        check.summary += "; " + _check_hvo(result, check)


def _plan_pieces(result):
    expected = expected_state(result.plan)
    return expected.pieces, expected.piece_links, expected.piece_reserved


def _check_freelists(result, check) -> int:
    """Walk each size's per-node free list; returns the pages found."""
    pools, memmap = result.pools, result.memmap
    expected = {}
    for order, batches in pools.pages.items():
        for heads, nid in batches:
            expected.setdefault((order, nid), set()).update(heads.tolist())
    seen = 0
    for index, request in enumerate(result.plan.pools.params.hstates):
        for node in result.plan.nodes:
            want = expected.get((request.order, node.nid), set())
            head = freelist_address(index, node.nid)
            first, last = pools.freelists.get((index, node.nid), (head, head))
            previous, address, found = head, first, set()
            where = f"HugeTLB {request.name} free list of node {node.nid}"
            while address != head and len(found) <= len(want):
                pfn = int(lru_pfn(address))
                if pfn not in want or pfn in found:
                    check.problem(f"{where}: pfn {pfn:#x} does not belong there")
                    break
                page = memmap.pages[memmap.index(pfn)]
                if int(page["lru_prev"]) != previous:
                    check.problem(f"{where}: pfn {pfn:#x} prev link is broken")
                if not int(page["private"]) & HPG_FREED:
                    check.problem(f"{where}: pfn {pfn:#x} is not marked free (HPG_freed)")
                found.add(pfn)
                previous, address = address, int(page["lru_next"])
            if previous != last or found != want:
                check.problem(f"{where}: holds {len(found)} pages, {len(want)} expected")
            seen += len(found)
    return seen


def _check_hvo(result, check) -> str:
    """The remapping is real and the memmap's residency is the ideal (in a file: the
    aliased pages' blocks released); returns a summary."""
    remapper = result.pools.remapper
    copied = result.memmap.file is not None and remapper.copied
    broken = _copied_tails(result.memmap, remapper, check) if copied else \
        _mapped_tails(remapper)
    if broken:
        check.problem(f"{broken} remapped huge pages have vmemmap pages that are not "
                      f"{'copies' if copied else 'mappings'} of their kept page")
    resident = resident_bytes(result.memmap, remapper)
    ideal = result.memmap.pages.nbytes - remapper.released_bytes
    how = "copies of the file read without a lease" if copied else \
        f"{remapper.mappings} mappings"
    summary = (f"HVO: {remapper.remapped} huge pages' vmemmap remapped onto one page each "
               f"({how}), memmap resident {resident >> 20} MiB, ideal "
               f"{ideal >> 20} MiB")
    if result.memmap.file is not None:
        # A file's pages are page cache the kernel may write back and reclaim: its
        # saving is checked on disk instead.
        kept = remapper.unreleased()
        if kept:
            check.problem(f"{kept} remapped huge pages' vmemmap still holds blocks of "
                          f"the memmap file")
        return summary + f"; {remapper.released_bytes >> 10} KiB of the file released"
    # A memmap touched in full at boot is resident in full, less what HVO released.
    if "sparse_init" in result.timings and resident != ideal:
        check.problem(f"memmap resident {resident} bytes with HVO, ideal {ideal}")
    return summary


def _mapped_tails(remapper) -> int:
    """Remapped huge pages some of whose tail pages do not map their kept page's page of
    the memfd (or file)."""
    maps = file_mappings(remapper.ident)
    base = remapper.base // PAGE_SIZE
    broken = 0
    for first, pages in remapper.aliases:
        offsets = {_offset_at(maps, base + first + page) for page in range(1, pages)}
        kept = _offset_at(maps, base + first)
        broken += kept is None or offsets != {kept}
    return broken


def _copied_tails(memmap, remapper, check) -> int:
    """A memmap file read into a private copy (no read lease, `fastinit.arrays.snapshot`):
    HVO's tails are copies of their kept page, not mappings, and nothing in the memmap
    maps the file (a truncation by another process could SIGBUS it). Returns the huge
    pages whose tails differ from their kept page; a mapping of the file goes to
    ``check``."""
    lo = memmap.raw.ctypes.data // PAGE_SIZE
    hi = lo + -(-memmap.raw.nbytes // PAGE_SIZE)
    mapped = sum(min(end, hi) - max(start, lo)
                 for start, end, _ in file_mappings(remapper.ident) if start < hi and end > lo)
    if mapped:
        check.problem(f"the private copy of the memmap file maps {mapped} pages of the "
                      f"file itself")
    raw = memmap.raw
    broken = 0
    for first, pages in remapper.aliases:
        words = raw[first * PAGE_SIZE:(first + pages) * PAGE_SIZE].view(np.uint64)
        words = words.reshape(pages, -1)
        broken += bool((words[1:] != words[0]).any())
    return broken


def _offset_at(maps, page: int) -> int | None:
    index = bisect.bisect_right(maps, (page, float("inf"), 0)) - 1
    if index >= 0 and maps[index][0] <= page < maps[index][1]:
        start, _, offset = maps[index]
        return offset + page - start
    return None
