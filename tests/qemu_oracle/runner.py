"""Boot Debian's kernel under QEMU (TCG, no KVM needed) on a `Layout` and capture its console.

The guest's serial console goes to a file: the kernel's boot log at the console level the
command line sets, then what the initramfs prints. QEMU exits when the init powers off, or
on a panic (``panic=-1`` with ``-no-reboot``); a boot that does neither is killed at the
timeout.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from qemu_oracle.generate import Layout

# Debian's packages that give everything (the skip reason names them).
PACKAGES = "qemu-system-x86 linux-image-amd64 busybox-static cpio"


@dataclass(frozen=True)
class Tools:
    """Paths of what a boot needs."""

    qemu: str
    kernel: str
    busybox: str


def _version_key(path: str) -> list:
    # /boot/vmlinuz-6.1.0-57-amd64: compare the numbers, not the text ("57" > "9").
    parts = Path(path).name.removeprefix("vmlinuz-").replace("-", ".").split(".")
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts]


def find_tools(kernel: str | None = None) -> Tools | str:
    """The tools, or a sentence saying what is missing and how to install it.

    ``kernel`` (else ``FASTINIT_ORACLE_KERNEL``) names a kernel image instead of the newest
    /boot/vmlinuz-* (tests/qemu_oracle/fetch_kernels.sh fetches one of each generation).
    """
    missing = []
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        missing.append("qemu-system-x86_64")
    kernel = kernel or os.environ.get("FASTINIT_ORACLE_KERNEL")
    if kernel is None:
        images = sorted((p for p in glob.glob("/boot/vmlinuz-*") if os.access(p, os.R_OK)),
                        key=_version_key)
        kernel = images[-1] if images else None
    if kernel is None or not os.access(kernel, os.R_OK):
        missing.append(f"a readable kernel image ({kernel or '/boot/vmlinuz-*'})")
    busybox = next((p for p in ("/bin/busybox", "/usr/bin/busybox")
                    if os.access(p, os.X_OK)), None)
    if busybox is None:
        missing.append("a static busybox")
    if shutil.which("cpio") is None:
        missing.append("cpio")
    if missing:
        return (f"missing {', '.join(missing)}; install Debian's packages: "
                f"apt-get install {PACKAGES}")
    return Tools(qemu, kernel, busybox)


@dataclass(frozen=True)
class Boot:
    """One boot's outcome.

    Attributes
    ----------
    layout : Layout
    serial : str
        Everything the guest printed on its serial console.
    seconds : float
        Wall time from starting QEMU to its exit.
    returncode : int or None
        QEMU's exit status (None when killed at the timeout).
    command : tuple of str
        The QEMU command line, to boot it again by hand.
    """

    layout: Layout
    serial: str
    seconds: float
    returncode: int | None
    command: tuple[str, ...]

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def command(layout: Layout, tools: Tools, initramfs: str, serial_path: str) -> list[str]:
    """The QEMU command for ``layout``."""
    return [tools.qemu, "-accel", "tcg", *layout.qemu_args(), "-kernel", tools.kernel,
            "-initrd", str(initramfs), "-append", layout.append(), "-nographic",
            "-display", "none", "-monitor", "none", "-serial", f"file:{serial_path}",
            "-no-reboot"]


def boot(layout: Layout, tools: Tools, initramfs: str, workdir: str | os.PathLike,
         timeout: float = 180.0) -> Boot:
    """Boot ``layout`` and return what its console printed.

    Parameters
    ----------
    layout : Layout
    tools : Tools
    initramfs : str
        From `build_initramfs`.
    workdir : path
        Where the serial log is written (``serial-<seed>.log``).
    timeout : float
        Seconds before QEMU is killed (a boot takes 5 to 15 s under TCG).
    """
    serial_path = Path(workdir) / f"serial-{layout.seed}-{os.getpid()}.log"
    argv = command(layout, tools, initramfs, str(serial_path))
    started = time.monotonic()
    # Its own process group, so a timeout kills QEMU's helpers too.
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
        returncode = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        returncode = None
    seconds = time.monotonic() - started
    try:
        serial = serial_path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        serial = ""
    finally:
        serial_path.unlink(missing_ok=True)
    if returncode not in (0, None) and not serial:
        # QEMU refused the machine before the guest started: say why.
        raise RuntimeError(f"QEMU failed ({returncode}) for {layout.describe()}: "
                           f"{output.decode(errors='replace').strip()[-400:]}")
    return Boot(layout, serial, seconds, returncode, tuple(argv))
