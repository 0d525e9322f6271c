"""Shared by the parser fuzz tests and perf/fuzz_parsers.py: a corpus of real boot logs and
specs, mutations of them, and the contract every parse must keep.

The contract: a boot log or spec either parses to a topology that passes `check_topology`,
or raises ValueError with a clear message (for a log: naming the line, with the right line
number and text). Any other exception, or an inconsistent topology, is a bug.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import numpy as np

from fastinit.layout import NR_CPUS
from fastinit.machine.bootlog import parse_bootlog
from fastinit.machine.loglines import log_lines
from fastinit.machine.figures import compare, read_figures
from fastinit.layout import MAX_PFN, PAGES_PER_SECTION, SECTION_SHIFT
from fastinit.machine.spec import parse_spec
from fastinit.machine.topology import ZONE_LIMITS, Topology, merge_ranges

HERE = Path(__file__).parent
LOG_DIRS = [HERE / "data" / "dmesg"]
LOGS = {path.name: path.read_text() for folder in LOG_DIRS for path in sorted(folder.glob("*.txt"))}

# Every prefix format of the real logs: dmesg, dmesg -T, syslog, journal, host after the
# timestamp; printk caller ids and syslog levels.
PREFIX = re.compile(r"^(?:<\d>)?(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel: )?"
                    r"(?:\[ *\d+\.\d+\](?:\[ *[TC]\d+\])? (?:\S+ kernel: )?"
                    r"|\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\] )?")
# Lines the parser reads; the rest is noise it must ignore.
READ = re.compile(r"e820|\[mem|SRAT|last_pfn|physical RAM map|Brought up|Booted up|Allowing|"
                  r"NUMA|Faking a node|NODE_DATA|RAMDISK|crashkernel|Linux version|"
                  r"[Cc]ommand line")
NOISE = [line[PREFIX.match(line).end():] for text in LOGS.values() for line in log_lines(text)
         if line.strip() and not READ.search(line)]
HOSTS = ["host", "lit.home.arpa", "ip-10-0-0-7", "capstonealzheimer"]
# How inputs ended, by parser: perf/fuzz_parsers.py reports these counts.
OUTCOMES: Counter = Counter()


def random_prefix(rng: random.Random) -> str:
    """A line prefix in one of the formats dmesg, journalctl and syslog write."""
    seconds = f"[{rng.choice([0.0, rng.uniform(0, 99999)]):12.6f}] "
    day = f"{rng.choice(['Mar', 'Nov'])} {rng.randint(1, 28):2d}"
    clock = f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
    host = rng.choice(HOSTS)
    return rng.choice([
        seconds, f"[Tue {day} {clock} 2022] ", f"{day[:4]}{int(day[4:]):02d} {host} kernel: ",
        f"{day} {clock} {host} kernel: ", f"{day} {clock} {host} kernel: {seconds}",
        f"{seconds}{host} kernel: ", f"<6>{seconds}", f"{seconds[:-1]}[    T0] ", ""])


def reprefix(rng: random.Random, lines: list[str], share: float = 1.0) -> list[str]:
    """Lines with their prefix replaced by random ones (every line, or a random share)."""
    return [random_prefix(rng) + line[PREFIX.match(line).end():] if rng.random() < share else line
            for line in lines]


# Mutations: each takes a random source and the lines of a log, returns new lines. ----------

EXTREME_HEX = ["0", "1", "fff", "1000", "ffffffff", "100000000", "fffffffffffff", "10000000000000",
               "ffffffffffffffff", "10000000000000000", "f" * 40, "0" * 60 + "1", "f" * 5000]
EXTREME_DEC = ["0", "1", "1023", "1024", "8192", "8193", "2147483648", "18446744073709551616",
               "9" * 25, "9" * 4299, "9" * 5000]
INJECT = ["\x00", "\t", "\x0b", "\x0c", "\r", "\r\n", "\n", "\u2028", "\u0085", "\ufeff", "\ufffd",
          "é", "中", "😀", "\u0301", "٣", "𝟗", "]", "[", "-", " ", "0x", " ==> ", ":", "(", ")",
          " " * 3000]


def _index(rng: random.Random, lines: list[str], pattern: str = "") -> int | None:
    """A random line matching ``pattern`` (most often a line the parser reads), or None."""
    wanted = re.compile(pattern) if pattern else (READ if rng.random() < 0.8 else None)
    choices = [i for i, line in enumerate(lines) if wanted is None or wanted.search(line)]
    return rng.choice(choices) if choices else None


def truncate(rng, lines):
    if (i := _index(rng, lines)) is not None:
        data = lines[i].encode()  # cut at a byte, decoded as read_bootlog decodes
        lines[i] = data[:rng.randrange(len(data) + 1)].decode("utf-8", errors="replace")
    return lines


def crlf(rng, lines):
    return [line + "\r" if rng.random() < 0.7 else line for line in lines]


def mixed_prefixes(rng, lines):
    return reprefix(rng, lines, share=rng.random())


def shuffle_e820(rng, lines):
    table = [i for i, line in enumerate(lines) if re.search(r"(BIOS-e820|user|setup_data):", line)]
    texts = [lines[i] for i in table]
    rng.shuffle(texts)
    for i, text in zip(table, texts):
        lines[i] = text
    return lines


def _mem(start: int, end: int) -> str:
    return f"[mem {start:#018x}-{end - 1:#018x}]"


def overlap_e820(rng, lines):
    if (i := _index(rng, lines, r"BIOS-e820: \[mem")) is not None:
        found = re.search(r"\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]", lines[i])
        if found:
            # An earlier mutation may have inverted the line's range: order its ends first.
            start, end = sorted((int(found.group(1), 16), int(found.group(2), 16) + 1))
            lo, hi = sorted(rng.randrange(max(start - 0x100000, 0), end + 0x100000) for _ in "ab")
            kind = rng.choice(["usable", "reserved", "ACPI data", "ACPI NVS", "type 20",
                               " System RAM", " device reserved", " soft reserved",
                               " persistent RAM (type 12)"])
            # Next to its entry (same table), or anywhere (maybe a table of its own).
            lines.insert(rng.choice([i + 1, rng.randrange(len(lines) + 1)]),
                         f"BIOS-e820: {_mem(lo, hi + 1)} {kind}")
    return lines


def extreme_range(rng, lines):
    if (i := _index(rng, lines, r"\[mem ")) is not None:
        numbers = list(re.finditer(r"(?<=0x)[0-9a-fA-F]+", lines[i]))
        if numbers:
            found = rng.choice(numbers)
            lines[i] = lines[i][:found.start()] + rng.choice(EXTREME_HEX) + lines[i][found.end():]
    return lines


def zero_length(rng, lines):
    if (i := _index(rng, lines, r"\[mem 0x[0-9a-f]+-")) is not None:
        found = re.search(r"\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\]", lines[i])
        if found:
            start = int(found.group(1), 16)
            end = rng.choice([start - 1, start]) if start else 0
            lines[i] = lines[i][:found.start(2)] + f"{end:#x}" + lines[i][found.end(2):]
    return lines


def duplicate_srat(rng, lines):
    if (i := _index(rng, lines, "SRAT")) is not None:
        lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return lines


def node_without_memory(rng, lines):
    nid = rng.choice([1, 2, 7, 63, 1023, 1024])
    start = rng.choice([0xA0000, 0xC0000000, 1 << 44, (1 << 52) - (1 << 30)])
    extra = [f"ACPI: SRAT: Node {nid} PXM {nid} {_mem(start, start + (1 << 20))}"
             f"{rng.choice(['', ' hotplug'])}",
             f"SRAT: PXM {nid} -> APIC {rng.randrange(1 << 16):#04x} -> Node {nid}"]
    at = _index(rng, lines, "SRAT")
    at = rng.randrange(len(lines) + 1) if at is None else at
    lines[at:at] = rng.sample(extra, rng.randint(1, 2))
    return lines


def memory_without_node(rng, lines):
    if (i := _index(rng, lines, r"SRAT: Node \d+ PXM \d+ \[mem")) is not None:
        if rng.random() < 0.5:
            del lines[i]
        else:  # shrink the range from its end
            found = re.search(r"-(0x[0-9a-f]+)\]", lines[i])
            if found:
                shrunk = max(int(found.group(1), 16) - rng.choice([1, 0xFFFFF, 0x3FFFFFFF]), 0)
                lines[i] = lines[i][:found.start(1)] + f"{shrunk:#x}" + lines[i][found.end(1):]
    return lines


def delete_lines(rng, lines):
    for _ in range(rng.randint(1, 5)):
        if (i := _index(rng, lines)) is not None:
            del lines[i]
    return lines


def duplicate_lines(rng, lines):
    for _ in range(rng.randint(1, 5)):
        if (i := _index(rng, lines)) is not None:
            lines.insert(rng.choice([i, rng.randrange(len(lines) + 1)]), lines[i])
    return lines


def swap_lines(rng, lines):
    for _ in range(rng.randint(1, 3)):
        i, j = _index(rng, lines), rng.randrange(len(lines)) if lines else None
        if i is not None and j is not None:
            j = rng.choice([min(i + 1, len(lines) - 1), j])
            lines[i], lines[j] = lines[j], lines[i]
    return lines


def inject(rng, lines):
    for _ in range(rng.randint(1, 4)):
        if (i := _index(rng, lines)) is not None:
            at = rng.randrange(len(lines[i]) + 1)
            junk = rng.choice(INJECT + [bytes(rng.randrange(256) for _ in range(4))
                                        .decode("utf-8", errors="replace")])
            lines[i] = lines[i][:at] + junk + lines[i][at:]
    return lines


def extreme_numbers(rng, lines):
    if (i := _index(rng, lines)) is not None:
        numbers = list(re.finditer(r"(?<![0-9a-fA-Fx])[0-9]+(?![0-9a-fA-F])|(?<=0x)[0-9a-fA-F]+",
                                   lines[i]))
        if numbers:
            found = rng.choice(numbers)
            value = rng.choice(EXTREME_HEX if found.group().startswith("0x") or
                               lines[i][found.start() - 2:found.start()] == "0x" else EXTREME_DEC)
            lines[i] = lines[i][:found.start()] + value + lines[i][found.end():]
    return lines


def splice_logs(rng, lines):
    other = log_lines(LOGS[rng.choice(sorted(LOGS))])
    start = rng.randrange(len(other))
    at = rng.randrange(len(lines) + 1)
    lines[at:at] = other[start:start + rng.randint(1, 40)]
    return lines


# Linux 7.x's e820 printout: the new type names after two blanks, holes as gap lines.
_NEW_NAMES = {" usable": "  System RAM", " reserved": "  device reserved",
              " persistent (type": "  persistent RAM (type"}


def linux_7_printout(rng, lines):
    out = []
    for line in lines:
        if "e820" in line or "user: [mem" in line:
            for old, new in _NEW_NAMES.items():
                if line.endswith(old) or (old.endswith("(type") and old in line):
                    line = line.replace(old, new) if old.endswith("(type") else \
                        line[:-len(old)] + new
                    break
        out.append(line)
        if "BIOS-e820: [mem" in line and rng.random() < 0.3:
            out.append(line[:line.index("BIOS-e820")] + "BIOS-e820: [gap "
                       "0x00000000000a0000-0x00000000000effff]")
    return out


MUTATIONS = [truncate, crlf, mixed_prefixes, shuffle_e820, overlap_e820, extreme_range,
             zero_length, duplicate_srat, node_without_memory, memory_without_node, delete_lines,
             duplicate_lines, swap_lines, inject, extreme_numbers, splice_logs,
             linux_7_printout]


def mutate_log(rng: random.Random, text: str) -> str:
    """A real log after one to four random mutations."""
    lines = log_lines(text)
    for _ in range(1 + min(int(rng.expovariate(1.2)), 3)):
        lines = rng.choice(MUTATIONS)(rng, lines)
    return "\n".join(lines)


# The contract. ---------------------------------------------------------------------------

def check_topology(topology: Topology) -> None:
    """Assert what any parsed machine must satisfy, beyond `Topology.check`."""
    topology.check()
    memory = topology.memory_ranges()
    for node in topology.nodes:
        assert 0 <= node.cpus <= NR_CPUS, node
        for (_, e1), (s2, _) in zip(node.ranges, node.ranges[1:]):
            assert e1 < s2, f"node {node.nid} ranges touch or overlap: {node.ranges}"
        if not node.ranges:
            continue
        zones = topology.zones(node.nid)
        assert [z.zid for z in zones] == sorted({z.zid for z in zones}) and zones
        for zone in zones:
            # ZONE_MOVABLE has no limits of its own: it is cut from the top of the node.
            lo, hi = ZONE_LIMITS[zone.zid] if zone.zid < len(ZONE_LIMITS) else (0, MAX_PFN)
            assert lo <= zone.start_pfn < zone.end_pfn <= hi, zone
            assert node.start_pfn <= zone.start_pfn and zone.end_pfn <= node.end_pfn, zone
            assert 0 < zone.present <= zone.spanned, zone
        assert sum(z.present for z in zones) == node.present_pages
        first = topology.first_deferred_pfn(node.nid)
        if first is not None:
            assert first % PAGES_PER_SECTION == 0
            assert zones[-1].start_pfn <= first < zones[-1].end_pfn
    starts = [start for _, start, _ in topology.zone_ranges()]
    ends = [end for _, _, end in topology.zone_ranges()]
    assert starts[0] == topology.min_pfn and ends[-1] == topology.max_pfn <= MAX_PFN
    assert starts[1:] == ends[:-1] and all(s <= e for s, e in zip(starts, ends))
    for (_, e1), (s2, _) in zip(topology.reserved, topology.reserved[1:]):
        assert e1 <= s2, f"reserved ranges overlap or are unsorted: {topology.reserved}"
    merged = merge_ranges((s, e) for s, e, _ in memory)  # a reservation may span two nodes
    for start, end in topology.reserved:
        assert any(s <= start and end <= e for s, e in merged), (start, end)
    spans = merge_ranges((s >> SECTION_SHIFT, ((e - 1) >> SECTION_SHIFT) + 1) for s, e, _ in memory)
    sections = topology.present_sections()
    assert np.array_equal(sections, np.concatenate([np.arange(s, e) for s, e in spans]))
    for hole in topology.unavailable_ranges():
        assert hole.start_pfn < hole.end_pfn and 0 < hole.pages <= hole.end_pfn - hole.start_pfn
        assert not any(s < hole.end_pfn and hole.start_pfn < e for s, e, _ in memory), hole


WHOLE_LOG_ERRORS = ("no e820 memory map found", "the e820 map has no usable RAM")


def check_log_error(message: str, text: str, source: str) -> None:
    """Assert a log error names its line: right number, and the line's text when quoted."""
    if message.startswith(f"{source}: ") and any(e in message for e in WHOLE_LOG_ERRORS):
        return
    found = re.match(rf"{re.escape(source)}:(\d+): ", message)
    assert found, f"error names no line: {message[:300]!r}"
    lines = log_lines(text)
    number = int(found.group(1))
    assert 1 <= number <= len(lines), f"line {number} of {len(lines)}: {message[:300]!r}"
    line = lines[number - 1]
    assert repr(line.strip()[:160]) in message or "SRAT" in line, \
        f"line {number} is {line[:200]!r}, message {message[:300]!r}"
    assert len(message) < 1000, message[:300]


