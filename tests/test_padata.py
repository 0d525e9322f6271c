"""The padata engine: chunking rules, exactly-once coverage, errors, cancellation, concurrency."""

import _thread
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit import Job, JobCancelled, JobInterrupted, do_multithreaded
from fastinit.host.cpus import usable_cpus
from fastinit.engine.padata import (LOAD_BALANCE_FACTOR, OversubscriptionWarning,
                                    plan_chunk_size, plan_workers)
from fastinit.engine.jobstate import JobState
from fastinit.engine.workpool import WorkerPool, shared_pool

# Jobs that ask for more threads than this machine has CPUs, on purpose: the chunking rules
# must hold for 8 threads on a 2-CPU machine too (they run on POOL8, a pool of 8).
oversubscribed = pytest.mark.filterwarnings("ignore::fastinit.engine.padata.OversubscriptionWarning")
POOL8 = WorkerPool(8)


class Recorder:
    """A thread_fn that records every call: range and thread."""

    def __init__(self, fail_at=None, hold=None):
        self.lock = threading.Lock()
        self.calls = []
        self.completed = []
        self.undone = []
        self.active = 0
        self.fail_at = fail_at
        # An event every chunk but the failing one waits for before it completes.
        self.hold = hold

    def __call__(self, start, end, arg):
        with self.lock:
            self.active += 1
            self.calls.append((start, end, threading.get_ident()))
        try:
            if self.fail_at is not None and start <= self.fail_at < end:
                raise ValueError(f"unit {self.fail_at} is bad")
            if self.hold is not None:
                assert self.hold.wait(60), "the event this chunk waits for never came"
            with self.lock:
                self.completed.append((start, end))
        finally:
            with self.lock:
                self.active -= 1

    def undo(self, start, end, arg):
        with self.lock:
            self.undone.append((start, end))


def assert_exactly_once(calls, start, size):
    ranges = sorted((s, e) for s, e, *_ in calls)
    position = start
    for s, e in ranges:
        assert s == position, f"gap or overlap at {position}: next chunk starts at {s}"
        assert e > s, f"empty chunk [{s}, {e})"
        position = e
    assert position == start + size


jobs = st.builds(
    dict,
    start=st.integers(0, 1 << 40),
    size=st.integers(0, 4000),
    align=st.integers(1, 64),
    min_chunk=st.integers(0, 300),
    max_threads=st.integers(1, 8),
)


@oversubscribed
@settings(max_examples=300, deadline=None)
@given(jobs)
def test_random_job_covers_every_unit_exactly_once(params):
    rec = Recorder()
    report = do_multithreaded(Job(rec, **params), pool=POOL8)
    if params["size"] == 0:
        assert rec.calls == [] and report.chunks == ()
        return
    assert_exactly_once(rec.calls, params["start"], params["size"])
    assert sorted(c[:2] for c in report.chunks) == sorted(c[:2] for c in rec.calls)
    threads = {ident for *_, ident in rec.calls}
    assert len(threads) <= min(params["max_threads"], report.nworks)
    # The caller always takes part.
    assert threading.get_ident() in threads
    # Each worker's units are the chunks it claimed.
    assert sum(report.worker_units) == params["size"]
    for worker, units in enumerate(report.worker_units):
        assert units == sum(e - s for s, e, w in report.chunks if w == worker)


@oversubscribed
@settings(max_examples=300, deadline=None)
@given(jobs)
def test_random_job_chunks_end_on_multiples_of_chunk_size(params):
    rec = Recorder()
    report = do_multithreaded(Job(rec, **params), pool=POOL8)
    job_end = params["start"] + params["size"]
    if plan_workers(Job(rec, **params)) == 1:
        assert len(report.chunks) == min(1, params["size"])
        return
    assert report.chunk_size % params["align"] == 0
    assert report.chunk_size >= max(params["min_chunk"], 1)
    for start, end, _ in report.chunks:
        assert end - start <= report.chunk_size
        assert end % report.chunk_size == 0 or end == job_end


