"""JIT start-up: from ``import fastinit`` to the first initialized page, cold and warm.

Cold: an empty Numba cache, so every kernel compiles. Warm: the same cache again, so every
kernel loads from disk. Each is a fresh Python process; best of --repeat for warm.

    python perf/jit_startup.py [--repeat 3]
"""

import argparse
import os
import subprocess
import sys
import tempfile

PROGRAM = """
import time
began = time.perf_counter()
import numpy as np
import fastinit.mm.run
from fastinit.kernels.page_init import init_pages_range
from fastinit.kernels.descriptors import page_links
from fastinit.layout import PAGE_DTYPE
pages = np.empty(32768, PAGE_DTYPE)
init_pages_range(pages, np.zeros(1, np.int64), 0, 0, 1, np.uint64(page_links(0, 0)), False)
print(time.perf_counter() - began)
"""


def start(cache_dir: str | None = None) -> float:
    """Seconds from a fresh ``python`` to its first initialized page (``PROGRAM``), with
    Numba caching into ``cache_dir``, or where the environment says when None (tests/
    test_perf.py gates on this warm start)."""
    env = dict(os.environ) if cache_dir is None else dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        cold = start(cache)
        warm = min(start(cache) for _ in range(args.repeat))
    print(f"cold (empty cache, every kernel compiles): {cold * 1e3:7.0f} ms")
    print(f"warm (kernels loaded from the cache):      {warm * 1e3:7.0f} ms")


if __name__ == "__main__":
    main()
