"""Pool init at the write limit (kernels/hugetlb_stream.py): the streaming kernels equal
the naive field-by-field version where the old descriptors are what they assume, and whole
boots with streamed pools equal boots with the reference's plain stores byte for byte,
also where the boot freed memory in pieces (a real machine's reserved holes)."""

import shutil

import numpy as np
import pytest

from fastinit.kernels.descriptors import page_links
from fastinit.kernels.hugetlb_stream import stream_buddy_huge_pages, stream_gigantic_pages
from fastinit.layout import PAGE_DTYPE, PAGES_PER_SECTION
from fastinit.machine.bootlog import read_bootlog
from fastinit.machine.spec import parse_spec
from fastinit.mm.deferred import deferred_init
from fastinit.mm.hugetlb import prep
from fastinit.mm.hugetlb.jobs import hugetlb_init
from fastinit.mm.run import prepare
from fastinit.mm.verify import verify
from naive_hugetlb import prep_huge_page
from test_compound import LINKS, reserved_sections

S = PAGES_PER_SECTION
DATA = __import__("pathlib").Path(__file__).parent / "data" / "dmesg"


def aligned(pages):
    """A copy of ``pages`` on a 64-byte boundary (streaming stores need whole lines)."""
    buffer = np.empty(pages.nbytes + 64, np.uint8)
    offset = -buffer.ctypes.data % 64
    copy = buffer[offset:offset + pages.nbytes].view(PAGE_DTYPE)
    copy[:] = pages
    return copy


def free_sections(count):
    """Descriptors of free buddy memory freed whole: not reserved, refcount 0."""
    pages, slots, base = reserved_sections(count)
    pages["flags"] = LINKS
    pages["refcount"] = 0
    return aligned(pages), slots, base


@pytest.mark.parametrize("tails, optimized", [(512, False), (64, True)])
def test_streamed_buddy_pages_equal_the_naive_version(tails, optimized):
    pages, slots, base = free_sections(1)
    heads = np.array([base, base + 1024, base + 4096], np.int64)
    expected = pages.copy()
    for pfn in heads.tolist():
        prep_huge_page(expected, slots, base, pfn, 9, tails, False, optimized)
    written = stream_buddy_huge_pages(pages.view(np.uint64), slots, base, heads, 9,
                                      tails, np.uint64(LINKS), optimized)
    assert written == 3 * tails
    assert np.array_equal(pages.view(np.uint8), expected.view(np.uint8))


@pytest.mark.parametrize("tails, optimized", [(1 << 18, False), (64, True)])
def test_streamed_gigantic_pages_equal_the_naive_version(tails, optimized):
    pages, slots, base = reserved_sections(8)
    pages = aligned(pages)
    expected = pages.copy()
    prep_huge_page(expected, slots, base, base, 18, tails, True, optimized)
    stream_gigantic_pages(pages.view(np.uint64), slots, base,
                          np.array([base], np.int64), 18, tails, np.uint64(LINKS), optimized)
    assert np.array_equal(pages.view(np.uint8), expected.view(np.uint8))


def test_only_max_order_blocks_free_whole_are_streamed():
    runs = np.array([[1024, 4096], [8192, 9216]], np.int64)
    heads = np.array([512, 1024, 3584, 4096, 8192, 8704, 9216], np.int64)
    assert prep.in_whole_blocks(runs, heads).tolist() == [False, True, True, False, True,
                                                          True, False]


def pools(topology, stream):
    """A boot on one thread per node: free lists get their blocks in the order threads
    finish (deferred init's chunks, HVO's freed vmemmap), so only one thread gives one
    byte-exact result."""
    result = prepare(topology, threads=1)
    result.nodes = deferred_init(result.plan, result.memmap, result.zones)
    result.pools = hugetlb_init(result, result.hvo, threads=1, stream=stream)
    return result


def with_cmdline(tmp_path, name, options):
    """A copy of a real boot log whose command line also holds ``options``."""
    path = tmp_path / name
    lines = (DATA / name).read_text().splitlines(keepends=True)
    path.write_text("".join(line.rstrip("\n") + " " + options + "\n"
                            if "Command line:" in line else line for line in lines))
    return path


# More 2 MiB pages than fit: the pools take every free 2 MiB block, also those the boot
# freed in pieces (beside the memmaps, the gigantic pages and firmware's holes).
@pytest.mark.parametrize("source, options", [
    ("2x2G,cpus=2", "hugepagesz=1G hugepages=0:1,1:1 hugepagesz=2M hugepages=5000"),
    ("2x2G,cpus=2", "hugepagesz=1G hugepages=0:1,1:1 hugepagesz=2M hugepages=5000 "
                    "hugetlb_free_vmemmap=on"),
    ("framework-laptop-i7-1165g7-6.2.txt", "hugepagesz=2M hugepages=100000"),
])
def test_streamed_pools_equal_the_reference_byte_for_byte(tmp_path, source, options):
    if source.endswith(".txt"):
        topology = read_bootlog(str(with_cmdline(tmp_path, source, options)))[0]
    else:
        topology = parse_spec(source, cmdline=options)
    streamed, plain = pools(topology, True), pools(topology, False)
    assert streamed.pools.counts() == plain.pools.counts()
    # Memory freed whole (streamed) and in pieces (plain stores) both hold pool pages.
    heads = streamed.pools.heads(9)
    known = np.zeros(len(heads), bool)
    for key in streamed.zones:
        known |= prep.in_whole_blocks(prep.whole_blocks(streamed.plan, key), heads)
    assert known.any() and not known.all()
    assert np.array_equal(streamed.memmap.raw, plain.memmap.raw)
    assert verify(streamed).ok
