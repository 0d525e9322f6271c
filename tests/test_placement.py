"""Placement of node shards on workers: largest first, balanced by bytes, within budgets;
and what --cluster says without dask (neither needs dask installed)."""

import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

from fastinit.distributed.placement import SHARD_OVERHEAD, place, shard_bytes
from fastinit.machine.spec import parse_spec
from fastinit.mm.plan import plan_boot

GIB = 1 << 30


def test_shard_bytes_are_each_nodes_own_sections_and_the_overhead():
    plan = plan_boot(parse_spec("2x2G,cpus=1"))
    assert shard_bytes(plan) == {n.nid: plan.shard(n.nid).memmap_bytes + SHARD_OVERHEAD
                                 for n in plan.nodes}


def test_equal_nodes_alternate_between_equal_workers():
    placement = place({0: GIB, 1: GIB, 2: GIB, 3: GIB}, {"a": 2 * GIB, "b": 2 * GIB})
    assert placement.on("a") == [0, 2] and placement.on("b") == [1, 3]


def test_the_largest_node_goes_first_and_the_small_ones_fill_the_other_worker():
    placement = place({0: GIB, 1: 3 * GIB, 2: GIB, 3: GIB}, {"a": 4 * GIB, "b": 4 * GIB})
    assert placement.on("a") == [1] and placement.on("b") == [0, 2, 3]


def test_a_node_only_one_worker_can_hold_goes_there():
    placement = place({0: 3 * GIB, 1: GIB}, {"small": 2 * GIB, "big": 4 * GIB})
    assert placement.workers[0] == "big"


def test_a_node_too_large_for_every_worker_is_refused_naming_node_and_shortfall():
    with pytest.raises(ValueError, match=r"node 2 needs 3\.00 GiB but the roomiest worker "
                                         r"\(b\) has 2\.50 GiB .*0\.50 GiB short"):
        place({0: GIB, 2: 3 * GIB}, {"a": 2 * GIB, "b": 5 * GIB // 2})


def test_no_workers_is_refused():
    with pytest.raises(ValueError, match="no workers"):
        place({0: GIB}, {})


def test_a_node_is_not_placed_where_it_was_lost():
    placement = place({0: GIB}, {"a": 9 * GIB, "b": 2 * GIB}, exclude={0: {"a"}})
    assert placement.workers == {0: "b"}
    with pytest.raises(ValueError, match="node 0 has no worker left.*a, b"):
        place({0: GIB}, {"a": 9 * GIB, "b": 2 * GIB}, exclude={0: {"a", "b"}})


@given(st.dictionaries(st.integers(0, 63), st.integers(1, 8 * GIB), min_size=1, max_size=16),
       st.lists(st.integers(1, 16 * GIB), min_size=1, max_size=6))
def test_every_node_is_placed_on_a_worker_that_holds_it_or_refused(nbytes, budgets):
    workers = {f"w{i}": b for i, b in enumerate(budgets)}
    if max(nbytes.values()) > max(workers.values()):
        with pytest.raises(ValueError, match="short"):
            place(nbytes, workers)
        return
    placement = place(nbytes, workers)
    assert set(placement.workers) == set(nbytes)
    assert all(nbytes[n] <= workers[w] for n, w in placement.workers.items())
    # Balanced: no worker got a node while another that could hold it had fewer bytes
    # placed before it (largest first), so the loads differ by at most the largest node
    # among workers that hold every node.
    big = [w for w, b in workers.items() if b >= max(nbytes.values())]
    loads = {w: sum(nbytes[n] for n in placement.on(w)) for w in big}
    if len(big) == len(workers):
        assert max(loads.values()) - min(loads.values()) <= max(nbytes.values())


def test_without_dask_the_cluster_flag_names_the_extra_to_install():
    code = ("import sys\n"
            "sys.modules['distributed'] = None\n"
            "sys.modules['dask'] = None\n"
            "from fastinit.cli import main\n"
            "sys.exit(main(['boot', '--spec', '1x1G', '--cluster', 'local:1']))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    assert "pip install 'fastinit[distributed]'" in done.stderr
    assert "Traceback" not in done.stderr
