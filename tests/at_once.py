"""A callable for chunk hooks and thread functions that counts how many calls run at once."""

import threading
import time

# How long the first calls wait for each other before the test fails: only a scheduler that
# never runs them together (the bug a test looks for) or a hung box takes that long.
MEET_TIMEOUT = 60


class AtOnce:
    """Call it from every chunk (any arguments); ``most`` is the most calls that were inside
    it together.

    The first ``meet`` calls wait inside for each other (a barrier, not a sleep), so
    ``most >= meet`` on any machine however its threads are scheduled, and a scheduler that
    cannot run ``meet`` calls at once breaks the barrier (`threading.BrokenBarrierError`).
    Every call then stays ``hold`` s: that only widens the window in which a call beyond a
    limit would be counted; no lower bound depends on it.
    """

    def __init__(self, meet=1, hold=0.002):
        self.hold = hold
        self.lock = threading.Lock()
        self.now = self.most = self.calls = 0
        self.barrier = threading.Barrier(meet, timeout=MEET_TIMEOUT) if meet > 1 else None

    def __call__(self, *chunk):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.calls += 1
            meets = self.barrier is not None and self.calls <= self.barrier.parties
        try:
            if meets:
                self.barrier.wait()
            time.sleep(self.hold)
        finally:
            with self.lock:
                self.now -= 1
