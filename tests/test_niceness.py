"""Job(nice=N): helper threads at that niceness, the caller's thread as it was (Linux)."""

import sys
import threading

import pytest

from fastinit import Job, do_multithreaded
from fastinit.host.niceness import thread_nice
from fastinit.engine.workpool import WorkerPool
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="a thread's own niceness is Linux's")


def run_three_chunks(pool, nice):
    """Each of 3 threads runs exactly one chunk (a barrier holds them); (is caller, nice)."""
    caller, seen, lock = threading.get_native_id(), [], threading.Lock()
    barrier = threading.Barrier(3, timeout=60)

    def chunk(start, end, arg):
        barrier.wait()
        with lock:
            seen.append((threading.get_native_id() == caller, thread_nice()))

    report = do_multithreaded(Job(chunk, start=0, size=3, max_threads=3, nice=nice),
                              pool=pool)
    assert report.nworks == 3
    return seen


# Three threads on any machine (the barrier needs them all), oversubscribed or not.
@pytest.mark.filterwarnings("ignore::fastinit.OversubscriptionWarning")
def test_helpers_run_at_the_jobs_niceness_and_the_caller_keeps_its_own():
    base = thread_nice()
    nice = min(base + 7, 19)
    pool = WorkerPool(3)
    try:
        seen = run_three_chunks(pool, nice)
        assert sorted(seen) == [(False, nice), (False, nice), (True, base)]
        assert thread_nice() == base
        # The next job without nice: its helpers are back at the base (or new ones).
        assert sorted(run_three_chunks(pool, None)) == [(False, base), (False, base),
                                                        (True, base)]
    finally:
        pool.shutdown()


def test_a_boot_with_nice_runs_every_chunk_off_the_callers_thread_at_that_niceness():
    base = thread_nice()
    nice = min(base + 5, 19)
    seen, lock = set(), threading.Lock()

    def hook(nid, start, end):
        with lock:
            seen.add(thread_nice())

    result = boot(parse_spec("2x1G"), threads=2, nice=nice, chunk_hook=hook)
    assert seen == {nice}
    assert thread_nice() == base
    assert sum(node.pages for node in result.nodes) > 0


@pytest.mark.parametrize("nice, error, match", [
    (-1, ValueError, "Job.nice must be >= .*got -1.*lowering it needs privilege"),
    (20, ValueError, "Job.nice must be <= 19, got 20"),
    (2.5, TypeError, "Job.nice"),
])
def test_a_bad_nice_is_refused_naming_the_keyword(nice, error, match):
    if thread_nice() > 0 and nice == -1:
        pytest.skip("this thread already runs niced")
    with pytest.raises(error, match=match):
        Job(lambda s, e, a: None, start=0, size=1, nice=nice)
