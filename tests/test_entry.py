"""Issue 18 item 12: the console script enters through fastinit.entry, which takes Ctrl-C
and SIGTERM before anything else is imported; a signal that comes while the command line
is still being imported stops the run as any other does (one line, 130 or 143), never a
traceback. Real signals, sent by the child to itself from inside an import."""

import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Sends itself SIGNAL while `fastinit.engine.interrupts` (imported by fastinit.cli, before
# the program's own handlers exist) is being found, then runs the console script's entry.
CHILD = """
import os, signal, sys
class Finder:
    def find_spec(self, name, path=None, target=None):
        if name == 'fastinit.engine.interrupts':
            os.kill(os.getpid(), signal.{signal})
sys.meta_path.insert(0, Finder())
import re
{entry}
sys.argv = ['fastinit', 'topology', '--spec', '1x1G']
sys.exit(run())
"""
ENTRY = "from fastinit.entry import run"


def test_the_console_script_enters_through_fastinit_entry():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"fastinit": "fastinit.entry:run"}


def test_the_entry_imports_nothing_before_it_takes_the_signals():
    code = ("import sys; before = set(sys.modules); import fastinit.entry; "
            "print(sorted(set(sys.modules) - before))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "['fastinit', 'fastinit.entry']"


@pytest.mark.parametrize("name, status, how", [("SIGINT", 130, "interrupted"),
                                               ("SIGTERM", 143, "terminated (SIGTERM)")])
def test_a_signal_while_the_command_line_is_imported_stops_the_run_with_one_line(
        name, status, how):
    done = subprocess.run([sys.executable, "-c", CHILD.format(signal=name, entry=ENTRY)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == status, done.stderr
    assert done.stderr == f"fastinit: {how}; every thread was stopped\n"
    assert done.stdout == ""  # stopped before the command ran


def test_the_entry_before_this_printed_a_traceback_there():
    # The same SIGINT through the old entry: the test above can fail.
    old = "from fastinit.cli import run"
    done = subprocess.run([sys.executable, "-c", CHILD.format(signal="SIGINT", entry=old)],
                          capture_output=True, text=True, timeout=300)
    assert "Traceback" in done.stderr and "KeyboardInterrupt" in done.stderr


def test_a_sigint_ignored_at_start_stays_ignored_through_the_entry():
    # A background job of a non-interactive shell: SIGINT ignored from the start.
    done = subprocess.run([sys.executable, "-c", CHILD.format(signal="SIGINT", entry=ENTRY)],
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert done.returncode == 0, done.stderr
    assert "1 nodes" in done.stdout or "node 0" in done.stdout
