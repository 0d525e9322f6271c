"""Booting on a dask LocalCluster of real worker processes (one cluster for the module):
node for node the single-process boot, every node's worker reported, memmap files on the
workers' disks verified later, version checks, the command line."""

import json
import os

import pytest

pytest.importorskip("distributed")

import fastinit  # noqa: E402
from fastinit.cli import main  # noqa: E402
from fastinit.distributed import registry  # noqa: E402
from fastinit.distributed import worker as on_worker  # noqa: E402
from fastinit.distributed.api import boot  # noqa: E402
from fastinit.distributed.cluster import check_workers, connected  # noqa: E402
from fastinit.distributed.digest import node_digest  # noqa: E402
from fastinit.distributed.files import verify_files  # noqa: E402
from fastinit.machine.spec import parse_spec  # noqa: E402
from fastinit.mm.options import BootOptions  # noqa: E402
from fastinit.mm.run import boot as boot_here  # noqa: E402
from fastinit.mm.verify import verify  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with connected("local:2") as client:
        yield client


def _single_digests(topology, threads=None):
    whole = boot_here(topology, threads=threads)
    return {node.nid: (node_digest(whole.plan, whole.memmap, whole.zones, node.nid),
                       node_digest(whole.plan, whole.memmap, whole.zones, node.nid,
                                   links=False)) for node in whole.plan.nodes}


def test_each_node_equals_the_single_process_boot_byte_for_byte(client):
    # Nodes sharing sections; one thread per node, so free lists come out in one order.
    topology = parse_spec("3x1500M,cpus=1")
    result = boot(topology, cluster=client, threads=1, digests=True)
    expected = _single_digests(topology, threads=1)
    assert {s.nid: (s.digest, s.state_digest) for s in result.shards} == expected


def test_parallel_nodes_equal_the_single_process_boot_free_list_order_aside(client):
    topology = parse_spec("4x2G,cpus=2", cmdline="movablecore=20%")
    result = boot(topology, cluster=client, digests=True, verify=True)
    expected = _single_digests(topology)
    assert {s.nid: s.state_digest for s in result.shards} == \
        {nid: state for nid, (_, state) in expected.items()}
    assert result.verification.ok, result.verification.problems
    single = boot_here(topology)
    # Each check's counts are added up over the nodes, so they read as the whole machine's.
    assert [check.summary.removesuffix(" (4 nodes checked on their workers)")
            for check in result.verification.checks] == \
        [check.summary for check in verify(single).checks]
    assert {key: (a.managed, a.free_by_order()) for key, a in result.zones.items()} == \
        {key: (a.managed, a.free_by_order()) for key, a in single.zones.items()}


def test_every_node_ran_on_a_worker_of_the_cluster_and_none_keeps_a_shard(client):
    result = boot(parse_spec("4x1G,cpus=1"), cluster=client)
    workers = set(client.scheduler_info()["workers"])
    assert {s.worker for s in result.shards} == workers  # balanced: both used
    pids = client.run(os.getpid)
    assert all(pids[s.worker] == s.pid for s in result.shards)
    assert all(held == [] for held in client.run(registry.shards_held).values())


def test_memmap_files_on_the_workers_disks_verify_later_node_by_node(client, tmp_path):
    topology = parse_spec("3x1500M,cpus=1")
    booted = boot(topology, cluster=client, memmap_dir=str(tmp_path), digests=True)
    assert sorted(os.listdir(tmp_path)) == ["node0.memmap", "node1.memmap", "node2.memmap"]
    assert all(s.storage == str(tmp_path / f"node{s.nid}.memmap") for s in booted.shards)
    checked, problems = verify_files(client, tmp_path, topology, digests=True)
    assert problems == [] and checked.verification.ok
    assert [s.digest for s in checked.shards] == [s.digest for s in booted.shards]


def test_verify_of_a_directory_missing_a_node_names_it(client, tmp_path):
    boot(parse_spec("3x1G,cpus=1"), cluster=client, memmap_dir=str(tmp_path))
    os.remove(tmp_path / "node1.memmap")
    result, problems = verify_files(client, tmp_path)
    assert result is None and problems == [f"no worker holds the file of node(s) [1] in "
                                           f"{tmp_path}"]


def test_verify_of_a_directory_without_node_files_says_so(client, tmp_path):
    assert verify_files(client, tmp_path)[1] == [
        f"no node memmap files (node<N>.memmap) in {tmp_path} on any of the 2 workers"]


def test_node_files_takes_only_the_names_a_boot_writes(tmp_path):
    for name in ("node0.memmap", "node12.memmap", "node\u00b2.memmap", "node\u0661.memmap",
                 "node01.memmap", "node.memmap", "node3.memmap.tmp", "xnode4.memmap"):
        (tmp_path / name).write_bytes(b"")
    assert on_worker.node_files(str(tmp_path)) == {
        0: str(tmp_path / "node0.memmap"), 12: str(tmp_path / "node12.memmap")}


