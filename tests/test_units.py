"""Rounding and byte amounts written once (fastinit.units), and 2 MiB derived from one order."""

import numpy as np
import pytest

from fastinit import layout
from fastinit.arrays import touch
from fastinit.machine import hugetlb_sizes
from fastinit.mm import plan
from fastinit.units import align_up, div_up, gib


@pytest.mark.parametrize("value, step, up", [(0, 8, 0), (1, 8, 1), (8, 8, 1), (9, 8, 2),
                                             (-1, 8, 0), (2**70 + 1, 2**70, 2)])
def test_div_up_rounds_towards_plus_infinity_on_python_ints(value, step, up):
    assert div_up(value, step) == up
    assert align_up(value, step) == up * step


def test_rounding_works_on_arrays_as_on_ints():
    values = np.array([0, 1, 511, 512, 513], np.int64)
    assert div_up(values, 512).tolist() == [0, 1, 1, 1, 2]
    assert align_up(values, 512).tolist() == [0, 512, 512, 512, 1024]


def test_gib_prints_two_decimals():
    assert gib(3 << 29) == "1.50 GiB"
    assert gib(0) == "0.00 GiB"


def test_every_spelling_of_2_mib_is_the_one_pmd_order():
    # Five spellings once held 2 MiB apart, with nothing asserting they agree.
    order = layout.HPAGE_PMD_ORDER
    assert layout.HPAGE_PMD_SIZE == layout.PAGE_SIZE << order == 2 << 20
    assert layout.HPAGE_PMD_NR == 1 << order
    assert layout.PAGEBLOCK_ORDER == order
    assert layout.PAGEBLOCK_NR_PAGES << layout.PAGE_SHIFT == layout.HPAGE_PMD_SIZE
    assert hugetlb_sizes.ORDER_2M == order
    assert plan.MEMMAP_ALIGN << layout.PAGE_SHIFT == layout.HPAGE_PMD_SIZE
    # A section's vmemmap is one PMD: 32768 descriptors of 64 bytes.
    assert layout.SECTION_MAP_PAGES == layout.HPAGE_PMD_NR
    # First touch works in whole huge pages of that size.
    assert touch.HPAGE_PMD_SIZE == layout.HPAGE_PMD_SIZE


def test_gigantic_orders_start_past_the_buddy_allocators_orders():
    # Not a restated 11: the first order the buddy allocator cannot hand out.
    assert hugetlb_sizes.GIGANTIC_MIN_ORDER == layout.NR_ORDERS == layout.MAX_ORDER + 1
    assert hugetlb_sizes.ORDER_1G >= hugetlb_sizes.GIGANTIC_MIN_ORDER > hugetlb_sizes.ORDER_2M
