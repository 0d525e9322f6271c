"""Page memmap files: a boot's memmap in a fastinit memmap file of kind "page-memmap".

The file format, the crash-safe replace and the locks are `fastinit.arrays` (any dtype);
this module is the page memmap's use of them. A file holds three arrays::

    pages         PAGE_DTYPE, (nr_sections * PAGES_PER_SECTION,)   the descriptors
    pageblock_mt  uint8, (nr_sections * PAGEBLOCKS_PER_SECTION,)   right after them
    zones         ZONE_STATE_DTYPE, (nr_zones,)                    the zones' free areas

and, for a boot with HugeTLB pools and HVO (``hugetlb_free_vmemmap=on``), ``hvo``: the
pages of descriptors HVO aliased (`fastinit.mm.hugetlb.hvo_file`, which maps them again
when the file is opened). As metadata: the descriptor layout, the machine and its fingerprint, and the boot's
parameters (`fastinit.mm.memmap_meta`). A boot writes the file beside its path and renames
it there only after deferred init finished and everything was synced: an interrupted or
failed boot leaves the path as it was. Reading it back, everything is checked before any
kernel sees it: the header, the metadata field by field, the data checksum, the zone
state against the machine, and every pageblock migratetype.

Files of format versions 1 and 2 are refused, naming the version: boot again. A file is
also a .npy file: `numpy.load(path, mmap_mode="r")` gives its descriptors (PAGE_DTYPE).
"""

from __future__ import annotations

import numpy as np

from fastinit.arrays.errors import (DamagedMemmapError, IncompleteMemmapError,
                                    MemmapBusyError, MemmapFileError)
from fastinit.arrays.checksum import data_checksum
from fastinit.arrays.create_open import MemmapFile, create_file, open_file as open_any_file
from fastinit.layout import (DESCRIPTORS_PER_PAGE, MIGRATE_TYPES, NR_ORDERS, PAGE_DTYPE,
                             PAGEBLOCK_NR_PAGES, PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION,
                             SECTION_SHIFT)
from fastinit.kernels.descriptors import lru_address
from fastinit.mm.buddy import ZoneFreeArea
from fastinit.machine.topology import Topology
from fastinit.mm.hugetlb.hvo_file import HVO_DTYPE, alias_recorded, recorded_rows
from fastinit.mm.memmap import Memmap, memmap_bytes
from fastinit.mm.plan import ARCH_PROFILES, plan_boot
from fastinit.mm.memmap_meta import (check_against_plan, check_page_metadata, page_metadata,
                                     topology_fingerprint)

__all__ = ["KIND", "PageFile", "create", "open_file", "MemmapFileError",
           "IncompleteMemmapError", "DamagedMemmapError", "MemmapBusyError",
           "topology_fingerprint", "ZONE_STATE_DTYPE"]

KIND = "page-memmap"
REDO = "write it again with fastinit boot --memmap-file PATH --force"

ZONE_STATE_DTYPE = np.dtype([
    ("nid", "<i8"), ("zid", "<i8"), ("managed", "<i8"),
    ("nr_free", "<i8", (NR_ORDERS, MIGRATE_TYPES)),
    ("heads", "<u8", (NR_ORDERS, MIGRATE_TYPES, 2)),
])


class PageFile:
    """The file behind a file-backed `Memmap`: its state, metadata and zone state.

    Attributes
    ----------
    path : str
    meta : dict
        The page metadata, plus the format's ``format``, ``fastinit`` and ``created``.
    handle : fastinit.arrays.MemmapFile
    """

    def __init__(self, handle: MemmapFile):
        self.handle, self.path = handle, handle.path
        header = handle.header
        self.meta = dict(handle.metadata, format=header["format"],
                         fastinit=header["fastinit"], created=header["created"])
        # The aliases HVO mapped (`fastinit.mm.hugetlb.hvo_file.FileRemapper`), if any.
        self.hvo = None

    @property
    def state(self) -> str:
        return self.handle.state

    def complete(self, zones: dict) -> None:
        """Write the zone state, sync everything, mark the file complete, and put it at
        its path."""
        records = self.handle.arrays["zones"]
        for record, ((nid, zid), area) in zip(records, sorted(zones.items())):
            record["nid"], record["zid"], record["managed"] = nid, zid, area.managed
            record["nr_free"], record["heads"] = area.nr_free, area.heads
        if self.hvo is not None:
            self.hvo.settle()
        self.handle.complete()

    def fail(self) -> None:
        """A new file is removed (the path keeps what it had); a reused one says failed."""
        self.handle.fail()

    def begin_update(self) -> None:
        """Reuse a completed file in place: locked, and initializing until complete."""
        self.handle.begin_update()

    def hvo_record(self) -> np.ndarray | None:
        """The ``hvo`` array (rows of `HVO_DTYPE`) of a file with HVO, else None."""
        return self.handle.arrays.get("hvo")

    def zone_state(self) -> np.ndarray:
        """The zone records written at completion, shape (nr_zones,) of ZONE_STATE_DTYPE."""
        return self.handle.arrays["zones"].copy()


