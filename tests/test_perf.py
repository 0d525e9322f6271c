"""JIT performance regression tests (``pytest -m perf``; CI runs them after the suite).

They gate on facts about the compiled code (nopython, nogil, no recompiles, no bounds
checks, streaming stores in the assembly) and on loose ratios measured in the same run,
never on absolute times: this machine is shared and noisy.
"""

import importlib
import json
import os
import pkgutil
import queue
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from numba.core.dispatcher import Dispatcher
from numba.core.errors import NumbaPerformanceWarning

import fastinit.kernels
from fastinit import Job, do_multithreaded
from fastinit.mm.run import boot
from fastinit.kernels.descriptors import new_local_lists
from fastinit.host.cpus import usable_cpus
from fastinit.kernels.streaming import stream_max_order_blocks
from fastinit.bench.membw import memset_limit
from fastinit.mm.memmap import Memmap
from fastinit.kernels.descriptors import free_list_address, page_links
from fastinit.layout import PAGES_PER_SECTION
from fastinit.machine.spec import parse_spec
from perf_scripts import perf_script

pytestmark = pytest.mark.perf

# Every kernel module, found rather than listed (a list forgot buddy_alloc, compound, checksum).
MODULES = [importlib.import_module(f"fastinit.kernels.{info.name}")
           for info in pkgutil.iter_modules(fastinit.kernels.__path__)]
KERNELS = [(m.__name__.rsplit(".", 1)[1], name, obj) for m in MODULES
           for name, obj in vars(m).items()
           if isinstance(obj, Dispatcher) and obj.__module__ == m.__name__]


def best(fn, repeat=5):
    return min(fn() for _ in range(repeat))


@pytest.mark.parametrize("module, name, dispatcher", KERNELS, ids=[f"{m}.{n}" for m, n, _ in KERNELS])
def test_kernel_is_nopython_and_releases_the_gil(module, name, dispatcher):
    assert dispatcher.targetoptions["nogil"] is True
    assert dispatcher.targetoptions["boundscheck"] is False
    assert dispatcher.signatures, "kernels compile eagerly for declared signatures"
    assert [sig.args for sig in dispatcher.nopython_signatures] == dispatcher.signatures
    assert not any(overload.objectmode for overload in dispatcher.overloads.values())


def test_a_boot_after_warm_up_compiles_nothing():
    topology = parse_spec("1x1G,cpus=2")
    boot(topology, threads=2)
    for _, _, dispatcher in KERNELS:
        dispatcher.disable_compile()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", NumbaPerformanceWarning)
            boot(topology, threads=2, kernel="stream")
            boot(topology, threads=2, kernel="plain")
    finally:
        for _, _, dispatcher in KERNELS:
            dispatcher.disable_compile(False)


COLD_COMPILE = textwrap.dedent("""
    import json, warnings
    from numba.core.errors import NumbaPerformanceWarning
    warnings.simplefilter("error", NumbaPerformanceWarning)
    import fastinit.bench.peers, fastinit.mm.run
    from fastinit.kernels import streaming
    blocks = streaming.stream_max_order_blocks
    chunk = streaming.deferred_init_chunk_stream
    asm = blocks.inspect_asm(blocks.signatures[0])
    print(json.dumps({
        "movnt": asm.count("vmovnt") + asm.count("movnti"),
        "sfence": "sfence" in chunk.inspect_asm(chunk.signatures[0]),
        "bounds_checks": "IndexError" in chunk.inspect_llvm(chunk.signatures[0]),
    }))
""")


