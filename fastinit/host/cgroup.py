"""Limits this process's cgroups set: CPU quota and memory, cgroup v2 and v1 alike.

A limit set on any cgroup between the process's own and the root of its hierarchy bounds
the process, so every reader here walks that path and keeps the tightest value. Both
hierarchies are read: containers on older hosts still mount v1 controllers (``cpu``,
``memory``) next to an empty unified hierarchy.
"""

from __future__ import annotations

from pathlib import Path

PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _ancestors(directory: Path, mount: Path) -> list[Path]:
    """``directory`` and its parents up to ``mount``, innermost first."""
    chain = [directory]
    while chain[-1] != mount and mount in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def cgroup_dirs(controller: str, proc_cgroup: Path = PROC_CGROUP,
                root: Path = CGROUP_ROOT) -> tuple[list[Path], list[Path]]:
    """Directories whose ``controller`` limits bound this process.

    Parameters
    ----------
    controller : str
        A v1 controller name, e.g. ``"cpu"`` or ``"memory"``.
    proc_cgroup : Path
        The ``/proc/<pid>/cgroup`` file to read (a parameter for tests).
    root : Path
        Where the cgroup hierarchies are mounted.

    Returns
    -------
    (list of Path, list of Path)
        The unified (v2) directories and the v1 ``controller`` directories, innermost first;
        either may be empty.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return [], []
    unified: list[Path] = []
    legacy: list[Path] = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        relative = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            unified = _ancestors(root / relative, root)
        elif controller in controllers.split(","):
            # v1 controllers are mounted under their own name or their co-mounted list.
            for mount in (root / controllers, root / controller):
                if mount.is_dir():
                    legacy = _ancestors(mount / relative, mount)
                    break
    return unified, legacy


def _read_words(path: Path) -> list[str] | None:
    try:
        return path.read_text().split()
    except OSError:
        return None


def cpu_quota(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota on the process's cgroup paths, in CPUs (None if none is set).

    v2 ``cpu.max`` holds ``"quota period"`` or ``"max period"``; v1 holds
    ``cpu.cfs_quota_us`` (-1 when unlimited) and ``cpu.cfs_period_us``.
    """
    unified, legacy = cgroup_dirs("cpu", proc_cgroup, root)
    quotas = []
    for directory in unified:
        words = _read_words(directory / "cpu.max")
        if words and len(words) >= 2 and words[0] != "max":
            quotas.append(_ints(words[0], words[1]))
    for directory in legacy:
        quota = _read_words(directory / "cpu.cfs_quota_us")
        period = _read_words(directory / "cpu.cfs_period_us")
        if quota and period and quota[0] != "-1":
            quotas.append(_ints(quota[0], period[0]))
    cpus = [quota / period for quota, period in filter(None, quotas)
            if period and quota / period > 0]
    return min(cpus, default=None)


def _ints(*values: str | int) -> tuple[int, ...] | None:
    """The numbers read from a cgroup's files, or None if one is not a number (a file may
    hold anything: such a cgroup sets no limit we can use)."""
    try:
        return tuple(int(value) for value in values)
    except ValueError:
        return None


def _stat_value(directory: Path, key: str) -> int:
    try:
        for line in (directory / "memory.stat").read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def memory_headroom(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> int | None:
    """Bytes the process's cgroups still let it use, or None where no limit is set.

    For each limited cgroup on the paths: limit minus usage, plus the inactive file cache
    charged to it (the kernel reclaims that before it refuses memory). The tightest wins.
    """
    unified, legacy = cgroup_dirs("memory", proc_cgroup, root)
    found = []
    for directory in unified:
        limit = _read_words(directory / "memory.max")
        usage = _read_words(directory / "memory.current")
        if limit and usage and limit[0] != "max":
            found.append(_ints(limit[0], usage[0], _stat_value(directory, "inactive_file")))
    for directory in legacy:
        limit = _read_words(directory / "memory.limit_in_bytes")
        usage = _read_words(directory / "memory.usage_in_bytes")
        # v1 writes "no limit" as the largest page-aligned 63-bit number.
        if limit and usage and limit[0].isdigit() and int(limit[0]) < 1 << 62:
            found.append(_ints(limit[0], usage[0],
                               _stat_value(directory, "total_inactive_file")))
    return min((max(limit - usage + reclaimable, 0)
                for limit, usage, reclaimable in filter(None, found)), default=None)
