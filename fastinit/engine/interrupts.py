"""Ctrl-C while threads start: hold it until every started thread is tracked."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def ctrl_c_held():
    """Hold Ctrl-C while threads are being started; yields a list that records it.

    A KeyboardInterrupt raised inside ``Thread.start()`` or between starting a thread and
    recording it would leave a thread running that nobody joins. On the main thread with
    Python's default handler, a Ctrl-C inside the block is only appended to the yielded
    list; the caller raises it once every thread it started is tracked. Elsewhere (other
    threads never see KeyboardInterrupt, or the program has its own handler) the list
    stays empty and nothing changes.
    """
    pending: list[int] = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield pending
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield pending
    finally:
        signal.signal(signal.SIGINT, previous)
