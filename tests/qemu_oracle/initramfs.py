"""A tiny busybox initramfs whose /init prints the kernel's own memory figures, then powers off.

Built at run time with cpio (never committed as a binary): the static busybox, and an
``/init`` script that mounts proc and sysfs, silences the console (so kernel messages do not
interleave with what it prints), prints ``/proc/zoneinfo``, every node's
``hugepages-*/nr_hugepages`` and ``/proc/cmdline`` between markers, and runs
``poweroff -f``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

# Markers around each section the init prints (the parser in `printed` looks for them).
ZONEINFO_BEGIN, ZONEINFO_END = "@@ZONEINFO-BEGIN@@", "@@ZONEINFO-END@@"
HUGEPAGES_BEGIN, HUGEPAGES_END = "@@HUGEPAGES-BEGIN@@", "@@HUGEPAGES-END@@"
CMDLINE_MARK = "@@CMDLINE@@"
DONE_MARK = "@@ORACLE-DONE@@"

INIT_SCRIPT = f"""#!/bin/busybox sh
# fastinit oracle: print the kernel's zone figures and huge page pools, then power off.
B=/bin/busybox
$B mkdir -p /proc /sys
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
# Console level 1: no kernel message may cut into the lines printed below.
$B dmesg -n 1
echo "{ZONEINFO_BEGIN}"
$B cat /proc/zoneinfo
echo "{ZONEINFO_END}"
echo "{HUGEPAGES_BEGIN}"
for f in /sys/devices/system/node/node*/hugepages/hugepages-*/nr_hugepages; do
    [ -e "$f" ] && echo "$f $($B cat "$f")"
done
echo "{HUGEPAGES_END}"
echo "{CMDLINE_MARK} $($B cat /proc/cmdline)"
echo "{DONE_MARK}"
$B poweroff -f
"""


def build_initramfs(busybox: str, directory: str | os.PathLike) -> Path:
    """Write ``initramfs.cpio.gz`` into ``directory`` and return its path.

    The archive is made by the ``cpio`` tool (newc format, owned by root) from a staging
    tree holding only the static busybox binary and the init script.

    Parameters
    ----------
    busybox : str
        Path of a statically linked busybox (Debian's busybox-static: /bin/busybox).
    directory : path
        Where the staging tree and the archive go (a temporary directory).
    """
    directory = Path(directory)
    root = directory / "initramfs-root"
    if root.exists():
        shutil.rmtree(root)
    (root / "bin").mkdir(parents=True)
    for name in ("proc", "sys", "dev"):
        (root / name).mkdir()
    shutil.copy2(busybox, root / "bin" / "busybox")
    init = root / "init"
    init.write_text(INIT_SCRIPT)
    init.chmod(0o755)
    archive = directory / "initramfs.cpio.gz"
    if shutil.which("cpio") is None:
        raise FileNotFoundError("cpio is not installed (apt-get install cpio)")
    names = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    listing = ("\n".join(["."] + names) + "\n").encode()
    result = subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"],
                            input=listing, cwd=root, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"cpio failed: {result.stderr.decode(errors='replace').strip()}")
    archive.write_bytes(gzip.compress(result.stdout, compresslevel=1))
    return archive
