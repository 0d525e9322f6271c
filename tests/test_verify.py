"""verify catches what it claims to: each kind of corruption fails its check, counted as the
naive NumPy checks count it, and nothing in a forged memmap can crash it or make it run long."""

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import naive
from fastinit.kernels.descriptors import lru_address
from fastinit.layout import (MIGRATE_TYPES, PAGE_BUDDY_MAPCOUNT, PAGEBLOCK_NR_PAGES,
                             PAGES_PER_SECTION)
from fastinit.machine.bootlog import read_bootlog
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot
from fastinit.mm.verify import buddy_decomposition, check_free_lists, verify
from fastinit.mm.verify_report import Check
from fastinit.report.boot import verify_lines
from fixtures import restored, restoring

KVM_LOG = "tests/data/dmesg/kvm-512m-syslog-3.13.txt"
FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def booted():
    return boot(parse_spec("1x2G,cpus=2"))


@pytest.fixture(scope="module")
def logged():
    # A real log: free ranges start mid-pageblock in the deferred part, as --spec never has.
    return boot(read_bootlog(KVM_LOG)[0])


result = restoring("booted")
log_result = restoring("logged")


def test_clean_boot_verifies(result):
    report = verify(result)
    assert report.ok and [c.ok for c in report.checks] == [True] * 4
    assert report.tallies["checked"][0] == len(result.memmap.pages)


def test_clean_real_log_boot_verifies_on_one_and_two_threads(log_result):
    assert verify(log_result, threads=1).ok and verify(log_result, threads=2).ok


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


def tally(naive_pfns):
    return (len(naive_pfns), int(naive_pfns[0]) if len(naive_pfns) else -1)


@FUZZ
@given(st.data())
def test_random_byte_corruption_fails_and_is_counted_as_the_naive_checks_count(booted, data):
    with restored(booted):
        raw = booted.memmap.raw
        offsets = data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=1, max_size=3,
                                     unique=True))
        for offset in offsets:
            raw[offset] ^= data.draw(st.integers(1, 255))
        report = verify(booted)
        assert not report.ok
        assert report.tallies["wrong_state"] == tally(naive.wrong_descriptors(booted))
        assert report.tallies["not_canonical"] == tally(naive.misplaced_heads(booted))
        assert report.tallies["migratetype_wrong"] == tally(naive.wrong_pageblocks(booted))


@FUZZ
@given(st.integers(0, 2**62), st.integers(0, 63), st.sampled_from([1, 2]))
def test_one_flipped_bit_anywhere_fails_on_one_thread_and_two_alike(logged, offset, bit, threads):
    with restored(logged):
        raw = logged.memmap.raw
        raw[offset % len(raw)] ^= 1 << (bit % 8)
        one, two = verify(logged, threads=1), verify(logged, threads=threads)
        assert not one.ok
        assert one.problems == two.problems and one.tallies == two.tallies


@pytest.mark.parametrize("value", [MIGRATE_TYPES, 0x10, 0x7F, 0xFF])
def test_forged_pageblock_migratetype_is_reported_not_used(log_result, value):
    # Issue 9 item 4: the last pageblock's free range starts mid-pageblock, so the serial
    # reference would index its local lists with this byte.
    memmap = log_result.memmap
    for block in (len(memmap.pageblock_mt) - 1, 0, 100):
        before = int(memmap.pageblock_mt[block])
        memmap.pageblock_mt[block] = value
        report = verify(log_result)
        memmap.pageblock_mt[block] = before
        assert not report.checks[3].ok
        assert any(f"a migratetype >= {MIGRATE_TYPES}" in p for p in report.checks[3].problems)


def free_neighbours_of_reserved(result):
    """Reserved descriptors of the deferred part that sit next to free pages."""
    pages, pfns = result.memmap.pages, result.memmap.pfns()
    node = result.plan.nodes[0]
    free = result.plan.free_ranges(node.nid, node.first_deferred_pfn, node.deferred_zone.end_pfn)
    edges = [e for _, e in free.tolist()] + [s - 1 for s, _ in free.tolist()]
    return [pfn for pfn in edges if node.first_deferred_pfn <= pfn < node.job[1]
            and pages["refcount"][np.searchsorted(pfns, pfn)] == 1]


@FUZZ
@given(st.data(), st.integers(0, 10), st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1))
def test_forged_free_block_head_never_steers_the_reference(log_result, data, order, nxt, prv):
    # Issue 9 item 5: a reserved descriptor next to free pages made into "free block head,
    # order 0, lru -> pfn P" made the buddy merge follow file-controlled links.
    pfn = data.draw(st.sampled_from(free_neighbours_of_reserved(log_result)))
    target = data.draw(st.integers(0, 2**40))
    page = log_result.memmap.pages[log_result.memmap.index(pfn)]
    page["mapcount"], page["private"] = PAGE_BUDDY_MAPCOUNT, order
    page["lru_next"] = data.draw(st.sampled_from([nxt, int(lru_address(target))]))
    page["lru_prev"] = prv
    report = verify(log_result)
    assert not report.ok
    assert report.tallies["not_canonical"][0] >= 1


