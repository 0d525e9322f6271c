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
from pathlib import Path

from fastinit.engine.cgroup import cpu_quota

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


def usable_cpus() -> int:
    """Number of CPUs this process can keep busy: affinity bounded by the cgroup quota.

    Returns
    -------
    int
        At least 1.
    """
    count = len(os.sched_getaffinity(0))
    quota = cpu_quota()
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


def pin_current_thread(cpus: list[int] | None) -> None:
    """Bind the calling thread to ``cpus``; None restores the process's full affinity.

    Linux applies ``sched_setaffinity(0, ...)`` to the calling thread only.
    """
    os.sched_setaffinity(0, cpus if cpus else _PROCESS_AFFINITY)


# Taken at import, before any thread is pinned, so pinning can be undone.
_PROCESS_AFFINITY = frozenset(os.sched_getaffinity(0))
