"""HVO's promises under pressure: an HVO'd memmap refuses writes to its aliased descriptors
(NumPy and the checked entry points, never a SIGSEGV), and boots at once in one process
share one vm.max_map_count budget; a page that does not fit keeps its descriptors, even
when something else takes the mappings after the budget was given out."""

import mmap
import threading
from contextlib import contextmanager

import numpy as np
import pytest

from fastinit.host.libc import MAP_FAILED, libc
from fastinit.layout import PAGE_SIZE
from fastinit.machine.spec import parse_spec
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.mm.deferred import deferred_init
from fastinit.mm.hugetlb import hvo, hvo_budget
from fastinit.mm.hugetlb.jobs import hugetlb_init
from fastinit.mm.pages import free_pages, init_pages
from fastinit.mm.run import boot, prepare
from fastinit.mm.verify import verify

POOL = "hugepagesz=2M hugepages=300 hugetlb_free_vmemmap=on"
# About a second of mprotect calls: enough for a vm.max_map_count of 1048576 and more.
_MOST_PAIRS = 1_100_000


def free_mappings() -> int:
    """Mappings the process may still make before the kernel refuses (ENOMEM)."""
    return hvo_budget.map_count_budget() + hvo_budget.MAP_COUNT_MARGIN


@contextmanager
def mappings_left(room: int):
    """Real mappings taken until the process has about ``room`` left: one anonymous
    region whose every other page is made inaccessible, so each page is a mapping."""
    pairs = max(0, (free_mappings() - room) // 2)
    if pairs > _MOST_PAIRS:
        pytest.skip(f"vm.max_map_count leaves {free_mappings()} mappings: too many to take "
                    f"in a test (systemd's default of 1048576 is fine)")
    size = (2 * pairs + 1) * PAGE_SIZE
    # Never writable: no commit charge, whatever the overcommit policy.
    address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
                         -1, 0)
    assert address not in (None, MAP_FAILED)
    try:
        for pair in range(pairs):
            assert libc.mprotect(address + (2 * pair + 1) * PAGE_SIZE, PAGE_SIZE, 0) == 0
        yield
    finally:
        libc.munmap(address, size)


def aliased_pfn(result) -> int:
    index = int(hvo.aliased_descriptors(result.memmap)[0, 0])
    return int(result.memmap.pfns()[index])


@pytest.fixture(scope="module")
def remapped():
    return boot(parse_spec("1x2G,cpus=2", cmdline=POOL))


def test_the_arrays_of_an_hvo_memmap_are_read_only(remapped):
    memmap = remapped.memmap
    assert remapped.pools.remapper.remapped == 300
    for array in (memmap.pages, memmap.words, memmap.raw, memmap.pageblock_mt):
        assert not array.flags.writeable
    index = int(hvo.aliased_descriptors(memmap)[0, 0])
    with pytest.raises(ValueError, match="read-only"):
        memmap.pages["flags"][index] = 1
    assert verify(remapped).ok  # read-only arrays verify as before


def test_init_pages_refuses_an_hvo_memmap_before_any_kernel_runs(remapped):
    pfn = aliased_pfn(remapped)
    with pytest.raises(ValueError, match="hugetlb_free_vmemmap=off"):
        init_pages(remapped.memmap, pfn, pfn + 512, 0, 2)


def test_entry_points_refuse_aliased_descriptors_even_if_writes_are_turned_back_on():
    result = boot(parse_spec("1x2G,cpus=2", cmdline=POOL))
    memmap = result.memmap
    memmap.pages.flags.writeable = True  # NumPy allows it on a view of writable memory
    pfn = aliased_pfn(result)
    with pytest.raises(ValueError, match=rf"pfns \[{pfn:#x}, .*mapped onto others"):
        init_pages(memmap, pfn - 64, pfn + 8, 0, 2)
    area = ZoneFreeArea(0, 2)
    with pytest.raises(ValueError, match="mapped onto others"):
        free_pages(memmap, area, [[pfn, pfn + 1]])
    # Descriptors no huge page aliases can still be written (the process is alive).
    last = int(memmap.pfns()[-1])
    assert init_pages(memmap, last - 7, last + 1, 0, 2) == 8


def staged(spec):
    """Everything before hugetlb_init (the HVO budget is given out in prepare)."""
    result = prepare(parse_spec(spec, cmdline=POOL))
    result.nodes = deferred_init(result.plan, result.memmap, result.zones)
    return result


def test_two_boots_at_once_share_one_mapping_budget():
    # Room for one boot's 300 pages (9 mappings each) and half of the other's: both give
    # out their budget before either maps (a barrier between), as two threads' boots do.
    before = hvo_budget.reserved()
    results, errors = [None, None], []
    decided = threading.Barrier(2)

    def one(slot):
        try:
            results[slot] = result = prepare(parse_spec("1x2G,cpus=1", cmdline=POOL))
            result.nodes = deferred_init(result.plan, result.memmap, result.zones)
            decided.wait()
            result.pools = hugetlb_init(result, result.hvo)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            decided.abort()

    with mappings_left(hvo_budget.MAP_COUNT_MARGIN + 4000):
        threads = [threading.Thread(target=one, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    first, second = sorted(results, key=lambda r: -r.hvo.budget)
    # The second saw the first's 2700 mappings as taken, and took what was left.
    assert first.hvo.buddy_units[9] == 300 and second.hvo.budget <= first.hvo.budget - 2700
    assert second.hvo.buddy_units[9] == second.hvo.budget // 9 < 300
    pages = [r.hvo.buddy_units[9] for r in results]
    # Every page given out was remapped: none had to fall back.
    assert [r.pools.remapper.remapped for r in results] == pages
    assert [r.pools.kept_vmemmap for r in results] == [0, 0]
    assert hvo_budget.reserved() == before
    assert all(verify(r).ok for r in results)


def test_pages_the_process_has_no_mappings_for_keep_their_descriptors():
    # The budget was given out before deferred init; then something else in the process
    # takes all but enough for the 2 MiB pages and one of the two 1 GiB pages.
    result = prepare(parse_spec("2x4G,cpus=2", cmdline="hugepagesz=1G hugepages=0:1,1:1 "
                                                       + POOL))
    assert result.hvo.buddy_units == {9: 300} and result.hvo.gigantic == (True, True)
    result.nodes = deferred_init(result.plan, result.memmap, result.zones)
    with mappings_left(300 * 9 + 4097 + 200):
        result.pools = hugetlb_init(result, result.hvo)
    remapper = result.pools.remapper
    assert result.pools.kept_vmemmap >= 1 and remapper.remapped >= 300
    assert remapper.remapped + result.pools.kept_vmemmap == 302
    assert verify(result).ok
