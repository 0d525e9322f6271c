"""Every captured real-kernel boot (tests/data/qemu) boots and verifies, and its parallel
deferred init equals the serial one: the corpus holds the layouts that broke the boot model
or verify (node boundaries inside sections and pageblocks, memmaps that do not fit above
16 MiB).

The dmesg logs of tests/data/dmesg are booted and verified by tests/test_boot.py."""

import numpy as np
import pytest

import qemu_oracle as qo
from fastinit.layout import PAGE_BUDDY_MAPCOUNT
from fastinit.machine.bootlog import parse_bootlog
from fastinit.mm.deferred import deferred_init
from fastinit.mm.run import boot, prepare
from fastinit.mm.verify import verify
from perf_scripts import perf_script
from qemu_oracle.corpus import CORPUS, cases


def _topology(path):
    case = qo.load_case(path)
    return parse_bootlog(qo.read_report(case.serial).console, str(path))


def _after_deferred_init(topology, threads, kernel):
    """The boot up to the end of deferred init (HugeTLB pools come after: which free
    block a huge page takes depends on the free lists' order, as in the kernel)."""
    result = prepare(topology, threads=threads, kernel=kernel)
    deferred_init(result.plan, result.memmap, result.zones, kernel=kernel)
    words = result.memmap.pages.view(np.uint64).reshape(-1, 8).copy()
    # List order depends on which chunk finished first: free-block heads' links aside.
    words[result.memmap.pages["mapcount"] == PAGE_BUDDY_MAPCOUNT, 1:3] = 0
    zones = {key: (area.nr_free.tolist(), area.managed) for key, area in result.zones.items()}
    return words, result.memmap.pageblock_mt.copy(), zones


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.name)
def test_captured_boot_boots_and_verifies(path):
    report = verify(boot(_topology(path), threads=4))
    assert report.ok, report.problems


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.name)
def test_captured_boot_parallel_deferred_init_equals_serial(path):
    topology = _topology(path)
    words, pageblocks, zones = _after_deferred_init(topology, 1, "plain")
    ours = _after_deferred_init(topology, 4, "stream")
    assert np.array_equal(words, ours[0])
    assert np.array_equal(pageblocks, ours[1])
    assert zones == ours[2]


def test_the_oracle_campaign_boots_and_verifies_what_it_compares():
    campaign = perf_script("oracle_campaign")
    case = qo.load_case(CORPUS / "seed-109")
    console = qo.read_report(case.serial).console
    assert campaign.boot_and_verify(console) == {"verify": "ok", "verify_problems": []}
    refused = campaign.boot_and_verify("Linux version 6.1\nno memory map here\n")
    assert refused["verify"] == "refused"
    assert "no e820 memory map found" in refused["verify_problems"][-1]
    records = [{"seed": 1, "status": "match", "verify": "ok"},
               {"seed": 2, "status": "mismatch", "verify": "failed"},
               {"seed": 3, "status": "boot-failed"}]
    summary = campaign.summarize(records)
    assert summary["boots_and_verifies"] == 1 and summary["verify_failed_seeds"] == [2]
