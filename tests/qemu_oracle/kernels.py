"""Debian's kernels of every generation, as tests/qemu_oracle/fetch_kernels.sh unpacks them,
and boots of them cached by what decides their console (image, layout, init script).

A boot under TCG takes 10 to 20 s; the same image on the same layout with the same
init prints the same memory figures, so ``pytest -m qemu`` keeps each boot's serial
log in a cache directory and boots again only what changed.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

from qemu_oracle.generate import Layout
from qemu_oracle.initramfs import INIT_SCRIPT
from qemu_oracle.runner import Boot, Tools, boot

# Where fetch_kernels.sh unpacks (its default) and where boots are cached.
KERNELS = Path(os.environ.get("FASTINIT_ORACLE_KERNELS", "/var/cache/fastinit-kernels"))
BOOT_CACHE = Path(os.environ.get("FASTINIT_ORACLE_CACHE",
                                 Path.home() / ".cache" / "fastinit-oracle"))
# The generations the oracle covers, by the names fetch_kernels.sh gives them.
GENERATIONS = ("5.10", "6.1", "6.12", "6.12-cloud", "sid")


def fetched_kernels(directory: str | os.PathLike = KERNELS) -> dict[str, str]:
    """``name -> image path`` of every generation unpacked in ``directory``."""
    directory = Path(directory)
    return {name: str(directory / name / "vmlinuz") for name in GENERATIONS
            if (directory / name / "vmlinuz").is_file()}


def _digest(path: str | os.PathLike) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def cache_path(layout: Layout, tools: Tools, cache: str | os.PathLike = BOOT_CACHE) -> Path:
    """Where the boot of ``layout`` on ``tools.kernel`` is cached."""
    # The initramfs archive itself carries build times: its script and busybox decide.
    key = hashlib.sha256("\0".join([_digest(tools.kernel), _digest(tools.busybox),
                                    INIT_SCRIPT, layout.dumps()]).encode()).hexdigest()[:32]
    return Path(cache) / f"{key}.log"


def cached_boot(layout: Layout, tools: Tools, initramfs: str, workdir: str,
                cache: str | os.PathLike = BOOT_CACHE, timeout: float = 240.0) -> Boot:
    """`boot`, or the serial log of the same boot kept in ``cache``.

    Only complete boots (QEMU exited by itself) are kept: a timeout is booted again.
    """
    path = cache_path(layout, tools, cache)
    if path.is_file():
        serial = path.read_bytes().decode("utf-8", errors="replace")
        return Boot(layout, serial, 0.0, 0, ())
    result = boot(layout, tools, initramfs, workdir, timeout)
    keep(result, tools, cache)
    return result


def keep(result: Boot, tools: Tools, cache: str | os.PathLike = BOOT_CACHE) -> None:
    """Put a boot that finished by itself in the cache (campaigns share theirs)."""
    if result.timed_out:
        return
    path = cache_path(result.layout, tools, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_bytes(result.serial.encode("utf-8", errors="replace"))
    os.replace(temporary, path)


def with_kernel(tools: Tools, image: str) -> Tools:
    """The same QEMU and busybox, another kernel image."""
    return replace(tools, kernel=image)