@settings(max_examples=200, deadline=None)
@given(jobs)
def test_single_worker_job_is_one_call_on_the_caller(params):
    params["max_threads"] = 1
    rec = Recorder()
    report = do_multithreaded(Job(rec, **params))
    if params["size"] == 0:
        assert rec.calls == []
    else:
        start = params["start"]
        assert rec.calls == [(start, start + params["size"], threading.get_ident())]
        assert report.nworks == 1


def test_size_zero_calls_nothing():
    rec = Recorder()
    report = do_multithreaded(Job(rec, start=10, size=0, max_threads=1))
    assert rec.calls == [] and report.nworks == 0


def test_size_below_min_chunk_is_one_call():
    rec = Recorder()
    do_multithreaded(Job(rec, start=3, size=100, min_chunk=1000))
    assert [c[:2] for c in rec.calls] == [(3, 103)]


@oversubscribed
def test_min_chunk_zero_with_small_size_does_not_divide_by_zero():
    # CVE-2024-43889: min_chunk 0 and size < 4 * nworks made a zero chunk size.
    rec = Recorder()
    job = Job(rec, start=0, size=3, min_chunk=0, max_threads=4)
    report = do_multithreaded(job, pool=POOL8)
    assert plan_chunk_size(job, plan_workers(job)) == 1
    assert_exactly_once(rec.calls, 0, 3)
    assert report.chunk_size == 1


@oversubscribed
def test_worker_count_uses_align_when_align_exceeds_min_chunk():
    # Linux 2023: the worker count must divide by max(min_chunk, align), not min_chunk.
    job = Job(print, start=0, size=32, align=8, min_chunk=1, max_threads=64)
    assert plan_workers(job) == 4


def test_alignment_honored_when_computed_chunk_would_be_zero():
    # 24cc57d8faaa: clamp to 1 before rounding up to align, or chunks come out unaligned.
    job = Job(print, start=0, size=6, align=3, min_chunk=0, max_threads=2)
    assert job.size // (plan_workers(job) * LOAD_BALANCE_FACTOR) == 0
    assert plan_chunk_size(job, 2) == 3


@oversubscribed
def test_chunk_size_matches_linux_worked_example():
    # A 384 GiB node with 52 CPUs (the series' Skylake machine), sections of 32768 pages.
    job = Job(print, start=0, size=100663296, align=32768, min_chunk=32768, max_threads=52)
    assert plan_workers(job) == 52
    assert plan_chunk_size(job, 52) == 491520


@pytest.mark.parametrize("error, field, value, words", [
    pytest.param(ValueError, "align", 0, "Job.align must be >= 1", id="align-zero"),
    pytest.param(ValueError, "min_chunk", -1, "Job.min_chunk must be >= 0",
                 id="min_chunk-negative"),
    pytest.param(ValueError, "max_threads", 0, "Job.max_threads must be >= 1",
                 id="max_threads-zero"),
    pytest.param(ValueError, "start", -5, "Job.start must be >= 0", id="start-negative"),
    pytest.param(ValueError, "size", -1, "Job.size must be >= 0", id="size-negative"),
    pytest.param(TypeError, "size", 2.5, "Job.size must be an integer, got 2.5",
                 id="size-float"),
    pytest.param(TypeError, "size", 4.0, "Job.size must be an integer, got 4.0",
                 id="size-integral-float"),
    pytest.param(TypeError, "align", True, "Job.align must be an integer, got True",
                 id="align-bool"),
    pytest.param(TypeError, "start", "0", "Job.start must be an integer, got '0'",
                 id="start-str"),
    pytest.param(TypeError, "max_threads", 2.0, "Job.max_threads must be an integer",
                 id="max_threads-float"),
])
def test_wrong_value_is_a_value_error_wrong_type_a_type_error_naming_field_and_fix(
        error, field, value, words):
    params = dict(start=0, size=10)
    params[field] = value
    with pytest.raises(error, match=words) as info:
        Job(print, **params)
    assert "; " in str(info.value)


def test_non_callable_thread_fn_is_a_type_error():
    with pytest.raises(TypeError, match="Job.thread_fn must be callable"):
        Job("not a function", start=0, size=10)


def test_non_callable_undo_fn_is_a_type_error():
    with pytest.raises(TypeError, match="Job.undo_fn must be callable"):
        Job(print, start=0, size=10, undo_fn=42)


