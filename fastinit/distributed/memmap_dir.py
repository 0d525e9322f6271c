"""``--memmap-dir`` on the workers' disks: checked before any node starts, and cleaned
after a failed boot.

Both run through ``Client.run`` on every worker (the directory is on their disks, not
necessarily the client's), and in the client too for a local cluster, before it starts.
A node file is written as any memmap file is (`fastinit.arrays.create_open`): under a
temporary name beside ``node<N>.memmap`` until complete, so a killed writer leaves only
a temporary file, which nothing but a cleanup like `remove_temporaries` takes away.
"""

from __future__ import annotations

import os
import stat
from contextlib import ExitStack


def node_file_name(nid: int) -> str:
    """A node's memmap file in ``--memmap-dir``."""
    return f"node{nid}.memmap"


def problems(directory: str, nids: list[int], force: bool) -> list[str]:
    """Why ``directory`` cannot take the files of nodes ``nids`` here (empty: it can).

    A missing directory is made by the boot. Without ``force``, any node file already
    there is refused; with it, each must be a fastinit memmap file (what ``--force``
    replaces in one file, it replaces here node by node).
    """
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return []
    except OSError as error:
        return [f"--memmap-dir {directory}: {error.strerror}"]
    if not stat.S_ISDIR(info.st_mode):
        return [f"--memmap-dir {directory} is a file, not a directory; name a directory "
                f"(it is made if missing)"]
    found, refused = [], []
    for nid in nids:
        path = os.path.join(directory, node_file_name(nid))
        try:
            there = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as error:
            return [f"cannot use {path}: {error.strerror}"]
        found.append(node_file_name(nid))
        if force and not (stat.S_ISREG(there.st_mode) and
                          (there.st_size == 0 or _is_memmap_file(path))):
            refused.append(node_file_name(nid))
    if found and not force:
        them = "it" if len(found) == 1 else "them"
        return [f"--memmap-dir {directory} already holds {', '.join(found)}; pass --force "
                f"to replace {them} (force=True), or choose another directory"]
    if refused:
        return [f"--memmap-dir {directory}: {', '.join(refused)} is not a fastinit memmap "
                f"file; --force replaces only those (nothing was changed)"]
    return []


def _is_memmap_file(path: str) -> bool:
    from fastinit.arrays.fileformat import is_ours
    from fastinit.arrays.probe import probe_path
    return probe_path(path, is_ours)


def remove_temporaries(directory: str, nids: list[int]) -> list[str]:
    """Remove the temporary files of nodes ``nids`` that killed writers left in
    ``directory`` here (each node file's lock held, as a new boot would); returns the
    node files whose temporaries went."""
    from fastinit.arrays import atomic
    if not os.path.isdir(directory):
        return []
    with ExitStack() as held:
        dfd = atomic.open_directory(directory, directory)
        held.callback(os.close, dfd)
        return [name for name in map(node_file_name, nids)
                if _remove_orphans_of(directory, dfd, name)]


def _remove_orphans_of(directory: str, dfd: int, name: str) -> bool:
    """Remove node file ``name``'s temporaries under its lock; whether any went."""
    from fastinit.arrays import atomic
    from fastinit.arrays.errors import MemmapFileError
    from fastinit.arrays.fileformat import is_ours
    with ExitStack() as held:
        try:
            lock = atomic.PathLock(os.path.join(directory, name), dfd, name, exclusive=True)
        except MemmapFileError:
            return False  # a writer or reader of it is alive: nothing of it is orphaned
        held.callback(lock.release)
        return atomic.remove_orphans(dfd, name, is_ours)
