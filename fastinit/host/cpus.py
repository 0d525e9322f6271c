"""CPUs this process may use: affinity, cgroup CPU quota, NUMA node CPU sets, pinning.

Linux's padata sizes its work pool by the possible CPUs and never looks at the caller's
cgroup; reviewers asked for quota awareness and it was never built. fastinit bounds its
pool by what the process may really use: its CPU affinity, cut down to the cgroups' CPU
quota where one is set, v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` (a container limited to
1.5 CPUs gets 2 threads, not 64).
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

from fastinit.host.cgroup import cpu_quota

SYSFS_NODES = Path("/sys/devices/system/node")


def parse_cpulist(text: str) -> list[int]:
    """Parse a kernel CPU list such as ``"0-3,8,10-11"``.

    Parameters
    ----------
    text : str
        The list as sysfs prints it; empty for a CPU-less node.

    Returns
    -------
    list of int
        The CPU numbers, sorted.
    """
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def affinity_cpus() -> list[int]:
    """CPUs in this process's affinity mask, sorted."""
    return sorted(os.sched_getaffinity(0))


# Reading the cgroup quota walks /proc and /sys (about 60 us, more than a whole small job):
# it is read again only when older than this. Affinity is read on every call (0.3 us).
QUOTA_MAX_AGE = 1.0
_quota_lock = threading.Lock()
_quota_read: tuple[float, float | None] | None = None


def _cached_quota(max_age: float) -> float | None:
    global _quota_read
    now = time.monotonic()
    with _quota_lock:
        if _quota_read is None or now - _quota_read[0] > max_age:
            _quota_read = (now, cpu_quota())
        return _quota_read[1]


def usable_cpus(*, max_age: float = QUOTA_MAX_AGE) -> int:
    """Number of CPUs this process can keep busy: affinity bounded by the cgroup quota.

    Parameters
    ----------
    max_age : float
        Seconds a cgroup quota read before may be reused; 0 reads it now.

    Returns
    -------
    int
        At least 1.
    """
    count = len(os.sched_getaffinity(0))
    quota = _cached_quota(max_age)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(count, 1)


def node_cpus(sysfs_nodes: Path = SYSFS_NODES) -> dict[int, list[int]]:
    """CPUs of each NUMA node of this machine, limited to this process's affinity.

    Parameters
    ----------
    sysfs_nodes : Path
        The sysfs node directory (a parameter for tests).

    Returns
    -------
    dict of int to list of int
        Node id to its usable CPUs; a memory-only node maps to an empty list. On a machine
        without NUMA information, one node 0 with every usable CPU.
    """
    allowed = set(affinity_cpus())
    nodes: dict[int, list[int]] = {}
    for entry in sorted(sysfs_nodes.glob("node[0-9]*")):
        try:
            cpulist = (entry / "cpulist").read_text()
        except OSError:
            continue
        nodes[int(entry.name[4:])] = [c for c in parse_cpulist(cpulist) if c in allowed]
    return nodes or {0: sorted(allowed)}


def process_affinity() -> set[int]:
    """The CPUs the process may run on now: its main thread's affinity, read when asked.

    Linux keeps an affinity per thread; a helper that was pinned to one node takes the main
    thread's mask when it is unpinned, so a mask the program set after import is honoured.
    """
    try:
        return os.sched_getaffinity(threading.main_thread().native_id)
    except OSError:  # the main thread has exited: the calling thread's mask is the best left
        return os.sched_getaffinity(0)


def pin_current_thread(cpus: list[int] | None) -> None:
    """Bind the calling thread to ``cpus``; None restores `process_affinity()`.

    Linux applies ``sched_setaffinity(0, ...)`` to the calling thread only.
    """
    os.sched_setaffinity(0, cpus if cpus else process_affinity())
