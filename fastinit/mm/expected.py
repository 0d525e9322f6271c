"""What a booted memmap must hold, derived from the plan alone (for `fastinit.mm.verify`).

Nothing here reads the memmap: the plan (a topology validated when it was read) decides,
for every pfn with a descriptor, its node and zone, whether it is free or reserved, which
pageblocks end up MOVABLE, and what each node's deferred job covered. All as sorted int64
range arrays, so the check kernels find a section's part by bisection and the work stays
proportional to the ranges, however many there are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastinit.kernels.descriptors import page_links, zone_list_base
from fastinit.machine.topology import intersect
from fastinit.mm.early import early_limit, neighbours_early_memory
from fastinit.mm.plan import BootPlan


def _ranges(pairs) -> np.ndarray:
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def range_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The pfns in ``a`` and not in ``b`` (both sorted, disjoint, shape (n, 2)) as ranges."""
    if not len(a):
        return _ranges([])
    edges = np.concatenate([a[:, 0], a[:, 1], b[:, 0], b[:, 1]])
    steps = np.concatenate([np.ones(len(a), np.int64), -np.ones(len(a), np.int64),
                            -np.ones(len(b), np.int64), np.ones(len(b), np.int64)])
    order = np.argsort(edges, kind="stable")
    edges, steps = edges[order], steps[order]
    points, first = np.unique(edges, return_index=True)
    # After each point: inside a and not b exactly where (in a) - (in b) == 1.
    inside = np.cumsum(np.add.reduceat(steps, first)) == 1
    was = np.concatenate([[False], inside[:-1]])
    return np.stack([points[inside & ~was], points[~inside & was]], axis=1)


def _stack(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else _ranges([])


@dataclass
class ExpectedState:
    """A booted memmap's expected contents (see `fastinit.kernels.check_sections`).

    Attributes
    ----------
    pieces : ndarray of int64, shape (n, 2)
        Sorted, disjoint pfn ranges: every pfn with a descriptor lies in one.
    piece_links : ndarray of uint64, shape (n,)
        Node and zone links of each piece.
    piece_reserved : ndarray of uint8, shape (n,)
        1 for reserved memory and holes, 0 for free memory.
    movable : ndarray of int64, shape (m, 2)
        A pageblock is MOVABLE exactly when its first pfn lies in one of these.
    jobs : ndarray of int64, shape (k, 2)
        Each deferring node's job, sorted.
    job_links, job_list_base : ndarray of uint64, shape (k,)
    job_free : ndarray of int64, shape (f, 2)
        The jobs' free ranges, job after job.
    job_free_bounds : ndarray of int64, shape (k + 1,)
    zone_free : dict of (nid, zid) to ndarray of int64, shape (z, 2)
        Each zone's free ranges.
    """

    pieces: np.ndarray
    piece_links: np.ndarray
    piece_reserved: np.ndarray
    movable: np.ndarray
    jobs: np.ndarray
    job_links: np.ndarray
    job_list_base: np.ndarray
    job_free: np.ndarray
    job_free_bounds: np.ndarray
    zone_free: dict


def deferred_free(plan: BootPlan) -> dict:
    """``(nid, zid) -> (first_deferred_pfn, free ranges)`` of each deferring node's
    deferred zone: the memory its deferred init frees (int64, shape (n, 2))."""
    return {(node.nid, node.deferred_zone.zid):
            (node.first_deferred_pfn,
             plan.free_ranges(node.nid, node.first_deferred_pfn, node.deferred_zone.end_pfn))
            for node in plan.nodes if node.first_deferred_pfn is not None}


def late_pageblocks(deferred: dict, zone) -> tuple[int, np.ndarray]:
    """For `fastinit.kernels.check_lists.migratetype_fits`: the zone's first deferred pfn
    (its end if it defers nothing) and the other zones' deferred free memory, sorted
    (int64, shape (n, 2)): pageblocks starting there turn MOVABLE during deferred init.
    ``deferred`` is `deferred_free` of the plan."""
    key = (zone.nid, zone.zid)
    late = _stack([free for other, (_, free) in deferred.items() if other != key])
    late = np.ascontiguousarray(late[np.argsort(late[:, 0], kind="stable")], np.int64)
    return (deferred[key][0] if key in deferred else zone.end_pfn), late


def expected_state(plan: BootPlan) -> ExpectedState:
    """What every descriptor and pageblock of ``plan``'s memmap holds after its boot."""
    topology = plan.topology
    pieces, links, reserved, movable, zone_free = [], [], [], [], {}
    jobs = []
    for node in plan.nodes:
        node_ranges = topology.node(node.nid).ranges
        for zone in node.zones:
            link = page_links(node.nid, zone.zid)
            memory = _ranges(intersect(node_ranges, zone.start_pfn, zone.end_pfn))
            free = plan.free_ranges(node.nid, zone.start_pfn, zone.end_pfn)
            taken = range_difference(memory, free)
            zone_free[(node.nid, zone.zid)] = free
            pieces += [free, taken]
            links += [np.full(len(free) + len(taken), link, np.uint64)]
            reserved += [np.zeros(len(free), np.uint8), np.ones(len(taken), np.uint8)]
            # Early init marks all its memory MOVABLE; deferred init the free pageblocks.
            movable.append(_ranges(intersect(node_ranges, zone.start_pfn,
                                             early_limit(node, zone))))
        if node.first_deferred_pfn is not None:
            zone = node.deferred_zone
            free = plan.free_ranges(node.nid, node.first_deferred_pfn, zone.end_pfn)
            movable.append(free)
            jobs.append((node.job, page_links(node.nid, zone.zid),
                         zone_list_base(node.nid, zone.zid), free))
    # A shard's sections may hold pageblocks the neighbours' early init marked.
    movable.append(_ranges(neighbours_early_memory(plan)))
    holes = plan.unavailable_ranges()
    pieces.append(_ranges([(h.start_pfn, h.end_pfn) for h in holes]))
    links.append(np.array([page_links(h.nid, h.zid) for h in holes], np.uint64))
    reserved.append(np.ones(len(holes), np.uint8))
    pieces = _stack(pieces)
    order = np.argsort(pieces[:, 0], kind="stable")
    movable = _stack(movable)
    jobs.sort(key=lambda job: job[0])
    return ExpectedState(
        pieces=np.ascontiguousarray(pieces[order]),
        piece_links=np.concatenate(links)[order],
        piece_reserved=np.concatenate(reserved)[order],
        movable=np.ascontiguousarray(movable[np.argsort(movable[:, 0], kind="stable")]),
        jobs=_ranges([job[0] for job in jobs]),
        job_links=np.array([job[1] for job in jobs], np.uint64),
        job_list_base=np.array([job[2] for job in jobs], np.uint64),
        job_free=_stack([job[3] for job in jobs]),
        job_free_bounds=np.cumsum([0] + [len(job[3]) for job in jobs]).astype(np.int64),
        zone_free=zone_free)
