"""What every test needs from the process it runs in."""

import signal
import subprocess
import sys

import pytest


def pytest_configure(config):
    # A test run started in the background of a script (`cmd &`, nohup) inherits SIGINT
    # ignored, and so would every fastinit the tests start: the Ctrl-C tests need it
    # delivered as at a terminal. A handler (unlike SIG_IGN) is reset to the default in
    # child processes, where Python installs its own.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Many tests run jobs of two threads to see them interact. On a process with one CPU
    # each of those oversubscribes, which the warning is there to tell users, not the
    # suite (tests that check the warning catch it with pytest.warns all the same).
    from fastinit.host.cpus import usable_cpus
    if usable_cpus() < 2:
        config.addinivalue_line("filterwarnings",
                                "ignore::fastinit.engine.padata.OversubscriptionWarning")


@pytest.fixture(scope="session")
def page_file(tmp_path_factory) -> bytes:
    """The bytes of a complete page memmap file (1x2G), booted once by the command line;
    a test writes its own copy where it needs one."""
    path = tmp_path_factory.mktemp("page_file") / "p.bin"
    done = subprocess.run([sys.executable, "-m", "fastinit.cli", "boot", "--spec", "1x2G",
                           "--memmap-file", str(path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return path.read_bytes()