def check_bootlog(text: str, source: str = "fuzz", figures: bool = True):
    """Parse ``text`` and hold it to the contract; ``(topology, None)`` or ``(None, error)``.

    Anything but ValueError propagates: the caller counts it as a failure.
    """
    try:
        topology = parse_bootlog(text, source)
    except ValueError as error:
        check_log_error(str(error), text, source)
        OUTCOMES["bootlog rejected"] += 1
        return None, str(error)
    check_topology(topology)
    if figures:  # `fastinit topology --dmesg` compares the kernel's figures next
        compare(topology, read_figures(text))
    OUTCOMES["bootlog ok"] += 1
    return topology, None


# Specs. --------------------------------------------------------------------------------------

SPECS = ["2x384G,cpus=52", "2x64G,cpus=8", "1x0:4+1x8G", "3G+1G:0,cpus=2", "1x1.5T",
         "1x512MiB", "2x16G:4+1x8G:0", "1x8G,pci_hole=512M", "4 x 96G : 24", "1*2GB",
         "1x160M,cpus=1", "8x1T,cpus=128", "1024x1G", "1x5P", "1x4095", "2x1.25K,pci_hole=0"]
SPEC_JUNK = [" ", ",", "+", ":", "x", "*", ".", "=", "cpus=", "pci_hole=", "G", "iB", "0", "9",
             "٣", "²", "\x00", "é", "\t", "-1", "1e3", "0x10", " " * 2000, "9" * 30, "9" * 5000]


