"""Renames that never replace what they were not meant to: renameat2(2) with
RENAME_NOREPLACE (put a file where nothing is) and RENAME_EXCHANGE (swap two names, so the
file taken off a path can be looked at before it is let go).

Python's os.rename replaces whatever is at the target. A file that appeared at a path
while fastinit wrote beside it (someone's ``echo "my data" > P``) must not be replaced:
these calls make "nothing there" and "still the file we checked" part of the rename.
Filesystems without renameat2 flags (EINVAL) get the nearest plain equivalent: link(2),
which never replaces, for NOREPLACE; None for EXCHANGE (the caller checks, then renames).
"""

from __future__ import annotations

import ctypes
import errno
import os

from fastinit.host.libc import renameat2 as _renameat2

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2


def _call(dfd: int, old: str, new: str, flags: int) -> bool:
    """renameat2 in one directory; False if this system or filesystem lacks it."""
    if _renameat2 is None:
        return False
    if _renameat2(dfd, os.fsencode(old), dfd, os.fsencode(new), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), new)


def rename_noreplace(dfd: int, old: str, new: str) -> None:
    """Rename ``old`` to ``new`` in the directory; FileExistsError if ``new`` exists."""
    if not _call(dfd, old, new, RENAME_NOREPLACE):
        os.link(old, new, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
        os.unlink(old, dir_fd=dfd)


def exchange(dfd: int, one: str, other: str) -> bool:
    """Swap two names in the directory atomically; False if the filesystem cannot."""
    return _call(dfd, one, other, RENAME_EXCHANGE)
