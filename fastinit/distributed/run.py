"""Run a boot's nodes as dask tasks: place, submit, watch, retry, stop.

One task per node (its boot, verify and digests; `fastinit.distributed.worker.node_task`),
restricted to the worker placement chose (``allow_other_workers`` off: dask must never
move a node's work to where its shard is not). A worker gets its next node only while
the shards it runs fit its budget together. The client watches every task and the
workers themselves (``Client.run`` of a few fields, ten times a second): a worker that
leaves while it runs a node fails the boot at once, naming the node and the worker,
unless retries are left, in which case the node is booted again from scratch on another
worker (a node's init is a pure function of the plan). Any failure or Ctrl-C cancels
every node's job on every worker and waits until none runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

from fastinit.distributed import registry
from fastinit.distributed import worker as on_worker
from fastinit.distributed.cluster import worker_problem
from fastinit.distributed.files_left import files_left
from fastinit.distributed.ledger import Ledger
from fastinit.distributed.placement import shard_bytes
from fastinit.distributed.pools import split_pools
from fastinit.distributed.result import NodeShard

# Seconds between looks at the tasks and workers; and how long to wait for cancelled
# node jobs to stop (a chunk in progress finishes first; first touch cannot stop).
POLL = 0.1
STOP_WAIT = 60.0


class NodeFailedError(RuntimeError):
    """A node's task failed or its worker died (the message names both), or the client
    lost the scheduler."""


class Watcher:
    """Submits node tasks and watches them and their workers until each finishes."""

    def __init__(self, client, progress: Callable[[int], None] | None = None):
        self.client = client
        self.boot_id = uuid.uuid4().hex[:12]
        self.progress = progress
        self.seen_pages: dict[int, int] = {}
        self.failed_on: dict[int, set[str]] = {}
        self.finished: set[int] = set()  # nodes whose task returned
        self.phases: dict[int, str] = {}  # each node's phase when last seen on its worker
        self.ended = threading.Event()  # set when any task ends

    def submit(self, function, nid: int, address: str, attempt: int, *args):
        future = self.client.submit(function, *args, key=f"fastinit-{function.__name__}-"
                                    f"{self.boot_id}-node{nid}-try{attempt}",
                                    workers=[address], allow_other_workers=False, pure=False)
        future.add_done_callback(lambda _: self.ended.set())
        return future

    def live(self) -> dict[str, dict]:
        """Workers that answer, with this boot's nodes on each (phase, pages, running)."""
        found = self.client.run(registry.status, self.boot_id, on_error="return")
        return {address: nodes for address, nodes in found.items()
                if not isinstance(nodes, BaseException)}

    def scheduler_lost(self, what: str, error: BaseException | None) -> NodeFailedError:
        """The failure when the client can no longer reach the scheduler (``error``, the
        connection's, says nothing a user can act on)."""
        address = getattr(self.client.scheduler, "address", "its address")
        return NodeFailedError(f"lost the dask scheduler at {address} during {what}; the "
                               f"workers stop their nodes when they lose it")

    def report_progress(self, live: dict) -> None:
        if self.progress is None:
            return
        for nodes in live.values():
            for nid, (_, pages, _) in nodes.items():
                self.node_pages(nid, pages)

    def on_poll(self, live: dict) -> None:
        """Called at every look at the workers (``live`` as `live` gives it)."""

    def node_pages(self, nid: int, pages: int) -> None:
        """Node ``nid`` has done ``pages``: report what is new to ``progress``."""
        gained = pages - self.seen_pages.get(nid, 0)
        if gained > 0 and self.progress is not None:
            self.seen_pages[nid] = pages
            self.progress(gained)

    def wait(self, tasks: dict[int, tuple], what: str, retry=None,
             first: bool = False) -> dict[int, tuple]:
        """Wait for ``{nid: (future, address, attempt)}`` (finished ones are taken out);
        returns ``{nid: (result, address, attempt)}``, all of them or, with ``first``, as
        soon as any finished.

        ``retry(nid, address, attempt)`` gives a new ``(future, address, attempt)`` for a
        node whose worker died, or None to fail.
        """
        results = {}
        while tasks and not (first and results):
            # Back as soon as a task ends, or after POLL to look at the workers.
            self.ended.wait(POLL)
            self.ended.clear()
            try:
                live = self.live()
            except (OSError, TimeoutError) as error:  # distributed's CommClosedError too
                raise self.scheduler_lost(what, error) from None
            if self.client.status in ("closing", "closed"):
                raise self.scheduler_lost(what, None)
            for nodes in live.values():
                self.phases.update((nid, node[0]) for nid, node in nodes.items())
            self.report_progress(live)
            try:
                self.on_poll(live)
            except (OSError, TimeoutError) as error:
                raise self.scheduler_lost(what, error) from None
            for nid, (future, address, attempt) in list(tasks.items()):
                if future.status == "finished":
                    results[nid] = (future.result(), address, attempt)
                    self.finished.add(nid)
                    del tasks[nid]
                    # A short node ends between two looks: its summary has its pages.
                    node = results[nid][0].get("node")
                    if node is not None:
                        self.node_pages(nid, node.pages)
                elif future.status in ("error", "cancelled"):
                    error = future.exception() if future.status == "error" else None
                    raise NodeFailedError(
                        f"node {nid} failed during {what} on worker {address}: "
                        f"{type(error).__name__}: {error}") from error
                elif address not in live:
                    future.cancel()
                    self.failed_on.setdefault(nid, set()).add(address)
                    try:
                        again = retry(nid, address, attempt) if retry else None
                    except (OSError, TimeoutError) as error:
                        raise self.scheduler_lost(what, error) from None
                    if again is None:
                        raise NodeFailedError(
                            f"node {nid} lost during {what}: worker {address} died or left "
                            f"the cluster (attempt {attempt}); nothing of the node is kept")
                    self.seen_pages.pop(nid, None)
                    tasks[nid] = again
        return results


