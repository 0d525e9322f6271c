"""Memmap files: a header that says what a file holds and whether the run that wrote it finished.

Layout (little-endian)::

    0              fixed header: magic, format version, state, metadata length and SHA-256
    64             metadata, JSON: descriptor layout, topology and its fingerprint, boot
                   parameters, offsets
    data_offset    the memmap (descriptors, then pageblock migratetypes), page-aligned
    zones_offset   the zones' free-area state (list heads, counts, managed pages)

A file is created ``initializing``. It becomes ``complete`` only after deferred init has
finished and the descriptors and the zone state are on disk (msync), so a process killed
at any point before leaves a file that says ``initializing``; a boot that stops on an
error marks it ``failed``. Only complete files are verified or reported as good.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fastinit.mm.memmap import Memmap, gib, memmap_bytes
from fastinit.layout import (MIGRATE_TYPES, NR_ORDERS, PAGE_DTYPE, PAGE_SIZE,
                           PAGEBLOCKS_PER_SECTION, PAGES_PER_SECTION, VMEMMAP_START,
                           ZONES_PGSHIFT, align_up)
from fastinit.machine.cmdline import parse_cmdline
from fastinit.machine.topology import Node, Topology

MAGIC = b"FASTINIT-MEMMAP\0"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<16sIIQ32s")  # magic, version, state, metadata length, its sha256
STATES = {1: "initializing", 2: "complete", 3: "failed"}
INITIALIZING, COMPLETE, FAILED = 1, 2, 3

ZONE_STATE_DTYPE = np.dtype([
    ("nid", "<i8"), ("zid", "<i8"), ("managed", "<i8"),
    ("nr_free", "<i8", (NR_ORDERS, MIGRATE_TYPES)),
    ("heads", "<u8", (NR_ORDERS, MIGRATE_TYPES, 2)),
])


class MemmapFileError(ValueError):
    """A memmap file that cannot be used: not ours, damaged, or for another machine."""


class IncompleteMemmapError(MemmapFileError):
    """A memmap file whose run did not finish: its descriptors must not be trusted."""


def descriptor_layout() -> dict:
    """What the bytes of a descriptor mean; files must match it exactly to be read."""
    return {
        "page_dtype": [[name, PAGE_DTYPE.fields[name][0].str, PAGE_DTYPE.fields[name][1]]
                       for name in PAGE_DTYPE.names],
        "page_itemsize": PAGE_DTYPE.itemsize,
        "pages_per_section": PAGES_PER_SECTION,
        "pageblocks_per_section": PAGEBLOCKS_PER_SECTION,
        "zones_pgshift": ZONES_PGSHIFT,
        "vmemmap_start": VMEMMAP_START,
    }


def topology_to_json(topology: Topology) -> dict:
    # The command line is kept for its kernelcore=/movablecore=, which shape the zones.
    return {"source": topology.source, "notes": list(topology.notes),
            "reserved": [list(r) for r in topology.reserved],
            "nodes": [{"nid": n.nid, "cpus": n.cpus, "ranges": [list(r) for r in n.ranges]}
                      for n in topology.nodes],
            "cmdline": topology.cmdline.text}


def topology_from_json(document: dict) -> Topology:
    nodes = tuple(Node(n["nid"], n["cpus"], tuple(tuple(r) for r in n["ranges"]))
                  for n in document["nodes"])
    return Topology(nodes, tuple(tuple(r) for r in document["reserved"]),
                    document["source"], tuple(document["notes"]),
                    parse_cmdline(document.get("cmdline", "")))


def topology_fingerprint(topology: Topology) -> str:
    """SHA-256 of what decides the descriptors: node ids, memory ranges, reserved memory,
    where ZONE_MOVABLE starts.

    CPU counts and the source's name are left out: they change threads, not results.
    """
    facts = {"nodes": [[n.nid, [list(r) for r in n.ranges]] for n in topology.nodes],
             "reserved": [list(r) for r in topology.reserved]}
    if topology.movable_start:  # only then: files without a movable zone keep their print
        facts["movable"] = sorted(topology.movable_start.items())
    canonical = json.dumps(facts)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class FileLayout:
    data_offset: int
    data_bytes: int
    zones_offset: int
    nr_zones: int

    @property
    def total(self) -> int:
        return self.zones_offset + self.nr_zones * ZONE_STATE_DTYPE.itemsize


class MemmapFile:
    """The open file behind a file-backed `Memmap`: its header, state and zone state."""

    def __init__(self, path: str, region: mmap.mmap, layout: FileLayout, meta: dict):
        self.path, self.region, self.layout, self.meta = path, region, layout, meta

    @property
    def state(self) -> str:
        return STATES.get(_FIXED.unpack_from(self.region, 0)[2], "unknown")

    def set_state(self, state: int) -> None:
        """Record ``state`` in the header and push the header to the disk."""
        struct.pack_into("<I", self.region, 20, state)  # after the magic and the version
        self.region.flush(0, PAGE_SIZE)

    def complete(self, zones: dict) -> None:
        """Write the zone state, sync everything, and only then mark the file complete."""
        records = np.zeros(self.layout.nr_zones, dtype=ZONE_STATE_DTYPE)
        for record, ((nid, zid), area) in zip(records, sorted(zones.items())):
            record["nid"], record["zid"], record["managed"] = nid, zid, area.managed
            record["nr_free"], record["heads"] = area.nr_free, area.heads
        start = self.layout.zones_offset
        self.region[start:start + records.nbytes] = records.tobytes()
        self.region.flush()
        self.set_state(COMPLETE)

    def zone_state(self) -> np.ndarray:
        """The zone records written at completion, shape (nr_zones,) of ZONE_STATE_DTYPE."""
        start = self.layout.zones_offset
        return np.frombuffer(self.region, dtype=ZONE_STATE_DTYPE, count=self.layout.nr_zones,
                             offset=start).copy()


def _metadata(plan, kernel: str, layout: FileLayout) -> dict:
    import fastinit
    return {
        "format": FORMAT_VERSION,
        "fastinit": fastinit.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "layout": descriptor_layout(),
        "topology": topology_to_json(plan.topology),
        "fingerprint": topology_fingerprint(plan.topology),
        "arch": plan.arch,
        "threads": [node.max_threads for node in plan.nodes],
        "kernel": kernel,
        "sections": len(plan.sections),
        "zones": [[node.nid, zone.zid] for node in plan.nodes for zone in node.zones],
        "data_offset": layout.data_offset,
        "data_bytes": layout.data_bytes,
        "zones_offset": layout.zones_offset,
    }


def create(plan, path: str, *, force: bool = False, kernel: str = "stream") -> Memmap:
    """A memmap for ``plan`` in a new file, its blocks reserved up front so a full disk
    fails now, not halfway through.

    Raises
    ------
    MemmapFileError
        If the file exists (without ``force``), its directory is unusable, or the disk
        lacks the space; no file is left behind in the last two cases.
    """
    target = Path(path)
    if target.exists() and not force:
        raise MemmapFileError(f"{path} exists; pass --force to overwrite it")
    data_bytes = memmap_bytes(len(plan.sections))
    nr_zones = sum(len(node.zones) for node in plan.nodes)
    layout = FileLayout(0, data_bytes, 0, nr_zones)
    meta_bytes = json.dumps(_metadata(plan, kernel, layout)).encode()
    # Offsets enter the metadata, so size it with room for their digits.
    layout.data_offset = align_up(_FIXED.size + len(meta_bytes) + 64, PAGE_SIZE)
    layout.zones_offset = align_up(layout.data_offset + data_bytes, 64)
    meta_bytes = json.dumps(_metadata(plan, kernel, layout)).encode()
    try:
        stat = os.statvfs(target.parent)
    except OSError as error:
        raise MemmapFileError(f"cannot use {path}: {error.strerror}") from None
    free = stat.f_bavail * stat.f_frsize + (target.stat().st_size if target.exists() else 0)
    if layout.total > free:
        raise MemmapFileError(f"the memmap file needs {gib(layout.total)} but "
                              f"{target.parent} has {gib(free)} free; choose a "
                              f"--memmap-file on a disk with room")
    try:
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as error:
        raise MemmapFileError(f"cannot create {path}: {error.strerror}") from None
    try:
        os.posix_fallocate(fd, 0, layout.total)
        region = mmap.mmap(fd, layout.total, flags=mmap.MAP_SHARED)
    except OSError as error:
        target.unlink(missing_ok=True)
        raise MemmapFileError(f"cannot allocate {gib(layout.total)} in {path}: "
                              f"{error.strerror}; choose a --memmap-file on a disk with "
                              f"room") from None
    finally:
        os.close(fd)
    region[_FIXED.size:_FIXED.size + len(meta_bytes)] = meta_bytes
    region[:_FIXED.size] = _FIXED.pack(MAGIC, FORMAT_VERSION, INITIALIZING, len(meta_bytes),
                                       hashlib.sha256(meta_bytes).digest())
    region.flush(0, layout.data_offset)
    memmap = Memmap(plan.sections, memoryview(region)[layout.data_offset:][:data_bytes],
                    str(target), owner=region)
    memmap.file = MemmapFile(str(target), region, layout, json.loads(meta_bytes))
    return memmap


def _fail(path: str, why: str, fix: str) -> MemmapFileError:
    return MemmapFileError(f"{path} {why}; {fix}")


def open_file(path: str, *, topology: Topology | None = None,
              require_complete: bool = True) -> tuple[Memmap, Topology]:
    """Open a memmap file read-only after checking its header.

    Parameters
    ----------
    path : str
    topology : Topology or None
        If given, the file must have been written for this machine.
    require_complete : bool
        Refuse a file whose run did not finish (the default).

    Returns
    -------
    (Memmap, Topology)
        The memmap (read-only arrays; ``memmap.file`` holds the header) and the machine
        it was written for.

    Raises
    ------
    IncompleteMemmapError
        The run that wrote it was killed or failed.
    MemmapFileError
        Not a memmap file, another format version or descriptor layout, damaged or
        truncated, or written for another machine.
    """
    redo = "write it again with fastinit boot --memmap-file PATH --force"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise MemmapFileError(f"cannot open {path}: {error.strerror}") from None
    try:
        size = os.fstat(fd).st_size
        if size < _FIXED.size:
            raise _fail(path, "is not a fastinit memmap file (too short)", "check the path")
        region = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    magic, version, state, meta_len, digest = _FIXED.unpack_from(region, 0)
    if magic != MAGIC:
        raise _fail(path, "is not a fastinit memmap file (no header)", "check the path")
    if version != FORMAT_VERSION:
        raise _fail(path, f"has memmap format version {version}, this fastinit reads "
                    f"version {FORMAT_VERSION}", redo)
    meta_bytes = region[_FIXED.size:_FIXED.size + meta_len]
    if len(meta_bytes) != meta_len or hashlib.sha256(meta_bytes).digest() != digest:
        raise _fail(path, "has a damaged header (checksum mismatch)", redo)
    try:
        meta = json.loads(meta_bytes)
        same_layout = meta["layout"] == json.loads(json.dumps(descriptor_layout()))
        layout = FileLayout(int(meta["data_offset"]), int(meta["data_bytes"]),
                            int(meta["zones_offset"]), len(meta["zones"]))
        stored = topology_from_json(meta["topology"])
    except (ValueError, KeyError, TypeError, IndexError):
        raise _fail(path, "has a header this fastinit cannot read", redo) from None
    if not same_layout:
        raise _fail(path, "holds descriptors of another layout", redo)
    if size < layout.total:
        raise _fail(path, f"is truncated: {size} bytes where its header needs "
                    f"{layout.total}", redo)
    sections = stored.present_sections()
    if (topology_fingerprint(stored) != meta["fingerprint"]
            or memmap_bytes(len(sections)) != layout.data_bytes):
        raise _fail(path, "has a damaged header (topology fingerprint mismatch)", redo)
    if topology is not None and topology_fingerprint(topology) != meta["fingerprint"]:
        raise _fail(path, f"was written for another machine ({stored.source}: "
                    f"{len(stored.nodes)} nodes, {stored.present_pages} pages), not "
                    f"{topology.source}", "name the machine it was written for, or none")
    if require_complete and state != COMPLETE:
        reason = ("the run that wrote it stopped with an error" if state == FAILED else
                  "the run that wrote it did not finish (killed or still running)")
        raise IncompleteMemmapError(f"{path} is incomplete (state "
                                    f"{STATES.get(state, state)}): {reason}; its "
                                    f"descriptors cannot be trusted; {redo}")
    memmap = Memmap(sections, memoryview(region)[layout.data_offset:][:layout.data_bytes],
                    path, owner=region)
    memmap.file = MemmapFile(path, region, layout, meta)
    return memmap, stored
