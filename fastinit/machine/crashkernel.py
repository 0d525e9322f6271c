"""``crashkernel=``: its forms on the command line, and where ``reserve_crashkernel()`` puts
the crash kernel's memory on x86-64 (16 MiB aligned, top-down below 4 GiB, else below 64 TiB
with 256 MiB more below 4 GiB for DMA). A boot log prints where it went, which the log
parser reads instead; placing it is for machines from a spec.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastinit.layout import PAGE_SHIFT, pfn_up
from fastinit.machine.numbers import memparse
from fastinit.machine.ranges import Range, alloc_top_down, intersect, subtract

# reserve_crashkernel() on x86-64: 16 MiB aligned, below 4 GiB first, else below 64 TiB.
CRASH_ALIGN = (16 << 20) >> PAGE_SHIFT
CRASH_LOW_MAX = (4 << 30) >> PAGE_SHIFT
CRASH_HIGH_MAX = (64 << 40) >> PAGE_SHIFT
# reserve_crashkernel_low(): DMA memory below 4 GiB when the kernel went high.
CRASH_LOW_DEFAULT = (256 << 20) >> PAGE_SHIFT



@dataclass(frozen=True)
class Crashkernel:
    """``crashkernel=``: ``size`` bytes, at ``base`` (0: anywhere), ``high``: above 4 GiB
    first, with ``low`` bytes below 4 GiB for DMA (None: the kernel's default)."""

    size: int
    base: int = 0
    high: bool = False
    low: int | None = None


def parse_crashkernel(value: str, system_ram: int | None) -> tuple[str, Crashkernel | None]:
    """``crashkernel=`` in its forms: ``("plain" | "high" | "low", size and base)``; the
    range form picks the size for ``system_ram`` bytes (None: no size)."""
    head = value.split(",")[0]
    if ":" in head.split("@")[0]:
        return "plain", _crashkernel_ranges(value, system_ram)
    size, rest = memparse(value)
    if rest in (",high", ",low"):
        return rest[1:], Crashkernel(size, high=rest == ",high") if size else None
    base = memparse(rest[1:])[0] if rest.startswith("@") else 0
    return "plain", Crashkernel(size, base) if size else None


def _crashkernel_ranges(text: str, system_ram: int | None) -> Crashkernel | None:
    """``crashkernel=start-[end]:size[,...][@base]``: the size of the range holding RAM."""
    body, _, at = text.partition("@")
    if system_ram is None:
        return None
    for piece in body.split(","):
        span, _, size_text = piece.partition(":")
        low_text, _, high_text = span.partition("-")
        low = memparse(low_text)[0]
        high = memparse(high_text)[0] if high_text else None
        if system_ram >= low and (high is None or system_ram < high):
            size = memparse(size_text)[0]
            return Crashkernel(size, memparse(at)[0] if at else 0) if size else None
    return None


def place_crashkernel(crash: Crashkernel | None, memory: list[Range],
                      reserved: list[Range], notes: list[str]) -> list[Range]:
    """Where ``reserve_crashkernel()`` puts the crash kernel's memory (pfn ranges), given
    memblock memory and what is reserved already; failures go to ``notes`` as the kernel
    prints them."""
    if crash is None:
        return []
    pages = pfn_up(crash.size)
    free = subtract(memory, reserved)
    if crash.base:
        start = crash.base >> PAGE_SHIFT
        if intersect(free, start, start + pages) != [(start, start + pages)]:
            notes.append("crashkernel reservation failed - memory is in use.")
            return []
        return [(start, start + pages)]
    place = None
    if not crash.high:
        place = alloc_top_down(free, pages, CRASH_ALIGN, CRASH_ALIGN, CRASH_LOW_MAX)
    if place is None:
        place = alloc_top_down(free, pages, CRASH_ALIGN, CRASH_ALIGN, CRASH_HIGH_MAX)
    if place is None:
        notes.append("crashkernel reservation failed - No suitable area found.")
        return []
    result = [place]
    if place[0] >= CRASH_LOW_MAX:
        low = pfn_up(crash.low) if crash.low is not None else CRASH_LOW_DEFAULT
        low_place = alloc_top_down(subtract(free, result), low, CRASH_ALIGN, 0,
                                   CRASH_LOW_MAX) if low else None
        if low and low_place is None:
            notes.append("crashkernel low memory reservation failed.")
            return []
        result += [low_place] if low else []
    return result
