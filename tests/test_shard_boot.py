"""One node booted alone on a memmap of its own sections (`BootPlan.shard`, boot(node=...))
gives, byte for byte, that node's part of the whole machine's boot."""

from pathlib import Path

import numpy as np
import pytest

from fastinit.distributed.digest import node_digest, node_pfn_ranges
from fastinit.machine.bootlog import read_bootlog
from fastinit.machine.kernel_rules import parse_version
from fastinit.machine.spec import parse_spec
from fastinit.mm.plan import plan_boot
from fastinit.mm.run import boot, load
from fastinit.mm.verify import verify

DMESG = Path(__file__).parent / "data" / "dmesg"
QEMU = Path(__file__).parent / "data" / "qemu"

MACHINES = {
    "spec 4 nodes": lambda: parse_spec("4x2G,cpus=2"),
    # Node boundaries inside sections: sections shared by two shards.
    "spec 3x1500M": lambda: parse_spec("3x1500M,cpus=1"),
    "spec memory-only node": lambda: parse_spec("2x3G:2+1x1G:0"),
    "spec movablecore": lambda: parse_spec("2x4G,cpus=2", cmdline="movablecore=25%"),
    # A real log whose nodes share sections and whose holes are charged across them.
    "hyperv 2 nodes": lambda: read_bootlog(str(DMESG / "hyperv-2node-3.15.txt"))[0],
    # Pageblocks shared by two nodes: node 1 starts inside one whose first pfn is node 0's
    # early memory (node 0 defers nothing), so early init of node 0 marks it MOVABLE
    # before node 1's pages in it are freed, in the shard as in the whole boot.
    "spec pageblocks shared": lambda: parse_spec("1x101M:1+1x2G:1+1x101M:1+1x1G:1"),
    # A real boot whose node 0 ends in a pageblock its deferred init marks MOVABLE after
    # node 1's pages in it were freed early (corpus case seed-109).
    "qemu seed-109": lambda: read_bootlog(str(QEMU / "seed-109" / "serial.log"))[0],
}


@pytest.fixture(scope="module", params=list(MACHINES))
def machine(request):
    topology = MACHINES[request.param]()
    return topology, boot(topology, threads=1)


def test_a_shard_holds_the_sections_of_its_memory_and_holes_only(machine):
    topology, whole = machine
    plan = whole.plan
    for node in plan.nodes:
        shard = plan.shard(node.nid)
        assert shard.nodes == (node,)
        wanted = {section for start, end in node_pfn_ranges(plan, node.nid)
                  for section in range(start >> 15, ((end - 1) >> 15) + 1)}
        assert set(shard.sections.tolist()) == wanted & set(plan.sections.tolist())
    covered = np.unique(np.concatenate([plan.shard(n.nid).sections for n in plan.nodes]))
    assert np.array_equal(covered, plan.sections)


def test_each_node_booted_alone_equals_its_part_of_the_whole_boot_byte_for_byte(machine):
    topology, whole = machine
    for node in whole.plan.nodes:
        alone = boot(topology, threads=1, node=node.nid)
        assert list(alone.zones) == [(node.nid, z.zid) for z in node.zones]
        assert node_digest(alone.plan, alone.memmap, alone.zones, node.nid) == \
            node_digest(whole.plan, whole.memmap, whole.zones, node.nid)


def test_parallel_shards_equal_the_whole_boot_but_for_free_list_order_and_verify(machine):
    topology, whole = machine
    for node in whole.plan.nodes:
        alone = boot(topology, node=node.nid)
        assert node_digest(alone.plan, alone.memmap, alone.zones, node.nid, links=False) == \
            node_digest(whole.plan, whole.memmap, whole.zones, node.nid, links=False)
        report = verify(alone)
        assert report.ok, report.problems


def test_a_changed_descriptor_byte_changes_its_nodes_digest_only():
    topology = parse_spec("2x2G,cpus=1")
    result = boot(topology, threads=1)
    before = [node_digest(result.plan, result.memmap, result.zones, nid) for nid in (0, 1)]
    pfn = result.plan.node(1).job[0] + 5
    result.memmap.pages[result.memmap.index(pfn)]["private"] += 1
    after = [node_digest(result.plan, result.memmap, result.zones, nid) for nid in (0, 1)]
    assert after[0] == before[0] and after[1] != before[1]


def test_a_shard_memmap_file_says_its_node_and_loads_as_that_node(tmp_path):
    topology = parse_spec("3x1500M,cpus=1")
    path = tmp_path / "node1.memmap"
    booted = boot(topology, node=1, memmap_file=str(path))
    digest = node_digest(booted.plan, booted.memmap, booted.zones, 1)
    del booted
    loaded = load(str(path), topology)
    assert loaded.memmap.file.meta["node"] == 1
    assert [n.nid for n in loaded.plan.nodes] == [1]
    assert np.array_equal(loaded.plan.sections, plan_boot(topology).shard(1).sections)
    assert node_digest(loaded.plan, loaded.memmap, loaded.zones, 1) == digest
    assert verify(loaded).ok


def test_a_whole_machine_memmap_file_has_no_node_field(tmp_path):
    path = tmp_path / "whole.memmap"
    boot(parse_spec("2x1G,cpus=1"), memmap_file=str(path))
    assert "node" not in load(str(path)).memmap.file.meta


def test_a_shard_of_a_node_without_memory_is_refused_naming_the_planned_nodes():
    plan = plan_boot(parse_spec("2x1G,cpus=1"))
    with pytest.raises(ValueError, match=r"no node 5; nodes are \[0, 1\]"):
        plan.shard(5)


def test_a_node_booted_alone_builds_its_share_of_the_hugetlb_pools_byte_for_byte():
    # Linux 6.8 built the pools on one thread, so their free lists come in one order.
    topology = parse_spec("2x4G,cpus=1", cmdline="hugepagesz=1G hugepages=0:1,1:2 "
                          "hugepagesz=2M hugepages=301", kernel=parse_version("6.8"))
    whole = boot(topology, threads=1)
    alone = boot(topology, node=1, threads=1)
    assert alone.plan.pools.counts() == {1: whole.plan.pools.counts()[1]}
    assert alone.pools.counts() == {1: whole.pools.counts()[1]} == {1: {9: 150, 18: 2}}
    assert node_digest(alone.plan, alone.memmap, alone.zones, 1) == \
        node_digest(whole.plan, whole.memmap, whole.zones, 1)
    assert verify(alone).ok
