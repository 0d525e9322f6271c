"""A terminal progress bar for jobs: fraction done, rate and time left, from any thread."""

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


class ProgressBar:
    """A one-line bar on a terminal stream, called with the amount each piece of work added.

    Bars of successive phases share the line, each overwriting the one before.

    Parameters
    ----------
    total : int
        Units of the whole phase (bytes, pages...).
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
        self.began = clock()
        self.drawn = float("-inf")

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.done = min(self.done + amount, self.total)
            now = self.clock()
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
        elapsed = now - self.began
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
