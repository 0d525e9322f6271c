"""Faults injected mid-init: a raising chunk or Ctrl-C stops the boot promptly, every thread
is joined, the error names node and chunk, and a memmap file's path keeps what it had."""

import signal
from pathlib import Path
import threading
import time

import pytest

from fastinit.mm import deferred
from fastinit.mm.run import boot, load
from fastinit.cli import main
from fastinit.machine.spec import parse_spec
from fastinit.engine.workpool import shared_pool

SPEC = "2x4G,cpus=2"
THREADS = 2


class FaultAfter:
    """A chunk hook that records every chunk and strikes at chunk ``k`` of node ``nid``.

    Chunks that start after the strike take 200 ms, like the big chunks of a big machine, so
    "only chunks already under way may still start" is a bound a prompt stop always meets.
    """

    LINGER = 0.2

    def __init__(self, k, nid, strike):
        # A process with one CPU runs each node's job as one call (padata's nworks == 1):
        # its only chunk is the one to strike.
        self.k = k if shared_pool().size > 1 else 1
        self.nid, self.strike = nid, strike
        self.lock = threading.Lock()
        self.seen = {0: 0, 1: 0}
        self.after_fault = 0
        self.struck = None

    def __call__(self, nid, start, end):
        with self.lock:
            late = self.struck is not None
            self.after_fault += late
            self.seen[nid] += 1
            strike = nid == self.nid and self.seen[nid] == self.k and not late
            if strike:
                self.struck = (start, end)
        if strike:
            self.strike()
        if late:
            time.sleep(self.LINGER)


def assert_no_thread_left_working():
    assert not [t for t in threading.enumerate()
                if t.name.startswith("pgdatinit") and t.is_alive()]
    assert shared_pool().busy() == 0


def raise_fault():
    raise RuntimeError("injected fault")


# At least 4 chunks per node: on 2 CPUs each node runs on its own pgdatinit thread alone.
@pytest.mark.parametrize("k, nid", [(1, 0), (2, 1), (3, 0), (4, 1)])
def test_raising_chunk_stops_the_boot_and_names_node_and_chunk(k, nid):
    hook = FaultAfter(k, nid, raise_fault)
    with pytest.raises(RuntimeError, match="injected fault") as caught:
        boot(parse_spec(SPEC), threads=THREADS, chunk_hook=hook)
    notes = "\n".join(caught.value.__notes__)
    start, end = hook.struck
    assert f"raised in chunk [{start}, {end})" in notes
    assert f"in deferred init of node {nid}" in notes
    # Promptly: each thread may start at most the chunk it claimed before the stop.
    assert hook.after_fault <= 2 * THREADS
    assert_no_thread_left_working()


def send_ctrl_c():
    # What a terminal's Ctrl-C does: SIGINT taken by the main thread. (os.kill from this
    # helper thread would usually be taken by the helper itself.)
    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)


def test_ctrl_c_after_k_chunks_stops_every_thread():
    hook = FaultAfter(3, 1, send_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        boot(parse_spec(SPEC), threads=THREADS, chunk_hook=hook)
    assert hook.struck is not None
    assert hook.after_fault <= 2 * THREADS
    assert_no_thread_left_working()


def test_ctrl_c_in_the_cli_exits_130_and_leaves_the_old_file(tmp_path, capsys, monkeypatch):
    path = str(tmp_path / "m.bin")
    assert main(["boot", "--spec", "1x1G", "--memmap-file", path, "--no-progress"]) == 0
    before = Path(path).read_bytes()
    hook = FaultAfter(3, 0, send_ctrl_c)
    chunk = deferred.deferred_init_memmap_chunk

    def interrupted_chunk(start, end, ctx):
        hook(ctx.nid, start, end)
        chunk(start, end, ctx)

    monkeypatch.setattr(deferred, "deferred_init_memmap_chunk", interrupted_chunk)
    status = main(["boot", "--spec", SPEC, "--threads", str(THREADS), "--memmap-file", path,
                   "--no-progress", "--force"])
    assert status == 130
    assert "interrupted; every thread was stopped" in capsys.readouterr().err
    assert_no_thread_left_working()
    assert Path(path).read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin"]
    assert load(path).plan.topology.source == "spec 1x1G"


def test_fault_in_a_file_backed_boot_is_never_reported_good(tmp_path, capsys):
    path = str(tmp_path / "m.bin")
    with pytest.raises(RuntimeError):
        boot(parse_spec(SPEC), threads=THREADS, memmap_file=path,
             chunk_hook=FaultAfter(4, 1, raise_fault))
    assert main(["verify", "--memmap-file", path]) == 2
    assert "m.bin does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_boot_after_a_fault_runs_clean():
    with pytest.raises(RuntimeError):
        boot(parse_spec(SPEC), threads=THREADS, chunk_hook=FaultAfter(2, 0, raise_fault))
    from fastinit.mm.verify import verify
    assert verify(boot(parse_spec(SPEC), threads=THREADS)).ok
