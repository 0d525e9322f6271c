"""Where the plan puts each node's memmap, as Linux 6.1's sparse_init() does: one buffer per
run of a node's sections, in address order, on the node above 16 MiB, else anywhere on the
node (memblock_alloc_internal() retries without the lower limit), else section by section
on the node or any node (vmemmap_alloc_block())."""

import pytest

import qemu_oracle as qo
from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.topology import Node, Topology
from fastinit.mm.hugetlb import hvo
from fastinit.mm.plan import MEMMAP_MIN_PFN, plan_boot, sparse_groups
from fastinit.mm.run import boot
from fastinit.mm.verify import verify
from qemu_oracle.corpus import CORPUS

S = 32768  # pages per section; a section's map is 512 pages (2 MiB)


def test_a_node_full_above_16m_gets_its_memmap_below_16m_on_itself():
    # Corpus case huge-48: node 0 is 57 MiB and the kernel's image (nokaslr) fills it
    # from 16 MiB on; the kernel booted it, so its memmap went below 16 MiB on node 0.
    case = qo.load_case(CORPUS / "huge-48")
    topology = parse_bootlog(qo.read_report(case.serial).console, "huge-48")
    plan = plan_boot(topology)
    (start, end), = plan.node(0).memmap
    assert end - start == 512 and start % 512 == 0
    assert end <= MEMMAP_MIN_PFN
    assert any(s <= start and end <= e for s, e in topology.node(0).ranges)
    assert verify(boot(topology)).ok


def test_a_node_without_free_memory_gets_each_section_map_from_another_node():
    topology = Topology((Node(0, 1, ((0x100, 0x6000),)), Node(1, 1, ((0x6000, 8 * S),))),
                        reserved=((0x100, 0x6000),))
    plan = plan_boot(topology)
    # sparse_init() places node 0's section first: at the top of node 1, above 16 MiB.
    assert plan.node(0).memmap == ((8 * S - 512, 8 * S),)
    assert plan.node(1).memmap == ((8 * S - 512 - 7 * 512, 8 * S - 512),)
    assert (8 * S - 8 * 512, 8 * S) in plan.node(1).reserved
    assert verify(boot(topology)).ok


def test_a_node_whose_sections_come_in_two_runs_gets_a_buffer_for_each_in_order():
    topology = Topology((Node(0, 1, ((0x100, 2 * S), (6 * S, 8 * S))),
                         Node(1, 1, ((2 * S, 6 * S),))))
    assert sparse_groups(topology) == [(0, 2), (1, 4), (0, 2)]
    plan = plan_boot(topology)
    assert plan.node(0).memmap == ((8 * S - 1024, 8 * S), (8 * S - 2048, 8 * S - 1024))
    backing = hvo.vmemmap_backing(plan)
    assert backing[[0, 1, 6, 7]].tolist() == [8 * S - 1024, 8 * S - 512,
                                             8 * S - 2048, 8 * S - 1536]
    assert backing[2:6].tolist() == [6 * S - 2048 + 512 * k for k in range(4)]


def test_sections_without_memory_between_a_nodes_runs_do_not_split_its_buffer():
    topology = Topology((Node(0, 1, ((0x100, 2 * S), (5 * S, 6 * S))),))
    assert sparse_groups(topology) == [(0, 3)]
    (start, end), = plan_boot(topology).node(0).memmap
    assert (start, end) == (6 * S - 3 * 512, 6 * S)


def test_a_machine_with_no_room_for_a_memmap_anywhere_is_refused_naming_the_node():
    topology = Topology((Node(0, 1, ((0x100, 0x6000),)), Node(1, 1, ((0x6000, 0x7000),))),
                        reserved=((0x100, 0x7000),))
    with pytest.raises(ValueError, match="no memory left for the memmap of node 0"):
        plan_boot(topology)
