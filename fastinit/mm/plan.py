"""What a boot will do, decided before any descriptor is written.

From a topology: where each node's memmap is allocated (memblock, top-down, on the node
itself), which memory stays reserved, which ranges are free, where deferral starts, the
range of each node's deferred job, and how many threads the architecture profile allows.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from fastinit.validate import check_int, check_threads
from fastinit.machine.hugetlb_params import parse_hugetlb
from fastinit.machine.hugetlb_job import alloc_chunks
from fastinit.machine.kernel_rules import low_reserved
from fastinit.mm.hugetlb.buddy_plan import plan_buddy_pools, zone_rooms
from fastinit.mm.hugetlb.plan import PoolPlan, online_nodes, place_gigantic
from fastinit.mm.memmap import memmap_bytes
from fastinit.layout import HPAGE_PMD_NR, PAGE_SHIFT, SECTION_MAP_PAGES, SECTION_SHIFT
from fastinit.machine.ranges import alloc_top_down, section_runs
from fastinit.machine.topology import (Range, Topology, Zone, intersect, merge_ranges,
                                       section_align_up, subtract)

ARCH_PROFILES = {
    "x86": "Linux 5.8 on x86-64: all CPUs of the node (at least 1)",
    "generic": "Linux 5.8 on other architectures: 1 thread per node",
    "linux-6.11": "Linux 6.11 and later, every architecture: all CPUs of the node",
}
DEFAULT_ARCH = "x86"

# x86 reserves the first 1 MiB since Linux 5.13 (BIOS corruption, real-mode trampoline),
# 64 KiB before (kernel_rules.low_reserved).
# The vmemmap of a section is 2 MiB, allocated PMD-aligned, above MAX_DMA_ADDRESS (16 MiB).
MEMMAP_ALIGN = HPAGE_PMD_NR
MEMMAP_MIN_PFN = (16 << 20) >> PAGE_SHIFT


def node_max_threads(arch: str, cpus: int) -> int:
    """The per-node thread cap of ``deferred_page_init_max_threads()`` for ``arch``."""
    if arch not in ARCH_PROFILES:
        raise ValueError(f"unknown arch profile {arch!r}; choose one of "
                         f"{', '.join(ARCH_PROFILES)}")
    return 1 if arch == "generic" else max(cpus, 1)


@dataclass(frozen=True)
class NodePlan:
    """One node's part of the boot.

    Attributes
    ----------
    nid, cpus, max_threads : int
    zones : tuple of Zone
    first_deferred_pfn : int or None
        Where deferral starts; None if the node defers nothing.
    job : (int, int)
        The deferred job's units, ``[first_deferred_pfn, SECTION_ALIGN_UP(zone end))``.
    reserved : tuple of (int, int)
        memblock-reserved pfn ranges in the node's memory, the memmap included.
    memmap : tuple of (int, int)
        Where the node's own memmap lives, in the order of the sections it holds (each
        range a whole number of 2 MiB section maps); reserved in the ``reserved`` of the
        node whose memory holds it (this node's, unless its memory was full).
    """

    nid: int
    cpus: int
    max_threads: int
    zones: tuple[Zone, ...]
    first_deferred_pfn: int | None
    job: tuple[int, int]
    reserved: tuple[Range, ...]
    memmap: tuple[Range, ...]

    @property
    def deferred_zone(self) -> Zone | None:
        return self.zones[-1] if self.first_deferred_pfn is not None else None


@dataclass(frozen=True)
class BootPlan:
    """A whole boot's plan: the nodes', and the HugeTLB boot pools (``pools``: gigantic
    pages are reserved in ``NodePlan.reserved``; 2 MiB pages come from the buddy
    allocator after deferred init)."""

    topology: Topology
    arch: str
    nodes: tuple[NodePlan, ...]
    sections: np.ndarray
    pools: PoolPlan | None = None

    @property
    def memmap_bytes(self) -> int:
        return memmap_bytes(len(self.sections))

    def node(self, nid: int) -> NodePlan:
        """The plan of node ``nid``; ValueError naming the nodes there are if it has none."""
        nid = check_int(nid, "nid")
        for node in self.nodes:
            if node.nid == nid:
                return node
        raise ValueError(f"node {nid} is not in this plan (it has no memory or does not "
                         f"exist); planned nodes: {', '.join(str(n.nid) for n in self.nodes)}")

    def unavailable_ranges(self) -> list:
        """The holes (`Topology.unavailable_ranges`) charged to the planned nodes: all of
        them for a whole machine's plan, one node's for a shard's (see `shard`)."""
        nids = {node.nid for node in self.nodes}
        return [hole for hole in self.topology.unavailable_ranges() if hole.nid in nids]

    def shard(self, nid: int) -> BootPlan:
        """The plan of node ``nid`` alone, to boot on a memmap of its own.

        The node's plan is the whole boot's (reservations, memmap placement, deferral and
        thread cap come from planning every node), so the shard's descriptors and buddy
        state are byte for byte that node's part of the whole boot. Its sections are those
        holding the node's descriptors: its memory and the holes charged to it. A section
        shared with a neighbour node is in both shards; each writes only its own pfns.
        Its HugeTLB pools are the node's (`fastinit.mm.hugetlb.plan.PoolPlan.of_node`).
        """
        ranges = list(self.topology.node(nid).ranges) + [
            (hole.start_pfn, hole.end_pfn) for hole in self.unavailable_ranges()
            if hole.nid == nid]
        node = self.node(nid)
        bounds = np.array(ranges, dtype=np.int64).reshape(-1, 2)
        lo = np.searchsorted(self.sections, bounds[:, 0] >> SECTION_SHIFT)
        hi = np.searchsorted(self.sections, ((bounds[:, 1] - 1) >> SECTION_SHIFT) + 1)
        # A mask, not np.unique of the slots: its hashing takes seconds on 2**22 sections.
        keep = np.zeros(len(self.sections), dtype=bool)
        for a, b in zip(lo.tolist(), hi.tolist()):
            keep[a:b] = True
        pools = self.pools.of_node(nid) if self.pools is not None else None
        return replace(self, nodes=(node,), sections=self.sections[keep], pools=pools)

    def deferred_jobs(self, nid: int) -> list[Range]:
        """The padata jobs of node ``nid``'s deferred init, as the modelled kernel runs them.

        Since Linux 6.18 (kernel rule ``deferred_job_per_zone``) one job, ``NodePlan.job``;
        before, ``deferred_init_memmap()`` ran one job per free memblock range of the zone
        from ``first_deferred_pfn``, each to the range's end rounded up to a section, the
        next from the first free range past that end.
        """
        node = self.node(nid)
        if node.first_deferred_pfn is None:
            return []
        if self.topology.kernel.has("deferred_job_per_zone"):
            return [node.job]
        jobs: list[Range] = []
        for start, end in self.free_ranges(nid, node.first_deferred_pfn,
                                           node.deferred_zone.end_pfn).tolist():
            if jobs and end <= jobs[-1][1]:
                continue  # freed by the job before, which reached past it
            start = max(start, jobs[-1][1]) if jobs else start
            jobs.append((start, section_align_up(end)))
        return jobs

    def free_ranges(self, nid: int, lo: int, hi: int) -> np.ndarray:
        """The node's memory in ``[lo, hi)`` minus reserved memory, shape (n, 2) int64."""
        plan = self.node(nid)
        memory = intersect(self.topology.node(nid).ranges, lo, hi)
        free = subtract(memory, list(plan.reserved))
        return np.array(free, dtype=np.int64).reshape(-1, 2)


def sparse_groups(topology: Topology) -> list[tuple[int, int]]:
    """``(nid, sections)`` of each ``sparse_init_nid()`` call, in order: ``sparse_init()``
    walks the present sections in address order and calls it once per run of sections of
    one node (sections without memory between them do not end a run)."""
    groups: list[tuple[int, int]] = []
    for first, end, nid in section_runs(topology.memory_ranges()):
        if groups and groups[-1][0] == nid:
            groups[-1] = (nid, groups[-1][1] + end - first)
        else:
            groups.append((nid, end - first))
    return groups


def _memblock_alloc(topology: Topology, reserved: list[Range], pages: int,
                    tries: tuple) -> Range | None:
    """The first of ``tries`` (``(nid or None for any node, min_pfn)``) that fits, as
    ``memblock_alloc_range_nid()`` and ``memblock_alloc_internal()`` retry: on the node,
    then (unless the node is exact) on any node, then the same without the lower limit."""
    for nid, min_pfn in tries:
        memory = (list(topology.node(nid).ranges) if nid is not None else
                  [(s, e) for s, e, _ in topology.memory_ranges()])
        place = alloc_top_down(subtract(memory, reserved), pages, MEMMAP_ALIGN, min_pfn)
        if place is not None:
            return place
    return None


def _place_memmap(topology: Topology, nid: int, nr_sections: int,
                  reserved: list[Range]) -> list[Range]:
    """Where ``sparse_init_nid()`` puts the memmap of a run of ``nr_sections`` sections of
    node ``nid``, in section order: one buffer on the node itself
    (``sparse_buffer_init()``: exact node, above 16 MiB, else anywhere on the node), or,
    if the node has no room for it, each section's 2 MiB on its own
    (``vmemmap_alloc_block()``: the node above 16 MiB, any node above 16 MiB, the node,
    any node)."""
    pages = nr_sections * SECTION_MAP_PAGES
    whole = _memblock_alloc(topology, reserved, pages,
                            ((nid, MEMMAP_MIN_PFN), (nid, 0)))
    if whole is not None:
        return [whole]
    placed: list[Range] = []
    for _ in range(nr_sections):
        piece = _memblock_alloc(topology, reserved + placed, SECTION_MAP_PAGES,
                                ((nid, MEMMAP_MIN_PFN), (None, MEMMAP_MIN_PFN), (nid, 0),
                                 (None, 0)))
        if piece is None:
            raise ValueError(f"{topology.source}: no memory left for the memmap of node "
                             f"{nid} ({nr_sections} sections need {nr_sections * 2} MiB, "
                             f"and no node has 2 MiB free for one); give the machine more "
                             f"memory")
        placed.append(piece)
    return placed


def plan_boot(topology: Topology, arch: str = DEFAULT_ARCH,
              threads: int | None = None) -> BootPlan:
    """Decide reservations, free ranges, deferral and thread caps for every node.

    Parameters
    ----------
    topology : Topology
    arch : str
        A key of `ARCH_PROFILES`.
    threads : int or None
        Threads per node, overriding the arch profile.
    """
    threads = check_threads(threads, fix="threads per node, or None for the arch profile's cap")
    sections = topology.present_sections()
    memory = [(s, e) for s, e, _ in topology.memory_ranges()]
    reserved = list(topology.reserved) + intersect(memory, *low_reserved(topology.kernel))
    memmaps: dict[int, list[Range]] = {node.nid: [] for node in topology.memory_nodes}
    for nid, count in sparse_groups(topology):
        placed = _place_memmap(topology, nid, count, reserved)
        memmaps[nid] += placed
        reserved += placed
    # The command line's gigantic pages come from memblock after the memmaps.
    params = parse_hugetlb(topology.cmdline, online_nodes(topology), topology.gbpages,
                           topology.kernel)
    gigantic, messages = place_gigantic(topology, params, reserved)
    reserved += [(pfn, pfn + (1 << order)) for pfn, order, _ in gigantic]
    nodes = []
    for node in topology.memory_nodes:
        node_reserved = [r for lo, hi in reserved for r in intersect(node.ranges, lo, hi)]
        first = topology.first_deferred_pfn(node.nid)
        zones = tuple(topology.zones(node.nid))
        job = (first, section_align_up(zones[-1].end_pfn)) if first is not None else (0, 0)
        cap = threads if threads is not None else node_max_threads(arch, node.cpus)
        nodes.append(NodePlan(node.nid, node.cpus, cap, zones, first, job,
                              tuple(merge_ranges(node_reserved)), tuple(memmaps[node.nid])))
    plan = BootPlan(topology, arch, tuple(nodes), sections)
    # 2 MiB pages: from the buddy allocator's state after deferred init.
    memory_nodes = [node.nid for node in topology.memory_nodes]
    cpus = sum(node.cpus for node in topology.nodes)
    buddy, buddy_messages, limited = plan_buddy_pools(
        params, zone_rooms(plan), memory_nodes,
        lambda pages: alloc_chunks(topology.kernel, pages, len(memory_nodes), cpus))
    pools = PoolPlan(params, tuple(gigantic), tuple(messages), buddy, tuple(buddy_messages),
                     tuple(limited))
    return BootPlan(topology, arch, tuple(nodes), sections, pools)
