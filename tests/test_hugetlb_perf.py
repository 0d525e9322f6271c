"""Pool init at the write limit (``pytest -m perf``): the streaming pool kernels compile to
non-temporal stores and a fence, and pool init of 2 MiB and 1 GiB pools runs at >= 0.8x
the speed of glibc memset of the same descriptor bytes on the same thread, both measured
interleaved in this run (a ratio, never an absolute time). Figures: perf/hugetlb_bench.py.

The gate guards against a return to the old read-modify-write path (1 GiB pools: 0.55-0.67x)
and to per-page calls around the streaming kernel, not the goal: issue 22 asks >= 0.9x.
Before the gigantic job prepared a node's pages in one call, a quiet 2-CPU VM gave best of
11: 2 MiB 0.90-0.93x, 1 GiB 0.85-0.87x (a 0.88x reading failed CI's gate at 0.9); what is
left around the kernel for 1 GiB pools is now 0.8 ms of 13.8 ms (6%). On the shared VM at
load 9 on 2 CPUs every best of 11 was >= 0.99x (2 MiB) and >= 1.08x (1 GiB), and the medians
0.82-0.91x and 0.79-1.0x: 0.8 keeps a margin below any reading seen.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from fastinit.bench.membw import memset_limit
from fastinit.machine.spec import parse_spec
from fastinit.mm.deferred import deferred_init
from fastinit.mm.hugetlb.jobs import hugetlb_init
from fastinit.mm.run import prepare

pytestmark = pytest.mark.perf

SPEC = "2x16G,cpus=2"
# See the module docstring: a regression gate below the 0.9x goal, with a margin for noise.
WRITE_LIMIT_GATE = 0.8
# Half the memory in pool pages: 256 MiB of descriptors for either size, past any cache,
# against which the jobs' setup (a millisecond or two) is small.
POOLS = {9: "hugepagesz=2M hugepages=8192", 18: "hugepagesz=1G hugepages=16"}

COLD_COMPILE = """
import json
from fastinit.kernels import hugetlb_stream
facts = {}
for name in ("stream_buddy_huge_pages", "stream_gigantic_pages"):
    kernel = getattr(hugetlb_stream, name)
    asm = kernel.inspect_asm(kernel.signatures[0])
    facts[name] = {"movnt": asm.count("vmovnt") + asm.count("movnt"),
                   "sfence": "sfence" in asm,
                   "bounds_checks": "IndexError" in kernel.inspect_llvm(kernel.signatures[0])}
print(json.dumps(facts))
"""


def test_pool_kernels_compile_to_streaming_stores_and_a_fence(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_BOUNDSCHECK", None)
    done = subprocess.run([sys.executable, "-c", COLD_COMPILE], env=env, capture_output=True,
                          text=True, check=True)
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    for name, kernel in facts.items():
        assert kernel["movnt"] >= 1 and kernel["sfence"], name
        assert not kernel["bounds_checks"], name


@pytest.mark.parametrize("order", sorted(POOLS), ids=["2M", "1G"])
def test_pool_init_runs_at_the_write_limit(order):
    topology = parse_spec(SPEC, cmdline=POOLS[order])
    ratios, memmap = [], None
    # Each pool init right before two memsets of as many bytes of the same memmap (the
    # next boot writes them again), and the best of 11 such ratios: the machine is
    # shared, and runs close together see the same neighbours.
    for _ in range(11):
        result = prepare(topology, memmap=memmap, threads=1)
        memmap = result.memmap
        result.nodes = deferred_init(result.plan, memmap, result.zones)
        began = time.perf_counter()
        pools = hugetlb_init(result, result.hvo, threads=1)
        elapsed = time.perf_counter() - began
        pages = sum(sum(sizes.values()) for sizes in pools.counts().values())
        written = memmap.raw[:(pages << order) * memmap.pages.itemsize]
        ratios.append(memset_limit(written, 1, repeat=2) / elapsed)
    assert pages == len(pools.heads(order)) > 0
    assert max(ratios) >= WRITE_LIMIT_GATE, \
        f"pool init at {max(ratios):.2f}x the speed of memset"
