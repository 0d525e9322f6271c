"""padata-style multithreaded jobs: split ``[start, start + size)`` into chunks for threads.

This follows Linux's ``padata_do_multithreaded()`` as it stands today (the 5.8 design with
the later fixes: the worker count honours ``align``, a zero ``min_chunk`` cannot make a zero
chunk, and the chunk stays aligned) and adds what its reviewers asked for and Linux never
built: the first error is returned to the caller, completed chunks can be undone, a job can
be cancelled (an event, or Ctrl-C in the caller), progress is reported, and helpers can be
spread over NUMA nodes.
"""

from __future__ import annotations

import operator
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastinit.engine.cpus import node_cpus, usable_cpus
from fastinit.engine.workpool import shared_pool

# About four chunks per thread, in case threads finish at different times.
LOAD_BALANCE_FACTOR = 4


class JobCancelled(RuntimeError):
    """The job's ``cancel`` event was set; completed chunks were undone if possible."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C reached the caller during a job; every helper was joined first."""


@contextmanager
def ctrl_c_held():
    """Hold Ctrl-C while threads are being started; yields a list that records it.

    A KeyboardInterrupt raised inside ``Thread.start()`` or between starting a thread and
    recording it would leave a thread running that nobody joins. On the main thread with
    Python's default handler, a Ctrl-C inside the block is only appended to the yielded
    list; the caller raises it once every thread it started is tracked. Elsewhere (other
    threads never see KeyboardInterrupt, or the program has its own handler) the list
    stays empty and nothing changes.
    """
    pending: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield pending
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_int(name: str, value: Any, minimum: int, fix: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"Job.{name} must be an integer, got {value!r}; {fix}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"Job.{name} must be an integer, got {value!r} "
                         f"({type(value).__name__}); {fix}") from None
    if number < minimum:
        raise ValueError(f"Job.{name} must be >= {minimum}, got {number}; {fix}")
    return number


@dataclass(frozen=True)
class Job:
    """One multithreaded job: call ``thread_fn`` over chunks of ``[start, start + size)``.

    Parameters
    ----------
    thread_fn : callable
        ``thread_fn(start, end, arg)`` processes the units ``[start, end)``; called once per
        chunk, from the caller's thread or a helper thread. Must be thread-safe across
        disjoint ranges.
    start : int
        First unit of the job (units are the job's own: pages, pfns, ids).
    size : int
        Number of units. 0 means no call at all.
    align : int
        Chunk ends fall on multiples of ``align`` units, except possibly the job's first
        and last chunk. Must be >= 1 (Linux divides by zero on 0).
    min_chunk : int
        Smallest amount of work, in units, worth handing one thread at once. 0 is accepted
        and treated as 1 (the CVE-2024-43889 case).
    max_threads : int or None
        Most threads to use, the caller included; fewer when the job is small or the pool
        is busy. None means the CPUs this process may use (`fastinit.engine.cpus.usable_cpus`).
    fn_arg : object
        Passed to ``thread_fn`` and ``undo_fn`` as their third argument.
    numa_aware : bool
        Pin helper threads round-robin to the CPU sets of the NUMA nodes that have CPUs.
    undo_fn : callable or None
        ``undo_fn(start, end, arg)``; if the job fails or is cancelled, it is called on the
        caller's thread for every chunk that had completed, newest first.
    """

    thread_fn: Callable[[int, int, Any], Any]
    start: int
    size: int
    align: int = 1
    min_chunk: int = 1
    max_threads: int | None = None
    fn_arg: Any = None
    numa_aware: bool = False
    undo_fn: Callable[[int, int, Any], Any] | None = field(default=None, repr=False)

    def __post_init__(self):
        if not callable(self.thread_fn):
            raise ValueError(f"Job.thread_fn must be callable as thread_fn(start, end, arg), "
                             f"got {self.thread_fn!r}")
        if self.undo_fn is not None and not callable(self.undo_fn):
            raise ValueError(f"Job.undo_fn must be callable as undo_fn(start, end, arg) or "
                             f"None, got {self.undo_fn!r}")
        fixes = {
            "start": (0, "jobs cover non-negative units"),
            "size": (0, "pass the number of units to process"),
            "align": (1, "use align=1 for no alignment (Linux divides by zero on 0)"),
            "min_chunk": (0, "use min_chunk=1 to let any chunk size through"),
        }
        for name, (minimum, fix) in fixes.items():
            object.__setattr__(self, name, _check_int(name, getattr(self, name), minimum, fix))
        threads = usable_cpus() if self.max_threads is None else self.max_threads
        object.__setattr__(self, "max_threads", _check_int(
            "max_threads", threads, 1, "use max_threads=1 to run on the caller alone"))
        object.__setattr__(self, "numa_aware", bool(self.numa_aware))

    @property
    def end(self) -> int:
        """One past the job's last unit."""
        return self.start + self.size