def hvo_rows(plan) -> int:
    """Rows of the ``hvo`` array: one per pool page HVO may remap (0: no such array)."""
    pools = plan.pools
    if pools is None or not pools.params.free_vmemmap:
        return 0
    return sum(pages for sizes in pools.counts().values() for pages in sizes.values())


def _page_arrays(nr_sections: int, nr_zones: int, hvo: int = 0) -> list:
    arrays = [("pages", PAGE_DTYPE, (nr_sections * PAGES_PER_SECTION,)),
              ("pageblock_mt", np.uint8, (nr_sections * PAGEBLOCKS_PER_SECTION,)),
              ("zones", ZONE_STATE_DTYPE, (nr_zones,))]
    return arrays + [("hvo", HVO_DTYPE, (hvo,))] if hvo else arrays


def _memmap(handle: MemmapFile, sections: np.ndarray) -> Memmap:
    # Pages and pageblocks are laid out back to back (the pages end on a 64-byte line).
    return Memmap(sections, handle.data[:memmap_bytes(len(sections))], handle.path,
                  file=PageFile(handle))


def create(plan, path, *, force: bool = False, replace_any_file: bool = False,
           kernel: str = "stream") -> Memmap:
    """A memmap for ``plan`` in a new file (see `fastinit.arrays.create_open.create_file`).

    Raises
    ------
    MemmapFileError
        The path is taken (without ``force``), not a regular fastinit file (without
        ``replace_any_file``), in an unusable directory, or the disk lacks the room.
    MemmapBusyError
        Another fastinit is writing or reading the path.
    """
    nr_zones = sum(len(node.zones) for node in plan.nodes)
    handle = create_file(path, _page_arrays(len(plan.sections), nr_zones, hvo_rows(plan)),
                         page_metadata(plan, kernel), kind=KIND, force=force,
                         replace_any_file=replace_any_file)
    return _memmap(handle, plan.sections)


def open_file(path, *, topology: Topology | None = None, require_complete: bool = True,
              check_data: bool = False):
    """Open a page memmap file read-only, checking everything before it is used.

    Parameters
    ----------
    path : str or os.PathLike
    topology : Topology or None
        If given, the file must have been written for this machine.
    require_complete : bool
        Refuse a file whose run did not finish (the default).
    check_data : bool
        Also compare the data checksum written at completion. Off by default: verify
        checks every byte the checksum covers, more strictly, and the extra pass over
        the file cost 4x deferred init on 1x256G (perf/memmap_file_cost.py). The zone
        state and the pageblock migratetypes are always checked here (the arrays are
        laid out back to back: no byte of the data is left unchecked).

    Returns
    -------
    (Memmap, BootPlan)
        The memmap (read-only arrays; ``memmap.file`` holds the rest) and the plan of
        the machine it was written for.
    """
    # The checksum is checked below, once HVO's aliases are mapped again.
    handle = open_any_file(path, "r", kind=KIND, allow_incomplete=not require_complete,
                           check_data=False)
    shown = handle.path
    try:
        stored, meta = check_page_metadata(handle.metadata, ARCH_PROFILES)
        plan = plan_boot(stored, meta["arch"], None)
        if "node" in meta:  # one node's shard of a distributed boot
            plan = plan.shard(meta["node"])
        check_against_plan(meta, plan)
    except ValueError as error:
        handle.close()
        raise MemmapFileError(f"{shown} has a header this fastinit cannot use: {error}; "
                              f"{REDO}") from None
    # Every array's dtype too, not only the shapes: the zone records' fields are read by
    # name, and a forged dtype could rename or move them.
    expected = {name: (np.dtype(dtype), shape) for name, dtype, shape in
                _page_arrays(len(plan.sections), len(meta["zones"]), hvo_rows(plan))}
    if {name: (dtype, shape) for name, dtype, shape in handle.layout} != expected:
        handle.close()
        raise MemmapFileError(f"{shown} has arrays of other dtypes or shapes than its "
                              f"machine needs; {REDO}")
    if topology is not None and topology_fingerprint(topology) != meta["fingerprint"]:
        handle.close()
        raise MemmapFileError(f"{shown} was written for another machine ({stored.source}: "
                              f"{len(stored.nodes)} nodes, {stored.present_pages} pages), "
                              f"not {topology.source}; name the machine it was written "
                              f"for, or none")
    memmap = _memmap(handle, plan.sections)
    if handle.state == "complete":
        # HVO's aliases first: the checksum was computed with them mapped.
        problem = _map_hvo(memmap, plan)
        if not problem and check_data and \
                data_checksum(handle.data) != handle.completed_checksum:
            problem = ("its data no longer matches the checksum written when it was "
                       "completed")
        problem = problem or zone_state_problem(handle.arrays["zones"], plan) or \
            pageblock_problem(memmap)
        if problem:
            handle.close()
            raise DamagedMemmapError(f"{shown} is damaged: {problem}; {REDO}")
    return memmap, plan


