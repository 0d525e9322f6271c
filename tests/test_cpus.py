"""Usable CPUs: affinity, cgroup quota (see test_cgroup.py), node CPU sets."""

import os

from fastinit.engine.cpus import node_cpus, parse_cpulist, usable_cpus


def test_parse_cpulist_ranges_and_singles():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


def test_parse_cpulist_empty_for_memory_only_node():
    assert parse_cpulist("\n") == []


def test_usable_cpus_within_affinity():
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


def test_node_cpus_from_fake_sysfs(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    (tmp_path / "node0").mkdir()
    (tmp_path / "node0" / "cpulist").write_text(f"{allowed[0]}\n")
    (tmp_path / "node1").mkdir()
    (tmp_path / "node1" / "cpulist").write_text("\n")
    assert node_cpus(tmp_path) == {0: [allowed[0]], 1: []}


def test_node_cpus_without_numa_sysfs_is_one_node(tmp_path):
    assert node_cpus(tmp_path / "missing") == {0: sorted(os.sched_getaffinity(0))}
