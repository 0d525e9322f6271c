"""The two locks of a memmap file: one on its path, one on the file itself.

- Every fastinit that writes a path holds an exclusive flock on ``.NAME.fastinit-lock``
  beside it, and every one that reads it a shared one, taken without waiting: a second
  writer, or a writer and a reader, are refused at once with a message naming the path.
  The lock file is removed by whoever releases it last (see `PathLock`).
- Every fastinit that reads a file holds a shared flock on the file's own descriptor, and
  one that writes it in place an exclusive one (`lock_file`). Two names of one file (a
  symbolic link, a hard link, ``a/../b``) have two lock files but one inode: this lock is
  the one they share, and it needs no directory a reader can write.

A lock file is opened only if it is a regular file (never through a symbolic link, never
blocking on a FIFO, never a device): anything else there refuses readers and writers
alike, naming it, so no one ever reads or writes a path unlocked.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from fastinit.arrays.errors import MemmapBusyError, MemmapFileError

LOCK_SUFFIX = ".fastinit-lock"
_OPEN_LOCK = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# A reader in a directory it cannot write (or on a read-only disk) cannot make the lock
# file: it relies on the lock of the file itself, which every writer in place also takes.
_NO_LOCK_FILE = (errno.EACCES, errno.EPERM, errno.EROFS)


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def kind_of(mode: int) -> str:
    """What a file of ``st_mode`` is, as words ("a directory", "a FIFO (named pipe)"...)."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def still_names(dfd: int, name: str, fd: int) -> bool:
    """Whether ``name`` in the directory (a symbolic link not followed) is still the file
    open as ``fd``: what must hold before a name is unlinked, or trusted to be ours.
    OSError if ``name`` cannot be looked up (FileNotFoundError: it is gone)."""
    named = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    mine = os.fstat(fd)
    return (named.st_ino, named.st_dev) == (mine.st_ino, mine.st_dev)


def busy(shown: str, exclusive: bool) -> MemmapBusyError:
    doing = ("another fastinit is writing it or reading it" if exclusive
             else "another fastinit is writing it")
    return MemmapBusyError(f"{shown} is in use: {doing}; wait until it finishes, or "
                           f"choose another path")


def lock_file(shown: str, fd: int, exclusive: bool) -> None:
    """flock the open file itself, without waiting (MemmapBusyError if taken)."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        raise busy(shown, exclusive) from None


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

    def _where(self) -> str:
        return os.path.join(os.path.dirname(self.shown), self.lock_name)

    def _refuse_kind(self, mode: int) -> None:
        if not stat.S_ISREG(mode):
            raise MemmapFileError(f"cannot lock {self.shown}: its lock file {self._where()} "
                                  f"is {kind_of(mode)}, not a regular file; remove it")

    def _open(self) -> int | None:
        try:  # looked at before opening: opening a device can act
            self._refuse_kind(os.stat(self.lock_name, dir_fd=self.dfd,
                                      follow_symlinks=False).st_mode)
        except FileNotFoundError:
            pass
        try:
            fd = os.open(self.lock_name, os.O_RDWR | os.O_CREAT | _OPEN_LOCK, 0o644,
                         dir_fd=self.dfd)
        except OSError as error:
            if self.exclusive or error.errno not in _NO_LOCK_FILE:
                raise MemmapFileError(f"cannot lock {self.shown}: {self._where()}: "
                                      f"{error.strerror}; choose a path in a directory "
                                      f"you can write") from None
            try:  # someone else's lock file we may only read: flock needs no more
                fd = os.open(self.lock_name, os.O_RDONLY | _OPEN_LOCK, dir_fd=self.dfd)
            except FileNotFoundError:
                return None
            except OSError as error:
                raise MemmapFileError(f"cannot lock {self.shown}: {self._where()}: "
                                      f"{error.strerror}") from None
        try:
            self._refuse_kind(os.fstat(fd).st_mode)  # swapped between stat and open
        except MemmapFileError:
            os.close(fd)
            raise
        return fd

    def _acquire(self) -> None:
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        for _ in range(100):  # each retry means someone removed the file just now
            fd = self._open()
            if fd is None:
                return  # a reader without a lock file: the file's own lock holds
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise busy(self.shown, self.exclusive) from None
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
            # Ours are empty: a file with contents at that name is someone's, kept.
            if self._still_named(fd) and os.fstat(fd).st_size == 0:
                os.unlink(self.lock_name, dir_fd=self.dfd)
        except OSError:
            pass  # others still hold it: the last of them removes it
        finally:
            os.close(fd)
