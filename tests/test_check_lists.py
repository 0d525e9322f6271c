"""The free-list walk trusts no link: every address maps to a descriptor or is refused."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit.kernels.descriptors import lru_address
from fastinit.kernels.check_lists import descriptor_of_link
from fastinit.layout import MAX_PFN, PAGES_PER_SECTION, VMEMMAP_START

SECTIONS = np.array([0, 3, 4, 2**25 - 1], np.int64)  # the last is the highest section
SECTIONS.flags.writeable = False


def naive_descriptor(address):
    offset = address - (VMEMMAP_START + 8)
    if offset < 0 or offset % 64 or offset // 64 >= MAX_PFN:
        return -1
    pfn = offset // 64
    slots = np.flatnonzero(SECTIONS == pfn // PAGES_PER_SECTION)
    return int(slots[0]) * PAGES_PER_SECTION + pfn % PAGES_PER_SECTION if len(slots) else -1


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(0, 2**64 - 1),
                 st.integers(0, MAX_PFN - 1).map(lambda p: int(lru_address(p))),
                 st.sampled_from([0, VMEMMAP_START, VMEMMAP_START + 8, 2**64 - 1,
                                  int(lru_address(MAX_PFN)), int(lru_address(MAX_PFN - 1))])))
def test_a_link_is_a_present_descriptor_or_refused(address):
    assert descriptor_of_link(SECTIONS, np.uint64(address)) == naive_descriptor(address)


def test_links_of_present_sections_find_their_slot():
    for slot, section in enumerate(SECTIONS.tolist()):
        for offset in (0, 1, PAGES_PER_SECTION - 1):
            address = lru_address(section * PAGES_PER_SECTION + offset)
            assert descriptor_of_link(SECTIONS, address) == slot * PAGES_PER_SECTION + offset
