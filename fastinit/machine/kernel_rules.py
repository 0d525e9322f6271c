"""What differs between Linux generations, in one table, chosen by the kernel's version.

Each row is one behaviour the model follows, the release that brought it, what the kernel
did before, and where it comes from (the file, and the commit where one is known). A
kernel's rules are every row up to its version: `rules_for` reads a version as the boot
log's ``Linux version`` line prints it (``6.12.117+deb13-amd64``) or as a user writes it
(``6.12``). A log without a version line, or a spec, gets the newest rules; ``--linux``
picks another generation. The model asks a `KernelRules` by row name
(``rules.has("numa_emu_generic")``): no version is compared anywhere else.

Printouts that only changed form (the e820 type names) are read in every form whatever
the version, so the parser needs no rule for them; their row says when the form changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """One behaviour and the release that brought it.

    Attributes
    ----------
    name : str
        How the model asks for it.
    since : (int, int)
        The first release (major, minor) that behaves so.
    now : str
        What the kernel does from that release on.
    before : str
        What it did before.
    source : str
        The kernel file (and commit) it comes from.
    """

    name: str
    since: tuple[int, int]
    now: str
    before: str
    source: str


# The series this project models was merged for 5.8 (Linux 5.8.1 has it; 5.10 is its first
# long-term kernel).
OLDEST = (5, 8)

RULES: tuple[Rule, ...] = (
    Rule("deferred_padata", (5, 8),
         "deferred init of each node is a padata job, section-aligned chunks, the node's "
         "CPUs on x86 (at least 1)",
         "one thread per node, no padata",
         "mm/page_alloc.c deferred_init_memmap(); series 'padata: parallelize deferred "
         "page init' (Daniel Jordan, merged for 5.8: 004ed42638f4, ecd096506922); x86 "
         "deferred_page_init_max_threads()"),
    Rule("low_1m_reserved", (5, 13),
         "the first 1 MiB of RAM is memblock-reserved on x86 (never freed to buddy)",
         "page 0, the real-mode trampoline and CONFIG_X86_RESERVE_LOW (64 KiB) reserved "
         "(the trampoline's pages below 640K change no printed figure: reserved, not holes, "
         "and no 2 MiB block there is free, 640K-1M being no RAM)",
         "arch/x86/kernel/setup.c; 'x86/setup: always reserve the first 1M of RAM' "
         "(Mike Rapoport, 5.13)"),
    Rule("hugepages_per_node", (5, 16),
         "hugepages= takes the per-node form (0:N,1:M) and says 'HugeTLB: Invalid hugepages "
         "parameter ...' for a value it cannot read (the size's counts are then cleared)",
         "hugepages= is the leading number alone (sscanf('%lu'): '1:140,2:98' asks for 1 "
         "page, spread over the nodes), anything unreadable is 0, and nothing is said",
         "mm/hugetlb.c hugepages_setup(); 'hugetlbfs: extend the definition of hugepages "
         "parameter to support node allocation' (Zhenguo Yao, b5389086ad7b, 5.16); seen in "
         "Debian's 5.10.223 (capture 5.10-seed-36)"),
    Rule("max_order_inclusive", (6, 4),
         "MAX_ORDER is the highest order (10 on x86; renamed MAX_PAGE_ORDER in 6.8)",
         "MAX_ORDER 11 counts the orders (highest order MAX_ORDER - 1 = 10): the same "
         "blocks of 1024 pages",
         "include/linux/mmzone.h; 'mm, treewide: redefine MAX_ORDER sanely' (6.4), "
         "'mm, treewide: rename MAX_ORDER to MAX_PAGE_ORDER' (6.8)"),
    Rule("mm_init_c", (6, 4),
         "memmap and deferred init live in mm/mm_init.c",
         "in mm/page_alloc.c (same behaviour)",
         "mm/mm_init.c (Mike Rapoport, 6.4)"),
    Rule("hugetlb_padata", (6, 9),
         "HugeTLB boot pools gathered by padata jobs with numa_aware: 1 GiB pages one job "
         "over the nodes, 2 MiB pages allocated node by node in parallel",
         "boot pools allocated and prepared serially on the boot CPU, node after node",
         "mm/hugetlb.c gather_bootmem_prealloc(), hugetlb_pages_alloc_boot(); series "
         "'hugetlb: parallelize hugetlb page init on boot' (Gang Li, 6.9)"),
    Rule("node_cpus_every_arch", (6, 11),
         "every architecture runs a node's deferred init on the node's CPUs (x86 as before)",
         "x86 used the node's CPUs, other architectures 1 thread",
         "mm/mm_init.c deferred_page_init_max_threads(); 'mm/mm_init: use node's number of "
         "cpus in deferred_page_init_max_threads' (Eric Chanudet, 6.11)"),
    Rule("hugetlb_alloc_threads", (6, 15),
         "the 2 MiB pool's job runs hugepage_allocation_threads = a quarter of the CPUs (at "
         "least 1; hugepage_alloc_threads= sets it), min_chunk = pages / threads, and says "
         "'HugeTLB: allocation took Nms with hugepage_allocation_threads=T'",
         "2 threads per node with memory, min_chunk = pages / nodes / 2",
         "mm/hugetlb.c hugetlb_pages_alloc_boot(); series 'Add a command line option that "
         "enables control of how many threads should be used to allocate huge pages' v2 "
         "(Thomas Prescher, 2025-02-27: 'mm: hugetlb: improve parallel huge page allocation "
         "time', 'mm: hugetlb: log time needed to allocate hugepages' 70478a5534af), merged "
         "with Andrew Morton's mm pull for the 6.15 merge window; in Debian's 7.2 (its log "
         "line), not in 6.12"),
    Rule("numa_emu_generic", (6, 12),
         "NUMA emulation (numa=fake=) is generic code over numa_memblks",
         "x86's own arch/x86/mm/numa_emulation.c",
         "mm/numa_emulation.c, mm/numa_memblks.c (Mike Rapoport, 6.12)"),
    Rule("deferred_job_per_zone", (6, 18),
         "one padata job per node over [first_deferred_pfn, SECTION_ALIGN_UP(zone end))",
         "one padata job per free memblock range of the zone, each rounded up to a section",
         "mm/mm_init.c deferred_init_memmap(); commit f1f86187fd72 'mm/mm_init: "
         "deferred_init_memmap: use a job per zone' (6.18)"),
    Rule("e820_new_names", (7, 0),
         "e820 tables print 'System RAM', 'device reserved', 'persistent RAM (type N)' and "
         "'[gap ...]' lines (read in every form under every rule set)",
         "'usable', 'reserved', 'persistent (type N)', no gap lines",
         "arch/x86/kernel/e820.c e820_print_type(), e820__print_table(): 'x86/boot/e820: "
         "Improve e820_print_type() messages' (Ingo Molnar, 4a7a13e04c05) and the gap "
         "lines of the same e820 overhaul, merged for 7.0 ('Merge tag x86-boot-2026-02-09', "
         "5668a64622cf, 2026-02-10); seen in Debian's 7.2.13, not in 6.12"),
    Rule("page0_printed", (7, 0),
         "page 0 reserved and 640K-1M removed as always, and now said at the default console "
         "level ('e820: update [mem 0x00000000-0x00000fff] System RAM ==> device reserved')",
         "the same trims, said only at KERN_DEBUG (loglevel=8): fastinit applies them "
         "whether or not the log says so",
         "arch/x86/kernel/e820.c trim_bios_range(), e820__range_update(): part of the 7.0 "
         "e820 overhaul (merge 5668a64622cf, as e820_new_names); seen in Debian's 7.2 at the "
         "default level, not in 6.12"),
)

NEWEST = max(rule.since for rule in RULES)


@dataclass(frozen=True)
class Same:
    """A behaviour that looks as if it might differ between generations and does not (for the
    kernels this table covers), with where that was read."""

    name: str
    what: str
    source: str


# Read in each generation's source and checked by the oracle campaigns on all five kernels
# (README: kernels verified): no row above, no version check in the model.
SAME_IN_EVERY_GENERATION: tuple[Same, ...] = (
    Same("zone_movable",
         "kernelcore= / movablecore= (sizes, percentages): the Movable zone's start per node, "
         "kernel memory spread evenly over the nodes with memory, rounded up to a max-order "
         "block, none on a node whose rounded start is at or past its end",
         "find_zone_movable_pfns_for_nodes(): mm/page_alloc.c until 6.3, mm/mm_init.c since "
         "6.4, moved unchanged; the 'none past the node's end' check is ddbc84f3f595 "
         "('mm/pages_alloc.c: don't create ZONE_MOVABLE beyond the end of a node', 5.18, "
         "backported to 5.10.110 and 5.15.y: a 5.10 before 5.10.110 prints a start for such a "
         "node, which fastinit does not model)"),
    Same("mem_memmap",
         "mem= (e820 RAM removed above the limit) and memmap= in every form (nn@ss, nn#ss, "
         "nn$ss, nn!ss, exactmap) as e820 edits before memblock sees the table",
         "arch/x86/kernel/e820.c parse_memopt(), parse_memmap_one(), e820__range_remove(), "
         "e820__range_update(): the 7.0 overhaul (merge 5668a64622cf) renamed and retyped "
         "them and changed what they print, not what they do to RAM"),
    Same("max_order_blocks",
         "the largest buddy block is 1024 pages (order 10) on x86-64",
         "include/linux/mmzone.h: MAX_ORDER 11 (exclusive) before 6.4, MAX_ORDER / "
         "MAX_PAGE_ORDER 10 (inclusive) since: the same blocks (row max_order_inclusive)"),
)

# "Linux version 6.12.117+deb13-amd64 (...)": the release numbers only.
_LOG_VERSION = re.compile(r"Linux version (\d{1,3})\.(\d{1,3})(?:\.(\d{1,5}))?(\S*)")
_VERSION = re.compile(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,5}))?(\S*)")


@dataclass(frozen=True)
class KernelRules:
    """The rules of one kernel.

    Attributes
    ----------
    version : str
        The version as given (``"6.12.117+deb13-amd64"``), or ``"newest"``.
    release : (int, int)
        Major and minor the rules were chosen by.
    from_log : bool
        The version came from the log's ``Linux version`` line.
    """

    version: str = "newest"
    release: tuple[int, int] = NEWEST
    from_log: bool = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in RULES if rule.since <= self.release)

    @property
    def generation(self) -> str:
        """The rule set's name: the newest row's release (``"6.12"``)."""
        major, minor = max((rule.since for rule in self.rules), default=OLDEST)
        return f"{major}.{minor}"

    def has(self, name: str) -> bool:
        """True when the kernel behaves as row ``name`` says (ValueError for no such row)."""
        for rule in RULES:
            if rule.name == name:
                return rule.since <= self.release
        raise ValueError(f"no kernel rule {name!r}; rules are "
                         f"{', '.join(rule.name for rule in RULES)}")

    def describe(self) -> str:
        """One line for reports: which kernel, which rules (``Linux 6.1 (from the log):
        rules of 5.16 until 6.4``)."""
        where = " (from the log)" if self.from_log else ""
        later = [rule.since for rule in RULES if rule.since > self.release]
        until = f"until {min(later)[0]}.{min(later)[1]}" if later else "the newest"
        return f"Linux {self.version}{where}: rules of {self.generation} {until}"

    def to_json(self) -> dict:
        return {"version": self.version, "from_log": self.from_log,
                "rules": self.generation,
                "behaviours": {rule.name: rule.now for rule in self.rules}}


def parse_version(text: str, from_log: bool = False) -> KernelRules:
    """The rules for a version a user gave (``6.12``, ``5.10.223``, ``7.2.13+deb14``), or
    (``from_log``) one a log printed, as a memmap file keeps it.

    Raises
    ------
    ValueError
        For text that is no version, or (given by a user) one older than the series this
        project models.
    """
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"kernel version {text[:40]!r} is not a version; give one as "
                         f"'uname -r' prints it, e.g. 6.12 or 5.10.223")
    return _rules(match, text.strip(), from_log)


def rules_in_log(text: str) -> KernelRules:
    """The rules for the first ``Linux version`` line of a log (newest without one)."""
    match = _LOG_VERSION.search(text)
    if match is None:
        return KernelRules()
    version = match.group(0).removeprefix("Linux version ")
    return _rules(match, version, from_log=True)


def _rules(match: re.Match, version: str, from_log: bool) -> KernelRules:
    release = (int(match.group(1)), int(match.group(2)))
    if release < OLDEST:
        if from_log:
            # An older kernel's log still reads: the oldest rules are the nearest.
            return KernelRules(version, OLDEST, from_log)
        raise ValueError(f"kernel version {version} is older than {OLDEST[0]}.{OLDEST[1]}, "
                         f"where parallel deferred init begins; give {OLDEST[0]}."
                         f"{OLDEST[1]} or later")
    return KernelRules(version, release, from_log)


NEWEST_RULES = KernelRules()

# x86's low memory reservation (kernel rule low_1m_reserved): the first 1 MiB since 5.13;
# before, CONFIG_X86_RESERVE_LOW's 64 KiB (Debian's and the default; Debian's 5.10.223 has
# no backport of the 1 MiB reservation). The real-mode trampoline's pages below 640K
# (reserve_real_mode()) are reserved too before 5.13, but no figure a log prints depends on
# them (see the row), so they are left out.
LOW_1M = (0, (1 << 20) >> 12)
LOW_64K = (0, (64 << 10) >> 12)


def low_reserved(rules: KernelRules) -> tuple[int, int]:
    """The pfn range x86 memblock-reserves at the bottom of memory under ``rules``."""
    return LOW_1M if rules.has("low_1m_reserved") else LOW_64K
