"""Stable point releases in the rules table: a row backported to (or reverted in) a stable
series holds from its point release on, read from the log's ``Linux version`` line (the
uname release, or the distribution's own point release after the build number), and the
series' newest point release when only x.y or x.y.0 is known."""

import pytest

from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.kernel_rules import parse_version, rules_in_log
from fastinit.machine.spec import parse_spec
from fastinit.machine.zones import arch_zone_windows, zone_movable_pfns
from fastinit.mm.plan import plan_boot
from fastinit.report.hugetlb import kernel_lines

DEBIAN_5_10 = ("Linux version 5.10.0-32-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian "
               "10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP "
               "Debian 5.10.223-1 (2024-08-10)")
UBUNTU_5_15 = ("Linux version 5.15.0-91-generic (buildd@lcy02-amd64-045) (gcc (Ubuntu 11.4.0-"
               "1ubuntu1~22.04) 11.4.0) #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023 (Ubuntu "
               "5.15.0-91.101-generic 5.15.131)")
MAP = """\
BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable
"""


@pytest.mark.parametrize("line, patch", [
    (DEBIAN_5_10, 223), (UBUNTU_5_15, 131),
    ("Linux version 6.12.117+deb13-amd64 (gcc 14.2.0) #1 SMP Debian 6.12.117-1", 117),
    ("Linux version 5.10.12 (gcc 10.2.1) #1 SMP", 12),
    ("Linux version 5.10.0-32-amd64 (gcc-10 (Debian 10.2.1-6) 10.2.1)", None),
])
def test_the_point_release_comes_from_the_uname_release_or_the_distributions_suffix(line, patch):
    assert rules_in_log(line + "\n").patch == patch


def test_a_backport_holds_from_its_point_release_and_the_newest_when_unknown():
    assert not parse_version("5.10.109").has("movable_none_past_node_end")
    assert parse_version("5.10.110").has("movable_none_past_node_end")
    assert parse_version("5.10").has("movable_none_past_node_end")
    assert rules_in_log(DEBIAN_5_10).has("movable_none_past_node_end")
    # Backported, then reverted: only 5.10.11 to 5.10.13 kept page 0 as RAM.
    assert [parse_version(f"5.10.{p}").has("page0_e820_ram") for p in (10, 11, 13, 14)] == \
        [False, True, True, False]
    assert not parse_version("5.10").has("page0_e820_ram")
    assert not parse_version("6.1.12").has("page0_e820_ram")


def test_json_says_which_point_release_chose_the_backports():
    assert rules_in_log(DEBIAN_5_10).to_json()["rules"] == "5.8 with 5.10.223's backports"
    assert parse_version("5.10").to_json()["rules"] == \
        "5.8 with 5.10.y's backports (point release unknown: the newest)"
    assert parse_version("6.12").to_json()["rules"] == "6.12"


def test_page_0_is_node_0s_first_page_only_between_5_10_11_and_5_10_13():
    first = {version: parse_bootlog(f"Linux version {version} (gcc) #1 SMP\n" + MAP)
             .nodes[0].ranges[0][0] for version in ("5.10.12", "5.10.14", "7.2.13")}
    assert first == {"5.10.12": 0, "5.10.14": 1, "7.2.13": 1}


def test_a_movable_start_past_its_nodes_end_is_kept_before_ddbc84f3f595():
    # Node 1 is all kernel memory: its start rounds up past its end.
    nodes = {0: [(256, 100_000)], 1: [(100_000, 100_500)]}
    windows = arch_zone_windows(256, 100_500)
    kernelcore = parse_cmdline(f"kernelcore={90_000 * 4}K").kernelcore
    after = zone_movable_pfns(nodes, windows, kernelcore, None)
    before = zone_movable_pfns(nodes, windows, kernelcore, None, past_end=True)
    assert set(after) == {0} and before[0] == after[0]
    assert before[1] >= nodes[1][-1][1] and before[1] % 1024 == 0


def test_hugetlb_report_lines_follow_the_generation():
    def lines(version):
        topology = parse_spec("1x2G,cpus=2", cmdline="hugepages=4",
                              kernel=parse_version(version))
        return [line for line in kernel_lines(plan_boot(topology)) if "registered" in line
                or "vmemmap" in line]
    # A spec's CPU has 1 GiB pages: that size is registered first, with none allocated.
    assert lines("5.10.223") == ["HugeTLB registered 1.00 GiB page size, pre-allocated 0 pages",
                                 "HugeTLB registered 2.00 MiB page size, pre-allocated 4 pages"]
    assert lines("6.1")[2:] == ["HugeTLB: registered 2.00 MiB page size, pre-allocated 4 pages",
                                "HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page"]


def test_a_5_10_log_without_the_colon_still_says_its_cpu_has_1_gib_pages():
    from fastinit.machine.hugetlb_sizes import gbpages_in_log
    assert gbpages_in_log("HugeTLB registered 1.00 GiB page size, pre-allocated 0 pages\n")
