"""The HugeTLB options read as Linux 6.1's handlers read them: order matters, sizes the CPU
lacks are refused, mistakes get the kernel's own warnings."""

import pytest

from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.hugetlb_params import parse_hugetlb
from fastinit.machine.kernel_rules import parse_version
from fastinit.machine.hugetlb_sizes import (ORDER_1G, ORDER_2M, HugepageRequest, gbpages_in_log,
                                            size_text)


def hugetlb(text, gbpages=True, nodes=(0, 1)):
    return parse_hugetlb(parse_cmdline(text), nodes, gbpages)


def test_sizes_and_counts_per_node_and_spread():
    params = hugetlb("hugepagesz=1G hugepages=0:2,1:3 hugepagesz=2M hugepages=1000 "
                     "hugetlb_free_vmemmap=on")
    assert params.hstates == (HugepageRequest(ORDER_1G, 5, ((0, 2), (1, 3)), 0),
                              HugepageRequest(ORDER_2M, 1000, (), 0))
    assert params.free_vmemmap and params.default_order == ORDER_2M and not params.warnings


def test_without_options_the_kernel_registers_1g_then_2m_and_allocates_nothing():
    assert [r.order for r in hugetlb("quiet").hstates] == [ORDER_1G, ORDER_2M]
    assert [r.order for r in hugetlb("quiet", gbpages=False).hstates] == [ORDER_2M]
    assert not hugetlb("quiet").requested


def test_1g_without_pdpe1gb_is_refused_and_its_count_ignored():
    params = hugetlb("hugepagesz=1G hugepages=2 hugepagesz=2M hugepages=5", gbpages=False)
    assert params.warnings == ("HugeTLB: unsupported hugepagesz=1G",
                               "HugeTLB: hugepages=2 does not follow a valid hugepagesz, "
                               "ignoring")
    assert params.hstate(ORDER_2M).count == 5 and params.hstate(ORDER_1G) is None


def test_a_first_hugepages_without_size_is_the_default_size_and_wins():
    params = hugetlb("hugepages=5 hugepagesz=2M hugepages=7")
    assert params.hstate(ORDER_2M).count == 5
    assert params.warnings == (
        "HugeTLB: Ignoring hugepages=7 associated with 2.00 MiB page size",
        "HugeTLB: Using hugepages=5 for number of default huge pages")


def test_default_hugepagesz_after_a_count_makes_it_gigantic():
    params = hugetlb("hugepages=3 default_hugepagesz=1G")
    assert params.default_order == ORDER_1G
    assert params.hstate(ORDER_1G).count == 3 and params.hstate(ORDER_2M).count == 0


def test_default_hugepagesz_of_an_existing_size_does_not_redirect_hugepages():
    # hugetlb_add_hstate() returns early: the parsed size stays the last one (2M).
    params = hugetlb("hugepagesz=1G hugepagesz=2M default_hugepagesz=1G hugepages=4")
    assert params.hstate(ORDER_2M).count == 4 and params.hstate(ORDER_1G).count == 0


@pytest.mark.parametrize("text, warning", [
    ("hugepagesz=2M hugepages=0:1,x", "HugeTLB: Invalid hugepages parameter x"),
    ("hugepagesz=2M hugepages=7:1", "HugeTLB: Invalid hugepages parameter 7:1"),
    ("hugepagesz=2M hugepages=0:1,2", "HugeTLB: Invalid hugepages parameter 2"),
    ("hugepagesz=2M hugepages=3 hugepages=4", "HugeTLB: hugepages= specified twice without "
                                              "interleaving hugepagesz=, ignoring hugepages=4"),
    ("hugepagesz=2M hugepagesz=2M", "HugeTLB: hugepagesz=2M specified twice, ignoring"),
    ("hugepagesz=4M hugepages=2", "HugeTLB: unsupported hugepagesz=4M"),
    ("default_hugepagesz=2M default_hugepagesz=1G",
     "HugeTLB: default_hugepagesz previously specified, ignoring 1G"),
    ("hugetlb_free_vmemmap=maybe", "Booting kernel: `maybe' invalid for parameter "
                                   "`hugetlb_free_vmemmap'"),
])
def test_mistakes_get_the_kernels_warning_not_an_error(text, warning):
    assert warning in hugetlb(text).warnings


