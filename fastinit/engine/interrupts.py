"""Ctrl-C and SIGTERM: stopping a run, and held back over blocks that must not be cut.

`stop_on_signals` (the command line) makes SIGTERM stop a run as Ctrl-C does, whatever
SIGINT is set to: a background job of a non-interactive shell starts with SIGINT ignored,
and it stays ignored. Two blocks must not be cut in the middle: starting threads
(`ctrl_c_held`: the caller raises the interrupt once every thread it started is tracked)
and committing or removing a file (`interrupts_deferred`: the interrupt is delivered when
the block ends). Only the main thread receives signals, so elsewhere all three do nothing.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from contextlib import contextmanager

# The signals that stop a run (a terminal's Ctrl-C; kill, a job scheduler's time limit).
STOPS = (signal.SIGINT, signal.SIGTERM)
# Seconds before a swallowed KeyboardInterrupt is delivered again (`Stopper.swallowed`).
REDELIVER = 0.05


class Stopper:
    """The handler of SIGINT and SIGTERM under `stop_on_signals`.

    The first signal raises KeyboardInterrupt; later ones are only noted: the run is
    already stopping, and a second exception would cut its cleanup short (a thread not
    joined, a temporary file not removed) or end in a traceback. `disarm` makes every
    signal only noted (the program is done, or saying why it stopped).
    """

    def __init__(self):
        self.received: list[int] = []
        self.armed = True
        self.again = False  # raise once more: the first was swallowed (`swallowed`)
        self.reporting = False  # in the hook that reports a swallowed exception
        self.closed = False  # its block has ended

    @property
    def first(self) -> int | None:
        """The signal that stopped the run, or None."""
        return self.received[0] if self.received else None

    def take(self, signum: int) -> bool:
        """Record ``signum``; whether it is to become a KeyboardInterrupt."""
        if self.again:
            self.again = False
            return True
        self.received.append(signum)
        raises, self.armed = self.armed, False
        return raises

    def disarm(self) -> None:
        self.armed = self.again = False

    def swallowed(self) -> None:
        """The KeyboardInterrupt raised for the first signal was swallowed where it could
        not propagate (Python code called back from C, e.g. by LLVM while Numba compiles,
        reports it as unraisable and carries on): deliver it again, once it is back."""
        if self.first is not None and not self.armed and not self.again:
            self.again = True
            self._redeliver()

    def _redeliver(self) -> None:
        # From another thread, a moment later: delivered now, it would be raised inside
        # the same callback (or the hook that reports it) and be swallowed again.
        timer = threading.Timer(REDELIVER, self._deliver)
        timer.daemon = True
        timer.start()

    def _deliver(self) -> None:
        if not self.closed:  # the handlers are still ours
            _thread.interrupt_main(self.first)

    def __call__(self, signum, frame):
        if self.again and self.reporting:
            self._redeliver()  # still in the hook: not yet
            return
        if self.take(signum):
            raise KeyboardInterrupt


def _raises(handler) -> bool:
    """Whether ``handler`` turns its signal into a KeyboardInterrupt."""
    return handler is signal.default_int_handler or isinstance(handler, Stopper)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def stop_on_signals(*, exiting: bool = False):
    """SIGINT and SIGTERM stop the program as Ctrl-C does; yields the `Stopper`, whose
    ``first`` says which signal came (None: none did).

    A signal set to ignored (SIG_IGN) when the block starts stays ignored. At the end the
    previous handlers come back, or, with ``exiting`` (the process ends when the block
    does), both signals are ignored from then on: the work is done, and a signal must not
    end the process as if it had stopped it.
    """
    stopper = Stopper()
    if not _main_thread():
        yield stopper
        return
    previous = {}
    for signum in STOPS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, stopper)
    hook = sys.unraisablehook

    def unraisable(info):
        if isinstance(info.exc_value, KeyboardInterrupt) and stopper.received:
            stopper.reporting = True
            try:
                stopper.swallowed()  # no "Exception ignored" traceback: raised again
            finally:
                stopper.reporting = False
        else:
            hook(info)

    sys.unraisablehook = unraisable
    try:
        yield stopper
    finally:
        stopper.closed = True
        sys.unraisablehook = hook
        for signum in STOPS:
            if exiting:
                signal.signal(signum, signal.SIG_IGN)
            elif signum in previous:
                signal.signal(signum, previous[signum])


@contextmanager
def _noted(noted: list, hold):
    """Inside the block, the stopping signals whose handler satisfies ``hold`` only append
    ``(signum, frame)`` to ``noted``; yields ``{signum: handler replaced}``, put back after
    (main thread only)."""
    previous = {}
    try:
        for signum in STOPS:
            handler = signal.getsignal(signum)
            if hold(handler):
                previous[signum] = handler
                signal.signal(signum, lambda got, frame: noted.append((got, frame)))
        yield previous
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def ctrl_c_held():
    """Hold Ctrl-C (and SIGTERM under `stop_on_signals`) while threads are being started;
    yields a list that records it.

    A KeyboardInterrupt raised inside ``Thread.start()`` or between starting a thread and
    recording it would leave a thread running that nobody joins. On the main thread, a
    signal whose handler raises KeyboardInterrupt is only appended to the yielded list
    inside the block; the caller raises KeyboardInterrupt once every thread it started is
    tracked (a `Stopper` learns of the signal when the block ends). Elsewhere (other
    threads never see KeyboardInterrupt, or the program has its own handler) the list
    stays empty and nothing changes.
    """
    pending: list = []
    if not _main_thread():
        yield pending
        return
    with _noted(pending, _raises) as previous:
        yield pending
    if pending and isinstance(previous.get(pending[0][0]), Stopper):
        previous[pending[0][0]].take(pending[0][0])  # the caller raises it


@contextmanager
def interrupts_deferred():
    """Hold Ctrl-C and SIGTERM back while a file is committed or cleaned up, then deliver
    the first that came.

    A KeyboardInterrupt in the middle of a rename or an unlink would leave a temporary
    file behind; the interrupt is not lost, only delayed until the block has finished
    (raised through the program's handler, or, under SIG_DFL, the signal sent again).
    A signal set to ignored is left alone.
    """
    if not _main_thread():
        yield
        return
    caught: list = []
    previous = {}
    try:
        with _noted(caught, lambda h: _raises(h) or h == signal.SIG_DFL) as previous:
            yield
    finally:
        if caught:
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            else:
                os.kill(os.getpid(), signum)
