"""The registry of the node jobs in one dask worker: what the client may ask about a running
node (phase, pages done, the pools it waits for), its cancel event, and the boots
cancelled or committed here. `fastinit.distributed.worker` registers a node for the life
of its task; the functions here run through ``Client.run`` on the worker's event loop and
only read or flip a few fields, under one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

# Registry of this process: (boot id, nid) -> Shard; and the boots cancelled here (a
# node task dask starts after its boot was cancelled must not start the node).
SHARDS: dict[tuple[str, int], "Shard"] = {}
CANCELLED: set[str] = set()
# The nodes whose memmap file each boot completed here (boot id -> nids).
COMMITTED: dict[str, set[int]] = {}
LOCK = threading.Lock()
# The phases of a node whose memmap file is complete (`status` reports the phase).
COMMITTED_PHASES = ("committed", "verify")


@dataclass
class Shard:
    """One node of one boot on this worker, from its task's start until released."""

    nid: int
    cancel: threading.Event = field(default_factory=threading.Event)
    phase: str = "sparse_init"
    pages: int = 0
    running: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)
    # HugeTLB pools: the room the node reports, and its share once the client sent it.
    rooms: list | None = None
    pools: object = None
    pools_given: threading.Event = field(default_factory=threading.Event)

    def add_pages(self, done: int, total: int) -> None:
        """The node boot's ``progress(done, total)``: pages done so far."""
        with self.lock:  # chunks finish on several threads
            self.pages = done


def status(boot_id: str) -> dict[int, tuple[str, int, bool]]:
    """Each node of the boot here: phase, pages initialized, still running."""
    with LOCK:
        return {nid: (shard.phase, shard.pages, shard.running)
                for (bid, nid), shard in SHARDS.items() if bid == boot_id}


def rooms(boot_id: str) -> dict[int, list]:
    """The boot's nodes here that wait for their share of the HugeTLB pools, with the
    room each reported (`fastinit.distributed.pools.rooms_of`)."""
    with LOCK:
        return {nid: shard.rooms for (bid, nid), shard in SHARDS.items()
                if bid == boot_id and shard.rooms is not None and
                not shard.pools_given.is_set()}


def give_pools(boot_id: str, shares: dict) -> list[int]:
    """Hand each waiting node of the boot here its pools (``{nid: PoolPlan}``, the
    client's split); returns the nodes given theirs."""
    given = []
    with LOCK:
        for (bid, nid), shard in SHARDS.items():
            if bid == boot_id and nid in shares and shard.rooms is not None and \
                    not shard.pools_given.is_set():
                shard.pools = shares[nid]
                shard.pools_given.set()
                given.append(nid)
    return given


def cancel(boot_id: str) -> list[int]:
    """Stop the boot's node jobs here (their tasks end with JobCancelled), and any of its
    tasks that would start later; returns the nodes still running."""
    with LOCK:
        CANCELLED.add(boot_id)
        shards = [s for (bid, _), s in SHARDS.items() if bid == boot_id]
    for shard in shards:
        shard.cancel.set()
    return [shard.nid for shard in shards if shard.running]


def committed(boot_id: str) -> list[int]:
    """The boot's nodes whose memmap file was completed here."""
    with LOCK:
        return sorted(COMMITTED.get(boot_id, ()))


def running(boot_id: str) -> list[int]:
    """The boot's nodes whose task still runs here."""
    with LOCK:
        return [nid for (bid, nid), s in SHARDS.items() if bid == boot_id and s.running]


def shards_held() -> list[tuple[str, int, str, bool]]:
    """Every shard this worker holds: boot id, node, phase, running (for checks)."""
    with LOCK:
        return [(bid, nid, s.phase, s.running) for (bid, nid), s in SHARDS.items()]
