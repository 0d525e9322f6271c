"""Fuzzing the boot-log parser: every text parses to a consistent machine or fails with a
ValueError naming the line. Mutated real logs, synthetic logs checked against a naive model,
arbitrary text, and one regression test per bug the fuzzing found (perf/fuzz_parsers.py runs
the same at scale).
"""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzz_corpus as fc
from fastinit.machine import e820
from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.loglines import log_lines
from fastinit.machine.figures import compare, read_figures

# Deterministic (CI), quick, and no example database written into the checkout.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TOP = 1 << 52
TYPES = {"usable": 1, "reserved": 2, "ACPI data": 3, "ACPI NVS": 4, "unusable": 5,
         "persistent (type 12)": 12, "type 20": 20, "soft reserved": 0xEFFFFFFF}
RAM_MAP = ["BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable",
           "BIOS-e820: [mem 0x0000000000100000-0x000000007fffffff] usable"]


# A synthetic log's model, and the naive reading of it: split the address space at every
# boundary, give each piece the highest type covering it, edit pieces, keep RAM pieces.

ADDRESS = st.one_of(st.integers(0, 1 << 36).map(lambda a: a & ~0xFFF), st.integers(0, 1 << 36),
                    st.integers(TOP - (1 << 32), TOP),
                    st.sampled_from([0, 0x9FC00, 0xA0000, 0x100000, 1 << 32, TOP - 4096]))
RANGE = st.tuples(ADDRESS, st.integers(1, 1 << 34)).map(lambda r: (r[0], min(r[0] + r[1], TOP)))
KIND = st.sampled_from(sorted(TYPES))


@st.composite
def e820_logs(draw):
    """``(text, entries, edits)``: one printed table, then ``e820: update/remove`` lines."""
    entries = [(s, e, kind) for (s, e), kind in draw(st.lists(st.tuples(RANGE, KIND), min_size=1,
                                                             max_size=12)) if s < e]
    edits = [(op, s, e, old, new) for op, (s, e), old, new in draw(st.lists(st.tuples(
        st.sampled_from(["update", "remove"]), RANGE, KIND, st.one_of(st.none(), KIND)),
        max_size=6)) if s < e and (op == "remove" or new is not None)]
    rng = random.Random(draw(st.integers(0, 2**32)))
    lines = ["e820: BIOS-provided physical RAM map:"]
    for s, e, kind in entries:
        if draw(st.booleans()) and e <= 1 << 64:
            lines.append(f"BIOS-e820: {s:016x} - {e:016x} ({kind})")  # Linux 2.6, end exclusive
        else:
            lines.append(f"BIOS-e820: [mem {s:#018x}-{e - 1:#018x}] {kind}")
    for op, s, e, old, new in edits:
        lines.append(f"e820: update [mem {s:#010x}-{e - 1:#010x}] {old} ==> {new}" if op == "update"
                     else f"e820: remove [mem {s:#010x}-{e - 1:#010x}] {old}")
    return "\n".join(fc.reprefix(rng, lines)), entries, edits


def naive_memory(entries, edits) -> list[tuple[int, int]]:
    # Then the kernel's trim_bios_range(): page 0 reserved, no RAM in 640K..1M.
    edits = list(edits) + [("update", 0, 4096, "usable", "reserved"),
                           ("remove", 0xA0000, 0x100000, "usable", None)]
    points = sorted({p for s, e, _ in entries for p in (s, e)} |
                    {p for _, s, e, _, _ in edits for p in (s, e)})
    pieces = {}
    for a, b in zip(points, points[1:]):
        kinds = [TYPES[k] for s, e, k in entries if s <= a and b <= e]
        if kinds:
            pieces[(a, b)] = max(kinds)
    for op, s, e, old, new in edits:
        for (a, b), kind in list(pieces.items()):
            if s <= a and b <= e and kind == TYPES[old]:
                if op == "remove":
                    del pieces[(a, b)]
                else:  # usable ==> usable is setup_data: kernel-reserved RAM
                    pieces[(a, b)] = 128 if kind == TYPES[new] == 1 else TYPES[new]
    ram = []
    for (a, b), kind in sorted(pieces.items()):
        if kind in (1, 128):
            if ram and ram[-1][1] == a:
                ram[-1] = (ram[-1][0], b)
            else:
                ram.append((a, b))
    return [(-(-a // 4096), b // 4096) for a, b in ram if -(-a // 4096) < b // 4096]


@FUZZ
@given(e820_logs())
def test_synthetic_e820_map_matches_naive_model(log):
    text, entries, edits = log
    expected = naive_memory(entries, edits)
    topology, error = fc.check_bootlog(text)
    if not entries:  # all were empty, so no table line was printed
        assert error is not None and "no e820 memory map found" in error
    elif not expected:
        assert error is not None and "no usable RAM" in error
    else:
        assert error is None, error
        assert [n.ranges for n in topology.nodes] == [tuple(expected)]


@st.composite
def srat_logs(draw):
    """``(text, blocks, apics)``: 2 GiB of RAM, then SRAT ranges and PXM -> APIC lines."""
    blocks = draw(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(
        [0, 0x9F000, 0x100000, 0x40000000, 0x40000800, 0x7FFFF000, 0x80000000, 1 << 40]),
        st.sampled_from([1, 0x800, 0x1000, 0x3FFFFFFF, 0x40000000, 0x80000000]), st.booleans()),
        max_size=6))
    apics = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 7)), max_size=8))
    lines = RAM_MAP + [f"SRAT: Node {n} PXM {n} [mem {s:#x}-{s + size - 1:#x}]"
                       f"{' hotplug' * hotplug}" for n, s, size, hotplug in blocks]
    lines += [f"SRAT: PXM {n} -> APIC {a:#04x} -> Node {n}" for n, a in apics]
    rng = random.Random(draw(st.integers(0, 2**32)))
    rng.shuffle(lines)
    return "\n".join(lines), [(n, s, s + size, hot) for n, s, size, hot in blocks], apics


