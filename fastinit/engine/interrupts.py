"""Ctrl-C held back over a block that must not be cut in the middle.

Two blocks need it: starting threads (`ctrl_c_held`: the caller raises the interrupt once
every thread it started is tracked) and committing or removing a file
(`interrupts_deferred`: the interrupt is delivered when the block ends). Only the main
thread receives signals, so elsewhere both do nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager


@contextmanager
def _sigint_noted(noted: list):
    """Inside the block, SIGINT only appends its frame to ``noted``; yields the handler it
    replaced, which is put back after (main thread only)."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(frame))
    try:
        yield previous
    finally:
        signal.signal(signal.SIGINT, previous)


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
    pending: list = []
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield pending
        return
    with _sigint_noted(pending):
        yield pending


@contextmanager
def interrupts_deferred():
    """Hold Ctrl-C back while a file is committed or cleaned up, then deliver it.

    A KeyboardInterrupt in the middle of a rename or an unlink would leave a temporary
    file behind; the interrupt is not lost, only delayed until the block has finished
    (raised through the program's handler, or, under SIG_DFL, the signal sent again).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = None
    try:
        with _sigint_noted(caught) as previous:
            yield
    finally:
        if caught and callable(previous):
            previous(signal.SIGINT, caught[0])
        elif caught and previous == signal.SIG_DFL:
            os.kill(os.getpid(), signal.SIGINT)
