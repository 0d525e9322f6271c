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
- A run that is killed (SIGKILL) cannot clean up: its temporary file keeps a name that
  says whose it is (``.NAME.fastinit-tmp-PID-RANDOM``) and holds an flock while its writer
  lives; a later writer of the same path removes it once nobody holds that lock and its
  contents are ours.
- Every fastinit that writes a path holds an exclusive flock on ``.NAME.fastinit-lock``
  beside it, and every one that reads it a shared one, taken without waiting: a second
  writer, or a writer and a reader, are refused at once with a message naming the path.
  The lock file is removed by whoever releases it last (see `PathLock`).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import closing

from fastinit.arrays.errors import MemmapBusyError, MemmapFileError

LOCK_SUFFIX = ".fastinit-lock"
TEMP_INFIX = ".fastinit-tmp-"
# Opening a name found in a directory to read it: never through a symbolic link, and never
# blocking (a FIFO put there would block an open for reading until a writer came).
_READ_ENTRY = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` is, as words ("a directory", "a FIFO (named pipe)"...)."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def split_path(path) -> tuple[str, str, str]:
    """``(shown, directory, name)`` of a path given by a user; refuses an empty one."""
    if not isinstance(path, (str, os.PathLike)):
        raise MemmapFileError(f"a memmap path must be a str or os.PathLike, got {path!r}")
    shown = os.fspath(path)
    if not isinstance(shown, str) or not shown or "\0" in shown:
        raise MemmapFileError(f"memmap path {shown!r} is empty or not text; name a file")
    directory, name = os.path.split(os.path.abspath(shown))
    if not name or shown.endswith(os.sep):
        raise MemmapFileError(f"{shown} names a directory, not a file; add a file name")
    return shown, directory, name


def open_directory(shown: str, directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as error:
        raise MemmapFileError(f"cannot use {shown}: its directory {directory}: "
                              f"{error.strerror}; choose a path in an existing directory") \
            from None


def check_regular(shown: str) -> None:
    """Refuse a path that does not lead to a regular file (checked before anything is
    opened or locked beside it: opening a FIFO blocks, opening a device can act)."""
    try:
        before = os.stat(shown)
    except OSError as error:
        raise MemmapFileError(f"cannot open {shown}: {error.strerror}") from None
    if not stat.S_ISREG(before.st_mode):
        raise MemmapFileError(f"{shown} is {kind_of(before.st_mode)}, not a fastinit memmap "
                              f"file; name a file that fastinit wrote")


def open_regular(shown: str, writable: bool = False) -> int:
    """Open an existing regular file without ever blocking (a FIFO would block forever)."""
    check_regular(shown)
    flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(shown, flags)
    except OSError as error:
        raise MemmapFileError(f"cannot open {shown}: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between stat and open
        os.close(fd)
        raise MemmapFileError(f"{shown} changed into a non-regular file while being opened")
    return fd


def still_names(dfd: int, name: str, fd: int) -> bool:
    """Whether ``name`` in the directory (a symbolic link not followed) is still the file
    open as ``fd``: what must hold before a name is unlinked, or trusted to be ours.
    OSError if ``name`` cannot be looked up (FileNotFoundError: it is gone)."""
    named = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    mine = os.fstat(fd)
    return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)


class PathLock:
    """An flock on ``.NAME.fastinit-lock`` beside a path, taken without waiting.

    Removing a lock file races with a process that opened it and is about to lock it;
    so whoever locks checks afterwards that the name still leads to the inode it locked
    (and starts over if not), and a lock file is unlinked only by a holder of the
    exclusive lock.
    """

    def __init__(self, shown: str, directory_fd: int, name: str, exclusive: bool):
        self.shown, self.dfd, self.exclusive = shown, directory_fd, exclusive
        self.lock_name = f".{name}{LOCK_SUFFIX}"
        self.fd = None
        self._acquire()

    def _acquire(self) -> None:
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        for _ in range(100):  # each retry means someone removed the file just now
            try:
                fd = os.open(self.lock_name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o644, dir_fd=self.dfd)
            except OSError as error:
                if not self.exclusive:
                    return  # a directory we cannot write: no fastinit of ours writes there
                raise MemmapFileError(f"cannot lock {self.shown}: {error.strerror}; choose "
                                      f"a path in a directory you can write") from None
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                doing = ("another fastinit is writing it or reading it" if self.exclusive
                         else "another fastinit is writing it")
                raise MemmapBusyError(f"{self.shown} is in use: {doing}; wait until it "
                                      f"finishes, or choose another path") from None
            if self._still_named(fd):
                self.fd = fd
                return
            os.close(fd)
        raise MemmapFileError(f"cannot lock {self.shown}: its lock file keeps changing")

    def _still_named(self, fd: int) -> bool:
        try:
            return still_names(self.dfd, self.lock_name, fd)
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Give the lock up; the last holder removes the lock file."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if self._still_named(fd):
                os.unlink(self.lock_name, dir_fd=self.dfd)
        except OSError:
            pass  # others still hold it: the last of them removes it
        finally:
            os.close(fd)


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


def create_temp(dfd: int, name: str, mode: int | None) -> tuple[str, int]:
    """A new, locked, empty file ``.NAME.fastinit-tmp-PID-RANDOM`` beside ``name``, with
    permission bits ``mode`` (those of the file it will replace), or as the umask says."""
    for _ in range(100):
        temp = f".{name}{TEMP_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o666, dir_fd=dfd)
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # new: nobody else can hold it
        if mode is not None:
            os.fchmod(fd, mode)  # the umask must not change the replaced file's mode
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


def commit_temp(shown: str, dfd: int, temp: str, fd: int, name: str) -> None:
    """Sync the temporary file, rename it over ``name``, and sync the directory."""
    os.fsync(fd)
    try:
        there = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        there = None
    if there is not None and not stat.S_ISREG(there.st_mode):
        raise MemmapFileError(f"{shown} became {kind_of(there.st_mode)} while fastinit "
                              f"wrote it; nothing was replaced")
    os.rename(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    os.fsync(dfd)


def _open_temps(dfd: int, name: str) -> Iterator[tuple[str, int]]:
    """``(temp, fd)`` for each temporary file of ``name`` in the directory
    (``.NAME.fastinit-tmp-*``, by name), opened to read; each fd is closed when the caller
    moves on (or closes the generator). Names that no longer open are passed over."""
    prefix = f".{name}{TEMP_INFIX}"
    with os.scandir(dfd) as entries:
        temps = sorted(entry.name for entry in entries if entry.name.startswith(prefix))
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
