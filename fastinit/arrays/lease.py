"""A read lease on a memmap file being read, so a file that shrinks under its reader ends
the read with a clean error instead of SIGBUS.

Pages of a shared file mapping past the file's end raise SIGBUS when touched, and the
kernels that read a memmap cannot check each load. So a reader takes a read lease
(fcntl F_SETLEASE, F_RDLCK) on its read-only descriptor, with F_SETSIG naming the signal
the kernel sends when the lease must go. Any other process that opens the file for
writing or truncates it (truncate(2) included) is held by the kernel until the lease is
released (up to /proc/sys/fs/lease-break-time, 45 s by default), or gets EAGAIN if it
opened without blocking. Meanwhile the signal reaches our handler on the main thread,
which raises `MemmapChangedError` there: a running padata job stops (every helper
finishes its chunk and is joined before the error goes on), nothing reads the mapping
again, and `ReadLease.release` (called when the file is closed, or by the process's
exit) replaces the mapping with zero pages and only then lets the lease go, and the
truncating process through.

No lease can be taken from a thread other than the main one (only it runs signal
handlers), on a file someone has open for writing (EAGAIN, also our own descriptors),
on a file this user does not own without CAP_LEASE (EACCES), or on filesystems without
leases (NFS, some FUSE). `take` then returns None, and the file is not mapped: it is
read into private memory (`fastinit.arrays.snapshot`), where a truncation is a short
read and so the same clean error.
"""

from __future__ import annotations

import fcntl
import mmap
import signal
import threading

from fastinit.arrays.errors import MemmapChangedError
from fastinit.host.libc import MAP_FIXED, libc

_SIGNAL = signal.SIGRTMIN + 4  # a real-time signal: queued, and ours alone
_HELD: list[ReadLease] = []


class ReadLease:
    """A read lease held on ``fd`` (the file shown as ``shown``) and the mapping it guards."""

    def __init__(self, shown: str, fd: int):
        self.shown, self.fd = shown, fd
        self.broken = False
        self.address = self.length = 0

    def guard(self, address: int, length: int) -> None:
        """The mapping of the file to make harmless before the lease is let go."""
        self.address, self.length = address, length

    def release(self) -> None:
        """Let the lease go; if it was broken, first put zero pages where the file was
        mapped, so nothing can touch the file's pages once it shrinks. Call only when
        no thread reads the mapping any more."""
        if self in _HELD:
            _HELD.remove(self)
        if self.broken and self.length:
            libc.mmap(self.address, self.length, mmap.PROT_READ,
                      mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        except OSError:
            pass  # already gone: the kernel took it back, or the descriptor is closed


def take(shown: str, fd: int) -> ReadLease | None:
    """A read lease on the read-only descriptor ``fd``, or None if none can be taken
    (see the module's notes: the file is then read unprotected)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(_SIGNAL) is not _on_break:
        signal.signal(_SIGNAL, _on_break)
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _SIGNAL)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError:
        return None
    lease = ReadLease(shown, fd)
    _HELD.append(lease)
    return lease


def _breaking(lease: ReadLease) -> bool:
    try:  # while a break is pending, the lease reads as the type it must become
        return fcntl.fcntl(lease.fd, fcntl.F_GETLEASE) != fcntl.F_RDLCK
    except OSError:
        return True


def _on_break(signum, frame) -> None:
    broken = [lease for lease in _HELD if not lease.broken and _breaking(lease)]
    if not broken:
        return
    for lease in broken:
        lease.broken = True
    raise MemmapChangedError(f"{broken[0].shown} was truncated or opened for writing by "
                             f"another process while fastinit read it: stopped reading; "
                             f"check it again once that process is done")
