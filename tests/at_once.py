"""A callable for chunk hooks and thread functions that counts how many calls run at once."""

import threading
import time


class AtOnce:
    """Call it from every chunk (any arguments): it sleeps ``delay`` s, and ``most`` is the
    most calls that were inside it together."""

    def __init__(self, delay=0.01):
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.delay = delay

    def __call__(self, *chunk):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
