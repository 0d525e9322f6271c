"""The worker pool: every way out of a helper counts it down, what runs at once, NUMA pinning."""

import logging
import os
import threading
import time

import pytest

from fastinit import Job, do_multithreaded
from fastinit.engine.workpool import WorkerPool
from at_once import AtOnce

ALLOWED = sorted(os.sched_getaffinity(0))
two_cpus = pytest.mark.skipif(len(ALLOWED) < 2, reason="needs two CPUs in the affinity mask")
oversubscribed = pytest.mark.filterwarnings("ignore::fastinit.engine.padata.OversubscriptionWarning")


def fake_nodes(tmp_path, *cpulists):
    """A sysfs node directory with one ``nodeN/cpulist`` per argument."""
    for nid, cpulist in enumerate(cpulists):
        (tmp_path / f"node{nid}").mkdir()
        (tmp_path / f"node{nid}" / "cpulist").write_text(cpulist + "\n")
    return tmp_path


def run_with_deadline(fn, seconds=30):
    """Run ``fn`` on a thread; fail (instead of hanging the suite) if it does not return."""
    outcome = {}

    def target():
        try:
            outcome["value"] = fn()
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the job did not return within {seconds} s"
    return outcome


def test_helper_whose_pinning_fails_reaches_the_caller_and_ends_the_job(tmp_path, monkeypatch):
    # Issue 9 item 10: the pinning raised before the helper's try, and the job waited forever.
    pool = WorkerPool(2, sysfs_nodes=fake_nodes(tmp_path, ",".join(map(str, ALLOWED))))

    def refuse(pid, cpus):
        raise OSError(22, "sched_setaffinity refused")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    calls = []
    job = Job(lambda s, e, a: calls.append((s, e)), start=0, size=100, max_threads=2,
              numa_aware=True)
    outcome = run_with_deadline(lambda: do_multithreaded(job, pool=pool))
    error = outcome.get("error")
    assert isinstance(error, OSError) and "sched_setaffinity refused" in str(error)
    assert any("while pinning helper 1" in note for note in error.__notes__)
    assert pool.busy() == 0 and pool.running() == 0


def test_pool_runs_jobs_again_after_a_pinning_failure(tmp_path, monkeypatch):
    pool = WorkerPool(2, sysfs_nodes=fake_nodes(tmp_path, ",".join(map(str, ALLOWED))))
    job = Job(lambda s, e, a: None, start=0, size=100, max_threads=2, numa_aware=True)
    with monkeypatch.context() as patch:
        patch.setattr(os, "sched_setaffinity", lambda pid, cpus: 1 / 0)
        assert isinstance(run_with_deadline(lambda: do_multithreaded(job, pool=pool))
                          .get("error"), ZeroDivisionError)
    report = run_with_deadline(lambda: do_multithreaded(job, pool=pool))["value"]
    assert sum(report.worker_units) == 100 and report.nworks == 2


def test_task_that_raises_past_the_job_is_logged_and_still_counted_down(caplog):
    pool = WorkerPool(2)
    counted = pool.new_caller()
    (helper,) = pool.enter(1, counted)
    done = threading.Event()

    def broken(worker):
        raise RuntimeError("escaped")

    with caplog.at_level(logging.CRITICAL, logger="fastinit.engine.workpool"):
        helper.submit(broken, done.set)
        assert done.wait(10)
    pool.leave(counted)
    assert "exception escaped a fastinit helper" in caplog.text
    assert pool.busy() == 0 and pool.running() == 0


def test_one_caller_never_runs_more_chunks_at_once_than_the_pool_size():
    pool = WorkerPool(2)
    work = AtOnce(meet=2)  # the caller and its one helper must both be inside a chunk
    report = do_multithreaded(Job(work, start=0, size=32, max_threads=2), pool=pool)
    assert report.nworks == 2
    assert work.most == 2


@oversubscribed
def test_nested_job_counts_its_thread_once():
    pool = WorkerPool(3)
    work = AtOnce(hold=0.002)

    def outer(start, end, arg):
        do_multithreaded(Job(work, start=start * 8, size=(end - start) * 8, max_threads=3),
                         pool=pool)

    do_multithreaded(Job(outer, start=0, size=12, max_threads=3), pool=pool)
    assert work.most <= 3
    assert pool.running() == 0 and pool.busy() == 0


def test_a_caller_gets_no_helper_while_the_pool_is_full():
    pool = WorkerPool(2)
    release = threading.Event()
    started = threading.Barrier(3)

    def hold(start, end, arg):
        if start < 2:
            started.wait(10)
            release.wait(10)

    first = threading.Thread(target=do_multithreaded,
                             args=(Job(hold, start=0, size=2, max_threads=2),),
                             kwargs={"pool": pool})
    first.start()
    started.wait(10)  # the first job's caller and its helper are both inside a chunk
    assert pool.running() == 2
    report = do_multithreaded(Job(lambda s, e, a: None, start=0, size=100, max_threads=2),
                              pool=pool)
    release.set()
    first.join(10)
    assert report.nworks == 1  # callers are never refused, but get no helper
    assert pool.running() == 0