@FUZZ
@given(st.integers(0, 2**64 - 1), st.integers(0, 10), st.integers(0, MIGRATE_TYPES - 1),
       st.integers(0, 1))
def test_forged_list_links_are_reported_not_followed_blindly(result, link, order, mt, end):
    area = result.zones[(0, 1)]
    area.heads[order, mt, end] = link
    report = verify(result)
    assert not report.checks[1].ok


def test_lists_chaining_every_descriptor_with_a_huge_nr_free_stop_at_the_memmap_size(result):
    # Issue 9 item 7: nr_free = 2**62 and a list through every descriptor of the zone.
    memmap, area = result.memmap, result.zones[(0, 1)]
    zone = result.plan.topology.zone(0, 1)
    pfns = np.arange(zone.start_pfn, zone.end_pfn, dtype=np.int64)
    index = memmap.index(pfns[memmap.has(pfns)])
    pfns = memmap.pfns()[index]
    links = lru_address(pfns)
    pages = memmap.pages
    pages["mapcount"][index], pages["private"][index] = PAGE_BUDDY_MAPCOUNT, 0
    pages["lru_next"][index] = np.append(links[1:], links[0])  # and round again: a loop
    pages["lru_prev"][index] = np.insert(links[:-1], 0, area.head_address(0, 1))
    area.heads[0, 1, 0], area.nr_free[0, 1] = links[0], 2**62
    check = Check("free lists")
    listed, blocks = check_free_lists(result, check)
    assert blocks <= len(pages)
    assert any("nr_free = 4611686018427387904 is more than" in p for p in check.problems)
    assert any("listed twice or the list loops" in p for p in check.problems)


def test_invalid_migratetype_in_a_reserved_pageblock_is_found(log_result):
    # Issue 9 item 8: pageblock 0 holds the reserved first pages of the machine.
    log_result.memmap.pageblock_mt[0] = MIGRATE_TYPES
    report = verify(log_result)
    assert any(f"migratetype >= {MIGRATE_TYPES}" in p for p in report.checks[3].problems)


def early_pfn(result, offset):
    """A pfn early init handled: ``offset`` pages into the section before the deferral."""
    return result.plan.nodes[0].first_deferred_pfn - PAGES_PER_SECTION + offset


def test_wrong_migratetype_in_the_second_pageblock_of_an_early_block_is_found(result):
    # Issue 9 item 8: the pageblock after the first one of an early max-order block.
    block = result.memmap.index(early_pfn(result, PAGEBLOCK_NR_PAGES)) // PAGEBLOCK_NR_PAGES
    result.memmap.pageblock_mt[block] = 2
    report = verify(result)
    assert any("the wrong migratetype" in p for p in report.checks[3].problems)


def test_text_report_marks_only_the_failing_check(result):
    # Issue 9 item 15: every check used to print "ok" whatever it found.
    result.memmap.pages["memcg_data"][result.memmap.index(early_pfn(result, 7))] = 1
    lines = verify_lines(verify(result))
    verdicts = [line for line in lines if re.match(r"verify: (ok|FAIL) ", line)]
    assert [line.split()[1] for line in verdicts] == ["ok", "ok", "ok", "FAIL"]
    assert lines[-1] == "verification FAILED"
    assert any("1 descriptors hold a wrong state" in line for line in lines)


def test_forged_byte_in_a_memmap_file_is_refused_with_a_message(tmp_path, capsys):
    # Issue 9 item 4, as reported: one 0xff in the last pageblock's migratetype of a file
    # booted from a real log made 'fastinit verify --memmap-file' die of SIGSEGV. The
    # file layer now refuses the file (checksum, pageblock bounds); verify's own kernels
    # are tested against the same forgery above, in memory.
    from fastinit.cli import main
    from fastinit.mm.run import load
    path = tmp_path / "k.bin"
    assert main(["boot", "--dmesg", KVM_LOG, "--memmap-file", str(path), "--no-progress"]) == 0
    loaded = load(str(path))
    marker = loaded.memmap.pages[-1:].tobytes() + loaded.memmap.pageblock_mt.tobytes()
    del loaded
    content = bytearray(path.read_bytes())
    offset = content.find(marker) + len(marker) - 1
    assert content.find(marker, offset) == -1
    content[offset] = 0xFF
    path.write_bytes(bytes(content))
    capsys.readouterr()
    assert main(["verify", "--memmap-file", str(path), "--no-progress"]) in (1, 2)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and str(path) in captured.err + captured.out


def test_the_section_pass_takes_no_more_threads_than_memory_holds_scratch_for(monkeypatch):
    # 64 CPUs in a 256 MiB container: 64 threads' scratch pushed the memmap file out.
    from fastinit.mm import verify as verify_module
    per_thread = verify_module._SCRATCH_BYTES
    monkeypatch.setattr(verify_module, "available_memory", lambda: 4 * 3 * per_thread)
    assert verify_module.section_pass_threads(64) == 3
    assert verify_module.section_pass_threads(2) == 2
    monkeypatch.setattr(verify_module, "available_memory", lambda: 0)
    assert verify_module.section_pass_threads(None) == 1
