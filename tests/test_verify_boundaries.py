"""verify where two nodes share a section and a pageblock, on a real boot (corpus case
seed-109: node 0 ends at pfn 0x17b00, inside the pageblock at 0x17a00 whose first pfn is
node 0's deferred free memory, and inside node 0's last deferred section).

The kernel's state there is not the tidy one: node 1's pages in that pageblock are freed by
early init while the pageblock is still UNMOVABLE, and node 0's deferred init marks it
MOVABLE afterwards, so they stay on the Unmovable lists. verify accepts exactly that, and
still catches every corruption around it."""

import numpy as np
import pytest

import qemu_oracle as qo
from fastinit.kernels.descriptors import lru_address, lru_pfn
from fastinit.kernels.check_lists import migratetype_fits
from fastinit.layout import MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, PAGE_BUDDY_MAPCOUNT
from fastinit.machine.bootlog import parse_bootlog
from fastinit.mm.run import boot
from fastinit.mm.verify import verify
from qemu_oracle.corpus import CORPUS
from fixtures import restoring

# Node 1's first free block: order 8, in the pageblock node 0's deferred init turns MOVABLE.
STALE = 0x17B00
# Node 1's next block, order 10, in a pageblock early init made MOVABLE.
PLAIN = 0x17C00
# Node 0's deferred free memory in the shared pageblock and section.
NODE0_FREE = 0x17A05
NO_LATE = np.zeros((0, 2), np.int64)
LATE = np.array([[0x17A00, 0x17AD5]], np.int64)


@pytest.fixture(scope="module")
def shared():
    case = qo.load_case(CORPUS / "seed-109")
    return boot(parse_bootlog(qo.read_report(case.serial).console, "seed-109"))


result = restoring("shared")


def set_link(result, nid, zid, order, migratetype, address, field, value):
    """Set link ``field`` ("lru_next" or "lru_prev") of the list node at ``address``: the
    head of free list ``(order, migratetype)`` or a free block's first descriptor."""
    area, memmap = result.zones[(nid, zid)], result.memmap
    if address == area.head_address(order, migratetype):
        area.heads[order, migratetype, 0 if field == "lru_next" else 1] = value
    else:
        memmap.pages[field][memmap.index(lru_pfn(address))] = value


def move_to_list(result, nid, zid, pfn, order, old, new):
    """Unlink the free block at ``pfn`` from list ``old`` and append it to list ``new``."""
    area, pages = result.zones[(nid, zid)], result.memmap.pages
    me = result.memmap.index(pfn)
    before, after = pages["lru_prev"][me], pages["lru_next"][me]
    set_link(result, nid, zid, order, old, before, "lru_next", after)
    set_link(result, nid, zid, order, old, after, "lru_prev", before)
    area.nr_free[order, old] -= 1
    head, tail = area.head_address(order, new), area.heads[order, new, 1]
    pages["lru_prev"][me], pages["lru_next"][me] = tail, head
    set_link(result, nid, zid, order, new, tail, "lru_next", lru_address(pfn))
    set_link(result, nid, zid, order, new, head, "lru_prev", lru_address(pfn))
    area.nr_free[order, new] += 1


def verify_after(result, field, pfn, value):
    """verify's report once descriptor ``field`` of ``pfn`` is ``value``."""
    result.memmap.pages[field][result.memmap.index(pfn)] = value
    return verify(result)


def test_the_case_holds_the_kernel_state_and_verifies(shared):
    memmap = shared.memmap
    stale = memmap.index(STALE)
    assert memmap.pages["mapcount"][stale] == PAGE_BUDDY_MAPCOUNT
    assert memmap.pageblock_mt[stale >> 9] == MIGRATE_MOVABLE
    assert shared.zones[(1, 1)].nr_free[8, MIGRATE_UNMOVABLE] >= 1
    report = verify(shared)
    assert report.ok, report.problems


@pytest.mark.parametrize("pfn, order, old, new, list_name", [
    pytest.param(STALE, 8, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, "list 1 (Movable)",
                 id="early-freed-block-on-movable-list-of-late-pageblock"),
    pytest.param(PLAIN, 10, MIGRATE_MOVABLE, MIGRATE_UNMOVABLE, "list 0 (Unmovable)",
                 id="block-on-unmovable-list-of-pageblock-early-init-marked"),
])
def test_a_block_moved_to_the_other_migratetype_list_is_caught(result, pfn, order, old, new,
                                                               list_name):
    move_to_list(result, 1, 1, pfn, order, old, new)
    problems = verify(result).checks[1].problems
    assert problems == [f"node 1 zone DMA32 order {order} {list_name}: pfn {pfn:#x} sits "
                        f"on the wrong migratetype"]


def test_a_changed_neighbour_free_block_in_the_jobs_section_is_caught_but_not_as_reference(
        result):
    report = verify_after(result, "private", STALE, 7)
    assert report.checks[0].ok
    assert not report.checks[1].ok and not report.checks[2].ok


def test_a_changed_deferred_free_page_in_the_shared_section_differs_from_the_reference(
        result):
    report = verify_after(result, "index", NODE0_FREE, 1)
    assert report.tallies["reference_differs"] == (1, NODE0_FREE)
    assert report.tallies["wrong_state"] == (1, NODE0_FREE)


@pytest.mark.parametrize("pfn, listed, current, deferred_from, fits", [
    # Freed early into a pageblock another node's deferred init marked later: Unmovable.
    (STALE, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 1 << 40, True),
    (STALE, MIGRATE_MOVABLE, MIGRATE_MOVABLE, 1 << 40, False),
    # Freed by the zone's own deferred init, racing the other node's: either type.
    (STALE, MIGRATE_UNMOVABLE, MIGRATE_MOVABLE, 0, True),
    (STALE, MIGRATE_MOVABLE, MIGRATE_MOVABLE, 0, True),
    (STALE, 2, MIGRATE_MOVABLE, 0, False),
])
def test_a_late_pageblock_allows_the_types_the_kernel_leaves(pfn, listed, current,
                                                             deferred_from, fits):
    assert migratetype_fits(np.int64(pfn), listed, current, LATE,
                            deferred_from) == fits


@pytest.mark.parametrize("listed, current", [(0, 0), (1, 1), (0, 1), (1, 0), (2, 1)])
def test_elsewhere_a_block_sits_on_its_pageblocks_type(listed, current):
    assert migratetype_fits(np.int64(PLAIN), listed, current, LATE, 0) == (listed == current)
    assert migratetype_fits(np.int64(STALE), listed, current, NO_LATE, 0) == \
        (listed == current)
