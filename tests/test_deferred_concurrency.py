"""What runs at once in deferred init: the pgdatinit threads count against the pool.

Expectations come from the boot's plan and the pool's size (the CPUs this process may use),
never from the machine the suite was written on: it must hold on 1 CPU and on 64.
"""

from fastinit.engine.workpool import shared_pool
from fastinit.layout import PAGES_PER_SECTION
from fastinit.machine.spec import parse_spec
from fastinit.mm.plan import plan_boot
from fastinit.mm.run import boot
from at_once import AtOnce


def threads_per_node(plan, size):
    """How many threads each deferring node's job runs with a pool of ``size`` threads: its
    chunk count (``nworks``, padata's formula) and at most its even share of the pool."""
    nodes = [node for node in plan.nodes if node.first_deferred_pfn is not None]
    at_once = max(1, min(len(nodes), size))
    share = max(1, size // at_once)
    threads = []
    for node in nodes:
        start, end = node.job
        nworks = max(1, min((end - start) // PAGES_PER_SECTION, node.max_threads, size))
        threads.append(min(nworks, share))
    return at_once, threads


def counted_boot(spec):
    """Boot ``spec`` with a counter in every chunk whose first calls must all meet (as many
    as the plan says run at once): ``(result, most chunks at once, threads of each node,
    expected most)``."""
    topology = parse_spec(spec)
    at_once, threads = threads_per_node(plan_boot(topology), shared_pool().size)
    # Identical nodes: the first ``at_once`` to start run together, each with its threads.
    expected = sum(threads[:at_once])
    counter = AtOnce(meet=expected)
    result = boot(topology, chunk_hook=counter)
    return result, counter.most, threads, expected


def test_eight_nodes_run_no_more_chunks_at_once_than_the_pool_has_threads():
    # Issue 9 item 11: 8x1G on 2 CPUs ran 8 chunks at once.
    result, most, threads, expected = counted_boot("8x1G,cpus=2")
    assert most == expected <= shared_pool().size
    assert [node.report.nworks for node in result.nodes] == threads
    assert shared_pool().running() == 0


def test_one_node_uses_every_thread_it_may_and_no_more():
    result, most, threads, expected = counted_boot("1x2G,cpus=64")
    start, end = result.plan.nodes[0].job
    assert threads == [min(shared_pool().size, (end - start) // PAGES_PER_SECTION)]
    assert result.nodes[0].report.nworks == most == expected == threads[0]