class _Runner(Watcher):
    """One distributed boot on the client: its tasks, its `Ledger`, and what a failure
    leaves."""

    def __init__(self, client, plan, identities: dict, options: dict,
                 progress: Callable[[int], None] | None):
        super().__init__(client, progress)
        self.plan, self.options = plan, options
        self.ledger = Ledger(shard_bytes(plan), identities)
        self.tasks: dict[int, tuple] = {}  # running: nid -> (future, address, attempt)
        self.lost_scheduler = False
        # HugeTLB pools split by the nodes' rooms (fastinit.distributed.pools): the rooms
        # reported so far, then the machine's pools once every node's is in.
        self.rooms: dict[int, list] = {}
        self.pools = None

    def boot(self, retries: int, verify: bool, digests: bool) -> dict[int, NodeShard]:
        self.retries, self.verify, self.digests = retries, verify, digests
        shards = {}
        if self.options.get("split_pools") and not self.ledger.holds_all():
            raise ValueError(
                "HugeTLB 2 MiB pages are split between the nodes by every node's room after "
                "its deferred init, so a boot with them holds every node's shard at once, "
                "and these workers' memory cannot; add workers or memory, or boot without "
                "hugepages= for 2 MiB pages")
        self.start_ready()
        while self.tasks:
            for nid, (summary, address, attempt) in self.wait(self.tasks, "its boot",
                                                             self.retry, first=True).items():
                self.ledger.release(address, nid)
                shards[nid] = NodeShard.from_summary(summary, address, attempt)
            self.start_ready()
        return shards

    def start(self, nid: int, address: str, attempt: int) -> tuple:
        return (self.submit(on_worker.node_task, nid, address, attempt, self.boot_id,
                            self.plan.topology, nid, self.options, self.verify,
                            self.digests), address, attempt)

    def on_poll(self, live: dict) -> None:
        """Collect the rooms of nodes waiting for their share of the pools; once every
        node's is in, split the pools and hand each waiting node its share."""
        waiting = {address for address, nodes in live.items()
                   if any(phase == "rooms" for phase, _, _ in nodes.values())}
        if not waiting:
            return
        if self.pools is None:
            for address in sorted(waiting):
                found = self.client.run(registry.rooms, self.boot_id, workers=[address],
                                        on_error="return").get(address)
                if isinstance(found, dict):
                    self.rooms.update(found)
            if len(self.rooms) < len(self.plan.nodes):
                return
            try:
                self.pools = split_pools(self.plan, self.rooms)
            except ValueError as error:
                raise NodeFailedError(str(error)) from None
        shares = {node.nid: self.pools.of_node(node.nid) for node in self.plan.nodes}
        for address in sorted(waiting):
            self.client.run(registry.give_pools, self.boot_id, shares, workers=[address],
                            on_error="return")

    def start_ready(self) -> None:
        for nid, address in self.ledger.startable():
            self.tasks[nid] = self.start(nid, address, 1)

    def retry(self, nid: int, address: str, attempt: int):
        """Node ``nid``'s worker at ``address`` is gone: boot it again elsewhere, or None
        when its retries are spent."""
        orphans = self.ledger.lose(address)
        if attempt > self.retries:
            return None
        live = set(self.live())
        for fresh in live - set(self.ledger.budgets):  # a restarted worker: check it
            info = self.client.run(on_worker.identity, workers=[fresh],
                                   on_error="return").get(fresh)
            if isinstance(info, dict) and worker_problem(fresh, info) is None:
                self.ledger.add_worker(fresh, info)
        try:
            self.ledger.requeue(orphans, live)
            again = self.ledger.place_again(nid, live, self.failed_on)
        except ValueError as error:  # no worker left for it
            raise NodeFailedError(f"node {nid} lost during its boot on {address}, and "
                                  f"{error}") from None
        return self.start(nid, again, attempt + 1)

    def scheduler_lost(self, what: str, error: BaseException | None) -> NodeFailedError:
        self.lost_scheduler = True
        return super().scheduler_lost(what, error)

    def stop(self) -> str | None:
        """Cancel every node's job on every worker and wait until none runs; None, or
        why that could not be done."""
        if self.lost_scheduler:
            return None  # nothing reaches the workers now; they cancel their own nodes
        try:
            for future, _, _ in self.tasks.values():
                future.cancel()
            deadline = time.monotonic() + STOP_WAIT
            self.client.run(registry.cancel, self.boot_id, on_error="ignore")
            while time.monotonic() < deadline:
                left = self.client.run(registry.running, self.boot_id, on_error="ignore")
                if not any(left.values()):
                    self.finished |= {nid for nid, (future, _, _) in self.tasks.items()
                                      if future.status == "finished"}
                    return None
                time.sleep(POLL)
        except (OSError, TimeoutError) as error:
            return f"the scheduler went away while the nodes were stopped ({error})"
        return (f"node jobs still running on workers after {STOP_WAIT:g} s: "
                f"{ {a: n for a, n in left.items() if n} }")


def run_boot(client, plan, identities: dict, options: dict, *, verify: bool,
             digests: bool, retries: int, progress=None) -> tuple[dict, dict, object]:
    """Boot (and verify) every node of ``plan`` on the cluster; returns the shards by node,
    the client's timings, and the machine's HugeTLB pools as split between the nodes
    (`fastinit.distributed.pools`; the plan's when they needed no split). No shard
    stays on the workers (memmap files stay, complete, in ``options["memmap_dir"]``);
    nothing of this boot runs there when this returns.

    Raises
    ------
    NodeFailedError
        A node failed or was lost, or the scheduler was: every other node's job is
        stopped first, and the message says which node files of this boot are complete.
    """
    runner = _Runner(client, plan, identities, options, progress)
    began = time.perf_counter()
    try:
        shards = runner.boot(retries, verify, digests)
    except NodeFailedError as error:
        said = [str(error), runner.stop(), files_left(runner)]
        raise NodeFailedError("; ".join(part for part in said if part)) from error.__cause__
    except BaseException:
        runner.stop()
        raise
    timings = {"boot": time.perf_counter() - began}
    problem = runner.stop()
    if problem is not None:
        raise NodeFailedError(problem)
    return shards, timings, runner.pools if runner.pools is not None else plan.pools
