"""Usable CPUs: affinity, cgroup quota (see test_cgroup.py), node CPU sets."""

import math
import os
import threading

import pytest

from fastinit.host.cgroup import cpu_quota
from fastinit.host.cpus import node_cpus, parse_cpulist, process_affinity, usable_cpus


def test_parse_cpulist_ranges_and_singles():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


def test_parse_cpulist_unsorted_and_overlapping():
    assert parse_cpulist("8,0-2,1") == [0, 1, 2, 8]


def test_parse_cpulist_empty_for_memory_only_node():
    assert parse_cpulist("\n") == []


def test_usable_cpus_is_the_affinity_cut_to_the_cgroup_quota():
    quota = cpu_quota()
    expected = len(os.sched_getaffinity(0))
    if quota is not None:
        expected = min(expected, math.ceil(quota))
    assert usable_cpus(max_age=0) == max(expected, 1)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_usable_cpus_reads_the_affinity_on_every_call():
    allowed = os.sched_getaffinity(0)
    before = usable_cpus()
    os.sched_setaffinity(0, {min(allowed)})
    try:
        assert usable_cpus() == 1
    finally:
        os.sched_setaffinity(0, allowed)
    assert usable_cpus() == before


def test_process_affinity_is_the_main_threads_mask_seen_from_any_thread():
    seen = []
    worker = threading.Thread(target=lambda: seen.append(process_affinity()))
    worker.start()
    worker.join()
    assert seen == [os.sched_getaffinity(0)]  # this test runs on the main thread


def test_node_cpus_from_fake_sysfs(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    (tmp_path / "node0").mkdir()
    (tmp_path / "node0" / "cpulist").write_text(f"{allowed[0]}\n")
    (tmp_path / "node1").mkdir()
    (tmp_path / "node1" / "cpulist").write_text("\n")
    assert node_cpus(tmp_path) == {0: [allowed[0]], 1: []}


def test_node_cpus_without_numa_sysfs_is_one_node(tmp_path):
    assert node_cpus(tmp_path / "missing") == {0: sorted(os.sched_getaffinity(0))}
