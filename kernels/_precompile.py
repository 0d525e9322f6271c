"""Compile every kernel into the on-disk cache: what installing fastinit runs.

    python -m fastinit.kernels._precompile [--processes N]

A boot, a verify and the HugeTLB pools then load their kernels from the cache from the
very first command (the cache's folder is named by the kernels' key, not by where the
package sits, so the installed package finds what the build compiled; see ``_cache.py``).

The kernel modules are compiled by N processes at once (default: the usable CPUs, at most
4). Each imports every module, starting at a different place in the list: a module another
process already compiled loads from the cache, so the processes share the work without a
plan of which module needs which, and only a module two reach at the same moment is
compiled twice.
"""

from __future__ import annotations

import argparse
import os
import pkgutil
import subprocess
import sys
import time
from pathlib import Path

_PACKAGE = "fastinit.kernels"
# Importing a kernel module compiles its kernels (they are compiled eagerly).
_CHILD = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"


def kernel_modules() -> list[str]:
    """Every module of ``fastinit.kernels`` holding kernels, by name."""
    folder = Path(__file__).resolve().parent
    return [f"{_PACKAGE}.{info.name}" for info in pkgutil.iter_modules([str(folder)])
            if not info.name.startswith("_")]


def orders(modules: list[str], processes: int) -> list[list[str]]:
    """Each process's order: the list rotated to a different start."""
    step = max(1, len(modules) // processes)
    return [modules[k * step:] + modules[:k * step] for k in range(processes)]


def precompile(processes: int) -> float:
    """Compile every kernel into the cache with ``processes`` processes; seconds taken.

    Raises
    ------
    RuntimeError
        A process failed (its error output is in the message).
    """
    began = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, *order],
                                 stderr=subprocess.PIPE, text=True)
                for order in orders(kernel_modules(), processes)]
    errors = [child.communicate()[1] for child in children]
    failed = [error for child, error in zip(children, errors) if child.returncode != 0]
    if failed:
        raise RuntimeError(f"compiling the kernels failed:\n{failed[0]}")
    return time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    parser.add_argument("--processes", type=int, default=min(cpus, 4),
                        help="processes compiling at once (default: usable CPUs, at most 4)")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes {args.processes}: give 1 or more")
    from fastinit.kernels._cache import cache_roots, prune
    seconds = precompile(args.processes)
    print(f"fastinit: kernels compiled into {cache_roots()[0]} in {seconds:.1f} s")
    removed = prune()
    if removed:
        print(f"fastinit: removed {len(removed)} cache folders of older kernels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
