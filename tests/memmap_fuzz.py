"""Mutations of page memmap files, for the fuzz campaign (perf/fuzz_memmap_files.py) and its
fast slice in the default suite (tests/test_fuzz_memmap_files.py).

Each mutation starts from a real, complete file (machines from specs and from real boot
logs) and damages one thing: the metadata (then resealed: every checksum recomputed, so
the field checks behind the checksums are what is tested), the fixed header, the file's
size, or the data region (descriptors as bytes, words, runs and targeted fields; pageblock
migratetypes; zone state), with the data checksum resealed (to reach verify) or not (to
test that the checksum catches it). Data mutations are applied in place to a working copy
and undone afterwards, and the checksum is patched by the difference of the changed words
(it is a sum over words), so a mutation costs what it changes, not the file's size.
"""

from __future__ import annotations

import json
import os
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastinit.arrays import fileformat as fmt
from fastinit.kernels.checksum import mix_sum
from memmap_tools import assemble, header_at, split
from fastinit.layout import PAGE_BUDDY_MAPCOUNT, PAGE_DTYPE, VMEMMAP_START, LRU_OFFSET

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["1x128M", "2x256M,cpus=1", "1x384M"]
LOGS = ["kvm-512m-syslog-3.13.txt", "ec2-xen-hvm-1g-journal-4.13.txt",
        "hyperv-vm-hotplug-srat-journal-5.13.txt", "hyperv-2node-3.15.txt"]
_MASK = (1 << 64) - 1


@dataclass
class Base:
    """A complete file kept as bytes, and a working copy that mutations change."""

    name: str
    raw: bytes
    work: Path
    meta: dict = field(init=False)
    data_offset: int = field(init=False)
    header_at: int = field(init=False)
    npy: bytes = field(init=False)
    arrays: dict = field(init=False)
    checksum: int = field(init=False)

    def __post_init__(self):
        _, meta, _, self.npy, self.checksum = split(self.raw)
        self.meta_raw = meta
        self.meta = json.loads(meta)
        self.data_offset = len(self.npy)
        self.header_at = header_at(self.raw)
        specs = fmt.decode_metadata(meta)[1]
        self.arrays = {s.name: (s.offset, s.nbytes) for s in specs}
        self.restore()

    def restore(self) -> None:
        self.work.write_bytes(self.raw)

    @property
    def pages(self) -> int:
        return self.arrays["pages"][1] // 64


def make_bases(directory: Path, only=None) -> list[Base]:
    """Boot every spec and log machine into a file; returns them as bases."""
    from fastinit.machine.bootlog import read_bootlog
    from fastinit.machine.spec import parse_spec
    from fastinit.mm.run import boot
    machines = [(f"spec-{s}", lambda s=s: parse_spec(s)) for s in SPECS]
    machines += [(f"log-{log}", lambda log=log: read_bootlog(str(ROOT / "tests/data/dmesg"
                                                                    / log))[0]) for log in LOGS]
    bases = []
    for name, machine in machines:
        if only is not None and name not in only:
            continue
        path = directory / f"{name}.orig"
        boot(machine(), threads=1, memmap_file=str(path), force=True)
        bases.append(Base(name, path.read_bytes(), directory / f"{name}.bin"))
        path.unlink()
    return bases


# Values that break assumptions: types, signs, sizes, non-finite numbers, nesting.
_JSON_VALUES = [0, -1, 1, 2, 7, 1.5, 0.0, -0.0, 2**31, 2**62, 2**63, 2**64, 10**22, 10**400,
                "", "x", "x86", "stream", "Normal", [], {}, None, True, False, [0, 1],
                [[0, 1]], [1.0, 2.0], {"nid": 0}, "0" * 64, "a" * 5000]


def _random_path(rng: random.Random, document):
    """A random (container, key) inside a JSON document, biased towards deep fields."""
    container, key = None, None
    node = document
    while isinstance(node, (dict, list)) and node and rng.random() < 0.85:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        container, key = node, rng.choice(keys)
        node = node[key]
    return container, key


def mutate_json(rng: random.Random, document) -> bytes:
    """A copy of ``document`` with one field damaged, as JSON bytes."""
    document = json.loads(json.dumps(document))
    container, key = _random_path(rng, document)
    if container is None:
        return rng.choice([b"{}", b"[]", b"null", b"[" * 2000 + b"]" * 2000, b"\xff"])
    action = rng.randrange(8)
    value = container[key]
    if action == 0 and isinstance(container, dict):
        del container[key]
    elif action == 1:
        container[key] = rng.choice(_JSON_VALUES)
    elif action == 2 and type(value) is int:
        container[key] = value + rng.choice([-1, 1, -value, 1 << rng.randrange(70)])
    elif action == 3 and isinstance(value, list) and value:
        rng.choice([value.pop, lambda: value.append(value[0]), value.reverse])()
    elif action == 4 and isinstance(value, list) and len(value) > 1:
        i, j = rng.randrange(len(value)), rng.randrange(len(value))
        value[i], value[j] = value[j], value[i]
    elif action == 5:
        deep = 0
        for _ in range(rng.choice([10, 31, 40, 500])):
            deep = [deep]
        container[key] = deep
    elif action == 6 and isinstance(value, str):
        container[key] = value[:rng.randrange(len(value) + 1)] + rng.choice(["", "x", "\0"])
    else:
        container[key] = rng.choice(_JSON_VALUES)
    text = json.dumps(document)
    if rng.random() < 0.1:  # numbers json.dumps never writes
        text = text.replace("0", rng.choice(["1e400", "NaN", "-Infinity", "0.0"]), 1)
    return text.encode()


