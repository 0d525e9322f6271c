"""HVO's pieces: where each section's descriptors live physically, which vmemmap pages a
huge page frees, real remapping through a memfd, and the mapping budget."""

import numpy as np
import pytest

from fastinit.layout import PAGES_PER_SECTION
from fastinit.machine.spec import parse_spec
from fastinit.mm.hugetlb import hvo, hvo_budget
from fastinit.mm.memmap import Memmap, memmap_bytes
from fastinit.mm.plan import plan_boot

S = PAGES_PER_SECTION


def planned(spec):
    """``(plan, memmap, backing)`` for ``spec``: its boot plan, a zeroed in-memory Memmap of
    its sections and vmemmap_backing(plan) (int64, shape (nr_sections,))."""
    plan = plan_boot(parse_spec(spec))
    memmap = Memmap(plan.sections, bytearray(memmap_bytes(len(plan.sections))), "test")
    return plan, memmap, hvo.vmemmap_backing(plan)


def test_each_section_of_a_node_has_the_next_2m_of_its_memmap():
    plan, _, backing = planned("2x1G,cpus=1")
    # Node 0's 8 sections, then node 1's: each node's block, 512 pages a section.
    first = plan.nodes[0].memmap[0][0]
    second = plan.nodes[1].memmap[0][0]
    assert backing.tolist() == [first + 512 * k for k in range(8)] + \
        [second + 512 * k for k in range(8)]


def test_a_2m_page_frees_the_7_pages_after_its_first_vmemmap_page():
    _, memmap, backing = planned("1x1G")
    pfn = 3 * S + 1024  # in section 3, the third 2 MiB page
    base = int(backing[3]) + 1024 * 64 // 4096
    assert hvo.freed_vmemmap(backing, memmap.index(pfn), 9) == [(base + 1, base + 8)]


def test_a_1g_page_frees_all_but_one_page_of_its_eight_sections_maps():
    _, memmap, backing = planned("1x2G")
    freed = hvo.freed_vmemmap(backing, memmap.index(8 * S), 18)
    assert sum(e - s for s, e in freed) == 4095
    assert freed[0][0] == int(backing[8]) + 1


def test_remapping_shows_the_kept_page_everywhere_and_releases_the_rest():
    memmap = Memmap.in_memory(np.arange(1, dtype=np.int64))
    memmap.raw[:] = 7  # touch it all
    memmap.words[:512] = np.arange(512, dtype=np.uint64)  # the first 4 KiB: 64 descriptors
    before = hvo.resident_bytes(memmap)
    remapper = hvo.Remapper(memmap, 1)
    remapper.remap(0, 9)
    pages = memmap.words[:4096].reshape(8, 512)
    assert all(np.array_equal(page, np.arange(512, dtype=np.uint64)) for page in pages)
    assert before - hvo.resident_bytes(memmap, remapper) == 7 * 4096
    # A write to the kept page shows through every alias (one physical page).
    memmap.words[3] = 99
    assert int(memmap.words[512 * 5 + 3]) == 99
    remapper.close()


def test_remapping_descriptors_past_the_memmap_is_refused_before_any_unmap():
    memmap = Memmap.in_memory(np.arange(1, dtype=np.int64))
    memmap.raw[:] = 7
    remapper = hvo.Remapper(memmap, 2)
    # Descriptors running past the section into the pageblock bytes, and before the memmap.
    with pytest.raises(ValueError, match="not whole pages of this memmap"):
        remapper.remap(PAGES_PER_SECTION - 256, 9)
    with pytest.raises(ValueError, match="not whole pages of this memmap"):
        remapper.remap(-512, 9)
    assert remapper.mappings == 0 and int(memmap.raw[-1]) == 7
    remapper.close()


def test_remapping_a_memmap_file_is_refused(tmp_path):
    memmap = Memmap(np.arange(1, dtype=np.int64), bytearray(memmap_bytes(1)), "a file")
    with pytest.raises(ValueError, match="hugetlb_free_vmemmap=off"):
        hvo.Remapper(memmap, 1)


def test_the_budget_leaves_room_below_max_map_count():
    with open("/proc/sys/vm/max_map_count") as handle:
        limit = int(handle.read())
    assert 0 <= hvo_budget.map_count_budget() <= limit - hvo_budget.MAP_COUNT_MARGIN
    assert hvo_budget.mappings_per_page(9) == 9 and hvo_budget.mappings_per_page(18) == 4097
