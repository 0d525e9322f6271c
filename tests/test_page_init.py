"""init_pages_range against the naive reference, directly and through the padata engine."""

import numpy as np
import pytest

import naive
from fastinit import Job, do_multithreaded
from fastinit.kernels.page_init import init_pages_range
from fastinit.kernels.descriptors import page_links
from fastinit.layout import PAGE_DTYPE, PAGES_PER_SECTION

S = PAGES_PER_SECTION


def fresh(nr_slots):
    # Garbage, not zeros, so a field the kernel forgets to write shows up.
    raw = np.random.default_rng(7).integers(0, 255, nr_slots * S * 64, dtype=np.uint8)
    return raw.view(PAGE_DTYPE)


@pytest.mark.parametrize("start, end", [(0, 0), (0, 1), (5, 700), (S - 3, S + 9), (0, 3 * S)])
@pytest.mark.parametrize("reserved", [False, True])
def test_init_range_matches_naive(start, end, reserved):
    slots = np.array([2, 0, 1], np.int64)  # slots need not follow section order
    links = np.uint64(page_links(3, 2))
    got, want = fresh(3), fresh(3)
    assert init_pages_range(got, slots, 0, start, end, links, reserved) == end - start
    naive.init_pages_range(want, slots, 0, start, end, int(links), reserved)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8))


def test_init_range_skips_nothing_and_touches_nothing_outside():
    slots = np.array([0, -1, 1], np.int64)  # the middle section has no descriptors
    got = fresh(2)
    before = got.copy()
    links = np.uint64(page_links(0, 1))
    base = 10 * S
    init_pages_range(got, slots, base, base + 100, base + 200, links, False)
    init_pages_range(got, slots, base, base + 2 * S, base + 2 * S + 50, links, False)
    changed = np.flatnonzero(np.any(got.view(np.uint64).reshape(-1, 8)
                                    != before.view(np.uint64).reshape(-1, 8), axis=1))
    assert list(changed) == list(range(100, 200)) + list(range(S, S + 50))


def test_nogil_kernel_through_engine_equals_plain_loop():
    slots = np.arange(4, dtype=np.int64)
    links = np.uint64(page_links(1, 2))
    parallel, serial = fresh(4), fresh(4)

    def chunk(start, end, pages):
        init_pages_range(pages, slots, 0, start, end, links, False)

    report = do_multithreaded(Job(chunk, start=17, size=4 * S - 40, align=1024, min_chunk=1024,
                                  max_threads=2, fn_arg=parallel))
    assert len(report.chunks) > 1
    for pfn in range(17, 4 * S - 23):
        naive.init_single_page(serial, pfn, pfn, int(links), False)
    assert np.array_equal(parallel.view(np.uint8), serial.view(np.uint8))
