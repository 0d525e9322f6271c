"""Run a command with the process (and its children) seeing N CPUs: the LD_PRELOAD shim.

    python tests/cpushim.py 64 pytest -q -x

builds tests/cpushim.c with the machine's C compiler into a temporary folder and runs the
command with ``LD_PRELOAD`` and ``FASTINIT_SHIM_CPUS=N`` set: affinity, ``os.cpu_count()``
and every pool size read from them say N, and pinning to any of the N is accepted (and
folded onto the real CPUs). .ci/run uses it for the 64-CPU pass; tests/test_cpushim.py
checks the shim itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cpushim.c")
ENV = "FASTINIT_SHIM_CPUS"


def compiler() -> str | None:
    """The machine's C compiler, or None."""
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def build(folder: Path) -> Path:
    """Compile the shim into ``folder``; the shared object's path."""
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc or gcc) to build the CPU shim: install one")
    out = Path(folder) / "cpushim.so"
    subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(out), str(SOURCE), "-ldl",
                    "-lpthread"], check=True)
    return out


def environment(shim: Path, cpus: int, base: dict | None = None) -> dict:
    """``base`` (default: this process's) with the shim preloaded for ``cpus`` CPUs."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = " ".join(filter(None, [str(shim), env.get("LD_PRELOAD", "")]))
    env[ENV] = str(cpus)
    return env


def main(argv: list[str]) -> int:
    if len(argv) < 2 or not argv[0].isdigit() or not 1 <= int(argv[0]) <= 1024:
        print("usage: cpushim.py CPUS(1..1024) COMMAND [ARGS...]", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cpushim-") as folder:
        env = environment(build(Path(folder)), int(argv[0]))
        return subprocess.run(argv[1:], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