def refingerprint(document: dict) -> None:
    """Recompute the page fingerprint after a topology change, when the topology is still
    buildable, so the checks behind the fingerprint are reached too."""
    from fastinit.mm.memmap_meta import topology_fingerprint, topology_from_json
    try:
        page = document["metadata"]
        page["fingerprint"] = topology_fingerprint(topology_from_json(page["topology"]))
    except Exception:  # noqa: BLE001 - an unbuildable topology stays as mutated
        pass


def write_resealed(base: Base, meta: bytes, data: bytes | None = None, state: int = 2) -> None:
    from fastinit.arrays.checksum import data_checksum
    checksum = base.checksum if data is None else data_checksum(np.frombuffer(data, np.uint8))
    data = base.raw[base.data_offset:base.header_at - len(base.meta_raw)] if data is None \
        else data
    base.work.write_bytes(assemble(base.npy, state, meta, data, checksum))


class DataEdit:
    """In-place byte changes to the data region, optionally resealed, and their undo."""

    def __init__(self, base: Base):
        self.base, self.changes = base, {}

    def put(self, offset: int, new: bytes) -> None:
        self.changes[offset] = bytes(new)

    def apply(self, reseal: bool) -> bool:
        """Write the changes; returns False if they change nothing."""
        base, delta, changed = self.base, 0, False
        with open(base.work, "r+b") as file:
            for offset, new in self.changes.items():
                lo = offset // 8 * 8
                hi = -(-(offset + len(new)) // 8) * 8
                old = bytearray(base.raw[base.data_offset + lo:base.data_offset + hi])
                patched = bytearray(old)
                patched[offset - lo:offset - lo + len(new)] = new
                changed |= old != patched
                delta += int(mix_sum(np.frombuffer(bytes(patched), np.uint64), lo // 8))
                delta -= int(mix_sum(np.frombuffer(bytes(old), np.uint64), lo // 8))
                file.seek(base.data_offset + lo)
                file.write(patched)
            if reseal:
                file.seek(base.header_at)
                file.write(fmt.pack_header(2, base.meta_raw, (base.checksum + delta) & _MASK))
        return changed

    def undo(self) -> None:
        with open(self.base.work, "r+b") as file:
            file.seek(self.base.header_at)
            file.write(self.base.raw[self.base.header_at:])
            for offset, new in self.changes.items():
                lo, hi = offset // 8 * 8, -(-(offset + len(new)) // 8) * 8
                file.seek(self.base.data_offset + lo)
                file.write(self.base.raw[self.base.data_offset + lo:self.base.data_offset + hi])


def _lru(pfn: int) -> int:
    return (VMEMMAP_START + pfn * 64 + LRU_OFFSET) & _MASK


def _interesting_word(rng: random.Random, base: Base) -> int:
    pfn = rng.randrange(-4, base.pages + 4) if rng.random() < 0.8 else rng.randrange(1 << 40)
    return rng.choice([0, _MASK, rng.getrandbits(64), _lru(pfn), _lru(pfn) - 8, 1 << 63,
                       (PAGE_BUDDY_MAPCOUNT & 0xFFFFFFFF) | (1 << 32), rng.randrange(16),
                       1 << rng.randrange(64), (rng.randrange(1024) << 54)]) & _MASK


def data_mutation(rng: random.Random, base: Base, kind: str) -> DataEdit:
    """One damage of the data region of ``kind`` (see `DATA_KINDS`)."""
    edit = DataEdit(base)
    pages_at, pages_bytes = base.arrays["pages"]
    blocks_at, blocks_bytes = base.arrays["pageblock_mt"]
    zones_at, zones_bytes = base.arrays["zones"]
    if kind == "desc-bytes":
        for _ in range(rng.choice([1, 1, 2, 8])):
            edit.put(pages_at + rng.randrange(pages_bytes), bytes([rng.randrange(256)]))
    elif kind == "desc-words":
        for _ in range(rng.choice([1, 1, 3])):
            word = pages_at + rng.randrange(pages_bytes // 8) * 8
            edit.put(word, struct.pack("<Q", _interesting_word(rng, base)))
    elif kind == "desc-targeted":
        page = rng.randrange(base.pages)
        name = rng.choice(PAGE_DTYPE.names)
        offset, size = PAGE_DTYPE.fields[name][1], PAGE_DTYPE.fields[name][0].itemsize
        value = _interesting_word(rng, base) if size == 8 else rng.choice(
            [0, 1, -1, PAGE_BUDDY_MAPCOUNT, -2**31, 2**31 - 1, rng.randrange(-300, 300)])
        edit.put(pages_at + page * 64 + offset,
                 struct.pack("<Q" if size == 8 else "<i", value & _MASK if size == 8 else value))
        if rng.random() < 0.5:  # make it look like a free-block head of some order
            edit.put(pages_at + page * 64 + 48, struct.pack("<i", PAGE_BUDDY_MAPCOUNT))
            edit.put(pages_at + page * 64 + 40, struct.pack("<Q", rng.choice(
                [0, 1, 9, 10, 11, 64, 2**40])))
    elif kind == "desc-runs":
        count = rng.choice([2, 16, 512, 1024])
        start = rng.randrange(max(base.pages - count, 1))
        if rng.random() < 0.5:
            source = rng.randrange(max(base.pages - count, 1))
            edit.put(pages_at + start * 64, base.raw[base.data_offset + pages_at + source * 64:
                                                     base.data_offset + pages_at
                                                     + (source + count) * 64])
        else:
            edit.put(pages_at + start * 64, bytes([rng.choice([0, 0xFF, 0xA5])]) * (count * 64))
    elif kind == "pageblock":
        for _ in range(rng.choice([1, 1, 4])):
            value = rng.choice([rng.randrange(5), 5, 0x10, 0x7F, 0xFF, rng.randrange(256)])
            edit.put(blocks_at + rng.randrange(blocks_bytes), bytes([value]))
    elif kind == "zone-state":
        record = rng.randrange(zones_bytes // 1344)
        word = rng.randrange(1344 // 8)
        value = rng.choice([_interesting_word(rng, base), None])
        old = struct.unpack_from("<Q", base.raw, base.data_offset + zones_at + record * 1344
                                 + word * 8)[0]
        value = (old + rng.choice([-1, 1, 2])) & _MASK if value is None else value
        edit.put(zones_at + record * 1344 + word * 8, struct.pack("<Q", value))
    return edit


DATA_KINDS = ["desc-bytes", "desc-words", "desc-targeted", "desc-runs", "pageblock",
              "zone-state"]
META_KINDS = ["meta-resealed", "meta-raw", "header-fields", "size"]


def meta_mutation(rng: random.Random, base: Base, kind: str) -> None:
    """Write a whole new working copy of ``base`` damaged in its header, metadata or size."""
    meta = base.meta_raw
    meta_len = len(meta)
    if kind == "meta-resealed":
        document = json.loads(meta)
        text = mutate_json(rng, document)
        if rng.random() < 0.5:
            try:
                changed = json.loads(text)
                refingerprint(changed)
                text = json.dumps(changed).encode()
            except Exception:  # noqa: BLE001 - not JSON any more: keep it as it is
                pass
        write_resealed(base, text, state=rng.choice([2, 2, 2, 1, 3]))
    elif kind == "meta-raw":
        raw = bytearray(base.raw)
        meta_at = base.header_at - meta_len  # the NPY header, the metadata, the fixed header
        for _ in range(rng.choice([1, 2, 16])):
            at = rng.randrange(base.data_offset + len(raw) - meta_at)
            raw[at if at < base.data_offset else meta_at + at - base.data_offset] = \
                rng.randrange(256)
        base.work.write_bytes(bytes(raw))
    elif kind == "header-fields":
        fixed = bytearray(base.raw[base.header_at:base.header_at + 96])
        what = rng.randrange(5)
        if what == 0:
            struct.pack_into("<I", fixed, 16, rng.choice([0, 1, 3, 2**32 - 1]))
        elif what == 1:
            struct.pack_into("<I", fixed, 20, rng.choice([0, 1, 3, 4, 2**31]))
        elif what == 2:
            struct.pack_into("<Q", fixed, 24, rng.choice([0, meta_len - 1, meta_len + 1,
                                                          80 << 20, 2**64 - 1]))
        elif what == 3:
            struct.pack_into("<Q", fixed, 64, rng.getrandbits(64))
        else:
            fixed[72 + rng.randrange(24)] = rng.randrange(1, 256)
        header = bytes(fixed) + __import__("hashlib").sha256(bytes(fixed)).digest()
        base.work.write_bytes(base.raw[:base.header_at] + header)
    else:  # size
        choice = rng.randrange(4)
        if choice == 0:
            base.work.write_bytes(base.raw[:rng.randrange(len(base.raw))])
        elif choice == 1:
            base.work.write_bytes(base.raw + os.urandom(rng.choice([1, 8, 4096])))
        elif choice == 2:  # the header of a real file, holes where its data was
            base.work.write_bytes(base.raw[:base.data_offset + 8192])
            os.truncate(base.work, base.header_at - meta_len)
            with open(base.work, "ab") as file:
                file.write(base.raw[base.header_at - meta_len:])
        else:
            base.work.write_bytes(base.raw[:base.data_offset] + base.raw[base.header_at
                                                                          - meta_len:])