@pytest.mark.parametrize("kwargs, words", [
    (dict(progress=3), "progress must be callable"),
    (dict(cancel="stop"), "cancel must be a threading.Event"),
    (dict(pool=4), "pool must be a fastinit.engine.workpool.WorkerPool"),
])
def test_do_multithreaded_refuses_arguments_of_the_wrong_kind(kwargs, words):
    rec = Recorder()
    with pytest.raises(TypeError, match=words):
        do_multithreaded(Job(rec, start=0, size=10), **kwargs)
    assert rec.calls == []


def test_do_multithreaded_refuses_what_is_not_a_job():
    with pytest.raises(TypeError, match="needs a fastinit.Job, got dict"):
        do_multithreaded({"start": 0, "size": 10})


def test_numpy_integers_are_accepted():
    np = pytest.importorskip("numpy")
    job = Job(print, start=np.int64(4), size=np.uint32(8), align=np.int16(2),
              max_threads=np.int64(1))
    assert (job.start, job.size, job.align, job.max_threads) == (4, 8, 2, 1)
    assert type(job.size) is int and type(job.max_threads) is int


def test_max_threads_defaults_to_usable_cpus():
    assert Job(print, start=0, size=1).max_threads == usable_cpus()


def test_more_threads_than_cpus_warns_and_names_both_counts():
    with pytest.warns(OversubscriptionWarning, match=f"max_threads={usable_cpus() + 1} is "
                                                    f"more than the {usable_cpus()} CPUs"):
        Job(print, start=0, size=1, max_threads=usable_cpus() + 1)


def test_as_many_threads_as_cpus_does_not_warn():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Job(print, start=0, size=1, max_threads=usable_cpus())
        Job(print, start=0, size=1)


@oversubscribed
@settings(max_examples=40, deadline=None)
@given(size=st.integers(2, 400), fail_fraction=st.floats(0, 0.999), threads=st.integers(2, 6))
def test_raising_chunk_reaches_caller_and_undo_sees_completed_chunks(size, fail_fraction,
                                                                     threads):
    fail_at = int(size * fail_fraction)
    rec = Recorder(fail_at=fail_at)
    job = Job(rec, start=0, size=size, max_threads=threads, undo_fn=rec.undo)
    with pytest.raises(ValueError, match=f"unit {fail_at} is bad") as info:
        do_multithreaded(job, pool=POOL8)
    assert any("raised in chunk" in note for note in info.value.__notes__)
    assert rec.active == 0
    assert POOL8.busy() == 0 and POOL8.running() == 0
    assert sorted(rec.undone) == sorted(rec.completed)


def test_error_stops_claiming_new_chunks(monkeypatch):
    # Every other chunk waits until the engine has recorded the first one's failure (the
    # real JobState.fail, observed): from then on no thread may claim another chunk.
    recorded = threading.Event()
    fail = JobState.fail

    def fail_and_tell(self, error, chunk):
        fail(self, error, chunk)
        recorded.set()

    monkeypatch.setattr(JobState, "fail", fail_and_tell)
    rec = Recorder(fail_at=0, hold=recorded)
    with pytest.raises(ValueError):
        do_multithreaded(Job(rec, start=0, size=1000, max_threads=2, min_chunk=1))
    # At most 2 threads: the failing chunk, and at most the one chunk the other thread
    # held when the failure was recorded (of 4 or more, however many CPUs size them).
    assert 0 in [start for start, _, _ in rec.calls]
    assert len(rec.calls) <= 2


def test_cancel_event_stops_job_and_undoes_completed_chunks():
    cancel = threading.Event()
    rec = Recorder()

    def work(start, end, arg):
        rec(start, end, arg)
        if len(rec.completed) >= 3:
            cancel.set()

    job = Job(work, start=0, size=10_000, max_threads=2, min_chunk=100, undo_fn=rec.undo)
    with pytest.raises(JobCancelled, match="cancelled after"):
        do_multithreaded(job, cancel=cancel)
    assert rec.active == 0
    assert 3 <= len(rec.completed) < 8
    assert sorted(rec.undone) == sorted(rec.completed)


