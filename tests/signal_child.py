"""``python signal_child.py WHERE MARKER fastinit-args...``: the ``fastinit`` program, held
at one moment until a signal has reached its handler (a barrier, not a sleep).

WHERE is ``writing`` (the first deferred chunk: the new file is still a temporary file) or
``printing`` (the report: the new file is already in place). The child leaves MARKER when
it gets there, then waits until the program's SIGTERM handler has noted a signal (at most
a minute) and goes on. Used by test_interrupts.py and perf/signal_campaign.py.
"""

import os
import signal
import sys
import time


def until_signalled(marker: str) -> None:
    open(marker, "w").close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if getattr(signal.getsignal(signal.SIGTERM), "received", None):
            return
        time.sleep(0.005)


def hold(where: str, marker: str) -> None:
    if where == "writing":
        from fastinit.mm import deferred
        chunk, held = deferred.deferred_init_memmap_chunk, []

        def first_chunk_held(start, end, ctx):
            if not held:
                held.append(start)
                until_signalled(marker)
            return chunk(start, end, ctx)

        deferred.deferred_init_memmap_chunk = first_chunk_held
    elif where == "printing":
        from fastinit.report import boot as report
        lines = report.boot_lines

        def held_lines(*args, **kwargs):
            until_signalled(marker)
            return lines(*args, **kwargs)

        report.boot_lines = held_lines
    else:
        raise SystemExit(f"WHERE must be writing or printing, not {where!r}")


if __name__ == "__main__":
    hold(sys.argv[1], sys.argv[2])
    from fastinit.cli import run
    sys.argv = ["fastinit"] + sys.argv[3:]
    sys.exit(run())