def test_a_node_too_large_for_every_worker_is_refused_before_anything_runs(client):
    budget = max(info["budget"] for info in check_workers(client).values())
    nodes = budget // (1 << 30) * 64 + 64  # GiB of memory whose memmap exceeds the budget
    with pytest.raises(ValueError, match=r"node 0 needs .* GiB but the roomiest worker .* "
                                         r"short"):
        boot(parse_spec(f"2x{nodes}G,cpus=1"), cluster=client)


def test_a_worker_of_another_fastinit_version_is_refused_by_name(client):
    address = sorted(client.scheduler_info()["workers"])[0]

    def set_version(version):
        import fastinit as installed
        installed.__version__, old = version, installed.__version__
        return old

    old = client.run(set_version, "0.0.0-other", workers=[address])[address]
    try:
        with pytest.raises(ValueError, match=f"{address} runs fastinit 0.0.0-other.*"
                                             f"pip install fastinit=={fastinit.__version__}"):
            check_workers(client)
    finally:
        client.run(set_version, old, workers=[address])


def test_the_command_line_boots_on_a_local_cluster_and_names_each_nodes_worker(capsys):
    status = main(["boot", "--spec", "2x1G,cpus=1", "--cluster", "local:2", "--verify",
                   "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["verified"] is True and document["workers"] == 2
    assert len({node["worker"] for node in document["nodes"]}) == 2
    assert all(node["worker"].startswith("tcp://127.0.0.1:") for node in document["nodes"])


def test_cluster_flags_without_a_cluster_are_refused(capsys):
    assert main(["boot", "--spec", "1x1G", "--memmap-dir", "d"]) == 2
    assert "--memmap-dir applies to --cluster" in capsys.readouterr().err
    assert main(["boot", "--spec", "1x1G", "--cluster", "local:1", "--memmap-file", "f"]) == 2
    assert "--memmap-dir DIR" in capsys.readouterr().err


def test_a_cluster_that_is_no_address_is_refused(capsys):
    assert main(["boot", "--spec", "1x1G", "--cluster", "my cluster"]) == 2
    assert "neither local:N nor a scheduler address" in capsys.readouterr().err


def test_cluster_options_without_a_cluster_are_refused():
    # fastinit.distributed.api.boot; fastinit.boot is the single-process boot now.
    with pytest.raises(ValueError, match="apply to a cluster boot"):
        boot(parse_spec("1x1G,cpus=1"), digests=True)
    with pytest.raises(TypeError, match="cluster must be 'local:N'"):
        boot(parse_spec("1x1G,cpus=1"), cluster=4)


def test_fastinit_boot_without_a_cluster_is_the_single_process_boot():
    result = fastinit.boot(parse_spec("1x1G,cpus=1"))
    assert result.memmap.storage == "memory" and result.nodes[0].pages > 0


def test_a_node_task_returns_kilobytes_for_a_shard_of_megabytes():
    # What crosses the network from a worker is this summary, never the shard.
    import pickle
    topology = parse_spec("2x8G,cpus=1")
    options = {"boot": BootOptions(), "memmap_dir": None, "chunk_hook": None}
    summary = on_worker.node_task("in-process", topology, 1, options, True, True)
    assert summary["memmap_bytes"] >= 128 << 20
    assert len(pickle.dumps(summary)) < 64 << 10
    assert registry.shards_held() == []


def test_a_cleanup_that_fails_on_a_worker_is_said_not_dropped(client, tmp_path):
    # A node number too long for a file name: remove_temporaries raises OSError
    # (ENAMETOOLONG) on every worker, as a cleanup that fails there would; what the
    # failed boot says must name each worker and its error, not drop them.
    from fastinit.distributed import memmap_dir
    from fastinit.distributed.files_left import worker_replies
    problems: list[str] = []
    replies = client.run(memmap_dir.remove_temporaries, str(tmp_path), [10 ** 300],
                         on_error="return")
    assert worker_replies(replies, "could not remove temporary files", problems) == []
    workers = set(client.scheduler_info()["workers"])
    assert sorted(problem.split(" ", 1)[0] for problem in problems) == sorted(workers)
    assert all(" could not remove temporary files: OSError: " in problem
               for problem in problems)
    # Workers that answered: their answers, and nothing said.
    fine: list[str] = []
    replies = client.run(memmap_dir.remove_temporaries, str(tmp_path), [0],
                         on_error="return")
    assert worker_replies(replies, "could not remove temporary files", fine) == \
        [[]] * len(workers)
    assert fine == []