def test_cold_compile_streams_and_fences_without_bounds_checks(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_BOUNDSCHECK", None)
    done = subprocess.run([sys.executable, "-c", COLD_COMPILE], env=env, capture_output=True,
                          text=True, check=True)
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["movnt"] >= 1
    assert facts["sfence"]
    assert not facts["bounds_checks"]


def test_stream_kernel_throughput_at_least_60_percent_of_memset():
    sections = np.arange(32, dtype=np.int64)  # 1 GiB of descriptors, past any cache
    memmap = Memmap.in_memory(sections)
    memmap.raw.fill(1)
    end = len(sections) * PAGES_PER_SECTION
    links = np.uint64(page_links(0, 2))
    list_base = np.uint64(free_list_address(0, 2, 0, 0))
    base, slots = memmap.slots(0, end)

    def kernel_seconds():
        lists = new_local_lists()
        began = time.perf_counter()
        stream_max_order_blocks(memmap.words, memmap.pageblock_mt, slots, base, 0, end, links,
                                list_base, lists)
        return time.perf_counter() - began

    kernel = best(kernel_seconds)
    memset = memset_limit(memmap.raw[:memmap.pages.nbytes], 1, 5)
    assert kernel <= memset / 0.6, f"kernel {kernel * 1e3:.0f} ms, memset {memset * 1e3:.0f} ms"


@pytest.mark.skipif(usable_cpus() < 2, reason="needs two usable CPUs")
def test_two_threads_scale_deferred_init_as_well_as_they_scale_memset():
    # Where one core saturates memory bandwidth, two threads are not faster (37.9 vs 37.1 ms
    # failed "two < one" on a busy machine). The hardware's own scaling is the bar: memset
    # of the same bytes at one and two threads, measured interleaved with the boots so load
    # hits both alike. Deferred init must scale within 20% of it: a lock, a GIL held or
    # helpers that never run would cost 50% and more, noise a few percent.
    topology = parse_spec("1x64G,cpus=2")
    memmap = boot(topology, threads=1).memmap
    nbytes = sum(n.pages for n in boot(topology, threads=1, memmap=memmap).nodes) * 64
    buffer = memmap.raw[:nbytes]
    one = two = memset_one = memset_two = float("inf")
    for _ in range(7):
        one = min(one, boot(topology, threads=1, memmap=memmap).timings["deferred"])
        two = min(two, boot(topology, threads=2, memmap=memmap).timings["deferred"])
        memset_one = min(memset_one, memset_limit(buffer, 1, 1))
        memset_two = min(memset_two, memset_limit(buffer, 2, 1))
    ours, limit = two / one, memset_two / memset_one
    assert ours <= limit * 1.2, (
        f"2 threads {two * 1e3:.1f} ms / 1 thread {one * 1e3:.1f} ms = {ours:.2f}, memset "
        f"{memset_two * 1e3:.1f} / {memset_one * 1e3:.1f} ms = {limit:.2f}")


def handoff_floor(thread_fn, chunks):
    """Seconds per chunk of the least a pool can do: hand a task to a running thread and
    get its answer (a queue each way), and call ``thread_fn`` per chunk under a lock."""
    inbox, outbox = queue.SimpleQueue(), queue.SimpleQueue()
    threading.Thread(target=lambda: [outbox.put(task()) for task in iter(inbox.get, None)],
                     daemon=True).start()
    lock = threading.Lock()

    def run():
        began = time.perf_counter()
        inbox.put(lambda: None)
        for unit in range(chunks):
            with lock:
                pass
            thread_fn(unit, unit + 1, None)
        outbox.get()
        return (time.perf_counter() - began) / chunks

    try:
        return best(run, 200)
    finally:
        inbox.put(None)


def test_scheduler_overhead_per_chunk_within_a_small_multiple_of_a_bare_handoff():
    # Was "< 50 us", an absolute time. Same run: ~9 us against ~1.3 us for the bare handoff
    # on a loaded 2-core box (7x); a lock held too long or a helper started per job costs
    # far more than the 40x allowed.
    job = Job(lambda s, e, a: None, start=0, size=1 << 20, max_threads=2)
    chunks = len(do_multithreaded(job).chunks)

    def per_chunk():
        began = time.perf_counter()
        do_multithreaded(job)
        return (time.perf_counter() - began) / chunks

    ours, floor = best(per_chunk, 200), handoff_floor(job.thread_fn, chunks)
    assert ours < 40 * floor, f"{ours * 1e6:.1f} us per chunk, bare handoff {floor * 1e6:.1f} us"


IMPORT_NUMBA = """
import time
began = time.perf_counter()
import numpy, numba
print(time.perf_counter() - began)
"""


def test_warm_start_to_first_initialized_page_within_a_few_numba_imports():
    # Was "< 1 s", an absolute time. The floor is a fresh Python importing NumPy and Numba,
    # measured interleaved: warm is ~3x that; a cache that stopped working (every kernel
    # compiling again) is 20x and more.
    start = perf_script("jit_startup").start  # what perf/jit_startup.py measures as warm
    start()  # fills the cache if this is the first run
    warm = floor = float("inf")
    for _ in range(3):
        warm = min(warm, start())
        done = subprocess.run([sys.executable, "-c", IMPORT_NUMBA], capture_output=True,
                              text=True, check=True)
        floor = min(floor, float(done.stdout.strip().splitlines()[-1]))
    assert warm < 6 * floor, f"warm start {warm:.2f} s, import numpy+numba {floor:.2f} s"


def test_verify_keeps_up_with_the_deferred_init_it_checks():
    # Issue 9 item 17's goal is verify <= 5x deferred init; the gate leaves room for noise.
    from fastinit.mm.verify import verify
    topology = parse_spec("1x16G,cpus=2")
    memmap = boot(topology).memmap
    deferred, checked = [], []
    for _ in range(5):
        result = boot(topology, memmap=memmap)
        deferred.append(result.timings["deferred"])
        assert verify(result).ok
        checked.append(result.timings["verify"])
    assert min(checked) < 8 * min(deferred), \
        f"verify {min(checked) * 1e3:.1f} ms, deferred init {min(deferred) * 1e3:.1f} ms"
