"""Soak (opt-in: pytest -m soak): 1,000 random jobs and 100 random small boots, in parallel
from several Python threads, each checked; afterwards no thread, file descriptor or file
mapping is left behind."""

import gc
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastinit import Job, do_multithreaded
from fastinit.mm.run import boot, load
from fastinit.machine.spec import parse_spec
from fastinit.mm.verify import verify
from fastinit.engine.workpool import shared_pool

pytestmark = pytest.mark.soak

CALLERS = 4
JOBS = 1000
BOOTS = 100


def run_random_job(seed: int) -> str:
    """One job with random parameters; a tenth fail in a random unit and must undo."""
    rng = random.Random(seed)
    start, size = rng.randrange(0, 1 << 20), rng.randrange(0, 5000)
    align = rng.choice([1, 1, 2, 8, 64, 512])
    job_args = dict(start=start, size=size, align=align, min_chunk=rng.randrange(0, 300),
                    max_threads=rng.randrange(1, 9))
    hits = np.zeros(size, dtype=np.int64)
    fail_at = start + rng.randrange(size) if size and rng.random() < 0.1 else None
    completed, undone, lock = [], [], threading.Lock()

    def thread_fn(lo, hi, arg):
        if fail_at is not None and lo <= fail_at < hi:
            raise LookupError(f"unit {fail_at}")
        hits[lo - start:hi - start] += 1
        with lock:
            completed.append((lo, hi))

    def undo_fn(lo, hi, arg):
        undone.append((lo, hi))

    job = Job(thread_fn, undo_fn=undo_fn, **job_args)
    if fail_at is None:
        do_multithreaded(job)
        assert (hits == 1).all(), f"seed {seed}: {job_args} not covered exactly once"
        assert not undone
        return "ok"
    with pytest.raises(LookupError):
        do_multithreaded(job)
    assert sorted(undone) == sorted(completed), f"seed {seed}: undo missed chunks"
    assert hits.max(initial=0) <= 1
    return "failed as injected"


def random_spec(rng: random.Random) -> str:
    nodes = [f"{rng.choice(['256M', '512M', '1G', '1536M'])}:{rng.randrange(0, 4)}"
             for _ in range(rng.randrange(1, 4))]
    if all(part.endswith(":0") for part in nodes):
        nodes[0] = nodes[0][:-1] + "1"
    return "+".join(nodes)


def run_random_boot(seed: int, directory) -> str:
    rng = random.Random(seed)
    spec = random_spec(rng)
    threads = rng.randrange(1, 5)
    kernel = rng.choice(["stream", "plain"])
    path = str(directory / f"boot-{seed}.bin") if rng.random() < 0.3 else None
    result = boot(parse_spec(spec), threads=threads, kernel=kernel, memmap_file=path)
    report = verify(result)
    assert report.ok, f"seed {seed}: {spec} threads={threads} {kernel}: {report.problems}"
    if path is not None:
        assert verify(load(path)).ok, f"seed {seed}: the file {path} does not verify"
        os.unlink(path)
    return spec


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def mappings_of(directory) -> list[str]:
    with open("/proc/self/maps") as maps:
        return [line for line in maps if str(directory) in line]


# The random jobs ask for up to 8 threads on purpose, more than CI's CPUs.
@pytest.mark.filterwarnings("ignore::fastinit.engine.padata.OversubscriptionWarning")
def test_soak_random_jobs_and_boots_from_several_threads(tmp_path):
    # Fill the shared pool first, so the thread count afterwards compares like with like.
    do_multithreaded(Job(lambda *args: None, start=0, size=64, max_threads=64))
    threads_before, fds_before = threading.active_count(), open_fds()

    with ThreadPoolExecutor(CALLERS) as callers:
        job_outcomes = list(callers.map(run_random_job, range(JOBS)))
        specs = list(callers.map(lambda seed: run_random_boot(seed, tmp_path), range(BOOTS)))
    gc.collect()

    assert job_outcomes.count("ok") + job_outcomes.count("failed as injected") == JOBS
    assert 0 < job_outcomes.count("failed as injected") < JOBS // 4
    assert len(specs) == BOOTS and len(set(specs)) > 10
    assert threading.active_count() == threads_before
    assert shared_pool().busy() == 0 and shared_pool().running() == 0
    assert open_fds() == fds_before
    assert mappings_of(tmp_path) == []
