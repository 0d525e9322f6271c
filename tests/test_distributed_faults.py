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
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402

import cluster_hooks  # noqa: E402
from fastinit.cli import main  # noqa: E402
from fastinit.distributed import registry  # noqa: E402
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


def _written(path: str) -> bool:
    try:
        with open(path) as info:
            return "address" in json.load(info)
    except (OSError, ValueError):
        return False


def _start_cluster(folder: Path, workers: int) -> tuple[list, str]:
    """``(processes, scheduler file)``: ``dask scheduler`` and ``workers`` x ``dask worker
    --nthreads 1 --memory-limit 4GiB`` on loopback, as users start them."""
    scheduler_file = str(folder / "scheduler.json")
    common = ["--no-dashboard"]
    processes = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                   "--scheduler-file", scheduler_file] + common,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        # Written in place, not renamed: it exists (empty) before its address is in it.
        _wait_for(lambda: _written(scheduler_file), 60, "scheduler file")
        for _ in range(workers):
            processes.append(subprocess.Popen(
                [DASK, "worker", "--scheduler-file", scheduler_file, "--nthreads", "1",
                 "--memory-limit", "4GiB", "--host", "127.0.0.1"] + common,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    except BaseException:
        _stop_cluster(processes)
        raise
    return processes, scheduler_file


def _stop_cluster(processes: list) -> None:
    for process in reversed(processes):
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """``(client, address)`` of a scheduler and two workers started by the dask commands."""
    processes, scheduler_file = _start_cluster(tmp_path_factory.mktemp("cluster"), 2)
    try:
        with distributed.Client(scheduler_file=scheduler_file, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield client, client.scheduler.address
    finally:
        _stop_cluster(processes)


@pytest.fixture
def client(cluster):
    """The cluster's client, with both workers up (a killed worker's nanny restarts it)."""
    client, _ = cluster
    client.wait_for_workers(2, timeout=120)
    return client


def _nothing_left(client) -> None:
    """No node of any boot on any worker; no task executing there (dask counts a task
    until the worker has sent its end, a moment after our function returned)."""
    assert all(held == [] for held in client.run(registry.shards_held).values())
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


def _complete_node_files(directory: Path) -> list[str]:
    from fastinit.mm.run import load
    return sorted(name for name in os.listdir(directory) if re.fullmatch(r"node\d+\.memmap",
                                                                         name)
                  and load(str(directory / name)).memmap.file.state == "complete")


def test_a_worker_killed_mid_init_fails_the_boot_naming_node_and_worker(client, tmp_path):
    files = tmp_path / "files"
    future, address, _ = _killed_mid_init(client, tmp_path, memmap_dir=str(files))
    # "died": the boot heard of the worker's death, it did not wait out a dask timeout.
    with pytest.raises(NodeFailedError, match=rf"node 1 lost during its boot: worker "
                                              rf"{re.escape(address)} died") as failed:
        future.result(timeout=120)
    # The message says which node files are complete, and they are exactly those; the
    # killed worker's temporary file is gone (removed by the worker left on its disk).
    complete = _complete_node_files(files)
    said = str(failed.value)
    if complete:
        assert f"node files complete from this boot: {', '.join(complete)} in {files}" \
            in said
    else:
        assert f"no node file of this boot was complete; {files} keeps what it had" in said
    assert "node1.memmap" not in complete  # no shard of node 1 marked complete
    assert [n for n in os.listdir(files) if ".fastinit-tmp-" in n] == []
    _nothing_left(client)
    assert _complete_node_files(files) == complete  # none completed after the failure


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
              f"    fastinit.cluster_boot(parse_spec('2x4G,cpus=2'), {cluster[1]!r},\n"
              f"                          chunk_hook=hook)\n"
              f"except KeyboardInterrupt:\n"
              f"    print('interrupted', flush=True)\n"
              f"    sys.exit(130)\n")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: process.poll() is not None or len(os.listdir(markers)) == 2, 120,
                  "both nodes in deferred init")
        assert process.poll() is None, process.communicate()[1]
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


def _silent_listener():
    """A socket on loopback that accepts every connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    return server, held


def test_a_listener_that_never_answers_fails_in_seconds_with_exit_2():
    server, held = _silent_listener()
    address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        done = subprocess.run([sys.executable, "-m", "fastinit.cli", "boot", "--spec",
                               "1x1G", "--cluster", address], capture_output=True,
                              text=True, timeout=120)
    finally:
        server.close()
        for connection in held:
            connection.close()
    assert done.returncode == 2, done.stderr
    assert held, "the boot never connected"
    assert f"no dask scheduler answers at {address}" in done.stderr
    assert "never answers distributed's handshake" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_memmap_dir_that_is_a_file_or_holds_node_files_is_refused_with_exit_2(
        client, cluster, tmp_path, capsys):
    address = cluster[1]
    a_file = tmp_path / "a-file"
    a_file.write_text("my notes\n")
    boot_args = ["boot", "--spec", "2x1G,cpus=1", "--cluster", address, "--memmap-dir"]
    assert main(boot_args + [str(a_file)]) == 2
    assert f"--memmap-dir {a_file} is a file, not a directory" in capsys.readouterr().err
    assert a_file.read_text() == "my notes\n"
    files = tmp_path / "files"
    assert main(boot_args + [str(files)]) == 0
    capsys.readouterr()
    before = {name: (files / name).read_bytes() for name in os.listdir(files)}
    inode = os.stat(files / "node0.memmap").st_ino
    assert main(boot_args + [str(files)]) == 2
    err = capsys.readouterr().err
    assert f"--memmap-dir {files} already holds node0.memmap, node1.memmap; pass --force" \
        in err and "Traceback" not in err
    assert {name: (files / name).read_bytes() for name in os.listdir(files)} == before
    _nothing_left(client)
    # --force replaces fastinit node files, and only those.
    (files / "node1.memmap").write_text("not a memmap\n")
    assert main(boot_args + [str(files), "--force"]) == 2
    assert "node1.memmap is not a fastinit memmap file" in capsys.readouterr().err
    (files / "node1.memmap").unlink()
    assert main(boot_args + [str(files), "--force"]) == 0
    assert _complete_node_files(files) == ["node0.memmap", "node1.memmap"]
    assert os.stat(files / "node0.memmap").st_ino != inode  # a new file took its place


def _boot_losing_scheduler(tmp_path, spec: str, hook: str, kill: bool):
    """Boot ``spec`` with ``--memmap-dir`` on a one-worker cluster through the command
    line, with the chunk hook ``hook`` (Python source over ``cluster_hooks``, ``markers``
    and ``scheduler``, the scheduler's pid); once a node left a marker, kill the scheduler
    (if ``kill``: else the hook does). Returns (exit code, stderr, scheduler address,
    files folder)."""
    processes, scheduler_file = _start_cluster(tmp_path, 1)
    markers, files = tmp_path / "markers", tmp_path / "files"
    markers.mkdir()
    script = (f"import functools, sys\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              f"import cloudpickle, cluster_hooks\n"
              f"cloudpickle.register_pickle_by_value(cluster_hooks)\n"
              f"from fastinit.distributed import api\n"
              f"markers, scheduler = {str(markers)!r}, {processes[0].pid}\n"
              f"hook = {hook}\n"
              f"api.cluster_boot = functools.partial(api.cluster_boot, chunk_hook=hook)\n"
              f"from fastinit.cli import run\n"
              f"sys.argv = ['fastinit'] + sys.argv[1:]\n"
              f"sys.exit(run())\n")
    try:
        with open(scheduler_file) as info:
            address = json.load(info)["address"]
        booting = subprocess.Popen([sys.executable, "-c", script, "boot", "--spec", spec,
                                    "--cluster", address, "--memmap-dir", str(files)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for(lambda: os.listdir(markers), 120, "a node in deferred init")
        if kill:
            processes[0].kill()  # the scheduler
        out, err = booting.communicate(timeout=120)
        processes[1].wait(timeout=60)  # the worker closes without its scheduler
    finally:
        _stop_cluster(processes)
    return booting.returncode, err, address, files


def _files_as_said(err: str, files: Path) -> list[str]:
    """Check the one line against the folder: what it calls complete is; what it calls
    'not reported back' is complete or absent (the folder was empty); nothing else is there,
    no temporary file is left. Returns the complete files."""
    assert [n for n in os.listdir(files) if ".fastinit-tmp-" in n] == []
    complete = _complete_node_files(files)
    assert sorted(os.listdir(files)) == complete  # nothing half-written, nothing else
    said_complete = re.search(r"node files complete from this boot when it was lost: "
                              r"([^;]*) in ", err)
    named = said_complete.group(1).split(", ") if said_complete else []
    unsure = re.search(r"; ([^;]*) (?:was|were) not reported back: each is either complete "
                       r"from this boot .* or as it was, never half-written", err)
    maybe = unsure.group(1).split(", ") if unsure else []
    assert set(named) <= set(complete) <= set(named) | set(maybe), (complete, err)
    assert not set(named) & set(maybe)
    return complete


def test_a_scheduler_killed_mid_boot_exits_3_with_one_line_and_no_half_written_file(
        tmp_path):
    code, err, address, files = _boot_losing_scheduler(
        tmp_path, "2x2G,cpus=2", "functools.partial(cluster_hooks.slow_chunks, markers, 0.3)",
        kill=True)
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"fastinit boot: FAILED: lost the dask scheduler at {address} "
                          f"during its boot; the workers stop their nodes when they lose it")
    _files_as_said(err, files)


@pytest.mark.parametrize("hold", [0.0, 3.0])
def test_a_node_whose_final_sync_races_the_lost_scheduler_is_complete_or_absent_as_said(
        tmp_path, hold):
    # The scheduler dies as node 0 starts its last chunk. hold=0: the node goes on to its
    # sync and commit at once, racing its worker's discovery of the loss (the commit
    # usually wins). hold=3: the worker has closed before the chunk ends, and the node
    # is cancelled before its commit. Either way the one line says what the folder holds.
    from fastinit.mm.plan import plan_boot
    spec = "2x2G,cpus=1"
    ends = {node.nid: node.job[1] for node in plan_boot(parse_spec(spec), "x86", None).nodes}
    code, err, address, files = _boot_losing_scheduler(
        tmp_path, spec, f"functools.partial(cluster_hooks.kill_at_last_chunk, markers, "
                        f"scheduler, {ends!r}, {hold})", kill=False)
    assert code == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"fastinit boot: FAILED: lost the dask scheduler at {address}")
    complete = _files_as_said(err, files)
    print(hold, complete, err)
    if hold:
        assert complete == []  # its worker cancelled it at the chunk's end
