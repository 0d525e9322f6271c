"""HugeTLB counts on nodes out of room: the node's count is an upper bound, and the other
nodes of the same spread count lower bounds (the kernel deals them what it could not take);
counts asked per node are never lower bounds."""

import json

import pytest

import qemu_oracle as qo
from cli_run import run
from fastinit.report.hugetlb import lower_bound_lines, lower_bounds, upper_bounds
from fastinit.mm.plan import plan_boot
from fastinit.machine.spec import parse_spec
from qemu_oracle.compare import FastinitResult


def _pools(cmdline):
    topology = parse_spec("512M+3G,cpus=1", cmdline=cmdline)
    # Node 0 is small: a spread count fills it first.
    return plan_boot(topology, "x86", None).pools, [n.nid for n in topology.memory_nodes]


def test_a_node_out_of_room_makes_the_others_lower_bounds():
    pools, nids = _pools("hugepagesz=2M hugepages=1000")
    assert upper_bounds(pools), "the plan must run a node out of room"
    limited = {bound["nid"] for bound in upper_bounds(pools)}
    assert {bound["nid"] for bound in lower_bounds(pools, nids)} == set(nids) - limited
    assert len(lower_bound_lines(pools, nids)) == len(nids) - len(limited)


def test_no_node_out_of_room_or_counts_per_node_give_no_lower_bound():
    pools, nids = _pools("hugepagesz=2M hugepages=64")
    assert not upper_bounds(pools) and not lower_bounds(pools, nids)
    pools, nids = _pools("hugepagesz=2M hugepages=0:2000,1:4")
    assert upper_bounds(pools) and not lower_bounds(pools, nids)


def test_topology_json_lists_the_lower_bounds(capsys):
    status, out, _ = run(capsys, "topology", "--spec", "512M+3G,cpus=1", "--cmdline",
                         "hugepagesz=2M hugepages=1000", "--json")
    document = json.loads(out)
    assert status == 0 and document["hugepages_lower_bounds"]


def _report(counts):
    lines = "".join(f"/sys/devices/system/node/node{nid}/hugepages/hugepages-2048kB/"
                    f"nr_hugepages {count}\n" for nid, count in counts.items())
    return qo.read_report(f"@@HUGEPAGES-BEGIN@@\n{lines}@@HUGEPAGES-END@@\n")


@pytest.mark.parametrize("kernel, within", [({0: 900, 1: 940}, True), ({0: 880, 1: 960}, True),
                                            ({0: 905, 1: 940}, False),
                                            ({0: 900, 1: 930}, False)])
def test_a_lower_bound_may_only_be_exceeded_and_an_upper_one_only_undershot(kernel, within):
    ours = {0: 900, 1: 940}
    document = {"nodes": [{"nid": nid, "hugepages": {"2048kB": count}}
                          for nid, count in ours.items()],
                "hugepages_upper_bounds": [{"nid": 0, "size": "2048kB"}],
                "hugepages_lower_bounds": [{"nid": 1, "size": "2048kB"}]}
    comparison = qo.compare(_report(kernel), FastinitResult(0, document, ""))
    assert comparison.ok == (kernel == ours)
    assert comparison.within_upper_bounds == within
