"""available_memory: MemAvailable, bounded by the tightest cgroup limit."""

from pathlib import Path

import fastinit.host.memory as memory


def mem_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def test_a_cgroup_limit_below_memavailable_bounds_it(monkeypatch):
    monkeypatch.setattr(memory, "memory_headroom", lambda: 12345)
    assert memory.available_memory() == 12345


def test_without_a_cgroup_limit_it_is_memavailable(monkeypatch):
    monkeypatch.setattr(memory, "memory_headroom", lambda: None)
    # MemAvailable moves while other processes run: compare within 256 MiB.
    assert abs(memory.available_memory() - mem_available()) < 256 << 20


def test_page_memmaps_use_the_same_function():
    # A page memmap in memory is allocated as fastinit.empty allocates (arrays.alloc).
    import fastinit.arrays.alloc
    import fastinit.mm.memmap
    assert fastinit.arrays.alloc.available_memory is memory.available_memory
    assert fastinit.mm.memmap.map_anonymous is fastinit.arrays.alloc.map_anonymous
