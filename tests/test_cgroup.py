"""cgroup limits: CPU quota and memory headroom, v2 and v1, tightest on the path wins."""

from fastinit.host.cgroup import cgroup_dirs, cpu_quota, memory_headroom

V1_UNLIMITED = "9223372036854771712\n"


def make_tree(tmp_path, proc_lines, files):
    """A fake /sys/fs/cgroup: files maps a path under the root to its text."""
    root = tmp_path / "cgroup"
    root.mkdir()
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("".join(line + "\n" for line in proc_lines))
    return proc, root


def test_v2_cpu_quota_none_when_max(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a"], {"cpu.max": "max 100000\n",
                                                  "a/cpu.max": "max 100000\n"})
    assert cpu_quota(proc, root) is None


def test_v2_cpu_quota_fractional(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a"], {"a/cpu.max": "150000 100000\n"})
    assert cpu_quota(proc, root) == 1.5


def test_v2_cpu_quota_parent_tighter_than_child(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a/b"], {"a/cpu.max": "100000 100000\n",
                                                    "a/b/cpu.max": "400000 100000\n"})
    assert cpu_quota(proc, root) == 1.0


def test_no_cgroup_file_means_no_limit(tmp_path):
    assert cpu_quota(tmp_path / "missing", tmp_path) is None
    assert memory_headroom(tmp_path / "missing", tmp_path) is None


def test_v1_cpu_quota_in_comounted_cpu_cpuacct(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/", "3:cpu,cpuacct:/job"], {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/job/cpu.cfs_quota_us": "250000\n",
        "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(proc, root) == 2.5


def test_v1_cpu_quota_unlimited(tmp_path):
    proc, root = make_tree(tmp_path, ["1:cpu:/"], {"cpu/cpu.cfs_quota_us": "-1\n",
                                                   "cpu/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(proc, root) is None


def test_v1_and_v2_together_the_tightest_wins(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a", "1:cpu:/b"], {
        "a/cpu.max": "300000 100000\n",
        "cpu/b/cpu.cfs_quota_us": "50000\n", "cpu/b/cpu.cfs_period_us": "100000\n"})
    assert cpu_quota(proc, root) == 0.5


def test_cgroup_dirs_walks_up_to_the_mount(tmp_path):
    proc, root = make_tree(tmp_path, ["4:memory:/x/y"], {"memory/x/y/memory.stat": ""})
    unified, legacy = cgroup_dirs("memory", proc, root)
    assert unified == []
    assert legacy == [root / "memory/x/y", root / "memory/x", root / "memory"]


def test_v1_memory_headroom_counts_inactive_file_cache(tmp_path):
    proc, root = make_tree(tmp_path, ["4:memory:/job"], {
        "memory/memory.limit_in_bytes": V1_UNLIMITED, "memory/memory.usage_in_bytes": "5000\n",
        "memory/job/memory.limit_in_bytes": "1000000\n",
        "memory/job/memory.usage_in_bytes": "600000\n",
        "memory/job/memory.stat": "cache 300000\ntotal_inactive_file 100000\n"})
    assert memory_headroom(proc, root) == 1000000 - 600000 + 100000


def test_v1_memory_unlimited_is_no_limit(tmp_path):
    proc, root = make_tree(tmp_path, ["4:memory:/"], {
        "memory/memory.limit_in_bytes": V1_UNLIMITED, "memory/memory.usage_in_bytes": "5\n"})
    assert memory_headroom(proc, root) is None


def test_v2_memory_headroom_parent_tighter(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a/b"], {
        "a/memory.max": "2000\n", "a/memory.current": "1500\n",
        "a/b/memory.max": "max\n", "a/b/memory.current": "1000\n"})
    assert memory_headroom(proc, root) == 500


def test_memory_usage_over_limit_gives_zero_headroom(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a"], {"a/memory.max": "100\n",
                                                 "a/memory.current": "150\n"})
    assert memory_headroom(proc, root) == 0


def test_garbage_in_limit_files_is_ignored(tmp_path):
    proc, root = make_tree(tmp_path, ["0::/a", "1:cpu:/"], {
        "a/cpu.max": "lots 0\n", "a/memory.max": "plenty\n", "a/memory.current": "1\n",
        "cpu/cpu.cfs_quota_us": "100\n", "cpu/cpu.cfs_period_us": "0\n"})
    assert cpu_quota(proc, root) is None
    assert memory_headroom(proc, root) is None
