"""Which worker boots which node: largest first, balanced by bytes, each within a budget.

A shard's bytes are its memmap (`fastinit.mm.plan.BootPlan.shard`) plus the working memory
its boot and verify take besides (verify's per-thread scratch, the kernels' lists). Each
worker has a budget (`fastinit.distributed.worker.identity`): what its process may still
grow by before dask pauses it. A node's whole life (boot, verify, digest) is one task that
drops the shard when it returns, so a worker needs room for one shard at a time; the
runner starts a worker's next node only while the shards it holds fit its budget
together. Nodes are placed largest first, each on the worker with the fewest bytes placed
so far among those whose budget holds it (ties: more budget, then address). A node that
fits on no worker is refused before anything is allocated, naming the node, its size
and the shortfall.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.units import gib
from fastinit.mm.plan import BootPlan

# Besides the memmap: verify's scratch (a section, 2 MiB, per thread), lists, summaries.
SHARD_OVERHEAD = 64 << 20


@dataclass(frozen=True)
class Placement:
    """Node -> worker address, and the bytes each node's shard takes."""

    workers: dict[int, str]
    nbytes: dict[int, int]

    def on(self, address: str) -> list[int]:
        return sorted(nid for nid, worker in self.workers.items() if worker == address)


def shard_bytes(plan: BootPlan) -> dict[int, int]:
    """Bytes each node's shard takes on its worker (memmap and working memory)."""
    return {node.nid: plan.shard(node.nid).memmap_bytes + SHARD_OVERHEAD
            for node in plan.nodes}


def place(nbytes: dict[int, int], budgets: dict[str, int],
          exclude: dict[int, set[str]] | None = None,
          placed: dict[str, int] | None = None) -> Placement:
    """Put every node on a worker whose budget holds its shard.

    Parameters
    ----------
    nbytes : dict of int to int
        Bytes of each node's shard (`shard_bytes`).
    budgets : dict of str to int
        Bytes each worker (by address) may hold at once.
    exclude : dict of int to set of str, optional
        Workers a node must not go to (where it was lost before).
    placed : dict of str to int, optional
        Bytes already placed on each worker (balancing goes on from there).

    Raises
    ------
    ValueError
        No workers, or a node that fits on none: names the node, its bytes, the roomiest
        worker's budget and the shortfall.
    """
    if not budgets:
        raise ValueError("the cluster has no workers; start some with 'dask worker "
                         "SCHEDULER_ADDRESS'")
    load = {address: (placed or {}).get(address, 0) for address in budgets}
    workers = {}
    for nid in sorted(nbytes, key=lambda n: (-nbytes[n], n)):
        allowed = [a for a in budgets if a not in (exclude or {}).get(nid, set())]
        if not allowed:
            raise ValueError(f"node {nid} has no worker left to run on (it was lost on "
                             f"{', '.join(sorted(exclude[nid]))}); add workers")
        fits = [a for a in allowed if budgets[a] >= nbytes[nid]]
        if not fits:
            roomiest = max(allowed, key=lambda a: (budgets[a], a))
            room = max(budgets[roomiest], 0)
            raise ValueError(
                f"node {nid} needs {gib(nbytes[nid])} but the roomiest worker ({roomiest}) "
                f"has {gib(room)} below its pause threshold: {gib(nbytes[nid] - room)} "
                f"short; add workers with more memory (dask worker --memory-limit) or "
                f"split the machine into more nodes")
        best = min(fits, key=lambda a: (load[a], -budgets[a], a))
        workers[nid] = best
        load[best] += nbytes[nid]
    return Placement(workers, dict(nbytes))
