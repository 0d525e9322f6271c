"""NUMA emulation (numa=fake=) against cases worked by hand from the kernel's rules; the
captured real-kernel boots in tests/data/qemu check it further (tests/test_qemu_corpus.py)."""

from fastinit.machine.cmdline import NumaFake
from fastinit.machine.kernel_rules import parse_version
from fastinit.machine.numa_emu import FAKE_NODE_MIN_SIZE, emulate
from fastinit.machine.spec import parse_spec
from fastinit.machine.srat import MemBlock

M = 1 << 20
# 2 GiB from 0 as x86 sees it after trim_bios_range(): no page 0, no 640K-1M.
MEMORY = [(1, 159), (256, 524288)]
ONE_NODE = [MemBlock(0, 0, 2048 * M)]


def fake(form: NumaFake, blocks=ONE_NODE, parsed=(0,), memory=MEMORY, max_pfn=524288,
         generic=False):
    """Worked by hand from x86's own code (to 6.11) unless ``generic``."""
    notes = []
    result = emulate(form, list(blocks), list(parsed), memory, max_pfn, notes, generic)
    return result, notes


def test_four_nodes_of_two_gib():
    # 524190 pages of memory / 4 = 131047 pages (511.9 MiB): 480 MiB in 32 MiB steps, and
    # the remainders make 3 "big" nodes of 512 MiB; the last takes the rest of the block.
    (blocks, to_physical), notes = fake(NumaFake(nodes=4))
    assert [(b.nid, b.start // M, b.end // M) for b in blocks] == \
        [(0, 0, 512), (1, 512, 1024), (2, 1024, 1536), (3, 1536, 2048)]
    assert to_physical == {0: 0, 1: 0, 2: 0, 3: 0} and notes == []


def test_a_node_stretches_to_4_gib_when_the_next_could_not_get_32_mib_of_dma32():
    # Memory below 4 GiB - 16 MiB and in [4 GiB, 8 GiB); nodes of 4032 MiB. The first grows
    # in 32 MiB steps to 4064 MiB; only 16 MiB of DMA32 memory would be left after it, so it
    # must reach 4 GiB. The second gets the rest of the block.
    memory = [(1, 159), (256, (4096 - 16) * 256), (1 << 20, 2 << 20)]
    (result, _), notes = fake(NumaFake(size=4032 * M), [MemBlock(0, 0, 8 << 30)],
                              memory=memory, max_pfn=2 << 20)
    assert [(b.nid, b.start // M, b.end // M) for b in result] == [(0, 0, 4096), (1, 4096, 8192)]
    assert notes == []


def test_too_many_nodes_for_the_memory_disables_emulation():
    (result, notes) = fake(NumaFake(nodes=100))  # 20 MiB each: below 32 MiB
    assert result is None
    assert notes == ["Not enough memory for each node.  NUMA emulation disabled."]


def test_node_size_below_the_machines_share_is_raised():
    (blocks, _), notes = fake(NumaFake(size=16 * M))
    assert notes == ["Fake node size 16MB too small, increasing to 32MB"]
    assert all(b.end - b.start >= FAKE_NODE_MIN_SIZE for b in blocks)


def test_uniform_form_splits_every_physical_node():
    blocks = [MemBlock(0, 0, 1024 * M), MemBlock(1, 1024 * M, 2048 * M)]
    (result, to_physical), _ = fake(NumaFake(nodes=2, uniform=True), blocks, parsed=(0, 1))
    assert [(b.nid, b.start // M, b.end // M) for b in result] == \
        [(0, 0, 512), (1, 512, 1024), (2, 1024, 1536), (3, 1536, 2048)]
    assert to_physical == {0: 0, 1: 0, 2: 1, 3: 1}


def test_generic_emulation_cuts_from_memblocks_first_page_one_page_later():
    # 6.12's numa_memblks clips the meminfo to memblock (page 0 is reserved: it starts at
    # page 1), so every cut lies one page after x86's. Seen on Debian's 6.12: the kernel
    # printed a node from pfn 49153 where x86's rules give 49152.
    (old, _), _ = fake(NumaFake(nodes=4))
    (new, _), notes = fake(NumaFake(nodes=4), generic=True)
    assert [(b.start, b.end) for b in new[:3]] == \
        [(b.start + 4096, b.end + 4096) for b in old[:3]]
    assert new[3].end == old[3].end and notes == []


def test_spec_with_numa_fake_gives_fake_nodes_the_cpus_of_their_physical_node():
    topology = parse_spec("1x2G,cpus=3", cmdline="numa=fake=4", kernel=parse_version("6.1"))
    assert [(n.nid, n.cpus, n.ranges) for n in topology.nodes] == [
        (0, 3, ((1, 159), (256, 131072))), (1, 3, ((131072, 262144),)),
        (2, 3, ((262144, 393216),)), (3, 3, ((393216, 524288),))]


def test_spec_is_modelled_with_the_newest_rules_unless_told():
    newest = parse_spec("1x2G,cpus=3", cmdline="numa=fake=4")
    assert newest.kernel.has("numa_emu_generic")
    assert [n.ranges for n in newest.nodes] == [
        ((1, 159), (256, 131073)), ((131073, 262145),), ((262145, 393217),),
        ((393217, 524288),)]
