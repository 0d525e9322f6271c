"""What the command line says when a run is stopped (Ctrl-C, SIGTERM), and its exit
status: whether the file a boot writes (--memmap-file) is the new, complete one or still
what it was. Imported before the signals are taken, so it imports only the standard
library at the top.
"""

from __future__ import annotations

import os
import signal

from fastinit.engine.interrupts import Stopper


class Run:
    """What an interrupt needs to know: the command, and the file it writes."""

    def __init__(self, stopper: Stopper):
        self.stopper = stopper
        self.command = "fastinit"
        self.target: Target | None = None

    def stopped(self, stop: BaseException) -> int:
        """Say why the run stopped; its exit status: 128 + the signal when the path keeps
        what it had, 0 when the new file was in place first (the boot's work is done)."""
        from fastinit.cli.output import say
        signum = self.stopper.first or signal.SIGINT
        how = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
        if self.target is not None and self.target.replaced():
            from fastinit.arrays.handle import completed_note
            say(f"{self.command}: {how}; {completed_note(self.target.path)}")
            return 0
        notes = "".join(f"; {note}" for note in getattr(stop, "__notes__", ()))
        say(f"{self.command}: {how}; every thread was stopped{notes}")
        return 128 + signum


class Target:
    """The file a boot writes (--memmap-file), as it was before the boot: after an
    interrupt, whether the path holds the old contents or the new, complete file."""

    def __init__(self, path):
        self.path = path
        self.before = self._identity()

    def _identity(self):
        try:
            info = os.lstat(self.path)
        except (OSError, ValueError):
            return None
        return info.st_dev, info.st_ino

    def replaced(self) -> bool:
        """Whether another file, complete, is at the path now (the boot's commit renames
        only a complete file into place; a file's inode is its identity)."""
        now = self._identity()
        return now is not None and now != self.before and _complete_file(self.path)


def _complete_file(path) -> bool:
    from fastinit.arrays.probe import is_complete, probe_path
    return probe_path(path, is_complete)
