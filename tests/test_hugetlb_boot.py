"""Boots with HugeTLB boot pools: the issue's example end to end, verify catching what is
wrong, parallel equal to one thread, HVO within its mapping budget, and what is refused."""

import json

import numpy as np
import pytest

from fastinit.cli import main
from fastinit.kernels.descriptors import lru_address
from fastinit.machine.spec import parse_spec
from fastinit.mm.hugetlb import hvo
from fastinit.mm.deferred import deferred_init
from fastinit.mm.hugetlb.jobs import hugetlb_init
from fastinit.mm.run import boot, prepare
from fastinit.mm.verify import verify

EXAMPLE = ("hugepagesz=1G hugepages=0:2,1:3 hugepagesz=2M hugepages=1000 "
           "hugetlb_free_vmemmap=on")
SMALL = "hugepagesz=1G hugepages=0:1,1:1 hugepagesz=2M hugepages=300"


def small(extra="", spec="2x4G,cpus=2"):
    return parse_spec(spec, cmdline=SMALL + extra)


def problems(result, name="HugeTLB pools"):
    return [p for check in verify(result).checks if check.name == name for p in check.problems]


def test_the_issue_example_boots_verifies_and_reports_per_node_counts(capsys):
    status = main(["boot", "--spec", "2x16G,cpus=4", "--cmdline", EXAMPLE, "--verify",
                   "--json"])
    document = json.loads(capsys.readouterr().out)
    assert status == 0 and document["verified"]
    assert [n["hugepages"] for n in document["nodes"]] == [
        {"2048kB": 500, "1048576kB": 2}, {"2048kB": 500, "1048576kB": 3}]
    hvo_figures = document["hugetlb"]["hvo"]
    assert hvo_figures["pages_remapped"] == 1005
    assert hvo_figures["memmap_resident_bytes"] == hvo_figures["memmap_ideal_bytes"]
    assert "HugeTLB: registered 2.00 MiB page size, pre-allocated 1000 pages" in \
        document["hugetlb"]["lines"]


