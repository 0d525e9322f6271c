"""What the command line writes, and how a closed pipe or a full disk ends it.

Unix tools stop quietly when the reader of their output leaves (``| head -1``, ``| true``)
and say so when the output cannot be written (``> /dev/full``); the command line does the
same instead of printing a traceback.
"""

from __future__ import annotations

import os
import re
import sys

EXIT_OUTPUT = 74  # EX_IOERR of sysexits.h
EXIT_PIPE = 128 + 13  # what a shell shows for a tool that SIGPIPE ended

# Library errors name the argument (``threads must be >= 1``); the user typed a flag.
ARGUMENT_FLAGS = {"threads": "--threads", "arch": "--arch", "memmap_file": "--memmap-file",
                  "force": "--force", "kernel": "--kernel", "repeat": "--repeat",
                  "plot": "--plot", "nice": "--nice", "replace_any_file": "--replace-any-file"}


def as_flags(message: str) -> str:
    """``message`` with a leading library argument name replaced by its flag, and every
    ``keyword=True`` it advises by the flag (``pass force=True`` -> ``pass --force``)."""
    first, space, rest = message.partition(" ")
    if first in ARGUMENT_FLAGS:
        message = ARGUMENT_FLAGS[first] + space + rest
    return re.sub(r"\b([a-z_]+)=True\b",
                  lambda m: ARGUMENT_FLAGS.get(m.group(1), m.group(0)), message)


class OutputError(Exception):
    """Standard output could not be written: a closed pipe or a full disk."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


def emit(text: str) -> None:
    """One piece of the command's output, on standard output."""
    try:
        sys.stdout.write(text + "\n")
    except OSError as error:
        raise OutputError(error) from error


def say(text: str) -> None:
    """A message for the person at the terminal (standard error); lost if that is closed."""
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def silence_stdout() -> None:
    """Point standard output at /dev/null, so the interpreter's last flush of what could not
    be written does not fail again (as Python's documentation advises for SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing will flush to a closed pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
