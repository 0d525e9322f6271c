"""Progress in fastinit's one convention, ``progress(done, total)``: `Tally` turns amounts
finished on any thread into such calls, `ProgressBar` draws them on a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

# Redraws per second at most: a bar redrawn per chunk costs more than some chunks.
REDRAWS_PER_SECOND = 10
WIDTH = 30


def _rate(bytes_per_second: float) -> str:
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if bytes_per_second >= scale:
            return f"{bytes_per_second / scale:5.1f} {unit}"
    return f"{bytes_per_second:5.0f} B/s"


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Tally:
    """Amounts of work finished on any thread, reported as ``progress(done, total)``.

    Every stage of a boot (first touch, deferred init, verify) counts with one, so every
    ``progress`` callback of the API gets the same two numbers: the units done so far and
    the stage's total. ``progress(0, total)`` is called when the tally is made, at the
    start of the stage (a bar's clock starts there, not at the bar's creation); later
    calls come in order, under a lock, from the thread that finished the work.

    Parameters
    ----------
    progress : callable or None
        ``progress(done, total)``; None counts nothing.
    total : int
        Units of the whole stage.
    """

    def __init__(self, progress, total: int):
        self.progress, self.total, self.done = progress, int(total), 0
        self.lock = threading.Lock()
        if progress is not None:
            progress(0, self.total)

    def add(self, amount: int) -> None:
        """Count ``amount`` more units done."""
        if self.progress is None or not amount:
            return
        with self.lock:
            self.done += amount
            self.progress(self.done, self.total)


class ProgressBar:
    """A one-line bar on a terminal stream: ``bar(done, total)`` from any thread.

    The rate and the time left are measured from the bar's first call (a stage's
    `Tally` makes it at the stage's start), so time spent before the stage, compiling
    or allocating, does not count against it. Bars of successive phases share the line,
    each overwriting the one before.

    Parameters
    ----------
    total : int
        Units of the whole phase (bytes, pages...) until a call says otherwise.
    label : str
        The phase, e.g. ``"deferred init"``.
    unit_bytes : int
        Bytes one unit stands for, for the rate (1 for bytes, 64 for page descriptors).
    stream : text stream
        Where to draw (default: standard error).
    clock : callable
        Seconds from a monotonic clock (a parameter for tests).
    """

    def __init__(self, total: int, label: str, *, unit_bytes: int = 1,
                 stream: TextIO | None = None, clock=time.monotonic):
        self.total, self.done = max(int(total), 1), 0
        self.label = f"{label:<14}"
        self.unit_bytes = unit_bytes
        self.stream = sys.stderr if stream is None else stream
        self.clock = clock
        self.lock = threading.Lock()
        self.began = None
        self.drawn = float("-inf")

    def __call__(self, done: int, total: int) -> None:
        with self.lock:
            now = self.clock()
            if self.began is None:
                self.began = now
            self.total = max(int(total), 1)
            self.done = min(max(int(done), self.done), self.total)
            if now - self.drawn < 1 / REDRAWS_PER_SECOND and self.done < self.total:
                return
            self.drawn = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float) -> str:
        """The bar as drawn at time ``now``: label, bar, percent, rate, time left."""
        filled = WIDTH * self.done // self.total
        text = f"{self.label} [{'#' * filled}{' ' * (WIDTH - filled)}] " \
               f"{100 * self.done // self.total:3d}%"
        elapsed = now - self.began if self.began is not None else 0.0
        if elapsed > 0 and self.done:
            speed = self.done / elapsed
            left = (self.total - self.done) / speed
            text += f"  {_rate(speed * self.unit_bytes)}  " + \
                    (f"{_clock(elapsed)} total" if self.done >= self.total
                     else f"ETA {_clock(left)}")
        return text

    def close(self) -> None:
        """Wipe the line, so what is printed next starts clean."""
        self.stream.write("\r" + " " * (len(self.label) + WIDTH + 40) + "\r")
        self.stream.flush()
