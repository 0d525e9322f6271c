"""padata-style multithreaded jobs: split ``[start, start + size)`` into chunks for threads.

This follows Linux's ``padata_do_multithreaded()`` as it stands today (the 5.8 design with
the later fixes: the worker count honours ``align``, a zero ``min_chunk`` cannot make a zero
chunk, and the chunk stays aligned) and adds what its reviewers asked for and Linux never
built: the first error is returned to the caller, completed chunks can be undone, a job can
be cancelled (an event, or Ctrl-C in the caller), progress is reported, and helpers can be
spread over NUMA nodes.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastinit.host.cpus import usable_cpus
from fastinit.engine.interrupts import ctrl_c_held
from fastinit.engine.jobstate import JobState
from fastinit.host.niceness import check_nice
from fastinit.units import align_up
from fastinit.validate import check_callable, check_event, check_int, check_type
from fastinit.engine.workpool import WorkerPool, shared_pool

# About four chunks per thread, in case threads finish at different times.
LOAD_BALANCE_FACTOR = 4


class JobCancelled(RuntimeError):
    """The job's ``cancel`` event was set; completed chunks were undone if possible."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C reached the caller during a job; every helper was joined first."""


class OversubscriptionWarning(RuntimeWarning):
    """More threads were asked for than this process has CPUs to run them on.

    The job still runs, on no more threads than its pool holds (by default the usable
    CPUs): silence it with ``warnings.simplefilter("ignore", OversubscriptionWarning)``.
    """


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
        is busy. None means the CPUs this process may use (`fastinit.host.cpus.usable_cpus`);
        more than that warns (`OversubscriptionWarning`).
    fn_arg : object
        Passed to ``thread_fn`` and ``undo_fn`` as their third argument.
    numa_aware : bool
        Pin helper threads round-robin to the CPU sets of the NUMA nodes that have CPUs.
    undo_fn : callable or None
        ``undo_fn(start, end, arg)``; if the job fails or is cancelled, it is called on the
        caller's thread for every chunk that had completed, newest first.
    nice : int or None
        Run the helper threads at this niceness (Linux; from the caller's niceness to 19),
        so a big job yields the CPUs to the machine's other work; the caller's thread keeps
        its own. None leaves the helpers as they are.
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
    nice: int | None = None

    def __post_init__(self):
        check_callable(self.thread_fn, "Job.thread_fn", "thread_fn(start, end, arg)")
        check_callable(self.undo_fn, "Job.undo_fn", "undo_fn(start, end, arg)", optional=True)
        fixes = {
            "start": (0, "jobs cover non-negative units"),
            "size": (0, "pass the number of units to process"),
            "align": (1, "use align=1 for no alignment (Linux divides by zero on 0)"),
            "min_chunk": (0, "use min_chunk=1 to let any chunk size through"),
        }
        for name, (minimum, fix) in fixes.items():
            object.__setattr__(self, name, check_int(getattr(self, name), f"Job.{name}",
                                                     minimum=minimum, fix=fix))
        cpus = usable_cpus()
        if self.max_threads is None:
            threads = cpus
        else:
            threads = check_int(self.max_threads, "Job.max_threads", minimum=1,
                                fix="use max_threads=1 to run on the caller alone")
            if threads > cpus:
                # stacklevel 3: the Job(...) call, past the generated __init__.
                warnings.warn(f"Job.max_threads={threads} is more than the {cpus} CPUs this "
                              f"process may use; the job runs on at most as many threads as "
                              f"its pool holds ({cpus} by default)", OversubscriptionWarning,
                              stacklevel=3)
        object.__setattr__(self, "max_threads", threads)
        object.__setattr__(self, "numa_aware", bool(self.numa_aware))
        object.__setattr__(self, "nice", check_nice(self.nice, "Job.nice"))

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
    worker_units : tuple of int
        Units each worker completed, indexed like the workers in ``chunks`` (0 = caller);
        ``nworks`` entries.
    worker_seconds : tuple of float
        Seconds each worker spent in the job, from its first claim to the end of its last
        chunk (its chunks and its claims: the time it was busy with this job);
        ``nworks`` entries.
    """

    nworks: int
    chunk_size: int
    chunks: tuple[tuple[int, int, int], ...]
    elapsed: float
    worker_units: tuple[int, ...] = ()
    worker_seconds: tuple[float, ...] = ()


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
    return align_up(chunk, job.align)


def do_multithreaded(job: Job, *, progress: Callable[[int, int], Any] | None = None,
                     cancel: Any = None, pool: WorkerPool | None = None,
                     max_helpers: int | None = None) -> JobReport:
    """Run ``job`` on the caller's thread and idle helpers of a pool.

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
    pool : WorkerPool or None
        Where the helpers come from; None means `fastinit.engine.workpool.shared_pool()`.
    max_helpers : int or None
        Most helpers this call may take from the pool (None: ``max_threads - 1``). The job
        is still split as for ``max_threads`` threads when it gets fewer (so progress and
        cancellation keep their granularity); callers sharing a pool pass their share.

    Returns
    -------
    JobReport
        Threads used, chunk size, every chunk with its worker, elapsed time, and each
        worker's units and busy seconds.

    Raises
    ------
    TypeError
        An argument of the wrong kind.
    Exception
        The first exception raised by ``thread_fn`` (or by pinning a helper), with the
        failing chunk noted, after every helper has stopped and completed chunks were undone.
    JobCancelled
        ``cancel`` was set.
    JobInterrupted
        Ctrl-C arrived in the caller (a KeyboardInterrupt subclass).
    """
    if not isinstance(job, Job):
        raise TypeError(f"do_multithreaded needs a fastinit.Job, got {type(job).__name__}")
    if progress is not None:
        check_callable(progress, "progress", "progress(done, total)")
    if cancel is not None:
        check_event(cancel, "cancel")
    check_type(pool, WorkerPool, "pool", "a fastinit.engine.workpool.WorkerPool",
               optional=True)
    if max_helpers is not None:
        max_helpers = check_int(max_helpers, "max_helpers", minimum=0,
                                fix="use max_helpers=0 to run on the caller alone")
    began = time.perf_counter()
    if job.size == 0:
        return JobReport(0, 0, (), time.perf_counter() - began)
    pool = shared_pool() if pool is None else pool
    planned = plan_workers(job)
    new_caller = pool.new_caller()
    try:
        if planned == 1:
            # Single thread, no coordination needed: one call over the whole range.
            pool.enter(0, new_caller)
            state = JobState(job, job.size, 1, cancel, single=True)
            return _run(job, state, state.claim(0), progress, [], began)
        wanted = planned - 1 if max_helpers is None else min(planned - 1, max_helpers)
        nodes = pool.numa_nodes() if job.numa_aware and wanted else []
        with ctrl_c_held() as held_ctrl_c:  # raised in _run, once the helpers are tracked
            helpers = pool.enter(wanted, new_caller)
            state = JobState(job, plan_chunk_size(job, 1 + len(helpers)), 1 + len(helpers),
                             cancel)
            # The caller claims its first chunk before helpers start, so it always takes part.
            first_chunk = state.claim(0)
            state.helpers_running = len(helpers)
            for index, (helper, cpus) in enumerate(
                    zip(helpers, pool.place(nodes, len(helpers))), start=1):
                helper.submit(state.helper(index, cpus), state.helper_done)
        return _run(job, state, first_chunk, progress, held_ctrl_c, began)
    finally:
        pool.leave(new_caller)


def _run(job: Job, state: JobState, first_chunk: tuple[int, int] | None,
         progress: Callable[[int, int], Any] | None, held_ctrl_c: list,
         began: float) -> JobReport:
    """The caller's part: help, wait for the helpers, then undo and raise, or report."""
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
    state.join_helpers()
    interrupted = interrupted or isinstance(state.error, KeyboardInterrupt)

    if state.error is None and not interrupted and state.stop:
        state.error = JobCancelled(
            f"job [{job.start}, {job.end}) cancelled after {len(state.completed)} of "
            f"{len(state.claimed)} claimed chunks ({state.done_units} of {job.size} units)")
    if state.error is not None:
        state.undo_completed()
        error = state.error
        if interrupted:
            error = JobInterrupted(
                f"job [{job.start}, {job.end}) interrupted by Ctrl-C after "
                f"{state.done_units} of {job.size} units; all helpers stopped")
        elif state.error_chunk is not None:
            error.add_note(f"raised in chunk [{state.error_chunk[0]}, {state.error_chunk[1]}) "
                           f"of job [{job.start}, {job.end})")
        raise error
    return JobReport(len(state.worker_units), state.chunk_size, tuple(state.claimed),
                     time.perf_counter() - began, tuple(state.worker_units),
                     tuple(state.worker_seconds))
