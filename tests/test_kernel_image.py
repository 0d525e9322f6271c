"""The kernel image's reservation rebuilt from a log booted with nokaslr, against what a
Debian 6.1 boot's /proc/iomem showed (code 0x1000000-0x1e01d31, rodata 0x2000000-,
data 0x2a00000-, bss to 0x43fffff, brk pages to 0x4410fff)."""

import pytest

from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.kernel_image import kernel_image_pfns

LINES = ["Memory: 338620K/2096632K available (14343K kernel code, 2338K rwdata, 9132K "
         "rodata, 2824K init, 17344K bss, 88700K reserved, 0K cma-reserved)",
         "Freeing unused decrypted memory: 2036K",
         "Write protecting the kernel read-only data: 26624k"]


def test_the_image_is_rebuilt_to_the_2m_block_from_the_logs_sizes():
    start, end = kernel_image_pfns("\n".join(LINES), parse_cmdline("nokaslr"))
    assert start << 12 == 0x1000000
    # bss ends at 0x4400000 and the brk pages follow: the 2 MiB block at 0x4400000 is used.
    assert (end << 12) - 4096 == 0x4400000


def test_without_the_read_only_line_the_segments_are_aligned_by_hand():
    assert kernel_image_pfns("\n".join(LINES[:2]), parse_cmdline("nokaslr")) == \
        kernel_image_pfns("\n".join(LINES), parse_cmdline("nokaslr"))


def test_with_kaslr_or_without_the_memory_line_the_image_is_unknown():
    assert kernel_image_pfns("\n".join(LINES), parse_cmdline("quiet")) is None
    assert kernel_image_pfns(LINES[2], parse_cmdline("nokaslr")) is None


def test_a_nokaslr_logs_image_is_reserved_memory():
    log = "\n".join(["Command line: nokaslr",
                     "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
                     "BIOS-e820: [mem 0x0000000000100000-0x000000007ffdffff] usable"] + LINES)
    assert (0x1000, 0x4401) in parse_bootlog(log).reserved


def test_a_size_too_long_to_be_real_names_its_line_instead_of_int_refusing_it():
    huge = LINES[2].replace("26624k", "9" * 5000 + "k")
    text = "\r\n".join(["[    0.0] Linux version 6.1", *LINES[:2], huge])
    with pytest.raises(ValueError, match=r"^dmesg:4: size \(KiB\) 9{20}\.\.\. is beyond"):
        kernel_image_pfns(text, parse_cmdline("nokaslr"))
