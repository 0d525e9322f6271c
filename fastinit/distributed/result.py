"""What a distributed boot returns: per node, the worker it ran on and its summary.

Built on the client from the workers' small summaries; the descriptors stay on the
workers. Shaped like `fastinit.mm.run.BootResult` where the report code reads it
(``plan``, ``nodes``, ``zones``, ``memmap.nbytes``/``storage``, ``timings``).
"""

from __future__ import annotations

import re

from dataclasses import dataclass, field

from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.deferred import NodeResult
from fastinit.mm.plan import BootPlan
from fastinit.mm.verify_report import Check, VerifyReport


@dataclass
class NodeShard:
    """One node as its worker booted (and verified) it.

    Attributes
    ----------
    nid : int
    worker : str
        Address of the dask worker that held the shard.
    pid : int
        Its process id.
    node : NodeResult
        Deferred init of the node (threads, chunks, pages, seconds).
    timings : dict of str to float
        The node's boot on its worker: "sparse_init", "early", "deferred" (and "sync").
    task_seconds : float
        The whole task on the worker.
    memmap_bytes : int
        The shard's memmap.
    storage : str
        "memory" or the node's memmap file on the worker's disk.
    attempts : int
        Runs of the node (1, or more after retries on other workers).
    report : VerifyReport or None
    digest, state_digest : str or None
        `fastinit.distributed.digest.node_digest` with and without the free lists' order.
    zones : dict of (nid, zid) to ZoneFreeArea
        The node's zones as its worker left them.
    deferred_end : float
        When its deferred init ended (``time.time()`` on the worker).
    pools : dict or None
        Its HugeTLB pools (`fastinit.distributed.pools.pool_figures`), if it has any.
    """

    nid: int
    worker: str
    pid: int
    node: NodeResult | None
    timings: dict = field(default_factory=dict)
    task_seconds: float = 0.0
    memmap_bytes: int = 0
    storage: str = "memory"
    attempts: int = 1
    report: VerifyReport | None = None
    digest: str | None = None
    state_digest: str | None = None
    zones: dict = field(default_factory=dict)
    deferred_end: float = 0.0
    pools: dict | None = None

    @classmethod
    def from_summary(cls, summary: dict, worker: str, attempts: int = 1) -> NodeShard:
        """The node as its task's summary tells it (`fastinit.distributed.worker`: a boot's
        ``node_task`` or a file's ``verify_file_task``, which has no boot to tell)."""
        return cls(summary["nid"], worker, summary["pid"], summary.get("node"),
                   summary.get("timings", {}), summary.get("task_seconds", 0.0),
                   summary["memmap_bytes"], summary["storage"], attempts,
                   summary.get("report"), summary.get("digest"), summary.get("state_digest"),
                   zones_from(summary["zones"]), summary.get("deferred_end", 0.0),
                   summary.get("pools"))


@dataclass(frozen=True)
class ShardStorage:
    """The memmap of all shards together, as the report prints a memmap."""

    nbytes: int
    storage: str


@dataclass
class DistributedBootResult:
    """A boot whose nodes ran on dask workers.

    Attributes
    ----------
    plan : BootPlan
        The whole machine's plan (every shard was booted from it).
    shards : list of NodeShard
        By node id.
    timings : dict of str to float
        Client side: "connect", "place", "boot" (first task submitted to the last node
        booted), "verify", "release".
    workers : int
        Workers in the cluster.
    """

    plan: BootPlan
    shards: list[NodeShard]
    timings: dict = field(default_factory=dict)
    workers: int = 0

    @property
    def pools(self):
        """The nodes' HugeTLB pools together (`fastinit.distributed.pools.ClusterPools`),
        or None when no node has any."""
        from fastinit.distributed.pools import ClusterPools
        nodes = {shard.nid: shard.pools for shard in self.shards if shard.pools is not None}
        return ClusterPools(nodes) if nodes else None

    @property
    def zones(self) -> dict:
        """Every zone's figures as its worker left them: dict of (nid, zid) to
        ZoneFreeArea."""
        return {key: area for shard in self.shards for key, area in shard.zones.items()}

    @property
    def nodes(self) -> list[NodeResult]:
        """Each node's deferred init (an empty one for nodes read back from files)."""
        return [shard.node or NodeResult(shard.nid, 0, None, 0.0, 0) for shard in self.shards]

    @property
    def memmap(self) -> ShardStorage:
        stored = {shard.storage == "memory" for shard in self.shards}
        where = "worker memory" if stored == {True} else "worker files" \
            if stored == {False} else "worker memory and files"
        return ShardStorage(sum(s.memmap_bytes for s in self.shards),
                            f"{where}, {len(self.shards)} shards on "
                            f"{len({s.worker for s in self.shards})} workers")

    @property
    def digests(self) -> dict[int, dict[str, str]]:
        """Each node's digests as a single-process boot gives them (``{nid: {"digest",
        "state_digest"}}``; empty unless asked for)."""
        return {s.nid: {"digest": s.digest, "state_digest": s.state_digest}
                for s in self.shards if s.digest is not None}

    @property
    def verification(self) -> VerifyReport | None:
        """Every node's verify report as one (None unless every node was verified)."""
        reports = [(shard.nid, shard.report) for shard in self.shards]
        if not reports or any(report is None for _, report in reports):
            return None
        return merge_reports(reports)


def zones_from(figures: dict) -> dict:
    """ZoneFreeArea objects from a worker's ``{(nid, zid): (managed, nr_free, heads)}``."""
    zones = {}
    for (nid, zid), (managed, nr_free, heads) in figures.items():
        area = ZoneFreeArea(nid, zid)
        area.managed, area.nr_free[:], area.heads[:] = managed, nr_free, heads
        zones[(nid, zid)] = area
    return zones


def summed_summary(summaries: list[str], first_nid: int) -> str:
    """The nodes' summaries of one check as one: each count added up over the nodes when
    every summary is the same sentence around its numbers, else the first node's, named."""
    skeletons = {re.sub(r"\d+", "#", summary) for summary in summaries}
    if len(skeletons) != 1:
        return f"{summaries[0]} (node {first_nid})"
    columns = zip(*(map(int, re.findall(r"\d+", summary)) for summary in summaries))
    totals = iter(str(sum(column)) for column in columns)
    return re.sub(r"\d+", lambda _: next(totals), summaries[0])


def merge_reports(reports: list[tuple[int, VerifyReport]]) -> VerifyReport:
    """One report of the four checks over every node: problems named by node, summaries
    and tallies added up over the nodes."""
    # Every node makes the four checks; a node with HugeTLB pools one more.
    names = list(dict.fromkeys(check.name for _, report in reports for check in report.checks))
    merged = VerifyReport([Check(name) for name in names])
    for check in merged.checks:
        made = [(nid, found) for nid, report in reports for found in report.checks
                if found.name == check.name]
        check.summary = f"{summed_summary([found.summary for _, found in made], made[0][0])}" \
                        f" ({len(made)} nodes checked on their workers)"
        for nid, found in made:
            for problem in found.problems:
                check.problem(f"node {nid}: {problem}")
    merged.elapsed = max(report.elapsed for _, report in reports)
    for _, report in reports:
        for kind, (count, first) in report.tallies.items():
            total, lowest = merged.tallies.get(kind, (0, -1))
            if count and (lowest < 0 or first < lowest):
                lowest = first
            merged.tallies[kind] = (total + count, lowest)
    return merged
