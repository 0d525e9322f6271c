"""Where the kernel's own image lies, when a boot log lets us know: booted with ``nokaslr``.

memblock reserves the image first thing (``early_reserve_memory()``: ``_text`` to
``__end_of_kernel_reserve``, then the brk pages it used), so none of it is free memory.
With KASLR the image lands at a random physical address, which a log does not print; with
``nokaslr`` it sits at CONFIG_PHYSICAL_START, 16 MiB on x86-64. Its extent is rebuilt from
the sizes the log prints and x86-64's layout, which aligns the text, read-only data and
data segments to 2 MiB (so each can be mapped with large pages):

- ``Write protecting the kernel read-only data: 26624k``: text and read-only data, gaps
  included (``_text`` to the end of ``.rodata``);
- ``Memory: ... (14343K kernel code, 2338K rwdata, 9132K rodata, 2824K init, 17344K bss,
  ...)``: the rest, in order: data, then (from the next 2 MiB) init, the unused part of
  ``.bss..decrypted`` (``Freeing unused decrypted memory: 2036K``) and bss, the reserved
  end rounded up to 2 MiB;
- one page of brk after it (early page tables: always some).

What is rebuilt is exact to the 2 MiB block, which is what huge pages see (a Debian 6.1
boot's /proc/iomem: code 0x1000000-0x1e01d31, rodata 0x2000000-, data 0x2a00000-, bss
0x3310000-0x43fffff, brk to 0x4411000; rebuilt: 0x1000000-0x4401000).
"""

from __future__ import annotations

import re

from fastinit.layout import PAGE_SHIFT, align_up
from fastinit.machine.cmdline import KernelCmdline
from fastinit.machine.e820 import MAX_ADDRESS
from fastinit.machine.loglines import bounded_decimal

# CONFIG_PHYSICAL_START of x86-64 kernels (and its alignment, CONFIG_PHYSICAL_ALIGN).
PHYSICAL_START = 16 << 20
SEGMENT_ALIGN = 2 << 20

_MEMORY = re.compile(r"Memory: \d+K/\d+K available \((\d+)K kernel code, (\d+)K rwdata, "
                     r"(\d+)K rodata, (\d+)K init, (\d+)K bss")
_READ_ONLY = re.compile(r"Write protecting the kernel read-only data: (\d+)k")
_DECRYPTED = re.compile(r"Freeing unused decrypted memory: (\d+)K")


def kernel_image_pfns(text: str, cmdline: KernelCmdline,
                      source: str = "dmesg") -> tuple[int, int] | None:
    """The pfn range memblock reserves for the kernel's image, or None if the log does not
    let us know it (KASLR, or no ``Memory:`` line). A size beyond physical memory is a
    ValueError naming its line of ``source``."""
    if not any(name == "nokaslr" for name, _ in cmdline.params):
        return None
    memory = _MEMORY.search(text)
    if memory is None:
        return None
    code, rwdata, rodata, init, bss = (_bytes(memory, group, text, source)
                                       for group in range(1, 6))
    read_only = _READ_ONLY.search(text)
    span = _bytes(read_only, 1, text, source) if read_only else \
        align_up(code, SEGMENT_ALIGN) + align_up(rodata, SEGMENT_ALIGN)
    decrypted = _DECRYPTED.search(text)
    unused = _bytes(decrypted, 1, text, source) if decrypted else 0
    data_end = align_up(PHYSICAL_START + span + rwdata, SEGMENT_ALIGN)
    end = align_up(data_end + init + unused + bss, SEGMENT_ALIGN)
    # The brk pages the kernel used (at least one) follow the image.
    return PHYSICAL_START >> PAGE_SHIFT, (end >> PAGE_SHIFT) + 1


def _bytes(match: re.Match, group: int, text: str, source: str) -> int:
    """A size the log printed in KiB, in bytes, bounded before use (numbered as
    `fastinit.machine.loglines.log_lines` numbers lines)."""
    start = match.start()
    number = text.count("\n", 0, start) + text.count("\r", 0, start) \
        - text.count("\r\n", 0, start) + 1
    first = max(text.rfind("\n", 0, start), text.rfind("\r", 0, start)) + 1
    line = text[first:match.end()]
    return bounded_decimal(match.group(group), MAX_ADDRESS >> 10, "size (KiB)", source,
                           number, line) << 10
