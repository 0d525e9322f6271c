"""What runs at once in deferred init: the pgdatinit threads count against the pool."""

from fastinit.engine.workpool import shared_pool
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot
from at_once import AtOnce


def counted_boot(spec, delay):
    """Boot ``spec`` with every chunk sleeping ``delay`` s: ``(result, most chunks at once,
    the shared pool's size)``."""
    counter = AtOnce(delay=delay)
    result = boot(parse_spec(spec), chunk_hook=counter)
    return result, counter.most, shared_pool().size


def test_eight_nodes_run_no_more_chunks_at_once_than_the_pool_has_threads():
    # Issue 9 item 11: 8x1G on 2 CPUs ran 8 chunks at once.
    result, most, size = counted_boot("8x1G,cpus=2", delay=0.02)
    assert most == min(size, 8)
    assert all(node.report.nworks <= max(1, size // min(size, 8)) for node in result.nodes)
    assert shared_pool().running() == 0


def test_one_node_uses_every_thread_of_the_pool_and_no_more():
    result, most, size = counted_boot("1x2G,cpus=64", delay=0.01)
    assert result.nodes[0].report.nworks == size
    assert most == size
