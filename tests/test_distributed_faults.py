"""A cluster started as users start one (``dask scheduler``, two ``dask worker --nthreads 1
--memory-limit 4GiB`` on loopback), and its faults: a worker killed mid-init (real process,
SIGKILL), retries on another worker, Ctrl-C (a real SIGINT to a real process), an address
that does not answer."""

import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402

import cluster_hooks  # noqa: E402
from fastinit.cli import main  # noqa: E402
from fastinit.distributed import worker as on_worker  # noqa: E402
from fastinit.distributed.api import boot  # noqa: E402
from fastinit.distributed.run import NodeFailedError  # noqa: E402
from fastinit.machine.spec import parse_spec  # noqa: E402

# The hooks run on the workers, which cannot import the tests folder.
cloudpickle.register_pickle_by_value(cluster_hooks)
TESTS = Path(__file__).parent
DASK = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no {what} within {seconds} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(client, address)`` of a scheduler and two workers started by the dask commands."""
    folder = tmp_path_factory.mktemp("cluster")
    scheduler_file = str(folder / "scheduler.json")
    common = ["--no-dashboard"]
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--scheduler-file", scheduler_file] + common,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait_for(lambda: os.path.exists(scheduler_file), 60, "scheduler file")
        for _ in range(2):
            processes.append(subprocess.Popen(
                [DASK, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1",
                 "--memory-limit", "4GiB", "--host", "127.0.0.1"] + common,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(scheduler_file=scheduler_file, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield client, client.scheduler.address
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def client(cluster):
    """The cluster's client, with both workers up (a killed worker's nanny restarts it)."""
    client, _ = cluster
    client.wait_for_workers(2, timeout=120)
    return client


def _nothing_left(client) -> None:
    """No node of any boot on any worker; no task executing there (dask counts a task
    until the worker has sent its end, a moment after our function returned)."""
    assert all(held == [] for held in client.run(on_worker.shards_held).values())
    _wait_for(lambda: set(client.run(lambda dask_worker: dask_worker.state.executing_count)
                          .values()) == {0}, 10, "idle workers")


def _killed_mid_init(client, tmp_path, **options):
    """Boot 2 nodes holding node 1 in its first chunk; kill its worker there. Returns the
    boot's future (in a thread), node 1's worker address, and when it was killed."""
    markers = tmp_path / "markers"
    markers.mkdir()
    hook = functools.partial(cluster_hooks.hold_once, str(markers), 120.0, 1)
    pool = ThreadPoolExecutor(1)
    future = pool.submit(boot, parse_spec("2x1G,cpus=1"), cluster=client, chunk_hook=hook,
                         **options)
    pool.shutdown(wait=False)

    def held():
        if future.done():  # failed before node 1 got there: show why
            future.result()
        return (markers / "node1").exists() and markers / "node1"

    marker = _wait_for(held, 120, "node 1 in deferred init")
    pid = int(_wait_for(lambda: marker.read_text(), 10, "marker text"))
    address = {p: a for a, p in client.run(os.getpid).items()}[pid]
    os.kill(pid, signal.SIGKILL)
    return future, address, time.monotonic()


def test_a_worker_killed_mid_init_fails_the_boot_naming_node_and_worker(client, tmp_path):
    files = tmp_path / "files"
    future, address, _ = _killed_mid_init(client, tmp_path, memmap_dir=str(files))
    # "died": the boot heard of the worker's death, it did not wait out a dask timeout.
    with pytest.raises(NodeFailedError, match=rf"node 1 lost during its boot: worker "
                                              rf"{re.escape(address)} died"):
        future.result(timeout=120)
    assert not (files / "node1.memmap").exists()  # no shard of node 1 marked complete
    _nothing_left(client)


def test_with_retries_a_killed_workers_node_is_booted_again_on_another(client, tmp_path):
    future, address, _ = _killed_mid_init(client, tmp_path, retries=1, digests=True)
    result = future.result(timeout=180)
    again = result.shards[1]
    assert again.attempts == 2 and again.worker != address
    assert result.verification.ok
    _nothing_left(client)


def test_ctrl_c_cancels_every_node_and_leaves_nothing_running(client, cluster, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    script = (f"import functools, sys\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              f"import cloudpickle, cluster_hooks\n"
              f"cloudpickle.register_pickle_by_value(cluster_hooks)\n"
              f"import fastinit\n"
              f"from fastinit.machine.spec import parse_spec\n"
              f"hook = functools.partial(cluster_hooks.slow_chunks, {str(markers)!r}, 0.5)\n"
              f"try:\n"
              f"    fastinit.boot(parse_spec('2x4G,cpus=2'), cluster={cluster[1]!r},\n"
              f"                  chunk_hook=hook)\n"
              f"except KeyboardInterrupt:\n"
              f"    print('interrupted', flush=True)\n"
              f"    sys.exit(130)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(os.listdir(markers)) == 2, 120, "both nodes in deferred init")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=90)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert out.strip() == "interrupted"
    _nothing_left(client)


def test_the_command_line_against_a_cluster_started_by_hand(client, cluster, tmp_path,
                                                            capsys):
    address = cluster[1]
    assert main(["boot", "--spec", "4x8G,cpus=4", "--cluster", address, "--verify",
                 "--memmap-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    workers = set(client.scheduler_info()["workers"])
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d+ tcp://", line)]
    assert [row[0] for row in rows] == ["0", "1", "2", "3"]
    assert {row[1] for row in rows} <= workers
    assert "verified: parallel result equals the serial reference" in out
    assert main(["verify", "--memmap-dir", str(tmp_path), "--cluster", address,
                 "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["verified"] and [n["nid"] for n in document["nodes"]] == [0, 1, 2, 3]
    assert {n["worker"] for n in document["nodes"]} <= workers
    assert main(["verify", "--memmap-dir", str(tmp_path), "--cluster", address]) == 0
    out = capsys.readouterr().out
    files = [line.split() for line in out.splitlines() if re.match(r"\s+\d+ tcp://", line)]
    assert [(row[0], row[2]) for row in files] == \
        [(str(nid), str(tmp_path / f"node{nid}.memmap")) for nid in range(4)]
    assert "verified: parallel result equals the serial reference" in out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_address_that_does_not_answer_fails_in_seconds_with_exit_2():
    address = f"tcp://127.0.0.1:{_free_port()}"
    done = subprocess.run([sys.executable, "-m", "fastinit.cli", "boot", "--spec", "1x1G",
                           "--cluster", address], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert address in done.stderr and "no dask scheduler answers" in done.stderr
    assert "Traceback" not in done.stderr
    # In seconds: it waited its own connect timeout, which the message names.
    assert re.search(r"\(waited \d+(\.\d+)? s: ", done.stderr), done.stderr
