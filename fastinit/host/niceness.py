"""Helper threads at a lower priority: a thread's niceness on Linux.

The series' reviewers asked for padata helpers that yield to the machine's other work
during a big initialization; Linux never built it. On Linux a thread has a niceness of its
own: ``setpriority(PRIO_PROCESS, tid, n)`` with the thread's id changes that thread only,
so a job's helpers can run at ``nice`` while the caller's thread keeps its own. Raising
niceness needs no privilege; lowering it again does (RLIMIT_NICE), so a pool helper that
cannot go back is retired after its job instead of serving the next one slowly.
"""

from __future__ import annotations

import os
import sys
import threading

from fastinit.validate import check_int

# The weakest priority Linux has.
MAX_NICE = 19


def thread_nice() -> int:
    """The calling thread's niceness (Linux reads the thread's own for ``who=0``)."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def set_thread_nice(nice: int) -> None:
    """Set the calling thread's niceness (OSError when lowering it needs privilege)."""
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def check_nice(nice, name: str = "nice") -> int | None:
    """``nice`` validated: None, or an int from this thread's niceness to 19.

    Raises
    ------
    TypeError, ValueError
        Naming ``name`` and the range; on another system than Linux, where a thread has
        no niceness of its own, any value but None.
    """
    if nice is None:
        return None
    if not sys.platform.startswith("linux"):
        raise ValueError(f"{name}={nice!r} needs Linux, where each thread has its own "
                         f"niceness; leave {name} out here")
    current = thread_nice()
    return check_int(nice, name, minimum=current, maximum=MAX_NICE,
                     fix=f"give {current} (this thread's niceness) to {MAX_NICE} (the "
                         f"lowest priority): lowering it needs privilege")
