"""The pool of native helper threads that multithreaded jobs draw from.

Like padata's pool of work items (one per possible CPU), a pool has a fixed size, by
default the CPUs this process may use, and a job takes only the helpers that are idle when
it starts. A busy pool therefore means fewer helpers, never a wait: the caller of a job
always works on it too, so every job finishes even when it gets no helper at all
(concurrent jobs, or a job started from inside another job's thread function).

What runs at once: the pool counts every thread working on one of its jobs, callers and
helpers alike (a thread inside a nested job is counted once), and hands out a helper only
while fewer than ``size`` threads are counted. A single caller therefore never has more
than ``size`` threads on its jobs. Callers are never refused: ``k`` threads that each start
a job at the same time run at least ``k`` chunks at once, whatever the size; a program
that must stay within the CPUs starts at most ``size`` jobs at once (deferred init does).
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from fastinit.host.cpus import SYSFS_NODES, node_cpus, pin_current_thread, usable_cpus
from fastinit.host.niceness import set_thread_nice, thread_nice
from fastinit.validate import check_int

_log = logging.getLogger(__name__)

# What a helper is pinned to after a pinning failed half-way: unknown, so pin again.
_UNKNOWN = ("unknown",)


class _ThreadFlags(threading.local):
    # A class attribute: reading it on a thread that never set it costs no AttributeError.
    helper = False


class _Worker:
    """One helper thread with its own inbox; it serves one task at a time."""

    def __init__(self, pool: WorkerPool, index: int):
        self._pool = pool
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # The CPUs this thread is bound to; None means the process's affinity.
        self.pinned: tuple | None = None
        # The niceness a job set on this thread, None while it has the one it began with.
        self.niced: int | None = None
        self.thread = threading.Thread(target=self._serve, name=f"fastinit-helper-{index}",
                                       daemon=True)
        self.thread.start()

    def submit(self, task: Callable[[_Worker], None], on_done: Callable[[], None]) -> None:
        """Run ``task(self)`` on this helper, then ``on_done()``, whatever happens."""
        self._inbox.put((task, on_done))

    def stop(self) -> None:
        self._inbox.put(None)

    def pin(self, cpus: tuple[int, ...] | None) -> None:
        """Bind this helper (call it on its own thread) to ``cpus``; None unbinds it."""
        if cpus != self.pinned:
            self.pinned = _UNKNOWN
            pin_current_thread(list(cpus) if cpus else None)
            self.pinned = cpus

    def renice(self, nice: int) -> None:
        """Run this helper (call it on its own thread) at niceness ``nice``."""
        if nice != self.niced:
            set_thread_nice(nice)
            self.niced = nice

    def _restore_nice(self) -> bool:
        """Back to the niceness the thread began with; False if that needs privilege."""
        if self.niced is None:
            return True
        try:
            set_thread_nice(self._base_nice)
        except OSError:
            return False
        self.niced = None
        return True

    def _serve(self) -> None:
        self._pool._local.helper = True
        self._base_nice = thread_nice() if sys.platform.startswith("linux") else 0
        keep = True
        while keep and (item := self._inbox.get()) is not None:
            task, on_done = item
            try:
                try:
                    task(self)
                except BaseException:  # a job's task records its own errors; never ours
                    _log.critical("exception escaped a fastinit helper", exc_info=True)
                finally:
                    # A helper left at a job's niceness would run the next job slowly:
                    # one that cannot go back retires (the pool starts another).
                    keep = self._restore_nice()
                    # Back in the pool before the job hears it finished, so a job started
                    # right after this one returns finds the helper idle.
                    self._pool._release(self, keep)
            finally:
                on_done()
            # An idle helper must not keep its last job alive: the job's arguments may hold
            # a memmap whose file stays locked (and mapped) while anything references it.
            del item, task, on_done


class WorkerPool:
    """A fixed number of threads working on jobs, helpers created on first use and reused.

    Parameters
    ----------
    size : int or None
        Most threads that may work on the pool's jobs at once, callers included (default:
        `usable_cpus()` when the pool is made). At most ``size - 1`` helpers ever exist.
    sysfs_nodes : Path
        Where the NUMA nodes' CPU lists are read for ``numa_aware`` jobs (a parameter for
        tests: a fake tree in a temporary folder).
    """

    def __init__(self, size: int | None = None, *, sysfs_nodes: Path = SYSFS_NODES):
        self.size = usable_cpus() if size is None else check_int(
            size, "WorkerPool size", minimum=1, fix="a pool runs at least its caller")
        self.sysfs_nodes = Path(sysfs_nodes)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        # Threads running a job of this pool as its caller (busy helpers count apart).
        self._callers: set[int] = set()
        # .helper: this thread is one of the pool's helpers (counted while busy).
        self._local = _ThreadFlags()
        self._node_cursor = -1

    def new_caller(self) -> bool:
        """Whether the calling thread is not yet counted (not a helper, not inside a job)."""
        return not (self._local.helper or threading.get_ident() in self._callers)

    def enter(self, wanted: int, new_caller: bool) -> list[_Worker]:
        """Count the calling thread in (if ``new_caller``) and take up to ``wanted`` helpers
        without waiting (maybe fewer, or none): helpers only while fewer than ``size``
        threads are counted. Pair every call with `leave`, in a ``finally``."""
        if new_caller:
            # One atomic set.add: a Ctrl-C on either side of it leaves nothing for `leave`
            # to get wrong (discard is a no-op if the add never happened).
            self._callers.add(threading.get_ident())
        if wanted <= 0:
            return []
        with self._lock:
            busy = len(self._all) - len(self._idle)
            room = max(0, min(wanted, self.size - busy - len(self._callers)))
            taken = [self._idle.pop() for _ in range(min(room, len(self._idle)))]
            while len(taken) < room:
                try:
                    worker = _Worker(self, len(self._all))
                except RuntimeError:  # no more threads: run with the helpers there are
                    _log.warning("could not start a fastinit helper thread", exc_info=True)
                    break
                self._all.append(worker)
                taken.append(worker)
        return taken

    def leave(self, new_caller: bool) -> None:
        """The caller's job is over (its helpers were already released)."""
        if new_caller:
            self._callers.discard(threading.get_ident())

    def _release(self, worker: _Worker, keep: bool = True) -> None:
        with self._lock:
            if keep:
                self._idle.append(worker)
            else:
                self._all.remove(worker)

    def numa_nodes(self) -> list[tuple[int, ...]]:
        """CPU sets of the NUMA nodes that have CPUs this process may use, read now."""
        return [tuple(cpus) for cpus in node_cpus(self.sysfs_nodes).values() if cpus]

    def place(self, nodes: list[tuple[int, ...]], count: int) -> list[tuple[int, ...] | None]:
        """CPU sets for ``count`` helpers, round-robin over ``nodes`` across this pool's jobs
        (Linux keeps one such cursor for all padata jobs); all None when ``nodes`` is empty."""
        if not nodes:
            return [None] * count
        with self._lock:
            first = self._node_cursor + 1
            self._node_cursor = (self._node_cursor + count) % len(nodes)
        return [nodes[(first + i) % len(nodes)] for i in range(count)]

    def busy(self) -> int:
        """Helpers working for a job right now."""
        with self._lock:
            return len(self._all) - len(self._idle)

    def running(self) -> int:
        """Threads counted as working on this pool's jobs now, callers included."""
        with self._lock:
            return len(self._all) - len(self._idle) + len(self._callers)

    def shutdown(self) -> None:
        """Stop every idle helper and join it; helpers still running are left alone."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._all = [w for w in self._all if w not in idle]
        for worker in idle:
            worker.stop()
        for worker in idle:
            worker.thread.join()


_shared_pool: WorkerPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> WorkerPool:
    """The pool jobs use when given none, made on first use with the default size."""
    global _shared_pool
    if _shared_pool is not None:  # made once and never replaced: no lock needed to read it
        return _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = WorkerPool()
        return _shared_pool
