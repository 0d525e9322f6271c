"""The kernel's 2 MiB pool job by generation: its shape, its chunks, and how a spread count
is dealt over the nodes chunk by chunk (captures 6.12-pools-3node, sid-pools-smp8)."""

import pytest

from fastinit.machine.hugetlb_job import alloc_chunks, alloc_job_shape
from fastinit.machine.kernel_rules import parse_version
from fastinit.mm.hugetlb.buddy_plan import deal


def dealt(kernel, pages, capacity, cpus):
    """What each node gets: every chunk a round robin of its own from the first node."""
    counts = [0] * len(capacity)
    for chunk in alloc_chunks(parse_version(kernel), pages, len(capacity), cpus):
        room = [cap - had for cap, had in zip(capacity, counts)]
        counts = [had + more for had, more in zip(counts, deal(chunk, room))]
    return counts


def test_before_6_9_the_boot_cpu_deals_one_round_robin():
    assert alloc_chunks(parse_version("6.1"), 10, 3, 64) == [10]
    assert dealt("6.1", 10, [100] * 3, 64) == [4, 3, 3]


def test_6_12_on_three_nodes_makes_calls_of_one_page_all_on_the_first_node():
    # 2 threads per node with memory, min_chunk 10 // 3 // 2 = 1: six workers, chunk 1.
    assert alloc_job_shape(parse_version("6.12"), 10, 3, 3) == (6, 1)
    assert alloc_chunks(parse_version("6.12"), 10, 3, 3) == [1] * 10
    assert dealt("6.12", 10, [100] * 3, 3) == [10, 0, 0]


def test_7_x_with_8_cpus_runs_two_threads_in_two_calls_of_five():
    assert alloc_job_shape(parse_version("7.2"), 10, 3, 8) == (2, 5)
    assert dealt("7.2", 10, [100] * 3, 8) == [4, 4, 2]


@pytest.mark.parametrize("cpus", [1, 4, 7])
def test_7_x_with_fewer_than_8_cpus_is_one_call(cpus):
    assert alloc_chunks(parse_version("7.2"), 10, 3, cpus) == [10]


def test_chunks_cover_the_request_exactly_and_end_on_multiples_of_the_chunk():
    for kernel in ("6.9", "6.12", "6.15", "7.2"):
        for pages in (1, 7, 380, 4097):
            for nodes, cpus in ((1, 1), (2, 8), (3, 3), (4, 64)):
                chunks = alloc_chunks(parse_version(kernel), pages, nodes, cpus)
                assert sum(chunks) == pages and min(chunks) >= 1
                assert all(size == chunks[0] for size in chunks[:-1])


def test_a_full_node_is_skipped_within_each_call():
    # Node 1 holds one page: the calls after it fill nodes 0 and 2.
    assert dealt("7.2", 10, [100, 1, 100], 8) == [5, 1, 4]
