"""Write a file beside its path and rename it over the path only when complete; one writer
per path, and no writer while another fastinit reads it.

The rules, and why:

- A path is only ever replaced if it is a regular file (never a device, FIFO, socket,
  directory, or whatever a symbolic link points to): as root, "replace" used to mean
  deleting ``/dev/null``.
- The new file is written under a temporary name in the same directory (created with
  ``O_EXCL``, so it is never someone else's file) and renamed over the path only after
  its contents and the directory are synced. A run that fails or is interrupted removes
  its temporary file and leaves the old file byte for byte as it was.
- The rename replaces only what was checked at the start: nothing (renameat2
  RENAME_NOREPLACE), or the very file that was checked (RENAME_EXCHANGE, then its device
  and inode compared, and swapped back if they differ). A file that appeared or changed
  at the path meanwhile is kept; the new data stays, complete, under a name the error
  gives (``NAME.fastinit-new-RANDOM``), which no cleanup removes.
- A run that is killed (SIGKILL) cannot clean up: its temporary file has a name that
  says whose it is (``.NAME.fastinit-tmp-PID-RANDOM``, exactly), holds an flock while its
  writer lives, and starts with our header before its blocks are reserved; a later
  writer of the same path removes it once nobody holds that lock and it is empty or
  starts with our magic. Names that only share the prefix are never touched.
- The new file's mode is the replaced file's permission bits (never setuid, setgid or
  sticky) or 0666, and the umask applies to both.
- Paths are resolved as the kernel resolves them: the directory is opened as given
  (``a/link/../x`` is in ``link``'s parent, not in ``a``) and every name is looked up
  in that open directory. Locks: `fastinit.arrays.locks`.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import closing

from fastinit.arrays.errors import MemmapFileError
from fastinit.arrays.locks import LOCK_SUFFIX, PathLock, kind_of, still_names  # noqa: F401
from fastinit.arrays.rename import exchange, rename_noreplace

TEMP_INFIX = ".fastinit-tmp-"
KEPT_INFIX = ".fastinit-new-"
UNFINISHED_INFIX = ".fastinit-unfinished-"
# Opening a name found in a directory to read it: never through a symbolic link, and never
# blocking (a FIFO put there would block an open for reading until a writer came).
_READ_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

def split_path(path) -> tuple[str, str, str]:
    """``(shown, directory, name)`` of a path given by a user; refuses an empty one."""
    if not isinstance(path, (str, os.PathLike)):
        raise MemmapFileError(f"a memmap path must be a str or os.PathLike, got {path!r}")
    shown = os.fspath(path)
    if not isinstance(shown, str) or not shown or "\0" in shown:
        raise MemmapFileError(f"memmap path {shown!r} is empty or not text; name a file")
    # Not os.path.abspath: it drops "x/.." as text, where the kernel follows x first.
    directory, name = os.path.split(shown)
    if name in ("", ".", ".."):
        raise MemmapFileError(f"{shown} names a directory, not a file; add a file name")
    return shown, directory or os.curdir, name


def open_directory(shown: str, directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise MemmapFileError(f"cannot use {shown}: its directory {directory}: "
                              f"{error.strerror}; choose a path in an existing directory") \
            from None


def check_regular(shown: str, dfd: int, name: str) -> None:
    """Refuse a path that does not lead to a regular file (checked before anything is
    opened or locked beside it: opening a FIFO blocks, opening a device can act)."""
    try:
        before = os.stat(name, dir_fd=dfd)
    except OSError as error:
        raise MemmapFileError(f"cannot open {shown}: {error.strerror}") from None
    if not stat.S_ISREG(before.st_mode):
        raise MemmapFileError(f"{shown} is {kind_of(before.st_mode)}, not a fastinit memmap "
                              f"file; name a file that fastinit wrote")


def open_regular(shown: str, dfd: int, name: str, writable: bool = False) -> int:
    """Open an existing regular file without ever blocking (a FIFO would block forever)."""
    check_regular(shown, dfd, name)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dfd)
    except OSError as error:
        raise MemmapFileError(f"cannot open {shown}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
        os.close(fd)
        raise MemmapFileError(f"{shown} changed into a non-regular file while being opened")
    return fd


def check_replaceable(shown: str, dfd: int, name: str, *, force: bool, replace_any: bool,
                      is_ours: Callable[[int], bool]) -> os.stat_result | None:
    """Refuse to write ``name`` unless nothing is there, or ``force`` allows replacing it.

    Returns
    -------
    os.stat_result or None
        The file that will be replaced (its mode is kept), or None.
    """
    try:
        there = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(there.st_mode):
        target = os.readlink(name, dir_fd=dfd)
        raise MemmapFileError(f"{shown} is a symbolic link (to {target}); fastinit never "
                              f"writes through one: name the file itself")
    if not stat.S_ISREG(there.st_mode):
        raise MemmapFileError(f"{shown} is {kind_of(there.st_mode)}; a memmap file only ever "
                              f"replaces a regular file (nothing was changed): choose "
                              f"another path")
    if not force:
        raise MemmapFileError(f"{shown} exists; pass force=True to overwrite it")
    if there.st_size and not replace_any:
        fd = os.open(name, _READ_ENTRY, dir_fd=dfd)
        try:
            ours = is_ours(fd)
        finally:
            os.close(fd)
        if not ours:
            raise MemmapFileError(f"{shown} is not a fastinit memmap file; force=True "
                                  f"replaces only those: pass replace_any_file=True to "
                                  f"replace it anyway")
    return there


def temp_pattern(name: str) -> re.Pattern:
    """Exactly the temporary names `create_temp` gives (and so the only ones cleanup may
    remove): ``.NAME.fastinit-tmp-PID-RANDOM``, PID decimal, RANDOM 8 hex digits."""
    return re.compile(re.escape(f".{name}{TEMP_INFIX}") + r"[1-9][0-9]{0,9}-[0-9a-f]{8}")


def create_temp(dfd: int, name: str, mode: int | None) -> tuple[str, int]:
    """A new, locked, empty file ``.NAME.fastinit-tmp-PID-RANDOM`` beside ``name``, with
    the permission bits ``mode`` (those of the file it will replace) or 0666, less the
    umask, and never setuid, setgid or sticky."""
    bits = 0o666 if mode is None else mode & 0o777
    for _ in range(100):
        temp = f".{name}{TEMP_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, bits, dir_fd=dfd)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new: nobody else can hold it
        return temp, fd
    raise MemmapFileError(f"cannot create a temporary file beside {name}")


def remove_temp(dfd: int, temp: str, fd: int) -> None:
    """Remove our temporary file, if the name still leads to it, and close it."""
    try:
        if still_names(dfd, temp, fd):
            os.unlink(temp, dir_fd=dfd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_temp(shown: str, dfd: int, temp: str, fd: int, name: str,
                old: os.stat_result | None = None) -> None:
    """Sync the temporary file and rename it over ``name``, replacing only ``old`` (the
    file checked at the start, or None: nothing); then sync the directory.

    Raises MemmapFileError if ``name`` holds anything else by now: nothing is replaced,
    and the new file is kept, complete, under the name the message gives.
    """
    os.fsync(fd)
    try:
        if old is None:
            rename_noreplace(dfd, temp, name)
            replaced = True
        else:
            replaced = _replace(dfd, temp, name, old)
    except FileExistsError:
        replaced = False
    if not replaced:
        kept = keep(dfd, temp)
        os.fsync(dfd)
        where = os.path.join(os.path.dirname(shown), kept)
        raise MemmapFileError(f"{shown} {'changed' if old else 'appeared'} while fastinit "
                              f"wrote it, so it was not replaced; the new file is complete "
                              f"in {where}: move it there yourself if you want it")
    os.fsync(dfd)


def _same(info: os.stat_result, old: os.stat_result) -> bool:
    return stat.S_ISREG(info.st_mode) and (info.st_ino, info.st_dev) == \
        (old.st_ino, old.st_dev)


def _replace(dfd: int, temp: str, name: str, old: os.stat_result) -> bool:
    """Put ``temp`` at ``name`` if ``name`` is still ``old``; whether it was."""
    try:  # unchanged too (``echo data > P`` rewrites it in place); a rename changes ctime
        there = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if not _same(there, old) or there.st_ctime_ns != old.st_ctime_ns:
            return False
    except FileNotFoundError:
        pass
    try:
        swapped = exchange(dfd, temp, name)
    except FileNotFoundError:  # the checked file is gone: nothing is lost by a new one
        rename_noreplace(dfd, temp, name)
        return True
    if swapped:
        # Swapped atomically: what is now under the temporary name left the path.
        if _same(os.stat(temp, dir_fd=dfd, follow_symlinks=False), old):
            os.unlink(temp, dir_fd=dfd)
            return True
        exchange(dfd, temp, name)  # someone else's file: put it back where it was
        return False
    # No RENAME_EXCHANGE here: checked above, then renamed (a window of microseconds).
    os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    return True


def keep(dfd: int, temp: str, infix: str = KEPT_INFIX) -> str:
    """Rename a temporary file to ``NAME<infix>RANDOM`` (``NAME.fastinit-new-RANDOM`` for a
    complete one: names cleanup leaves alone); returns the new name."""
    name = temp[1:temp.index(TEMP_INFIX)]
    for _ in range(100):
        kept = f"{name}{infix}{secrets.token_hex(4)}"
        try:
            rename_noreplace(dfd, temp, kept)
            return kept
        except FileExistsError:
            continue
    return temp


def _open_temps(dfd: int, name: str) -> Iterator[tuple[str, int]]:
    """``(temp, fd)`` for each temporary file of ``name`` in the directory
    (exactly the names `create_temp` gives), opened to read; each fd is closed when the caller
    moves on (or closes the generator). Names that no longer open are passed over."""
    pattern = temp_pattern(name)
    with os.scandir(dfd) as entries:
        temps = sorted(entry.name for entry in entries if pattern.fullmatch(entry.name))
    for temp in temps:
        try:
            fd = os.open(temp, _READ_ENTRY, dir_fd=dfd)
        except OSError:
            continue
        try:
            yield temp, fd
        finally:
            os.close(fd)


def remove_orphans(dfd: int, name: str, is_ours: Callable[[int], bool]) -> list[str]:
    """Remove temporary files of ``name`` that killed runs left; call with the path locked.

    A file is removed only if its name has our pattern, it is a regular file, no live
    process holds its flock, and its contents are ours (``is_ours(fd)``, or empty).
    """
    removed = []
    with closing(_open_temps(dfd, name)) as temps:
        for candidate, fd in temps:
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode):
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
                if (info.st_size == 0 or is_ours(fd)) and still_names(dfd, candidate, fd):
                    os.unlink(candidate, dir_fd=dfd)
                    removed.append(candidate)
            except OSError:
                continue
    return removed


def temp_note(dfd: int, name: str) -> str:
    """Why a path may be missing: a writer still at work, or one that was killed."""
    with closing(_open_temps(dfd, name)) as temps:
        for candidate, fd in temps:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return "; a fastinit is writing it right now: it appears when complete"
            return (f"; a fastinit writing it was killed and left {candidate}, which the "
                    f"next fastinit writing this path removes")
    return ""
