"""The shape of the kernel's 2 MiB HugeTLB boot-pool job, by generation, and its chunks.

Since Linux 6.9 (kernel rule hugetlb_padata) ``hugetlb_pages_alloc_boot()`` allocates the
pages of a spread request (``hugepages=N``) in a padata job over ``[0, N)``: 2 threads per
node with memory and ``min_chunk = N / nodes / 2``, or, since 6.15 (hugetlb_alloc_threads),
``hugepage_allocation_threads`` (a quarter of the online CPUs, at least 1) and
``min_chunk = N / threads``. Each call of the thread function
(``hugetlb_pages_alloc_boot_node()``) starts its own round robin at the first node with
memory (``next_node = first_online_node``), so the pages are dealt over the nodes chunk by
chunk, not as one round robin: 10 pages on 3 equal nodes are 4/3/3 on one thread, 4/4/2 in
two chunks of 5, and all on the first node in ten chunks of 1 (6.12 on 3 nodes). Before 6.9
the boot CPU dealt them in one round robin (one chunk).
"""

from __future__ import annotations

from fastinit.machine.kernel_rules import KernelRules

# padata's chunks per thread (load_balance_factor in kernel/padata.c).
LOAD_BALANCE_FACTOR = 4


def alloc_job_shape(kernel: KernelRules, pages: int, memory_nodes: int,
                    cpus: int) -> tuple[int, int]:
    """``(max_threads, min_chunk)`` of the kernel's job for ``pages`` 2 MiB pages."""
    if kernel.has("hugetlb_alloc_threads"):
        threads = max(cpus // 4, 1)
        return threads, pages // threads
    return memory_nodes * 2, pages // memory_nodes // 2


def alloc_chunks(kernel: KernelRules, pages: int, memory_nodes: int, cpus: int) -> list[int]:
    """The sizes of the calls the kernel's job makes for a spread request of ``pages``,
    in order (one call over everything before 6.9, or when padata runs one thread)."""
    if not pages:
        return []
    if not kernel.has("hugetlb_padata"):
        return [pages]
    max_threads, min_chunk = alloc_job_shape(kernel, pages, memory_nodes, cpus)
    # padata_do_multithreaded() with align 1, as fastinit.engine.padata plans any job.
    nworks = max(1, min(pages // max(min_chunk, 1), max_threads))
    if nworks == 1:
        return [pages]
    chunk = max(pages // (nworks * LOAD_BALANCE_FACTOR), min_chunk, 1)
    whole, rest = divmod(pages, chunk)
    return [chunk] * whole + ([rest] if rest else [])
