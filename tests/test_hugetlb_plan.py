"""Where the boot pools come from: watermarks worked by hand, the round robin over nodes
(a naive one-page-at-a-time version for comparison), zones in serving order, gigantic
pages from memblock with its fallback to other nodes."""

from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit.machine.spec import parse_spec
from fastinit.mm.hugetlb.buddy_plan import aligned_blocks, deal, take_from_zones
from fastinit.mm.hugetlb.plan import place_gigantic
from fastinit.mm.plan import plan_boot
from fastinit.mm.watermarks import ZoneMarks, allocations_allowed, min_free_kbytes, zone_marks

GIB_PAGES = 1 << 18


def test_watermarks_worked_by_hand():
    managed = {(0, 0): 3840, (0, 1): 500000, (0, 2): 1000000}
    # lowmem 1503840 pages = 6015360 kB; int_sqrt(6015360 * 16) = 9810.
    assert min_free_kbytes(managed) == 9810
    marks = zone_marks(managed)
    # pages_min 2452 shared by managed pages; gap max(min/4, managed/1000).
    assert marks[(0, 1)] == ZoneMarks(815, 1315, 1815, (0, 0, 3906, 3906))
    assert marks[(0, 2)] == ZoneMarks(1630, 2630, 3630, (0, 0, 0, 0))
    # DMA keeps (DMA32 + Normal) / 256 from allocations that may use Normal.
    assert marks[(0, 0)].reserve == (0, 1953, 5859, 5859)


def test_movable_zone_takes_a_share_of_min_on_x86_64_and_normal_reserves_for_it():
    marks = zone_marks({(0, 2): 100000, (0, 3): 64000, (1, 2): 200000})
    assert marks[(0, 3)] == ZoneMarks(192, 256, 320, (0, 0, 0, 0))
    assert marks[(0, 2)].reserve[3] == 64000 // 32


def test_allocations_stop_at_the_mark_or_the_blocks():
    # free - k*512 - 511 > mark: k = 0 and 1 pass with 1100 free above a mark of 70.
    assert allocations_allowed(1100, 10, 9, 70) == 2
    assert allocations_allowed(1100, 1, 9, 70) == 1
    assert allocations_allowed(581, 10, 9, 70) == 0


def test_round_robin_skips_a_full_node():
    assert deal(10, [3, 100, 100]) == [3, 4, 3]
    assert deal(10, [0, 2, 100]) == [0, 2, 8]
    assert deal(500, [3, 4]) == [3, 4]


def naive_deal(total, capacity):
    """The kernel's loop: each page tries nodes from the cursor on until one has room."""
    counts, cursor = [0] * len(capacity), 0
    for _ in range(total):
        for step in range(len(capacity)):
            node = (cursor + step) % len(capacity)
            if counts[node] < capacity[node]:
                counts[node] += 1
                cursor = (node + 1) % len(capacity)
                break
        else:
            break
    return counts


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 300), st.lists(st.integers(0, 120), min_size=1, max_size=6))
def test_round_robin_equals_the_kernels_loop(total, capacity):
    assert deal(total, capacity) == naive_deal(total, capacity)


def test_zones_serve_to_their_low_mark_first_then_to_their_min_mark():
    counts = [(3, 5, 7), (2, 10, 12)]
    assert take_from_zones(counts, 19) == [(3, 5), (2, 10), (3, 2), (2, 2)]
    assert take_from_zones(counts, 7) == [(3, 5), (2, 2)]


def test_aligned_blocks_count_whole_naturally_aligned_blocks():
    assert aligned_blocks([(0, 1024), (1500, 2600)], 9) == 2 + 2  # 1536 and 2048
    assert aligned_blocks([(1, 512)], 9) == 0


def test_gigantic_pages_per_node_come_top_down_below_the_memmap():
    plan = plan_boot(parse_spec("2x16G,cpus=4", cmdline="hugepagesz=1G hugepages=0:2,1:3"))
    pages = plan.pools.gigantic
    assert [nid for _, _, nid in pages] == [0, 0, 1, 1, 1]
    assert all(pfn % GIB_PAGES == 0 for pfn, _, _ in pages)
    for node in plan.nodes:
        mine = sorted(pfn for pfn, _, nid in pages if nid == node.nid)
        assert mine == sorted(mine, reverse=True)[::-1]
        assert all(pfn + GIB_PAGES <= node.memmap[0][0] for pfn in mine)
        # Reserved: deferred init leaves them alone.
        assert all(any(s <= pfn and pfn + GIB_PAGES <= e for s, e in node.reserved)
                   for pfn in mine)
    assert plan.pools.counts() == {0: {18: 2}, 1: {18: 3}}