@pytest.mark.parametrize("count, rest", [("-5", "-5"), ("+5", "+5"), ("0:-1", "-1"),
                                         ("0:+1", "+1")])
def test_a_signed_count_is_invalid_as_for_the_kernels_percent_lu(count, rest):
    # vsscanf()'s unsigned conversion takes no sign: nothing converts.
    params = hugetlb(f"hugepagesz=2M hugepages={count}")
    assert f"HugeTLB: Invalid hugepages parameter {rest}" in params.warnings
    assert params.hstate(ORDER_2M).count == 0


def test_a_long_count_wraps_at_64_bits_over_every_digit():
    digits = "9" * 5000  # past int()'s 4300-digit limit, as a command line may be
    params = hugetlb(f"hugepagesz=2M hugepages={digits}")
    assert params.hstate(ORDER_2M).count == (pow(10, 5000, 2 ** 64) - 1) % 2 ** 64
    assert hugetlb("hugepagesz=2M hugepages=18446744073709551621").hstate(ORDER_2M).count \
        == 5


def test_an_invalid_count_clears_the_size():
    assert hugetlb("hugepagesz=2M hugepages=0:3,x").hstate(ORDER_2M) == \
        HugepageRequest(ORDER_2M, 0, (), 1)


def test_node_form_needs_an_online_node():
    assert hugetlb("hugepagesz=2M hugepages=1:4", nodes=(0, 1)).hstate(ORDER_2M).nodes == ((1, 4),)
    assert hugetlb("hugepagesz=2M hugepages=1:4", nodes=(0,)).hstate(ORDER_2M).count == 0


@pytest.mark.parametrize("value, on", [("on", True), ("off", False), ("1", True), ("0", False),
                                       ("Y", True), ("n", False), (None, True)])
def test_hugetlb_free_vmemmap_reads_as_a_kernel_bool(value, on):
    text = "hugetlb_free_vmemmap" + ("" if value is None else f"={value}")
    assert hugetlb(text).free_vmemmap is on


def test_trailing_text_after_a_count_is_ignored_as_sscanf_does():
    assert hugetlb("hugepagesz=2M hugepages=12abc").hstate(ORDER_2M).count == 12
    assert hugetlb("hugepagesz=2M hugepages=1,0:1").hstate(ORDER_2M).count == 1


def test_size_text_is_string_get_size():
    assert (size_text(ORDER_2M), size_text(ORDER_1G)) == ("2.00 MiB", "1.00 GiB")


def test_the_log_tells_whether_the_cpu_had_1g_pages():
    assert gbpages_in_log("HugeTLB: registered 1.00 GiB page size, pre-allocated 0 pages")
    assert gbpages_in_log("HugeTLB: unsupported hugepagesz=1024M") is False
    assert gbpages_in_log("HugeTLB: registered 2.00 MiB page size, pre-allocated 0 pages") \
        is False
    assert gbpages_in_log("node 0 deferred pages initialised in 3ms") is None


def test_a_cmdline_of_another_kind_is_a_type_error():
    with pytest.raises(TypeError, match="KernelCmdline"):
        parse_hugetlb("hugepages=3", [0])


@pytest.mark.parametrize("text, count", [("hugepages=1:140,2:98", 1), ("hugepages=0:x", 0),
                                         ("hugepages=-5", 0)])
def test_before_5_16_hugepages_is_its_leading_number_and_nothing_is_said(text, count):
    # Kernel rule hugepages_per_node; capture 5.10-seed-36.
    params = parse_hugetlb(parse_cmdline(f"hugepagesz=2M {text}"), [0, 1, 2],
                           kernel=parse_version("5.10"))
    request = params.hstate(ORDER_2M)
    assert (request.count, request.nodes, params.warnings) == (count, (), ())
    newer = parse_hugetlb(parse_cmdline(f"hugepagesz=2M {text}"), [0, 1, 2],
                          kernel=parse_version("5.16"))
    assert newer.hstate(ORDER_2M).nodes or newer.warnings