def test_cancel_set_before_start_runs_nothing():
    cancel = threading.Event()
    cancel.set()
    rec = Recorder()
    with pytest.raises(JobCancelled):
        do_multithreaded(Job(rec, start=0, size=100, max_threads=2), cancel=cancel)
    assert rec.calls == []


def test_ctrl_c_in_caller_joins_helpers_and_raises_job_interrupted():
    # The caller is interrupted in its second chunk (its first completed); a helper's
    # chunks wait until then, so the caller has a second chunk on any number of CPUs.
    struck = threading.Event()
    rec = Recorder()
    caller = threading.get_ident()
    callers_chunks, interrupted = [], []

    def work(start, end, arg):
        if threading.get_ident() != caller:
            assert struck.wait(60), "the caller never reached its second chunk"
            return rec(start, end, arg)
        rec(start, end, arg)
        callers_chunks.append((start, end))
        if len(callers_chunks) == 2:
            interrupted.append((start, end))
            struck.set()
            _thread.interrupt_main()
            # The interrupt lands here, inside the chunk: Python takes it at the loop's
            # next turn, long before the loop could end.
            for _ in range(10**9):
                pass
            pytest.fail("the interrupt never landed")

    job = Job(work, start=0, size=1000, max_threads=2, min_chunk=10, undo_fn=rec.undo)
    with pytest.raises(JobInterrupted, match="interrupted by Ctrl-C"):
        do_multithreaded(job)
    assert rec.active == 0
    assert shared_pool().busy() == 0
    # The chunk the interrupt landed in never completed, so it is not undone.
    assert sorted(rec.undone) == sorted(c for c in rec.completed if c not in interrupted)


def test_progress_reaches_total_and_never_goes_back():
    seen = []
    rec = Recorder()
    do_multithreaded(Job(rec, start=5, size=5000, max_threads=2),
                     progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (5000, 5000)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@oversubscribed
def test_fifty_concurrent_jobs_from_eight_threads_each_exactly_once():
    def one_job(i):
        rec = Recorder()
        start, size = i * 1000, 500 + 37 * i
        do_multithreaded(Job(rec, start=start, size=size, max_threads=4, align=1 + i % 5),
                         pool=POOL8)
        assert_exactly_once(rec.calls, start, size)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one_job, range(50)))
    # Every helper came back and no caller is still counted.
    assert POOL8.busy() == 0 and POOL8.running() == 0


@oversubscribed
def test_job_started_inside_thread_fn_completes():
    inner_calls = []
    lock = threading.Lock()

    def inner(start, end, arg):
        with lock:
            inner_calls.append((start, end))

    def outer(start, end, arg):
        do_multithreaded(Job(inner, start=start * 100, size=(end - start) * 100,
                             max_threads=4))

    do_multithreaded(Job(outer, start=0, size=40, max_threads=4))
    assert_exactly_once(inner_calls, 0, 4000)
    assert shared_pool().running() == 0


def test_report_lists_chunks_in_claim_order_with_workers():
    rec = Recorder()
    report = do_multithreaded(Job(rec, start=0, size=64, max_threads=2, min_chunk=1))
    starts = [c[0] for c in report.chunks]
    assert starts == sorted(starts)  # claims advance through the range in order
    assert {w for *_, w in report.chunks} <= set(range(report.nworks))
    assert len(report.worker_units) == len(report.worker_seconds) == report.nworks


def test_report_gives_each_workers_busy_seconds():
    spent, lock = {}, threading.Lock()

    def work(start, end, arg):
        began = time.perf_counter()
        sum(range(20_000))  # some real work, so each chunk takes measurable time
        with lock:
            spent[start] = time.perf_counter() - began

    report = do_multithreaded(Job(work, start=0, size=16, max_threads=2, min_chunk=1))
    for worker, seconds in enumerate(report.worker_seconds):
        inside = sum(spent[start] for start, _, w in report.chunks if w == worker)
        # A worker is busy at least as long as its chunks ran, and no longer than the job.
        assert inside <= seconds <= report.elapsed
    assert sum(spent.values()) > 0