def test_boot_prints_the_kernels_lines_and_counts_in_the_node_table(capsys):
    assert main(["boot", "--spec", "2x4G,cpus=2", "--cmdline", SMALL, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "HugeTLB: registered 1.00 GiB page size, pre-allocated 2 pages" in out
    assert "HugeTLB: 28 KiB vmemmap can be freed for a 2.00 MiB page" in out
    assert "hugepage_allocation_threads=" in out
    header = next(line for line in out.splitlines() if line.startswith("node threads"))
    assert header.split()[-2:] == ["2048kB", "1048576kB"]


def test_a_node_out_of_room_is_named_as_an_upper_bound_in_the_report_and_json(capsys):
    argv = ["boot", "--spec", "1x512M+1x4G", "--cmdline", "hugepagesz=2M hugepages=0:400,1:3",
            "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fastinit: node 0's 2.00 MiB count is an upper bound: it ran out of room" in out
    assert "node 1's" not in out
    assert main(argv + ["--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["hugetlb"]["upper_bounds"] == [{"nid": 0, "size": "2048kB"}]
    assert main(["topology", "--spec", "1x512M+1x4G", "--cmdline",
                 "hugepagesz=2M hugepages=0:400,1:3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hugepages_upper_bounds"] == [
        {"nid": 0, "size": "2048kB"}]


def test_a_boot_without_hugetlb_options_prints_no_hugetlb_lines(capsys):
    assert main(["boot", "--spec", "1x2G", "--no-progress", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["nodes"][0]["hugepages"] == {"2048kB": 0, "1048576kB": 0}
    assert main(["boot", "--spec", "1x2G", "--no-progress"]) == 0
    assert "HugeTLB" not in capsys.readouterr().out


def test_pools_without_hvo_verify_and_write_every_tail():
    result = boot(small())
    assert verify(result).ok
    assert result.pools.counts() == {0: {18: 1, 9: 150}, 1: {18: 1, 9: 150}}
    pfn = int(result.pools.heads(18)[0])
    index = result.memmap.index(pfn)
    tails = result.memmap.pages["lru_next"][index + 1:index + (1 << 18)]
    assert np.all(tails == np.uint64(lru_address(0) - 8 + pfn * 64 + 1))


def run_pools(topology, threads):
    result = prepare(topology)
    result.nodes = deferred_init(result.plan, result.memmap, result.zones)
    result.pools = hugetlb_init(result, result.hvo, threads=threads)
    return result


def test_pools_on_one_thread_equal_pools_on_two():
    one, two = (run_pools(small(" hugetlb_free_vmemmap=on"), threads) for threads in (1, 2))
    assert one.pools.jobs["alloc"].nworks == 1
    assert one.pools.counts() == two.pools.counts()
    for key in one.zones:
        assert one.zones[key].free_by_order() == two.zones[key].free_by_order()
        assert one.zones[key].managed == two.zones[key].managed
    assert verify(one).ok and verify(two).ok


def test_hvo_beyond_the_mapping_budget_leaves_the_rest_unoptimized(monkeypatch):
    # Room for 100 2 MiB pages (9 mappings each) and no gigantic page.
    monkeypatch.setattr("fastinit.mm.hugetlb.hvo_budget.map_count_budget", lambda: 900)
    result = boot(small(" hugetlb_free_vmemmap=on"))
    assert result.hvo.buddy_units == {9: 100} and result.hvo.gigantic == (False, False)
    assert result.pools.remapper.remapped == 100
    assert verify(result).ok


def test_hvo_releases_the_tail_pages_and_they_read_as_the_kept_one():
    result = boot(small(" hugetlb_free_vmemmap=on"))
    remapper = result.pools.remapper
    assert remapper.released_bytes == 300 * 7 * 4096 + 2 * 4095 * 4096
    assert hvo.resident_bytes(result.memmap, remapper) == \
        result.memmap.pages.nbytes - remapper.released_bytes
    pfn = int(result.pools.heads(9)[0])
    words = result.memmap.words
    first = result.memmap.index(pfn) * 8
    assert np.array_equal(words[first + 64 * 8:first + 128 * 8], words[first:first + 64 * 8])


def test_hvo_closes_its_memfd_once_the_pools_are_ready():
    result = boot(small(" hugetlb_free_vmemmap=on"))
    remapper = result.pools.remapper
    assert remapper.remapped == 302 and remapper.fd == -1
    # The mappings outlive the memfd: a 1 GiB page's last vmemmap page reads as its first.
    pfn = int(result.pools.heads(18)[0])
    first = result.memmap.index(pfn) * 8
    words = result.memmap.words
    assert np.array_equal(words[first + 4095 * 512:first + 4096 * 512], words[first:first + 512])


def test_early_init_skips_the_tails_of_remapped_gigantic_pages():
    result = prepare(small(" hugetlb_free_vmemmap=on"))
    # Memory below the deferral point is initialized early, reserved or not (memmap_init).
    pfn = next(pfn for pfn, _, nid in result.plan.pools.gigantic
               if pfn >= result.plan.node(nid).first_deferred_pfn)
    index = result.memmap.index(pfn)
    pages = result.memmap.pages
    assert pages["refcount"][index + 63] == 1  # the kept page: written
    assert not np.any(pages["flags"][index + 64:index + (1 << 18)])  # never written


def test_verify_catches_a_broken_compound_head():
    result = boot(small())
    pfn = int(result.pools.heads(9)[7])
    result.memmap.pages["lru_next"][result.memmap.index(pfn) + 300] += np.uint64(64)
    assert any("compound_head of a tail" in p for p in problems(result))


def test_verify_catches_a_page_missing_from_its_free_list():
    result = boot(small())
    pages, memmap = result.memmap.pages, result.memmap
    pfn = int(result.pools.heads(18)[0])
    pages["lru_next"][memmap.index(pfn)] = lru_address(pfn)
    assert any("free list" in p for p in problems(result))


def test_verify_catches_a_remapped_page_that_is_no_longer_an_alias():
    result = boot(small(" hugetlb_free_vmemmap=on"))
    remapper = result.pools.remapper
    first, _ = remapper.aliases[0]
    address = remapper.base + (first + 3) * 4096
    import mmap as mmap_module
    hvo._libc.mmap(address, 4096, mmap_module.PROT_READ | mmap_module.PROT_WRITE,
                   mmap_module.MAP_PRIVATE | mmap_module.MAP_ANONYMOUS | hvo._MAP_FIXED, -1, 0)
    found = problems(result)
    assert any("not mappings of their kept page" in p for p in found)
    assert any("reads unlike the kept one" in p for p in found)


def test_verify_catches_managed_pages_the_pools_did_not_give_back():
    result = boot(small())
    key = next(iter(result.pools.managed_added))
    result.zones[key].managed -= 1
    assert any("managed" in p for p in problems(result, "canonical buddy state"))


def test_a_memmap_remapped_by_hvo_is_not_booted_again():
    topology = small(" hugetlb_free_vmemmap=on")
    result = boot(topology)
    with pytest.raises(ValueError, match="remapped by HVO"):
        boot(topology, memmap=result.memmap)
