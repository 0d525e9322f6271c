"""A file read without a read lease is read into private memory, so a file that shrinks
under its reader ends the read with a clean error instead of SIGBUS.

Where `fastinit.arrays.lease` can take no lease (another process, or this one, has the
file open for writing; the file is not ours and we lack CAP_LEASE; the reader is not the
main thread; NFS and other filesystems without leases), nothing stops another process
from truncating the file while we read it, and a page of a shared mapping past the
file's end raises SIGBUS when a kernel touches it: no Python code can catch that. So the
file is not mapped at all: it is copied with ``preadv`` (which answers a read past the
end with a short count, never a signal) into an anonymous mapping, chunk by chunk, and
every check runs on that private copy. A short read is `MemmapChangedError` naming the
file.

The copy costs the file's size in memory (refused before a byte is read when it does
not fit, naming the size, as `fastinit.arrays.alloc` refuses arrays) and one pass over
the file; `perf/verify_snapshot_cost.py` measures it against the leased mapping.
Another process writing the file while we copy it can leave the copy torn: verify then
fails on what it read (exit 1), which is what the file held while it changed.
"""

from __future__ import annotations

import mmap
import os

from fastinit.arrays.errors import MemmapChangedError, MemmapFileError
from fastinit.host.memory import available_memory
from fastinit.units import gib

# Bytes per preadv: large enough that the calls cost nothing, small enough that Ctrl-C
# (taken between calls) is prompt.
CHUNK = 8 << 20
# The share of the available memory a copy may take (as fastinit.arrays.alloc's arrays).
MEMORY_MARGIN = 0.9


def map_for_reading(shown: str, fd: int, nbytes: int, lease) -> mmap.mmap:
    """The file's first ``nbytes`` bytes, read-only: its mapping while ``lease`` (a
    `fastinit.arrays.lease.ReadLease`) guards it, else a private copy (`copy`)."""
    if lease is not None:
        return mmap.mmap(fd, nbytes, access=mmap.ACCESS_READ)
    return copy(shown, fd, nbytes)


def copy(shown: str, fd: int, nbytes: int) -> mmap.mmap:
    """The first ``nbytes`` bytes of the file ``fd`` (shown as ``shown``) in an anonymous
    mapping of exactly that length.

    Raises
    ------
    MemmapFileError
        The copy would not fit in the memory this process may still use.
    MemmapChangedError
        The file ended before ``nbytes``: it shrank while being read.
    """
    available = available_memory()
    if nbytes > available * MEMORY_MARGIN:
        raise MemmapFileError(
            f"{shown} cannot be read safely: no read lease could be taken on it (it is "
            f"open for writing, not yours, on a filesystem without leases, or read from "
            f"a thread other than the main one), and a private copy needs "
            f"{gib(nbytes)}, but only {gib(available)} of memory is available to this "
            f"process; close the process that has it open for writing, or read it from "
            f"the main thread of a process that owns the file")
    region = mmap.mmap(-1, max(nbytes, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(mmap.MADV_HUGEPAGE)  # fewer faults while the copy lands
    except OSError:
        pass  # a kernel without transparent huge pages: 4 KiB faults, same copy
    view = memoryview(region)
    try:
        done = 0
        while done < nbytes:
            count = os.preadv(fd, [view[done:min(done + CHUNK, nbytes)]], done)
            if count == 0:
                raise MemmapChangedError(
                    f"{shown} was truncated by another process while fastinit read it "
                    f"({done} of {nbytes} bytes were there): stopped reading; check it "
                    f"again once that process is done")
            done += count
    except BaseException:
        view.release()
        region.close()
        raise
    view.release()
    return region
