"""The shared pool of native helper threads that every multithreaded job draws from.

Like padata's pool of work items (one per possible CPU), the pool has a fixed number of
slots, sized to the CPUs this process may use, and a job takes only the helpers that are
idle when it starts. A busy pool therefore means fewer helpers, never a wait: the caller of
a job always works on it too, so every job finishes even when it gets no helper at all
(concurrent jobs, or a job started from inside another job's thread function).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from fastinit.engine.cpus import pin_current_thread, usable_cpus

_log = logging.getLogger(__name__)


class _Worker:
    """One helper thread with its own inbox; it serves one task at a time."""

    def __init__(self, pool: WorkerPool, index: int):
        self._pool = pool
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._pinned: tuple[int, ...] | None = None
        self.thread = threading.Thread(target=self._serve, name=f"fastinit-helper-{index}",
                                       daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[[], None], on_done: Callable[[], None],
               cpus: tuple[int, ...] | None) -> None:
        self._inbox.put((fn, on_done, cpus))

    def stop(self) -> None:
        self._inbox.put(None)

    def _serve(self) -> None:
        while (task := self._inbox.get()) is not None:
            fn, on_done, cpus = task
            if cpus != self._pinned:
                pin_current_thread(list(cpus) if cpus else None)
                self._pinned = cpus
            try:
                fn()
            except BaseException:  # the job's helper loop catches its own errors
                _log.critical("exception escaped a fastinit helper", exc_info=True)
            # Back in the pool before the job hears it finished, so a job started right
            # after this one returns finds the helper idle.
            self._pool._release(self)
            on_done()


class WorkerPool:
    """A fixed number of helper threads, created on first use and kept for reuse.

    Parameters
    ----------
    size : int
        Most helpers that may exist at once (default: `usable_cpus()`).
    """

    def __init__(self, size: int | None = None):
        self.size = usable_cpus() if size is None else size
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []

    def acquire(self, wanted: int) -> list[_Worker]:
        """Take up to ``wanted`` idle helpers without waiting; may return fewer or none."""
        with self._lock:
            taken = [self._idle.pop() for _ in range(min(wanted, len(self._idle)))]
            while len(taken) < wanted and len(self._all) < self.size:
                worker = _Worker(self, len(self._all))
                self._all.append(worker)
                taken.append(worker)
            return taken

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            self._idle.append(worker)

    def busy(self) -> int:
        """Helpers working for a job right now."""
        with self._lock:
            return len(self._all) - len(self._idle)

    def threads(self) -> list[threading.Thread]:
        """The helper threads that exist now (for tests and diagnostics)."""
        with self._lock:
            return [w.thread for w in self._all]

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
    """The process-wide pool all jobs share, created on first use."""
    global _shared_pool
    with _shared_lock:
        if _shared_pool is None:
            _shared_pool = WorkerPool()
        return _shared_pool