@FUZZ
@given(srat_logs())
def test_synthetic_srat_split_gives_each_node_only_its_ranges(log):
    text, blocks, apics = log
    memory = [(1, 0x9F), (0x100, 0x80000)]
    topology, error = fc.check_bootlog(text)
    if error is not None:
        if "SRAT gives" in error:
            assert any(a[0] != b[0] and a[1] < b[2] and b[1] < a[2] for a in blocks for b in blocks)
        else:
            assert "lies beyond all usable RAM" in error, error
            assert any(s >= 0x80000000 and not hot for _, s, _, hot in blocks)
        return
    ranges = sorted(r for node in topology.nodes for r in node.ranges)
    if not blocks or any("using one node" in note for note in topology.notes):
        assert [n.ranges for n in topology.nodes] == [tuple(memory)]
        return
    for node in topology.nodes:
        # numa_cleanup_meminfo() joins a node's blocks across gaps no other node's block
        # touches, so a node's memory lies within the span of its blocks.
        mine = [(-(-s // 4096), e // 4096) for n, s, e, _ in blocks if n == node.nid]
        assert all(min(a for a, _ in mine) <= s and e <= max(b for _, b in mine)
                   for s, e in node.ranges), node
        assert node.cpus == (len({a for n, a in apics if n == node.nid}) if apics else 1)
    missing = sum(e - s for s, e in memory) - sum(e - s for s, e in ranges)
    assert 0 <= missing < 256


FRAGMENTS = ["BIOS-e820: [mem ", "0x0000000000100000", "-", "0x000000007fffffff", "] usable",
             "] reserved", "e820: update [mem ", "e820: remove [mem ", " usable ==> reserved",
             "SRAT: Node ", "0 PXM 0 [mem ", "SRAT: PXM 0 -> APIC 0x1 -> Node ", "1", "9" * 30,
             "last_pfn = ", "smp: Brought up 1 node, ", " CPUs", "RAMDISK: [mem ", "\n", "\r\n",
             "BIOS-e820: 0000000000000000 - 000000000009fc00 (", ")", "physical RAM map"]
LOG_TEXT = st.tuples(st.booleans(), st.lists(st.one_of(st.sampled_from(FRAGMENTS),
                                                      st.text(max_size=8)), max_size=40))


@FUZZ
@given(LOG_TEXT)
def test_arbitrary_text_parses_or_names_the_line(case):
    with_map, parts = case
    fc.check_bootlog(RAM_MAP[1] * with_map + "\n" + "".join(parts))


@FUZZ
@given(st.lists(st.tuples(RANGE, st.integers(1, 5)), max_size=12), RANGE,
       st.integers(1, 5), st.one_of(st.none(), st.integers(1, 5)))
def test_windowed_edit_equals_full_update_and_remove(entries, edit, old, new):
    table = e820.sanitize([(s, e, kind) for (s, e), kind in entries])
    start, end = edit
    full = e820.remove(table, start, end, old) if new is None else \
        e820.update(table, start, end, old, new)
    assert e820.edit(table, start, end, old, new) == full


def test_mutated_real_logs_parse_or_name_the_line():
    outcomes = {"ok": 0, "rejected": 0}
    for seed in range(400):
        rng = random.Random(seed)
        text = fc.mutate_log(rng, fc.LOGS[rng.choice(sorted(fc.LOGS))])
        topology, _ = fc.check_bootlog(text, source=f"seed{seed}")
        outcomes["ok" if topology else "rejected"] += 1
    # Both outcomes are common: the mutations neither all break logs nor all miss.
    assert min(outcomes.values()) > 40, outcomes


@pytest.mark.parametrize("name", sorted(fc.LOGS))
def test_reprefixed_crlf_log_gives_the_same_machine_and_figures(name):
    original = parse_bootlog(fc.LOGS[name])
    for seed in range(3):
        rng = random.Random(seed)
        lines = fc.reprefix(rng, log_lines(fc.LOGS[name]), share=rng.random())
        text = "\r\n".join(lines) if seed else "\n".join(lines)
        topology = parse_bootlog(text)
        assert topology == original
        assert compare(topology, read_figures(text))[1] == []


@pytest.mark.parametrize("name", sorted(fc.LOGS))
def test_noise_lines_and_adjacent_duplicates_change_nothing(name):
    original = parse_bootlog(fc.LOGS[name])
    for seed in range(3):
        rng = random.Random(seed)
        lines = log_lines(fc.LOGS[name])
        for _ in range(20):
            at = rng.randrange(len(lines) + 1)
            if rng.random() < 0.5:
                lines.insert(at, fc.random_prefix(rng) + rng.choice(fc.NOISE))
            elif at < len(lines):
                lines.insert(at, lines[at])
        assert parse_bootlog("\n".join(lines)) == original


@pytest.mark.parametrize("name", sorted(fc.LOGS))
def test_every_real_log_in_linux_7_printout_gives_the_same_machine(name):
    # Linux 7.x's type names and gap lines describe the same map as the old printout.
    text = "\n".join(fc.linux_7_printout(random.Random(7), log_lines(fc.LOGS[name])))
    assert "System RAM" in text or "(usable)" in text  # 2.6's printout stays as it was
    assert parse_bootlog(text) == parse_bootlog(fc.LOGS[name])
