"""Looking at a path for a fastinit memmap file without trusting the path: opened
read-only, no link followed (a probe must not be redirected), no FIFO waited on (nor
hang), a regular file only; for the command line's wait for a complete file and
``--memmap-dir --force``'s check that what it replaces is ours.
"""

from __future__ import annotations

import os
import stat

from fastinit.arrays.errors import MemmapFileError
from fastinit.arrays.fileformat import COMPLETE, read_header


def probe_path(path, check) -> bool:
    """``check(fd)`` on the regular file at ``path``, opened read-only without following a
    link or waiting on a FIFO (a probe must neither be redirected nor hang); False where
    the path cannot be opened, is not a regular file, or cannot be read as ours."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and bool(check(fd))
    except (OSError, MemmapFileError):
        return False
    finally:
        os.close(fd)


def is_complete(fd: int) -> bool:
    """Whether the open file is a fastinit memmap file whose header says it is complete."""
    return read_header("", fd, os.fstat(fd).st_size, "").state == COMPLETE