def mutate_spec(rng: random.Random, spec: str) -> str:
    """A spec after one to three edits: junk inserted, characters deleted, parts repeated."""
    for _ in range(rng.randint(1, 3)):
        at = rng.randrange(len(spec) + 1)
        choice = rng.random()
        if choice < 0.4:
            spec = spec[:at] + rng.choice(SPEC_JUNK) + spec[at:]
        elif choice < 0.6:
            spec = spec[:at] + spec[at + rng.randint(1, 3):]
        elif choice < 0.8:
            spec = re.sub(r"\d+", lambda m: rng.choice([m.group(), rng.choice(EXTREME_DEC)]), spec)
        elif len(spec) < 200:  # repeat the groups: up to more nodes than a machine has
            groups = spec.split(",")[0]
            spec = "+".join([groups] * rng.randint(2, 1100)) + spec[len(groups):]
    return spec


def check_spec(spec: str, default_cpus: int = 4):
    """Parse ``spec`` and hold it to the contract; ``(topology, None)`` or ``(None, error)``."""
    try:
        topology = parse_spec(spec, default_cpus=default_cpus)
    except ValueError as error:
        message = str(error)
        assert message.startswith(("spec ", "empty spec")), message[:300]
        assert len(message) < 1000, message[:300]
        OUTCOMES["spec rejected"] += 1
        return None, message
    check_topology(topology)
    OUTCOMES["spec ok"] += 1
    return topology, None
