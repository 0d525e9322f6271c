"""The rows of the kernel rules table (`fastinit.machine.kernel_rules`): what differs
between Linux generations, each with the release that brought it, the stable point releases
it was backported to, what the kernel did before, and where it comes from; and what looks
as if it might differ and does not."""

from __future__ import annotations

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
    stable : tuple of (major, minor, first, last)
        Point releases of older stable series that behave so too (a backport), ``last``
        None for every later one of the series: ``(5, 10, 110, None)`` is 5.10.110 on.
        A kernel whose point release is unknown gets its series' newest (``last`` None).
    """

    name: str
    since: tuple[int, int] | None
    now: str
    before: str
    source: str
    stable: tuple[tuple[int, int, int, int | None], ...] = ()

    def holds(self, release: tuple[int, int], patch: int | None) -> bool:
        """True for a kernel of ``release`` at point release ``patch`` (None: unknown)."""
        if self.since is not None and self.since <= release:
            return True
        for major, minor, first, last in self.stable:
            if (major, minor) == release:
                if patch is None:
                    return last is None
                return first <= patch and (last is None or patch <= last)
        return False


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
    Rule("page0_e820_ram", None,
         "page 0 stays RAM in the e820 table (memblock-reserved by trim_low_memory_range()): "
         "node 0's memory and zone DMA begin at pfn 0",
         "trim_bios_range() makes page 0 e820-reserved: no memblock memory, node 0 and zone "
         "DMA begin at pfn 1 (every release but these)",
         "arch/x86/kernel/setup.c; 'x86/setup: don't remove E820_TYPE_RAM for pfn 0' "
         "(Mike Rapoport, bde9cfa3afe4, 5.11-rc) and its revert 5c279c4cf206 (same cycle: "
         "no mainline release has it); in 5.10 stable from the review of 2021-01-25 "
         "(5.10.11) until the revert's review of 2021-02-05 (5.10.14)",
         stable=((5, 10, 11, 13),)),
    Rule("movable_none_past_node_end", (5, 18),
         "a node whose Movable zone start, rounded up to a max-order block, is at or past "
         "the node's end gets none (no 'Node N:' line under 'Movable zone start')",
         "the rounded start is kept and printed; the zone spans nothing there, so only that "
         "line differs",
         "mm/page_alloc.c find_zone_movable_pfns_for_nodes(); 'mm/pages_alloc.c: don't "
         "create ZONE_MOVABLE beyond the end of a node' (Alistair Popple, ddbc84f3f595, 5.18), "
         "backported to 5.10.110; 5.15.y, 5.16.y and 5.17.y got it too at point releases not "
         "read here: every one of them is taken to have it",
         stable=((5, 10, 110, None), (5, 15, 0, None), (5, 16, 0, None), (5, 17, 0, None))),
    Rule("hugepages_per_node", (5, 16),
         "hugepages= takes the per-node form (0:N,1:M) and says 'HugeTLB: Invalid hugepages "
         "parameter ...' for a value it cannot read (the size's counts are then cleared)",
         "hugepages= is the leading number alone (sscanf('%lu'): '1:140,2:98' asks for 1 "
         "page, spread over the nodes), anything unreadable is 0, and nothing is said",
         "mm/hugetlb.c hugepages_setup(); 'hugetlbfs: extend the definition of hugepages "
         "parameter to support node allocation' (Zhenguo Yao, b5389086ad7b, 5.16); seen in "
         "Debian's 5.10.223 (capture 5.10-seed-36)"),
    Rule("hugetlb_report_colon", (6, 0),
         "report_hugepages() prints 'HugeTLB: registered <size> page size, pre-allocated N "
         "pages' and, for each size, 'HugeTLB: K KiB vmemmap can be freed for a <size> page'",
         "'HugeTLB registered <size> page size, pre-allocated N pages' (no colon) and no "
         "vmemmap line there (5.10 has no HVO; seen in Debian's 5.10.223, capture "
         "5.10-seed-36)",
         "mm/hugetlb.c report_hugepages(); 'mm: hugetlb_vmemmap: improve hugetlb_vmemmap "
         "code readability' (Muchun Song, 2022-06, merged for 6.0)"),
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
         "block (what happens past a node's end: row movable_none_past_node_end)",
         "find_zone_movable_pfns_for_nodes(): mm/page_alloc.c until 6.3, mm/mm_init.c since "
         "6.4, moved unchanged"),
    Same("mem_memmap",
         "mem= (e820 RAM removed above the limit) and memmap= in every form (nn@ss, nn#ss, "
         "nn$ss, nn!ss, exactmap) as e820 edits before memblock sees the table",
         "arch/x86/kernel/e820.c parse_memopt(), parse_memmap_one(), e820__range_remove(), "
         "e820__range_update(), read in a 6.14+ tree (linux-next before 7.0); 5.10 and "
         "7.0 (its e820 overhaul, merge 5668a64622cf) were not read here, "
         "and the campaign's mem=/memmap= layouts on 5.10 and 7.2 match; memmap=nn%ss-t+n "
         "(4.16: -t+n update, +n add, -t or nothing remove) is modelled "
         "and a hand-made boot of it matched on 5.10 and 7.2"),
    Same("max_order_blocks",
         "the largest buddy block is 1024 pages (order 10) on x86-64",
         "include/linux/mmzone.h: MAX_ORDER 11 (exclusive) before 6.4, MAX_ORDER / "
         "MAX_PAGE_ORDER 10 (inclusive) since: the same blocks (row max_order_inclusive)"),
)

