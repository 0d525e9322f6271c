"""Whole boots: parallel equals serial, verification passes, kernel semantics hold."""

from pathlib import Path

import numpy as np
import pytest

from fastinit.mm.run import boot
from fastinit.machine.bootlog import read_bootlog
from fastinit.mm.plan import plan_boot
from fastinit.engine.workpool import shared_pool
from fastinit.layout import PAGES_PER_SECTION, PAGE_BUDDY_MAPCOUNT
from fastinit.machine.spec import parse_spec
from fastinit.mm.verify import verify

SMALL_LOGS = [p for p in sorted((Path(__file__).parent / "data" / "dmesg").glob("*.txt"))
              if "epyc" not in p.name and "sunfire" not in p.name and "rhel9" not in p.name]


def descriptors_without_head_links(result):
    words = result.memmap.pages.view(np.uint64).reshape(-1, 8).copy()
    words[result.memmap.pages["mapcount"] == PAGE_BUDDY_MAPCOUNT, 1:3] = 0
    return words


@pytest.mark.parametrize("kernel", ["stream", "plain"])
@pytest.mark.parametrize("spec", ["1x2G,cpus=2", "2x1G,cpus=2", "3G+1G:0,cpus=2"])
def test_parallel_boot_equals_serial_boot(spec, kernel):
    topology = parse_spec(spec)
    serial = boot(topology, threads=1, kernel="plain")
    parallel = boot(topology, threads=4, kernel=kernel)
    assert np.array_equal(descriptors_without_head_links(serial),
                          descriptors_without_head_links(parallel))
    assert np.array_equal(serial.memmap.pageblock_mt, parallel.memmap.pageblock_mt)
    for key, area in serial.zones.items():
        assert np.array_equal(area.nr_free, parallel.zones[key].nr_free)
        assert area.managed == parallel.zones[key].managed
    # Split into chunks wherever a node's job may use a second thread: its cap (4), the
    # pool's size (1 on a process with one CPU) and its deferred sections allow it.
    for node, planned in zip(parallel.nodes, parallel.plan.nodes):
        start, end = planned.job
        threads = min(4, shared_pool().size, (end - start) // PAGES_PER_SECTION)
        assert node.report is None or (len(node.report.chunks) > 1) == (threads > 1)


@pytest.mark.parametrize("kernel", ["stream", "plain"])
@pytest.mark.parametrize("spec", ["2x1G,cpus=2", "1x5G,cpus=3"])
def test_spec_boot_verifies(spec, kernel):
    report = verify(boot(parse_spec(spec), kernel=kernel))
    assert report.ok, report.problems
    assert len(report.checks) == 4


@pytest.mark.parametrize("path", SMALL_LOGS,
                         ids=lambda p: p.name)
def test_real_log_boot_verifies(path):
    topology, _ = read_bootlog(str(path))
    report = verify(boot(topology, threads=2))
    assert report.ok, report.problems


def test_managed_is_present_minus_reserved():
    result = boot(parse_spec("1x2G,cpus=2"))
    plan = result.plan.node(0)
    reserved = sum(e - s for s, e in plan.reserved)
    managed = sum(area.managed for area in result.zones.values())
    assert managed == result.plan.topology.present_pages - reserved


def test_memmap_is_reserved_on_its_own_node_at_the_top():
    plan = plan_boot(parse_spec("2x1G,cpus=1"))
    for node in plan.nodes:
        (start, end), = node.memmap
        ranges = plan.topology.node(node.nid).ranges
        assert ranges[0][0] <= start and end <= ranges[-1][1]
        assert end == ranges[-1][1]
        sections = len(plan.topology.present_sections())
        assert 0 < end - start <= sections * 512


def test_deferral_starts_after_first_section_of_highest_zone():
    plan = plan_boot(parse_spec("1x2G,cpus=1"))
    node = plan.nodes[0]
    assert node.first_deferred_pfn == 2 * PAGES_PER_SECTION
    assert node.job == (2 * PAGES_PER_SECTION, (2 << 30) >> 12)


@pytest.mark.parametrize("arch, cpus, expected", [("x86", 8, 8), ("generic", 8, 1),
                                                   ("linux-6.11", 8, 8), ("x86", 0, 1)])
def test_arch_thread_caps(arch, cpus, expected):
    plan = plan_boot(parse_spec(f"1x2G:{cpus}"), arch=arch)
    assert plan.nodes[0].max_threads == expected


def test_threads_override_arch():
    assert plan_boot(parse_spec("1x2G,cpus=8"), arch="generic", threads=3).nodes[0].max_threads == 3


def test_unknown_arch_is_rejected():
    with pytest.raises(ValueError, match="unknown arch profile 'arm'"):
        plan_boot(parse_spec("1x2G,cpus=1"), arch="arm")


def test_stream_kernel_refuses_a_misaligned_memmap():
    from fastinit.mm.deferred import check_kernel
    from fastinit.mm.memmap import Memmap, memmap_bytes
    raw = bytearray(memmap_bytes(1) + 64)
    base = np.frombuffer(raw, np.uint8).ctypes.data
    offset = (-base % 64) + 8  # deliberately 8 bytes past a 64-byte boundary
    memmap = Memmap(np.array([0], np.int64), memoryview(raw)[offset:], "test")
    with pytest.raises(ValueError, match="64-byte aligned"):
        check_kernel("stream", memmap)
    check_kernel("plain", memmap)


def test_unknown_kernel_is_rejected():
    from fastinit.mm.deferred import check_kernel
    with pytest.raises(ValueError, match="unknown deferred-init kernel 'fast'"):
        check_kernel("fast", None)


def test_node_without_deferral_still_boots():
    # 160 MiB: the only zone holds barely more than a section, so nothing is deferred.
    result = boot(parse_spec("1x160M,cpus=1"))
    assert result.nodes[0].report is None
    assert verify(result).ok


BAD_BOOT_ARGUMENTS = [
    (dict(topology="2x1G"), "topology must be a fastinit.machine.topology.Topology"),
    (dict(threads=1.5), "threads must be an integer, got 1.5"),
    (dict(threads=True), "threads must be an integer, got True"),
    (dict(memmap_file=123), "memmap_file must be a path"),
    (dict(force="yes"), "force must be True or False"),
    (dict(progress=5), "progress must be callable"),
    (dict(chunk_hook="no"), "chunk_hook must be callable"),
    (dict(cancel="x"), "cancel must be a threading.Event"),
    (dict(memmap=b"raw"), "memmap must be a fastinit.mm.memmap.Memmap"),
]


@pytest.mark.parametrize("change, words", BAD_BOOT_ARGUMENTS)
def test_boot_refuses_arguments_of_the_wrong_kind_on_the_caller(change, words):
    arguments = dict(topology=parse_spec("1x1G")) | change
    with pytest.raises(TypeError, match=words):
        boot(arguments.pop("topology"), **arguments)


def test_an_error_in_a_node_thread_before_its_job_reaches_the_caller(monkeypatch):
    from fastinit.mm import deferred

    def broken_context(*args):
        raise MemoryError("no room for the chunk context")

    monkeypatch.setattr(deferred, "_ChunkContext", broken_context)
    with pytest.raises(MemoryError, match="no room") as caught:
        boot(parse_spec("2x1G"), threads=2)
    assert any("in deferred init of node" in note for note in caught.value.__notes__)


def test_touch_progress_and_progress_report_done_and_total_from_zero_to_the_end():
    touched, deferred = [], []
    result = boot(parse_spec("2x1G"), threads=2,
                  touch_progress=lambda done, total: touched.append((done, total)),
                  progress=lambda done, total: deferred.append((done, total)))
    for calls, total in ((touched, result.memmap.nbytes),
                         (deferred, sum(e - s for n in result.plan.nodes
                                        for s, e in result.plan.deferred_jobs(n.nid)))):
        assert calls[0] == (0, total) and calls[-1] == (total, total)
        assert {t for _, t in calls} == {total}
        assert [d for d, _ in calls] == sorted({d for d, _ in calls})  # rising, no repeat


def test_nodes_starting_together_split_the_pool_evenly():
    from fastinit.engine.workpool import shared_pool
    result = boot(parse_spec("2x2G,cpus=8"))  # x86 cap: 8 threads per node
    # The pgdatinit threads count against the pool: each node's share includes its own.
    share = max(1, shared_pool().size // min(2, shared_pool().size))
    # ... and no node runs more threads than it defers sections (a 64-CPU pool, 7 of them).
    sections = [(node.job[1] - node.job[0]) // PAGES_PER_SECTION for node in result.plan.nodes]
    assert [node.report.nworks for node in result.nodes] == \
        [min(8, share, count) for count in sections]
    assert [node.max_threads for node in result.nodes] == [8, 8]
