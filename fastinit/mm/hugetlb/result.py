"""What ``hugetlb_init()`` left: the pools' pages, free lists and what they gave back.

A boot's jobs fill a `PoolResult` as they go (`fastinit.mm.hugetlb.state`); a memmap file
gives it back from its descriptors (`fastinit.mm.hugetlb.recorded`). No kernel here: a
boot without pools, and a memmap file's reader, import it for nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fastinit.layout import LIST_HEAD_SIZE, MAX_NUMNODES

# Simulated address of hstate->hugepage_freelists[nid] (in the direct map, like zones').
HSTATE_LIST_BASE = 0xFFFF888200000000


def freelist_address(hstate: int, nid: int) -> int:
    """Address of the list head of free huge pages of the ``hstate``-th size on ``nid``."""
    return HSTATE_LIST_BASE + (hstate * MAX_NUMNODES + nid) * LIST_HEAD_SIZE


@dataclass
class PoolResult:
    """What ``hugetlb_init()`` did.

    Attributes
    ----------
    pages : dict
        ``order -> list of (ndarray of int64 head pfns, nid)``, batch by batch.
    jobs : dict
        ``"alloc"`` (buddy-allocated sizes) and ``"gather"`` (gigantic pages) JobReports.
    seconds : dict
        Wall time of each job.
    freed_vmemmap : list of (int, int, int, int)
        ``(nid, zid, start, end)`` of vmemmap pages HVO gave to the buddy allocator.
    freelists : dict
        ``(hstate index, nid) -> (first, last)`` addresses on each per-node free list.
    managed_added : dict
        ``(nid, zid) -> pages`` added to ``managed``: gigantic pages and freed vmemmap.
    remapper : fastinit.mm.hugetlb.hvo.Remapper or None
    decision : fastinit.mm.hugetlb.hvo_budget.HvoDecision
    kept_vmemmap : int
        Pages HVO was to remap but kept whole: the process ran out of mappings.
    """

    pages: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    freed_vmemmap: list = field(default_factory=list)
    freelists: dict = field(default_factory=dict)
    managed_added: dict = field(default_factory=dict)
    remapper: object = None
    decision: object = None
    kept_vmemmap: int = 0

    def heads(self, order: int) -> np.ndarray:
        """Head pfns of every pool page of ``order`` (int64, sorted)."""
        batches = [heads for heads, _ in self.pages.get(order, [])]
        return np.sort(np.concatenate(batches)) if batches else np.zeros(0, np.int64)

    def counts(self) -> dict[int, dict[int, int]]:
        """``nid -> {order: pages}``."""
        result: dict[int, dict[int, int]] = {}
        for order, batches in self.pages.items():
            for heads, nid in batches:
                sizes = result.setdefault(nid, {})
                sizes[order] = sizes.get(order, 0) + len(heads)
        return result
