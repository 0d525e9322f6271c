"""The ``fastinit`` program's first code: Ctrl-C and SIGTERM are taken before anything
else is imported.

CPython raises KeyboardInterrupt for a SIGINT from the moment it starts, and the program
takes the signals itself only once `fastinit.cli` and what it needs are imported (tens of
milliseconds): a Ctrl-C in between printed a traceback. This module imports nothing but
the interpreter's built-in ``_signal`` (already loaded at start-up) before it replaces
both handlers with one that only notes the signal; `fastinit.cli.run` replays what was
noted once its own handlers are in place, so an early Ctrl-C stops the run as any other
does (exit 130, or 143 for SIGTERM, with its one line). A signal set to ignored when the
program starts stays ignored (a background job of a non-interactive shell). What comes
before this module runs, the interpreter's own start-up and the console script's
``import re``, is out of our reach.
"""

import _signal

# The stopping signals that came before the program's own handlers were in place.
NOTED: list[int] = []


def _note(signum, frame) -> None:
    NOTED.append(signum)


for _signum in (_signal.SIGINT, _signal.SIGTERM):
    if _signal.getsignal(_signum) is not _signal.SIG_IGN:
        _signal.signal(_signum, _note)


def run() -> int:
    """The console script's entry: the command line, with the signals noted so far."""
    from fastinit.cli import run as program
    return program(early=NOTED)
