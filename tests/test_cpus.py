"""Usable CPUs: affinity, cgroup v2 quota (tightest on the path wins), node CPU sets."""

import os

from fastinit.cpus import cgroup_cpu_limit, node_cpus, parse_cpulist, usable_cpus


def test_parse_cpulist_ranges_and_singles():
    assert parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]


def test_parse_cpulist_empty_for_memory_only_node():
    assert parse_cpulist("\n") == []


def make_cgroup(tmp_path, limits):
    """A fake cgroup v2 tree: limits maps a relative dir to its cpu.max text."""
    root = tmp_path / "cgroup"
    for rel, text in limits.items():
        directory = root / rel if rel else root
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "cpu.max").write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/" + max(limits, key=len) + "\n")
    return proc, root


def test_cgroup_limit_none_when_max(tmp_path):
    proc, root = make_cgroup(tmp_path, {"": "max 100000\n", "a": "max 100000\n"})
    assert cgroup_cpu_limit(proc, root) is None


def test_cgroup_limit_fractional_quota(tmp_path):
    proc, root = make_cgroup(tmp_path, {"a": "150000 100000\n"})
    assert cgroup_cpu_limit(proc, root) == 1.5


def test_cgroup_limit_parent_tighter_than_child(tmp_path):
    proc, root = make_cgroup(tmp_path, {"a": "100000 100000\n", "a/b": "400000 100000\n"})
    assert cgroup_cpu_limit(proc, root) == 1.0


def test_cgroup_limit_without_unified_hierarchy(tmp_path):
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/user.slice\n")
    assert cgroup_cpu_limit(proc, tmp_path) is None


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
