"""Ctrl-C held back over blocks that must not be cut: noted inside, delivered or handed
to the caller after, the handler put back. Signals are real (signal.raise_signal)."""

import signal

import pytest

from fastinit.engine.interrupts import ctrl_c_held, interrupts_deferred


def test_ctrl_c_inside_a_held_block_is_recorded_for_the_caller():
    finished = False
    with ctrl_c_held() as pending:
        signal.raise_signal(signal.SIGINT)
        finished = True
    assert finished and len(pending) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_inside_a_deferred_block_is_raised_when_the_block_ends():
    finished = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            finished = True
    assert finished
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_is_not_lost_when_the_deferred_block_fails():
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)
            raise OSError("disk full")


def test_deferred_block_without_ctrl_c_changes_nothing():
    with interrupts_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- the command line's signals (issue 18 items 11 and 12): real processes and signals ---

import os  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from memmap_tools import listing  # noqa: E402

from fastinit.engine.interrupts import Stopper, stop_on_signals  # noqa: E402

CHILD = str(Path(__file__).parent / "signal_child.py")
CLI = [sys.executable, "-m", "fastinit.cli"]


def _old_file(path: Path) -> bytes:
    done = subprocess.run(CLI + ["boot", "--spec", "1x1G", "--memmap-file", str(path),
                                 "--no-progress"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()


def _wait_for(path: Path, alive) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert alive() and time.monotonic() < deadline, "the child never got there"
        time.sleep(0.01)


def _boot_args(path: Path) -> list[str]:
    return ["boot", "--spec", "1x2G", "--memmap-file", str(path), "--force",
            "--no-progress"]


def test_sigterm_stops_a_background_job_whose_sigint_is_ignored(tmp_path):
    # `cmd &` in a non-interactive shell starts cmd with SIGINT ignored: a SIGINT does
    # nothing (the shell's convention), a SIGTERM stops the run and keeps the old file.
    path, marker, err = tmp_path / "m.bin", tmp_path / "held", tmp_path / "err"
    before = _old_file(path)
    child = " ".join(shlex.quote(a) for a in [sys.executable, CHILD, "writing", str(marker),
                                              *_boot_args(path)])
    shell = subprocess.Popen(["sh", "-c", f"{child} >/dev/null 2>{err} & echo $!; "
                                          f"wait $!; echo $?"],
                             stdout=subprocess.PIPE, text=True)
    with shell:
        try:
            pid = int(shell.stdout.readline())
            _wait_for(marker, lambda: shell.poll() is None)
            os.kill(pid, signal.SIGINT)
            os.kill(pid, signal.SIGTERM)
            status = int(shell.communicate(timeout=120)[0])
        finally:
            shell.kill()
    said = err.read_text()
    assert status == 143, said
    assert "terminated (SIGTERM); every thread was stopped" in said
    assert "Traceback" not in said
    assert path.read_bytes() == before
    assert listing(tmp_path) == ["err", "held", "m.bin"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_after_the_new_file_is_in_place_says_so_and_exits_0(tmp_path, signum):
    path, marker = tmp_path / "m.bin", tmp_path / "held"
    before = _old_file(path)
    child = subprocess.Popen([sys.executable, CHILD, "printing", str(marker),
                              *_boot_args(path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(marker, lambda: child.poll() is None)
        child.send_signal(signum)
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert f"{path} was complete before the interrupt: it holds the new data" in err
    assert "Traceback" not in err
    assert path.read_bytes() != before and listing(tmp_path) == ["held", "m.bin"]
    from fastinit.mm.run import load
    assert load(str(path)).memmap.file.state == "complete"


def test_a_ctrl_c_while_the_command_imports_its_modules_exits_130_quietly(tmp_path):
    # A real SIGINT sent from inside the import of a module the boot needs, after the
    # program took the signals (the interpreter's own start-up is Python's).
    script = ("import os, signal, sys\n"
              "class Finder:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'fastinit.machine.spec':\n"
              "            os.kill(os.getpid(), signal.SIGINT)\n"
              "sys.meta_path.insert(0, Finder())\n"
              "from fastinit.cli import run\n"
              "sys.argv = ['fastinit', 'boot', '--spec', '1x1G']\n"
              "sys.exit(run())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stderr == "fastinit boot: interrupted; every thread was stopped\n"


def test_an_error_a_signal_caused_is_reported_as_the_interrupt(monkeypatch, capsys):
    # An import cut short by Ctrl-C can surface as ImportError (NumPy does that).
    from fastinit.cli import commands, main

    def cut_short(args):
        signal.raise_signal(signal.SIGTERM)  # noted by the handler, which raises ...
        raise AssertionError("not reached")

    def import_cut_short(args):
        try:
            cut_short(args)
        except KeyboardInterrupt:
            raise ImportError("PyCapsule_Import could not import module 'datetime'")

    monkeypatch.setattr(commands, "cmd_topology", import_cut_short)
    assert main(["topology", "--spec", "1x1G"]) == 143
    assert capsys.readouterr().err.startswith("fastinit topology: terminated (SIGTERM)")


def test_a_second_signal_is_only_noted_while_the_first_stops_the_run():
    with stop_on_signals() as stopper:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGINT)  # the run is stopping already: no exception
    assert stopper.received == [signal.SIGTERM, signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_ignored_sigint_stays_ignored_and_sigterm_still_stops():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stop_on_signals() as stopper:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            signal.raise_signal(signal.SIGINT)
            with pytest.raises(KeyboardInterrupt):
                signal.raise_signal(signal.SIGTERM)
        assert stopper.first == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_in_a_deferred_block_is_delivered_when_it_ends():
    with stop_on_signals() as stopper:
        finished = False
        with pytest.raises(KeyboardInterrupt):
            with interrupts_deferred():
                signal.raise_signal(signal.SIGTERM)
                finished = True
        assert finished and stopper.first == signal.SIGTERM


def test_sigterm_while_threads_start_is_handed_to_the_caller_and_noted():
    with stop_on_signals() as stopper:
        with ctrl_c_held() as pending:
            signal.raise_signal(signal.SIGTERM)
        assert [signum for signum, _ in pending] == [signal.SIGTERM]
        assert stopper.first == signal.SIGTERM and not stopper.armed


def test_a_program_that_exits_ignores_signals_after_its_work(capsys):
    from fastinit.cli import main
    try:
        assert main(["topology", "--spec", "1x1G"], exiting=True) == 0
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)  # ignored: this test goes on
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_a_slice_of_the_signal_campaign_keeps_every_promise(tmp_path):
    # perf/signal_campaign.py, 4 trials at random moments (signal, foreground or
    # background, old file or none drawn from the seed). A SIGINT that lands while the
    # interpreter itself starts, before any fastinit code runs, is Python's to report.
    from perf_scripts import perf_script
    campaign = perf_script("signal_campaign")
    records = campaign.campaign(4, "1x2G", tmp_path / "runs", seed=5, verify_every=0,
                                log=lambda line: None)
    broken = [r for r in records
              if r["wrong"] and r["wrong"] != ["traceback (interpreter start-up)"]]
    assert broken == [], "\n".join(campaign.summary(records))
    assert {r["signal"] for r in records} >= {"INT", "TERM"}


def test_a_stop_swallowed_by_a_callback_from_c_is_raised_again():
    # Python code that C calls back (LLVM does, while Numba compiles) cannot pass an
    # exception on: ctypes reports it as unraisable and carries on.
    import ctypes
    callback = ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGTERM))
    reported = []
    previous = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        with stop_on_signals() as stopper:
            with pytest.raises(KeyboardInterrupt):
                callback()
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:  # until it is raised again
                    time.sleep(0.01)
        assert stopper.received == [signal.SIGTERM] and reported == []
    finally:
        sys.unraisablehook = previous


def test_an_interrupt_that_left_code_exec_ran_keeps_the_programs_exit_status():
    # CPython would end the process by SIGINT (exit -2): the KeyboardInterrupt left code
    # run by exec() of a string (as in dataclasses and Numba), though the CLI handled it.
    script = ("import sys\n"
              "from fastinit.cli import commands, run\n"
              "def stopped(args):\n"
              "    exec('import signal; signal.raise_signal(signal.SIGTERM)')\n"
              "commands.cmd_topology = stopped\n"
              "sys.argv = ['fastinit', 'topology', '--spec', '1x1G']\n"
              "sys.exit(run())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 143, done.stderr
    assert done.stderr == "fastinit topology: terminated (SIGTERM); every thread was " \
                          "stopped\n"


def test_ctrl_c_as_the_temporary_file_is_made_leaves_nothing(tmp_path, monkeypatch):
    # A real SIGINT just before create_temp returns: nobody holds the new file's
    # descriptor yet, so only holding the interrupt over the call lets it be removed.
    import fastinit
    from fastinit.arrays import atomic
    made = atomic.create_temp

    def then_ctrl_c(*args):
        temp = made(*args)
        signal.raise_signal(signal.SIGINT)
        return temp

    monkeypatch.setattr(atomic, "create_temp", then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        fastinit.create_memmap(tmp_path / "x.bin", "u1", 4096)
    assert listing(tmp_path) == []
