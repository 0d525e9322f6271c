"""The kernel command-line parser: split as next_arg() splits, numbers as memparse() reads
them, each option the machine model applies, and the kernel's treatment of bad values."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastinit.machine import e820
from fastinit.machine.cmdline import (CoreSize, Crashkernel, E820Edit, NumaFake, parse_cmdline,
                                      split_params)
from fastinit.machine.numbers import memparse, strtoull

G, M, K = 1 << 30, 1 << 20, 1 << 10


@pytest.mark.parametrize("text, value, rest", [
    ("64M", 64 * M, ""), ("2G", 2 * G, ""), ("1T", 1 << 40, ""), ("4k", 4 * K, ""),
    ("0x1000", 0x1000, ""), ("010", 8, ""), ("4096", 4096, ""), ("12K$0x100", 12 * K, "$0x100"),
    ("abc", 0, "abc"), ("0x", 0, "x"), ("1E", 1 << 60, ""), ("M", 0, ""),
])
def test_memparse_reads_numbers_as_the_kernel(text, value, rest):
    assert memparse(text) == (value, rest)


def test_memparse_refuses_more_than_64_bits():
    with pytest.raises(ValueError, match="64 bits"):
        memparse("16E")
    with pytest.raises(ValueError, match="64 bits"):
        strtoull("1" * 30)


def test_split_params_quotes_and_double_dash():
    assert split_params('a=1  b "c=x y" d="p q" -- mem=1G') == \
        [("a", "1"), ("b", None), ("c", "x y"), ("d", "p q")]


def test_mem_and_plain_memmap_limit_ram():
    cmdline = parse_cmdline("mem=2372M memmap=3G")
    assert cmdline.e820_edits == (E820Edit("limit", start=2372 * M, option="mem=2372M"),
                                  E820Edit("limit", start=3 * G, option="memmap=3G"))


@pytest.mark.parametrize("option, edit", [
    ("memmap=64M$0x50000000", E820Edit("add", 0x50000000, 64 * M, e820.E820_RESERVED)),
    ("memmap=16M#1536M", E820Edit("add", 1536 * M, 16 * M, e820.E820_ACPI)),
    ("memmap=8G!8G", E820Edit("add", 8 * G, 8 * G, e820.E820_PRAM)),
    ("memmap=1G@4G", E820Edit("add", 4 * G, G, e820.E820_RAM)),
    ("memmap=1M%0x100000-1+2", E820Edit("update", M, M, 2, 1)),
    ("memmap=1M%0x100000+2", E820Edit("add", M, M, 2)),
    ("memmap=1M%0x100000-1", E820Edit("remove", M, M, None, 1)),
    ("memmap=exactmap", E820Edit("exactmap")),
])
def test_memmap_forms(option, edit):
    (got,) = parse_cmdline(option).e820_edits
    assert got == E820Edit(edit.kind, edit.start, edit.size, edit.type, edit.from_type, option)


def test_memmap_comma_list_keeps_order_and_skips_pieces_without_a_number():
    edits = parse_cmdline("memmap=exactmap,636K@0,junk,256M@1M").e820_edits
    assert [(e.kind, e.start, e.size) for e in edits] == \
        [("exactmap", 0, 0), ("add", 0, 636 * K), ("add", M, 256 * M)]


@pytest.mark.parametrize("text, kernelcore, movablecore", [
    ("kernelcore=50%", CoreSize(percent=50), None),
    ("kernelcore=512M", CoreSize(pages=512 * M >> 12), None),
    ("movablecore=0x40000000", None, CoreSize(pages=G >> 12)),
    ("kernelcore=1G kernelcore=25%", CoreSize(pages=1 << 18, percent=25), None),
    ("kernelcore=25% kernelcore=1G", CoreSize(pages=1 << 18), None),
    ("kernelcore=mirror2", CoreSize(), None),  # not "mirror": a size of 0 bytes
])
def test_kernelcore_and_movablecore(text, kernelcore, movablecore):
    cmdline = parse_cmdline(text)
    assert (cmdline.kernelcore, cmdline.movablecore) == (kernelcore, movablecore)


def test_kernelcore_mirror_is_refused_naming_the_option():
    with pytest.raises(ValueError, match="kernelcore=mirror.*remove the option"):
        parse_cmdline("quiet kernelcore=mirror")


@pytest.mark.parametrize("text, fake", [
    ("numa=fake=4", NumaFake(nodes=4)), ("numa=fake=512M", NumaFake(size=512 * M)),
    ("numa=fake=2U", NumaFake(nodes=2, uniform=True)),
    ("numa=fake=512m", NumaFake(nodes=512)),  # only upper-case M or G make a size
])
def test_numa_fake_forms(text, fake):
    assert parse_cmdline(text).numa_fake == fake


def test_numa_off_and_noacpi():
    assert parse_cmdline("numa=off").numa_off
    assert parse_cmdline("numa=noacpi").numa_noacpi
    assert not parse_cmdline("numa=offline_is_not_a_word").numa_noacpi


@pytest.mark.parametrize("text, ram, crash", [
    ("crashkernel=256M", None, Crashkernel(256 * M)),
    ("crashkernel=96M@512M", None, Crashkernel(96 * M, 512 * M)),
    ("crashkernel=1G,high crashkernel=128M,low", None, Crashkernel(G, 0, True, 128 * M)),
    ("crashkernel=1G,high crashkernel=64M", None, Crashkernel(64 * M)),  # plain wins
    ("crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M", 8 * G, Crashkernel(256 * M)),
    ("crashkernel=1G-4G:192M,4G-:512M@64M", 2 * G, Crashkernel(192 * M, 64 * M)),
    ("crashkernel=1G-4G:192M", 512 * M, None),
])
def test_crashkernel_forms(text, ram, crash):
    assert parse_cmdline(text, ram).crashkernel == crash


def test_bad_values_are_dropped_with_the_kernels_warning():
    cmdline = parse_cmdline("mem mem=0 numa mem=nopentium mem=1G")
    assert cmdline.warnings == ("Malformed early option 'mem'", "Malformed early option 'mem'",
                                "Malformed early option 'numa'",
                                "mem=nopentium ignored! (only supported on x86_32)")
    assert [e.start for e in cmdline.e820_edits] == [G]


def test_unknown_options_are_kept_for_later_users_and_ignored_here():
    cmdline = parse_cmdline("hugepagesz=1G hugepages=2 hugepagesz=2M hugepages=0:5,1:7 quiet")
    assert cmdline.values("hugepages") == ["2", "0:5,1:7"]
    assert cmdline.values("hugepagesz") == ["1G", "2M"]
    assert not cmdline.e820_edits and cmdline.warnings == ()


def test_dashes_and_underscores_name_the_same_parameter():
    assert parse_cmdline("hugetlb-free-vmemmap=on").values("hugetlb_free_vmemmap") == ["on"]


def test_command_line_that_no_kernel_takes_is_refused():
    with pytest.raises(ValueError, match="at most 2048"):
        parse_cmdline("x" * 9000)
    with pytest.raises(TypeError):
        parse_cmdline(b"mem=1G")


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="memap=krnlcovbufGMK0123456789x$#!@%,-+: \"", max_size=80))
def test_any_text_parses_or_fails_with_a_value_error(text):
    try:
        cmdline = parse_cmdline(text)
    except ValueError as error:
        assert str(error)
        return
    for edit in cmdline.e820_edits:
        assert edit.kind in ("limit", "add", "update", "remove", "exactmap")
        assert 0 <= edit.start < 1 << 64 and 0 <= edit.size < 1 << 64
