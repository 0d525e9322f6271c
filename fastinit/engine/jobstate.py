"""A running job's state and the loop every thread of it runs (padata's ``padata_mt_helper``).

`fastinit.engine.padata` describes and submits jobs; this module is what runs them, the way
CPython's ``concurrent.futures.thread`` keeps ``submit`` apart from ``_worker``. The lock
is held only to claim a chunk and to record its end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from fastinit.units import align_up


class _NoWaiters:
    """Stands in for the condition of a job without helpers: nobody waits, nobody wakes."""

    def notify_all(self) -> None:
        pass


_NO_WAITERS = _NoWaiters()


class JobState:
    """The runner's mutable bookkeeping, kept apart from the caller's frozen Job.

    Parameters
    ----------
    job : Job
    chunk_size : int
        Units per full chunk.
    nworks : int
        Threads taking part, the caller included (worker 0).
    cancel : threading.Event or None
    single : bool
        One call over the whole range (``nworks == 1``).
    """

    def __init__(self, job: Any, chunk_size: int, nworks: int,
                 cancel: threading.Event | None, single: bool = False):
        self.job = job
        self.single = single
        self.chunk_size = chunk_size
        self.cancel = cancel
        self.lock = threading.Lock()
        # Helpers and the caller wait on it; a single-call job has no one to wake.
        self.changed = threading.Condition(self.lock) if nworks > 1 else _NO_WAITERS
        self.next_start = job.start
        self.end = job.end  # read under the lock for every claim: no property call
        self.claimed: list[tuple[int, int, int]] = []
        self.completed: list[tuple[int, int]] = []
        self.done_units = 0
        # Each worker writes only its own slot, so these need no lock.
        self.worker_units = [0] * nworks
        self.worker_seconds = [0.0] * nworks
        self.helpers_running = 0
        self.error: BaseException | None = None
        self.error_chunk: tuple[int, int] | None = None
        self.stop = False

    def claim(self, worker: int) -> tuple[int, int] | None:
        with self.lock:
            if self.stop or self.next_start >= self.end:
                return None
            if self.cancel is not None and self.cancel.is_set():
                self.stop = True
                return None
            start = self.next_start
            if self.single:
                end = self.end
            else:
                # So the end is chunk-aligned if enough work remains.
                end = min(align_up(start + 1, self.chunk_size), self.end)
            self.next_start = end
            self.claimed.append((start, end, worker))
            return start, end

    def finish(self, start: int, end: int) -> None:
        with self.lock:
            self.completed.append((start, end))
            self.done_units += end - start
            self.changed.notify_all()

    def fail(self, error: BaseException, chunk: tuple[int, int] | None) -> None:
        with self.lock:
            if self.error is None:
                self.error, self.error_chunk = error, chunk
            self.stop = True
            self.changed.notify_all()

    def run_chunks(self, worker: int, after_chunk: Callable[[], None] | None = None,
                   chunk: tuple[int, int] | None = None) -> None:
        """Run ``chunk`` (if given), then claim and run chunks until none is left."""
        began = time.perf_counter()
        if chunk is None:
            chunk = self.claim(worker)
        thread_fn, arg, units = self.job.thread_fn, self.job.fn_arg, 0
        while chunk is not None:
            try:
                thread_fn(chunk[0], chunk[1], arg)
            except BaseException as error:
                self._account(worker, units, began)
                self.fail(error, chunk)
                return
            units += chunk[1] - chunk[0]
            self.finish(*chunk)
            if after_chunk is not None:
                try:
                    after_chunk()
                except BaseException:
                    self._account(worker, units, began)
                    raise
            chunk = self.claim(worker)
        self._account(worker, units, began)

    def _account(self, worker: int, units: int, began: float) -> None:
        # Two clock reads per worker, not per chunk: the loop's wall time is its work.
        self.worker_units[worker] += units
        self.worker_seconds[worker] += time.perf_counter() - began

    def helper(self, worker: int, cpus: tuple[int, ...] | None) -> Callable[[Any], None]:
        """The task a pool helper runs for this job as ``worker``, pinned to ``cpus``.

        Every way out of it, a failed pinning included, records the error for the caller;
        the pool then counts the helper down (`helper_done`), as ``padata_mt_helper`` does
        on its one way out.
        """
        def task(pool_worker: Any) -> None:
            try:
                if cpus is not pool_worker.pinned:  # unpinned helper, plain job: no call
                    pool_worker.pin(cpus)
            except BaseException as error:
                error.add_note(f"while pinning helper {worker} to CPUs {cpus or 'of the process'}")
                self.fail(error, None)
                return
            try:
                if self.job.nice is not None:
                    pool_worker.renice(self.job.nice)
            except BaseException as error:
                error.add_note(f"while setting helper {worker}'s niceness to {self.job.nice}")
                self.fail(error, None)
                return
            try:
                self.run_chunks(worker)
            except BaseException as error:  # run_chunks catches the job's; this is ours
                self.fail(error, None)
        return task

    def helper_done(self) -> None:
        with self.lock:
            self.helpers_running -= 1
            self.changed.notify_all()

    def join_helpers(self) -> None:
        """Wait until every helper left the job, even through further Ctrl-C presses."""
        while True:
            try:
                with self.lock:
                    while self.helpers_running:
                        self.changed.wait()
                return
            except KeyboardInterrupt:
                self.fail(KeyboardInterrupt(), None)

    def undo_completed(self) -> None:
        """Undo every completed chunk, newest first; later undo errors become notes."""
        undo = self.job.undo_fn
        if undo is None:
            return
        for start, end in reversed(self.completed):
            try:
                undo(start, end, self.job.fn_arg)
            except Exception as undo_error:  # keep undoing the rest; the first error wins
                self.error.add_note(f"undo of chunk [{start}, {end}) also failed: "
                                    f"{undo_error!r}")