def test_a_node_without_room_gets_its_gigantic_page_from_another_node():
    topology = parse_spec("1x512M+1x4G", cmdline="hugepagesz=1G hugepages=0:1")
    pages, messages = place_gigantic(topology, plan_boot(topology).pools.params, [])
    assert [nid for _, _, nid in pages] == [1] and not messages


def test_gigantic_pages_that_fit_nowhere_end_with_the_kernels_message():
    plan = plan_boot(parse_spec("1x3G", cmdline="hugepagesz=1G hugepages=5"))
    assert len(plan.pools.gigantic) == 1
    assert plan.pools.gigantic_messages == ((0, "HugeTLB: allocating 5 of page size 1.00 GiB "
                                                "failed.  Only allocated 1 hugepages."),)


def test_2m_pages_spread_round_robin_and_a_small_node_gives_what_it_has():
    plan = plan_boot(parse_spec("1x512M+1x4G", cmdline="hugepagesz=2M hugepages=1000"))
    counts = plan.pools.counts()
    small = counts[0][9]
    assert small < 256 and small + counts[1][9] == 1000
    assert not plan.pools.buddy_messages
    # All the small node had: the real kernel, having used some of it, gets fewer there.
    assert plan.pools.limited == ((9, 0),)


def test_2m_per_node_counts_that_do_not_fit_are_cut_with_the_kernels_message():
    plan = plan_boot(parse_spec("1x512M+1x4G", cmdline="hugepagesz=2M hugepages=0:400,1:3"))
    got = plan.pools.counts()[0][9]
    assert got < 256 and plan.pools.counts()[1][9] == 3
    assert plan.pools.buddy_messages == (f"HugeTLB: allocating 400 of page size 2.00 MiB "
                                         f"failed node0.  Only allocated {got} hugepages.",)
    assert plan.pools.limited == ((9, 0),)


def test_counts_that_fit_are_exact_and_a_small_nodes_all_is_an_upper_bound():
    fits = plan_boot(parse_spec("2x1G", cmdline="hugepagesz=2M hugepages=0:100,1:3"))
    assert fits.pools.counts() == {0: {9: 100}, 1: {9: 3}} and fits.pools.limited == ()
    small = plan_boot(parse_spec("1x8M+1x1G", cmdline="hugepagesz=2M hugepages=0:4"))
    assert small.pools.counts() == {0: {9: 2}} and small.pools.limited == ((9, 0),)


def test_a_section_two_nodes_share_goes_to_the_first_nodes_memmap():
    # memory_present() marks a section with the first range's node: node 1, starting
    # inside node 0's last section, keeps one section less.
    from fastinit.machine.topology import Node, Topology
    from fastinit.machine.ranges import section_runs
    s = 32768
    topology = Topology((Node(0, 1, ((1, 3 * s + 100),)), Node(1, 1, ((3 * s + 100, 6 * s),))))
    assert section_runs(topology.memory_ranges()) == [(0, 4, 0), (4, 6, 1)]
    plan = plan_boot(topology)
    assert [node.memmap[0][1] - node.memmap[0][0] for node in plan.nodes] == [4 * 512, 2 * 512]


def test_the_swiotlb_buffer_a_log_shows_is_reserved():
    from fastinit.machine.bootlog import parse_bootlog
    log = "\n".join([
        "Command line: hugepagesz=2M hugepages=10",
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
        "BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable",
        "BIOS-e820: [mem 0x0000000100000000-0x000000017fffffff] usable",
        "software IO TLB: mapped [mem 0x00000000bbed4000-0x00000000bfed4000] (64MB)"])
    topology = parse_bootlog(log)
    # The printed end is exclusive (mem->end), unlike NODE_DATA's.
    assert (0xbbed4, 0xbfed4) in topology.reserved
