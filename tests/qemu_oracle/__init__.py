"""A real Linux kernel as the oracle for fastinit's machine model.

Random machines that QEMU can build (`generate`), a busybox initramfs that prints the
kernel's own zone figures (`initramfs`), a runner that boots Debian's kernel under QEMU's
TCG emulator (`runner`), a parser of what the kernel printed and reported (`printed`,
written independently of fastinit's own log parser), and the comparison with
``fastinit topology --dmesg LOG --json`` (`compare`). Captured boots are kept as cases
(`corpus`) so the default test suite can check them without QEMU.

Used by ``pytest -m qemu`` (tests/test_qemu_oracle.py) and by perf/oracle_campaign.py.
"""

from qemu_oracle.compare import Comparison, compare, run_fastinit, run_fastinit_here
from qemu_oracle.corpus import Case, load_case, save_case
from qemu_oracle.generate import Layout, NodeSpec, generate
from qemu_oracle.initramfs import build_initramfs
from qemu_oracle.printed import KernelReport, read_report
from qemu_oracle.runner import Boot, Tools, boot, find_tools

__all__ = ["Boot", "Case", "Comparison", "KernelReport", "Layout", "NodeSpec", "Tools", "boot",
           "build_initramfs", "compare", "find_tools", "generate", "load_case", "read_report",
           "run_fastinit", "run_fastinit_here", "save_case"]
