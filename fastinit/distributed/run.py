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

from fastinit.distributed import worker as on_worker
from fastinit.distributed.cluster import worker_problem
from fastinit.distributed.placement import place, shard_bytes
from fastinit.distributed.result import NodeShard

# Seconds between looks at the tasks and workers; and how long to wait for cancelled
# node jobs to stop (a chunk in progress finishes first; first touch cannot stop).
POLL = 0.1
STOP_WAIT = 60.0


def host_of(address: str) -> str:
    """The computer of a worker address (``tcp://10.0.0.5:40123`` -> ``10.0.0.5``)."""
    return address.split("://")[-1].rsplit(":", 1)[0]


class NodeFailedError(RuntimeError):
    """A node's task failed or its worker died (the message names both)."""


class Watcher:
    """Submits node tasks and watches them and their workers until each finishes."""

    def __init__(self, client, progress: Callable[[int], None] | None = None):
        self.client = client
        self.boot_id = uuid.uuid4().hex[:12]
        self.progress = progress
        self.seen_pages: dict[int, int] = {}
        self.failed_on: dict[int, set[str]] = {}
        self.ended = threading.Event()  # set when any task ends

    def submit(self, function, nid: int, address: str, attempt: int, *args):
        future = self.client.submit(function, *args, key=f"fastinit-{function.__name__}-"
                                    f"{self.boot_id}-node{nid}-try{attempt}",
                                    workers=[address], allow_other_workers=False, pure=False)
        future.add_done_callback(lambda _: self.ended.set())
        return future

    def live(self) -> dict[str, dict]:
        """Workers that answer, with this boot's nodes on each (phase, pages, running)."""
        found = self.client.run(on_worker.status, self.boot_id, on_error="return")
        return {address: nodes for address, nodes in found.items()
                if not isinstance(nodes, BaseException)}

    def report_progress(self, live: dict) -> None:
        if self.progress is None:
            return
        for nodes in live.values():
            for nid, (_, pages, _) in nodes.items():
                self.node_pages(nid, pages)

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
            live = self.live()
            self.report_progress(live)
            for nid, (future, address, attempt) in list(tasks.items()):
                if future.status == "finished":
                    results[nid] = (future.result(), address, attempt)
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
                    again = retry(nid, address, attempt) if retry else None
                    if again is None:
                        raise NodeFailedError(
                            f"node {nid} lost during {what}: worker {address} died or left "
                            f"the cluster (attempt {attempt}); nothing of the node is kept")
                    self.seen_pages.pop(nid, None)
                    tasks[nid] = again
        return results


class _Runner(Watcher):
    """One distributed boot's state on the client."""

    def __init__(self, client, plan, identities: dict, options: dict,
                 progress: Callable[[int], None] | None):
        super().__init__(client, progress)
        self.plan, self.options = plan, options
        self.budgets = {address: info["budget"] for address, info in identities.items()}
        self.nbytes = shard_bytes(plan)
        # Workers on one computer share its free memory, whatever their limits say.
        self.host_room: dict[str, int] = {}
        for address, info in identities.items():
            self.learn_host(address, info)

    def learn_host(self, address: str, info: dict) -> None:
        host = host_of(address)
        self.host_room[host] = max(self.host_room.get(host, 0), info["host_room"])

    def boot(self, retries: int, verify: bool, digests: bool) -> dict[int, NodeShard]:
        placement = place(self.nbytes, self.budgets)
        queues = {a: sorted(placement.on(a), key=lambda n: (-self.nbytes[n], n))
                  for a in self.budgets}
        held = dict.fromkeys(self.budgets, 0)
        host_held = dict.fromkeys(self.host_room, 0)
        tasks, shards = {}, {}

        def fits(address, nid):
            host = host_of(address)
            return (held[address] == 0 or held[address] + self.nbytes[nid] <=
                    self.budgets[address]) and \
                (host_held[host] == 0 or host_held[host] + self.nbytes[nid] <=
                 self.host_room[host])

        def start(nid, address, attempt):
            held[address] += self.nbytes[nid]
            host_held[host_of(address)] += self.nbytes[nid]
            return (self.submit(on_worker.node_task, nid, address, attempt, self.boot_id,
                                self.plan.topology, nid, self.options, verify, digests),
                    address, attempt)

        def start_queued():
            for address, queue in queues.items():
                while queue and fits(address, queue[0]):
                    nid = queue.pop(0)
                    tasks[nid] = start(nid, address, 1)

        def retry(nid, address, attempt):
            # The worker is gone, and its shards with it.
            orphans = queues.pop(address, [])
            self.budgets.pop(address, None)
            host_held[host_of(address)] -= held.pop(address, 0)
            if attempt > retries:
                return None
            live = self.live()
            for fresh in set(live) - set(self.budgets):  # a restarted worker: check it
                info = self.client.run(on_worker.identity, workers=[fresh],
                                       on_error="return").get(fresh)
                if isinstance(info, dict) and worker_problem(fresh, info) is None:
                    self.budgets[fresh], held[fresh], queues[fresh] = info["budget"], 0, []
                    self.learn_host(fresh, info)
                    host_held.setdefault(host_of(fresh), 0)
            room = {a: self.budgets[a] for a in live if a in self.budgets}
            if orphans:  # nodes that waited for the lost worker wait for others now
                for other, queued in place({n: self.nbytes[n] for n in orphans}, room,
                                           placed=held).workers.items():
                    queues[queued].append(other)
            again = place({nid: self.nbytes[nid]}, room, exclude=self.failed_on,
                          placed=held)
            return start(nid, again.workers[nid], attempt + 1)

        start_queued()
        while tasks:
            for nid, (summary, address, attempt) in self.wait(tasks, "its boot", retry,
                                                             first=True).items():
                held[address] -= self.nbytes[nid]
                host_held[host_of(address)] -= self.nbytes[nid]
                shards[nid] = NodeShard.from_summary(summary, address, attempt)
            start_queued()
        return shards

    def stop(self) -> None:
        """Cancel every node's job on every worker and wait until none runs."""
        deadline = time.monotonic() + STOP_WAIT
        self.client.run(on_worker.cancel, self.boot_id, on_error="ignore")
        while time.monotonic() < deadline:
            left = self.client.run(on_worker.running, self.boot_id, on_error="ignore")
            if not any(left.values()):
                return
            time.sleep(POLL)
        raise NodeFailedError(f"node jobs still running on workers after {STOP_WAIT:g} s: "
                              f"{ {a: n for a, n in left.items() if n} }")


def run_boot(client, plan, identities: dict, options: dict, *, verify: bool,
             digests: bool, retries: int, progress=None) -> tuple[dict, dict]:
    """Boot (and verify) every node of ``plan`` on the cluster; returns the shards by node
    and the client's timings. No shard stays on the workers (memmap files stay, complete,
    in ``options["memmap_dir"]``); nothing of this boot runs there when this returns."""
    runner = _Runner(client, plan, identities, options, progress)
    timings = {}
    began = time.perf_counter()
    try:
        shards = runner.boot(retries, verify, digests)
        timings["boot"] = time.perf_counter() - began
    finally:
        runner.stop()
    return shards, timings
