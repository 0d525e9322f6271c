"""The rules table by kernel version: chosen by the log's 'Linux version' line, by --linux,
the newest otherwise; every row dated and sourced."""

import json

import pytest

from cli_run import run
from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.kernel_rules import (NEWEST, OLDEST, RULES, SAME_IN_EVERY_GENERATION,
                                          KernelRules, parse_version, rules_in_log)

MAP = """\
BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable
"""


def test_every_row_is_dated_sourced_and_named_once():
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        assert rule.since is None or OLDEST <= rule.since <= NEWEST
        # A row no mainline release has lives only in stable point releases.
        assert rule.since is not None or rule.stable
        assert rule.now and rule.before and rule.source


def test_what_stays_the_same_is_sourced_and_no_row_says_otherwise():
    names = [same.name for same in SAME_IN_EVERY_GENERATION]
    assert len(names) == len(set(names))
    assert not set(names) & {rule.name for rule in RULES}
    for same in SAME_IN_EVERY_GENERATION:
        assert same.what and same.source


@pytest.mark.parametrize("line, release", [
    ("Linux version 6.12.117+deb13-amd64 (debian-kernel@lists.debian.org) (gcc 14)", (6, 12)),
    ("[    0.000000] Linux version 5.10.0-32-amd64 (debian-kernel@lists.debian.org)", (5, 10)),
    ("<5>[    0.000000] Linux version 7.2.13+deb14-amd64 (x86_64-linux-gnu-gcc-14)", (7, 2)),
    ("Linux version 6.1 #1 SMP", (6, 1)),
])
def test_log_version_line_chooses_the_rules(line, release):
    rules = rules_in_log("junk\n" + line + "\n")
    assert rules.release == release and rules.from_log


def test_log_without_version_line_gets_the_newest_rules():
    assert rules_in_log(MAP) == KernelRules() and KernelRules().release == NEWEST


def test_each_generation_has_the_rows_up_to_its_release():
    assert not parse_version("6.1").has("numa_emu_generic")
    assert parse_version("6.12").has("numa_emu_generic")
    assert not parse_version("6.8").has("hugetlb_padata")
    assert parse_version("6.9.1").has("hugetlb_padata")
    assert parse_version("5.10.223").generation == "5.8 with 5.10.223's backports"
    assert parse_version("6.12").generation == "6.12"
    assert {r.name for r in parse_version("5.10").rules} == {"deferred_padata",
                                                             "movable_none_past_node_end"}


def test_asking_for_a_rule_that_does_not_exist_is_an_error():
    with pytest.raises(ValueError, match="no kernel rule 'numa_emu'"):
        parse_version("6.12").has("numa_emu")


@pytest.mark.parametrize("text, words", [("six", "is not a version"),
                                         ("4.19", "older than 5.8"), ("", "not a version")])
def test_bad_version_names_the_value_and_the_fix(text, words):
    with pytest.raises(ValueError, match=words):
        parse_version(text)


def test_an_older_kernels_log_still_reads_under_the_oldest_rules():
    rules = rules_in_log("Linux version 4.15.0-generic\n")
    assert rules.release == OLDEST and rules.version == "4.15.0-generic"


def test_log_topology_carries_its_kernel_and_linux_overrides_it():
    log = "Linux version 6.1.0-50-amd64 (gcc)\n" + MAP
    assert parse_bootlog(log).kernel.release == (6, 1)
    assert parse_bootlog(log, kernel=parse_version("6.12")).kernel.release == (6, 12)


def test_json_says_which_kernel_and_rules(tmp_path, capsys):
    log = tmp_path / "dmesg.txt"
    log.write_text("Linux version 6.12.117+deb13-amd64 (gcc)\n" + MAP)
    status, out, _ = run(capsys, "topology", "--dmesg", str(log), "--json")
    kernel = json.loads(out)["kernel"]
    assert status == 0 and kernel["version"] == "6.12.117+deb13-amd64"
    assert kernel["rules"] == "6.12" and kernel["from_log"]
    assert "numa_emu_generic" in kernel["behaviours"]
    status, out, _ = run(capsys, "topology", "--dmesg", str(log), "--json", "--kernel", "5.10")
    assert json.loads(out)["kernel"]["rules"] == \
        "5.8 with 5.10.y's backports (point release unknown: the newest)"


def test_cli_refuses_a_bad_version_with_exit_2(capsys):
    status, _, err = run(capsys, "topology", "--spec", "1x1G", "--linux", "4.1")
    assert status == 2 and "older than 5.8" in err


def test_reports_name_the_generation_and_where_it_ends():
    assert parse_version("6.1").describe() == "Linux 6.1: rules of 6.0 until 6.4"
    assert KernelRules().describe().endswith("the newest")
    log = "Linux version 6.12.117+deb13-amd64 (gcc)\n" + MAP
    assert parse_bootlog(log).kernel.describe() == \
        "Linux 6.12.117+deb13-amd64 (from the log): rules of 6.12 until 6.15"


@pytest.mark.parametrize("log", ["Linux version 5.10.0-32-amd64 (gcc)\n",
                                 "Linux version 3.15.0-rc6+ (gcc)\n", ""])
def test_a_memmap_file_keeps_the_kernel_its_machine_was_modelled_with(log):
    # Its reservations and jobs depend on it: verify must model the file's machine alike.
    from fastinit.mm.memmap_meta import topology_from_json, topology_to_json
    topology = parse_bootlog(log + MAP)
    again = topology_from_json(json.loads(json.dumps(topology_to_json(topology))))
    assert again.kernel == topology.kernel and again.reserved == topology.reserved
