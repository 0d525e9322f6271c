"""verify catches what it claims to: each kind of corruption fails its check."""

import numpy as np
import pytest

from fastinit.mm.run import boot
from fastinit.layout import PAGE_BUDDY_MAPCOUNT
from fastinit.machine.spec import parse_spec
from fastinit.mm.verify import buddy_decomposition, verify


@pytest.fixture(scope="module")
def booted():
    return boot(parse_spec("1x2G,cpus=2"))


@pytest.fixture
def result(booted):
    saved = booted.memmap.raw.copy()
    heads = {k: a.heads.copy() for k, a in booted.zones.items()}
    yield booted
    booted.memmap.raw[:] = saved
    for key, area in booted.zones.items():
        area.heads[:] = heads[key]


def test_clean_boot_verifies(result):
    assert verify(result).ok


def test_changed_free_page_differs_from_serial_reference(result):
    result.memmap.pages["refcount"][result.memmap.index(300_000)] = 1
    problems = verify(result).problems
    assert any("serial reference" in p for p in problems)
    assert any("wrong state" in p for p in problems)


def test_broken_list_link_is_found(result):
    pages = result.memmap.pages
    heads = np.flatnonzero(pages["mapcount"] == PAGE_BUDDY_MAPCOUNT)
    pages["lru_next"][heads[5]] = pages["lru_next"][heads[7]]
    assert any("link is broken" in p for p in verify(result).problems)


def test_orphan_free_head_is_found(result):
    index = result.memmap.index(300_000)
    result.memmap.pages["mapcount"][index] = PAGE_BUDDY_MAPCOUNT
    result.memmap.pages["private"][index] = 0
    assert any("lists hold" in p for p in verify(result).problems)


def test_wrong_pageblock_type_is_found(result):
    result.memmap.pageblock_mt[200] = 0
    problems = verify(result).problems
    assert any("migratetype" in p for p in problems)


def test_buddy_decomposition_of_unaligned_range():
    assert buddy_decomposition(3, 16) == [(3, 0), (4, 2), (8, 3)]
    assert buddy_decomposition(0, 3072) == [(0, 10), (1024, 10), (2048, 10)]
