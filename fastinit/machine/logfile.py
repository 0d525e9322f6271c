"""Reading a boot log safely: what the path is, checked before it is opened, and a size cap.

A boot log is untrusted input. ``--dmesg /dev/zero`` once read until MemoryError (a 1 GiB
binary file took 41 s and 6.5 GB before its clear error), and a FIFO with no writer blocked
forever. Regular files, pipes and FIFOs (``--dmesg <(dmesg)``) are read, at most
`MAX_LOG_BYTES` of them; directories, devices and terminals are refused by what they are.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import BinaryIO

# The largest log read: a year of kern.log on a busy host is a few MiB; the lines fastinit
# reads come in the first seconds of a boot.
MAX_LOG_BYTES = 64 << 20

_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}


def _too_big(name: str, limit: int) -> ValueError:
    return ValueError(f"boot log {name} is larger than {limit >> 20} MiB, more than any boot "
                      f"log; pass the kernel's log (dmesg > boot.txt), or its first lines")


def read_capped(stream: BinaryIO, name: str, limit: int = MAX_LOG_BYTES) -> bytes:
    """At most ``limit`` bytes of ``stream``; ValueError if it holds more."""
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_big(name, limit)
    return data


def read_log_bytes(path: str, limit: int = MAX_LOG_BYTES) -> bytes:
    """The bytes of the boot log at ``path``, or ValueError saying why not.

    The path is opened without blocking (a FIFO without a writer reads as empty instead of
    waiting forever) and checked with ``fstat`` on the open file, so what is read is what
    was checked.
    """
    shown = repr(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise ValueError(f"cannot read boot log {shown}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        kind = _KINDS.get(stat.S_IFMT(info.st_mode))
        if kind is not None or os.isatty(fd):
            raise ValueError(f"boot log {shown} is {kind or 'a terminal'}, not a log; save "
                             f"the log to a file (dmesg > boot.txt) or pipe it to --dmesg -")
        if stat.S_ISREG(info.st_mode) and info.st_size > limit:
            raise _too_big(shown, limit)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as stream:
        # Blocking again for the reads: a pipe's writer may not have written yet.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        try:
            return read_capped(stream, shown, limit)
        except OSError as error:
            raise ValueError(f"cannot read boot log {shown}: {error.strerror}") from None