@two_cpus
@oversubscribed
def test_numa_aware_helpers_go_round_robin_over_the_nodes(tmp_path):
    nodes = fake_nodes(tmp_path, str(ALLOWED[0]), str(ALLOWED[1]), "")
    pool = WorkerPool(4, sysfs_nodes=nodes)
    seen = {}
    lock = threading.Lock()
    gate = threading.Barrier(4)

    def work(start, end, arg):
        if start == 0 or not seen.get(threading.get_ident()):
            with lock:
                seen[threading.get_ident()] = frozenset(os.sched_getaffinity(0))
        if start < 4:
            gate.wait(10)  # every worker claims one of the first four chunks

    report = do_multithreaded(Job(work, start=0, size=4, max_threads=4, numa_aware=True),
                              pool=pool)
    assert report.nworks == 4
    caller = seen.pop(threading.get_ident())
    assert caller == frozenset(os.sched_getaffinity(0))
    helpers = sorted(seen.values(), key=sorted)
    # Three helpers over two nodes with CPUs (the memory-only node is skipped).
    assert helpers == sorted([{ALLOWED[0]}, {ALLOWED[1]}, {ALLOWED[0]}], key=sorted)


def test_round_robin_cursor_continues_across_jobs_of_one_pool():
    pool = WorkerPool(2)
    nodes = [(0,), (1,), (2,)]
    assert pool.place(nodes, 2) == [(0,), (1,)]
    assert pool.place(nodes, 2) == [(2,), (0,)]
    assert pool.place([], 2) == [None, None]
    assert WorkerPool(2).place(nodes, 1) == [(0,)]  # another pool, its own cursor


@two_cpus
@oversubscribed  # the narrowed mask leaves one CPU for a two-thread job
def test_unpinned_helper_takes_the_main_threads_affinity_as_it_is_now(tmp_path):
    pool = WorkerPool(2, sysfs_nodes=fake_nodes(tmp_path, str(ALLOWED[1])))
    gate = threading.Barrier(2)
    seen = {}

    def work(start, end, arg):
        seen[threading.get_ident()] = frozenset(os.sched_getaffinity(0))
        gate.wait(10)

    main = threading.main_thread()
    assert threading.current_thread() is main
    do_multithreaded(Job(work, start=0, size=2, max_threads=2, numa_aware=True), pool=pool)
    assert frozenset({ALLOWED[1]}) in seen.values()
    # The program narrows its own mask after the pool exists: unpinning honours it.
    narrowed = set(ALLOWED[:1])
    os.sched_setaffinity(0, narrowed)
    try:
        seen.clear()
        do_multithreaded(Job(work, start=0, size=2, max_threads=2), pool=pool)
    finally:
        os.sched_setaffinity(0, ALLOWED)
    assert set(seen.values()) == {frozenset(narrowed)}


def test_pool_size_is_checked_like_every_integer():
    with pytest.raises(TypeError, match="WorkerPool size must be an integer"):
        WorkerPool(2.0)
    with pytest.raises(ValueError, match="WorkerPool size must be >= 1"):
        WorkerPool(0)


def test_shutdown_joins_every_idle_helper_and_the_pool_still_works():
    pool = WorkerPool(2)
    gate = threading.Barrier(2)
    ran_on = set()

    def work(start, end, arg):
        ran_on.add(threading.current_thread())
        gate.wait(10)

    do_multithreaded(Job(work, start=0, size=2, max_threads=2), pool=pool)
    (helper,) = ran_on - {threading.current_thread()}
    pool.shutdown()
    assert not helper.is_alive()
    ran_on.clear()
    report = do_multithreaded(Job(work, start=0, size=2, max_threads=2), pool=pool)
    assert report.nworks == 2 and helper not in ran_on  # a new helper was made
    pool.shutdown()


@two_cpus
def test_an_idle_helper_keeps_nothing_of_its_last_job_alive():
    # Was: the helper's loop variables held its last task, so a job's argument (a memmap,
    # a locked file) lived on until that helper ran another job.
    import gc
    import weakref

    class Argument:
        pass

    pool = WorkerPool(2)
    argument = Argument()
    gone = weakref.ref(argument)
    helpers_ran = set()
    # The first two chunks meet, so the helper surely runs one (however late it starts).
    meet = threading.Barrier(2, timeout=60)

    def chunk(start, end, arg):
        if start < 2:
            meet.wait()
        helpers_ran.add(threading.get_ident())

    job = Job(chunk, start=0, size=8, max_threads=2, fn_arg=argument)
    do_multithreaded(job, pool=pool)
    assert len(helpers_ran) == 2  # a helper took part, so it held the job once
    del job, argument
    deadline = time.monotonic() + 5
    while gone() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.01)
    assert gone() is None
    pool.shutdown()
