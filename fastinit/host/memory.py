"""Memory this process may still fill: MemAvailable, bounded by its cgroups' limits.

Both page memmaps (`fastinit.mm.memmap`) and users' arrays (`fastinit.arrays`) refuse an
allocation in memory that would not fit, before touching a byte of it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastinit.host.cgroup import memory_headroom


def available_memory() -> int:
    """Bytes this process can still fill: MemAvailable, bounded by its cgroups' limits."""
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    headroom = memory_headroom()
    return available if headroom is None else min(available, headroom)