def _map_hvo(memmap: Memmap, plan) -> str | None:
    """Map the aliases the file records again (before anything reads its descriptors);
    what is wrong, or None."""
    record = memmap.file.hvo_record()
    if record is None:
        return None
    sizes = {(1 << r.order) // DESCRIPTORS_PER_PAGE for r in plan.pools.params.hstates}
    rows = recorded_rows(record, memmap, sizes)
    if isinstance(rows, str) or not rows:
        return rows or None
    try:
        memmap.file.hvo = alias_recorded(memmap, rows)
    except OSError as error:
        memmap.file.handle.close()
        raise MemmapFileError(f"{memmap.file.path} cannot be read: {error.strerror}") \
            from None
    return None


def zone_state_problem(records: np.ndarray, plan) -> str | None:
    """What is wrong with the zone records of a complete file, or None.

    Bounds every figure verify will use to walk lists: counts within what the zone can
    hold, list ends either the head itself (empty) or a descriptor inside the zone.
    """
    zones = [(node.nid, zone) for node in plan.nodes for zone in node.zones]
    if len(records) != len(zones):
        return f"{len(records)} zone records for {len(zones)} zones"
    for record, (nid, zone) in zip(records, zones):
        where = f"the zone record of node {nid} zone {zone.name}"
        if (int(record["nid"]), int(record["zid"])) != (nid, zone.zid):
            return f"{where} names node {record['nid']} zone {record['zid']}"
        if not 0 <= int(record["managed"]) <= zone.present:
            return f"{where} says {record['managed']} managed pages of {zone.present}"
        counts = record["nr_free"]
        limits = np.array([zone.spanned >> order for order in range(NR_ORDERS)])[:, None]
        if (counts < 0).any() or (counts > limits).any():
            return f"{where} counts more free blocks than the zone holds"
        if sum(int(counts[order].sum()) << order for order in range(NR_ORDERS)) > zone.present:
            return f"{where} counts more free pages than the zone has"
        own = ZoneFreeArea(nid, zone.zid).heads[..., 0]  # where an empty list points
        heads = record["heads"]
        empty = counts == 0
        if (heads[empty] != own[empty][:, None]).any():
            return f"{where} has an empty list whose head does not point at itself"
        lo, hi = lru_address(zone.start_pfn), lru_address(zone.end_pfn)
        ends = heads[~empty]
        if ((ends < lo) | (ends >= hi) | ((ends - lo) % np.uint64(64) != 0)).any():
            return f"{where} has a list end outside the zone's descriptors"
    return None


def pageblock_problem(memmap: Memmap) -> str | None:
    """A pageblock migratetype no list exists for (verify indexes its lists with them)."""
    bad = np.flatnonzero(memmap.pageblock_mt >= MIGRATE_TYPES)
    if not len(bad):
        return None
    slot, block = divmod(int(bad[0]), PAGEBLOCKS_PER_SECTION)
    pfn = (int(memmap.sections[slot]) << SECTION_SHIFT) + block * PAGEBLOCK_NR_PAGES
    return (f"pageblock at pfn {pfn:#x} has migratetype {memmap.pageblock_mt[bad[0]]}, "
            f"beyond the {MIGRATE_TYPES} there are ({len(bad)} such pageblocks)")

