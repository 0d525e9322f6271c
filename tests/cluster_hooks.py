"""Chunk hooks that run on dask workers in the distributed tests (pickled by value)."""

import os
import time


def leave_marker(marker_dir: str, nid: int) -> bool:
    """Leave ``node<nid>`` in ``marker_dir`` holding this worker's pid, unless it is there
    already (renamed into place: a reader never sees it half written); whether it did."""
    path = os.path.join(marker_dir, f"node{nid}")
    if os.path.exists(path):
        return False
    with open(path + ".tmp", "w") as marker:
        marker.write(str(os.getpid()))
    os.rename(path + ".tmp", path)
    return True


def hold_once(marker_dir: str, seconds: float, held: int, nid: int, start: int,
              end: int) -> None:
    """Before node ``held``'s first chunk: leave ``node<held>`` in ``marker_dir`` (holding
    the worker's pid) and sleep. Other nodes, later chunks and the node booted again (the
    marker is there) go straight on."""
    if nid == held and leave_marker(marker_dir, nid):
        time.sleep(seconds)


def slow_chunks(marker_dir: str, seconds: float, nid: int, start: int, end: int) -> None:
    """Every chunk sleeps; the first leaves a marker naming the worker's pid."""
    leave_marker(marker_dir, nid)
    time.sleep(seconds)


def kill_at_last_chunk(marker_dir: str, pid: int, ends: dict, hold: float, nid: int,
                       start: int, end: int) -> None:
    """Before the chunk that ends node ``nid``'s job (``ends[nid]``), the first time any
    node gets there: SIGKILL process ``pid`` (the scheduler), leave ``node<nid>`` in
    ``marker_dir``, then sleep ``hold`` seconds (0: the node goes on to its final sync
    at once, racing its worker's discovery of the loss)."""
    import signal
    if end == ends.get(nid) and leave_marker(marker_dir, nid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(hold)


def fail_once_released(release: str, failing: int, nid: int, start: int, end: int) -> None:
    """Node ``failing``'s first chunk waits until the file ``release`` exists, then
    raises; other nodes go straight on."""
    if nid != failing:
        return
    for _ in range(60000):  # 10 minutes at most: the test creates the file
        if os.path.exists(release):
            raise RuntimeError(f"node {nid} fails on purpose")
        time.sleep(0.01)