@dataclass(frozen=True)
class JobReport:
    """What a job did.

    Attributes
    ----------
    nworks : int
        Threads that worked on the job, the caller included (0 for an empty job).
    chunk_size : int
        Units per full chunk.
    chunks : tuple of (int, int, int)
        ``(start, end, worker)`` for every chunk, in the order they were claimed; worker 0
        is the caller's thread, 1.. the helpers.
    elapsed : float
        Wall time of the whole job, in seconds.
    """

    nworks: int
    chunk_size: int
    chunks: tuple[tuple[int, int, int], ...]
    elapsed: float


def plan_workers(job: Job) -> int:
    """Threads the job asks for: one per ``max(min_chunk, align)`` units, capped."""
    per_worker = max(job.min_chunk, job.align)
    return max(1, min(job.size // per_worker, job.max_threads))


def plan_chunk_size(job: Job, nworks: int) -> int:
    """Units per chunk for ``nworks`` threads."""
    chunk = job.size // (nworks * LOAD_BALANCE_FACTOR)
    # At least the caller's minimum and at least 1 (so no zero-size chunk), before the
    # round-up so the chunk stays a multiple of align.
    chunk = max(chunk, job.min_chunk, 1)
    return _round_up(chunk, job.align)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


class _JobState:
    """The runner's mutable bookkeeping, kept apart from the caller's frozen Job."""

    def __init__(self, job: Job, chunk_size: int, cancel: threading.Event | None,
                 single: bool = False):
        self.job = job
        self.single = single
        self.chunk_size = chunk_size
        self.cancel = cancel
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.next_start = job.start
        self.claimed: list[tuple[int, int, int]] = []
        self.completed: list[tuple[int, int]] = []
        self.done_units = 0
        self.helpers_running = 0
        self.error: BaseException | None = None
        self.error_chunk: tuple[int, int] | None = None
        self.stop = False

    def claim(self, worker: int) -> tuple[int, int] | None:
        with self.lock:
            if self.stop or self.next_start >= self.job.end:
                return None
            if self.cancel is not None and self.cancel.is_set():
                self.stop = True
                return None
            start = self.next_start
            if self.single:
                end = self.job.end
            else:
                # So the end is chunk-aligned if enough work remains.
                end = min(_round_up(start + 1, self.chunk_size), self.job.end)
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
        if chunk is None:
            chunk = self.claim(worker)
        while chunk is not None:
            try:
                self.job.thread_fn(chunk[0], chunk[1], self.job.fn_arg)
            except BaseException as error:
                self.fail(error, chunk)
                return
            self.finish(*chunk)
            if after_chunk is not None:
                after_chunk()
            chunk = self.claim(worker)

    def helper_done(self) -> None:
        with self.lock:
            self.helpers_running -= 1
            self.changed.notify_all()


_node_cursor = 0
_node_cursor_lock = threading.Lock()


def _next_node_cpus() -> tuple[int, ...]:
    """CPU set of the next NUMA node with CPUs, round-robin across all jobs."""
    global _node_cursor
    nodes = [tuple(cpus) for cpus in node_cpus().values() if cpus]
    with _node_cursor_lock:
        _node_cursor = (_node_cursor + 1) % len(nodes)
        return nodes[_node_cursor]


def do_multithreaded(job: Job, *, progress: Callable[[int, int], Any] | None = None,
                     cancel: threading.Event | None = None) -> JobReport:
    """Run ``job`` on the caller's thread and idle helpers of the shared pool.

    Parameters
    ----------
    job : Job
        What to run; see `Job`.
    progress : callable or None
        ``progress(done_units, total_units)``, called on the caller's thread as chunks
        complete.
    cancel : threading.Event or None
        Set it (from any thread) to stop the job: no new chunk starts, running chunks
        finish, completed chunks are undone, and `JobCancelled` is raised.

    Returns
    -------
    JobReport
        Threads used, chunk size, every chunk with its worker, elapsed time.

    Raises
    ------
    Exception
        The first exception raised by ``thread_fn``, with the failing chunk noted, after
        every helper has stopped and completed chunks were undone.
    JobCancelled
        ``cancel`` was set.
    JobInterrupted
        Ctrl-C arrived in the caller (a KeyboardInterrupt subclass).
    """
    if not isinstance(job, Job):
        raise ValueError(f"do_multithreaded needs a fastinit.Job, got {type(job).__name__}")
    if progress is not None and not callable(progress):
        raise ValueError(f"progress must be callable as progress(done, total), got {progress!r}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise ValueError(f"cancel must be a threading.Event, got {cancel!r}")
    began = time.perf_counter()
    if job.size == 0:
        return JobReport(0, 0, (), time.perf_counter() - began)

    nworks = plan_workers(job)
    held_ctrl_c: list[int] = []
    if nworks == 1:
        # Single thread, no coordination needed: one call over the whole range.
        state = _JobState(job, job.size, cancel, single=True)
        first_chunk = state.claim(0)
    else:
        with ctrl_c_held() as held_ctrl_c:  # raised below, once the helpers are tracked
            helpers = shared_pool().acquire(nworks - 1)
            nworks = 1 + len(helpers)
            state = _JobState(job, plan_chunk_size(job, nworks), cancel)
            # The caller claims its first chunk before helpers start, so it always takes part.
            first_chunk = state.claim(0)
            state.helpers_running = len(helpers)
            for index, helper in enumerate(helpers, start=1):
                cpus = _next_node_cpus() if job.numa_aware else None
                helper.submit(lambda i=index: state.run_chunks(i), state.helper_done, cpus)

    reported = 0

    def report_progress() -> None:
        nonlocal reported
        done = state.done_units
        if progress is not None and done != reported:
            reported = done
            progress(done, job.size)

    interrupted = False
    try:
        if held_ctrl_c:
            raise KeyboardInterrupt
        # The caller works too, which saves starting one more helper.
        state.run_chunks(0, report_progress, first_chunk)
        while True:
            with state.lock:
                if not state.helpers_running:
                    break
                state.changed.wait(0.1)
            report_progress()
        report_progress()
    except KeyboardInterrupt:
        interrupted = True
        state.fail(KeyboardInterrupt(), None)
    except BaseException as error:  # a progress callback failed on the caller
        state.fail(error, None)
    _join_helpers(state)
    interrupted = interrupted or isinstance(state.error, KeyboardInterrupt)

    if state.error is None and not interrupted and state.stop:
        state.error = JobCancelled(
            f"job [{job.start}, {job.end}) cancelled after {len(state.completed)} of "
            f"{len(state.claimed)} claimed chunks ({state.done_units} of {job.size} units)")
    if state.error is not None:
        _undo_completed(state)
        error = state.error
        if interrupted:
            error = JobInterrupted(
                f"job [{job.start}, {job.end}) interrupted by Ctrl-C after "
                f"{state.done_units} of {job.size} units; all helpers stopped")
        elif state.error_chunk is not None:
            error.add_note(f"raised in chunk [{state.error_chunk[0]}, {state.error_chunk[1]}) "
                         f"of job [{job.start}, {job.end})")
        raise error
    return JobReport(nworks, state.chunk_size, tuple(state.claimed),
                     time.perf_counter() - began)


def _join_helpers(state: _JobState) -> None:
    """Wait until every helper left the job, even through further Ctrl-C presses."""
    while True:
        try:
            with state.lock:
                while state.helpers_running:
                    state.changed.wait()
            return
        except KeyboardInterrupt:
            state.fail(KeyboardInterrupt(), None)


def _undo_completed(state: _JobState) -> None:
    undo = state.job.undo_fn
    if undo is None:
        return
    for start, end in reversed(state.completed):
        try:
            undo(start, end, state.job.fn_arg)
        except Exception as undo_error:  # keep undoing the rest; the first error wins
            state.error.add_note(f"undo of chunk [{start}, {end}) also failed: {undo_error!r}")
