"""A page memmap file is untrusted input: every reproduction of issue 9 items 6-8 (resealed
metadata, forged zone state and pageblock types, sparse and oversized files) ends in a
clear message naming the file and exit 2 (unusable header) or 1 (damaged data), never a
traceback, and never an 'ok' verification."""

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from fastinit.arrays import fileformat as fmt
from fastinit.cli import main
from fastinit.layout import MIGRATE_TYPES
from fastinit.machine.spec import parse_spec
from fastinit.mm.page_file import ZONE_STATE_DTYPE
from fastinit.mm.run import boot
from memmap_fuzz import refingerprint
from memmap_tools import (array_offset, header_at, mutate_data, npy_length, parts, reseal,
                          split)

SPEC = "1x1G,cpus=2"


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "m.bin"
    boot(parse_spec(SPEC), threads=2, memmap_file=str(path))
    return path.read_bytes()


@pytest.fixture
def path(tmp_path, good_file):
    target = tmp_path / "m.bin"
    target.write_bytes(good_file)
    return target


def verify_status(capsys, path):
    status = main(["verify", "--memmap-file", str(path)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def page_meta(change):
    """A function of the file's metadata that changes its page part with ``change``."""
    def apply(document):
        document["metadata"] = change(document["metadata"])
        return document
    return apply


def without(key):
    return page_meta(lambda m: {k: v for k, v in m.items() if k != key})


def topology(change):
    return page_meta(lambda m: {**m, "topology": change(m["topology"])})


def node0(change):
    return topology(lambda t: {**t, "nodes": [change(t["nodes"][0])] + t["nodes"][1:]})


def refingerprinted(change):
    """``change``, then the fingerprint recomputed, so the checks behind it are reached."""
    def apply(document):
        document = change(document)
        refingerprint(document)
        return document
    return apply


HEADER_FORGERIES = {
    "missing fingerprint": (without("fingerprint"), "lacks 'fingerprint'"),
    "missing arch": (without("arch"), "lacks 'arch'"),
    "missing kernel": (without("kernel"), "lacks 'kernel'"),
    "missing threads": (without("threads"), "lacks 'threads'"),
    "missing sections": (without("sections"), "lacks 'sections'"),
    "missing format": (lambda d: {k: v for k, v in d.items() if k != "format"}, "fields are"),
    "format 3.0": (lambda d: {**d, "format": 3.0}, "format"),
    "format 2 in the metadata": (lambda d: {**d, "format": 2}, "format"),
    "arch a list": (page_meta(lambda m: {**m, "arch": ["x86"]}), "'arch' is list"),
    "arch unknown": (page_meta(lambda m: {**m, "arch": "vax"}), "not one of"),
    "kernel 5": (page_meta(lambda m: {**m, "kernel": 5}), "'kernel' is int"),
    "cpus 1.5": (node0(lambda n: {**n, "cpus": 1.5}), "'cpus' is float"),
    "cpus 10**22": (node0(lambda n: {**n, "cpus": 10**22}), "CPUs is"),
    "cpus true": (node0(lambda n: {**n, "cpus": True}), "'cpus' is bool"),
    "nid 0.0": (node0(lambda n: {**n, "nid": 0.0}), "'nid' is float"),
    "nid 2**62": (node0(lambda n: {**n, "nid": 2**62}), "node id is"),
    "float range": (node0(lambda n: {**n, "ranges": [[1.0, 159]] + n["ranges"][1:]}),
                    "start pfn"),
    "range beyond 52 bits": (node0(lambda n: {**n, "ranges": [[1, 2**60]]}), "end pfn"),
    "inverted range": (node0(lambda n: {**n, "ranges": [[500, 100]]}), "empty"),
    "4 PiB of memory in 8 sections": (
        refingerprinted(node0(lambda n: {**n, "ranges": [[1, 2**40 - 1]]})),
        "do not fit in the 8 sections"),
    "no nodes": (topology(lambda t: {**t, "nodes": []}), "0 nodes"),
    "100,000 reserved ranges": (topology(lambda t: {**t, "reserved": [[1, 2]] * 100000}),
                                "at most 4096 ranges"),
    "notes a dict": (topology(lambda t: {**t, "notes": {}}), "'notes' is dict"),
    "sections 1.5": (page_meta(lambda m: {**m, "sections": 1.5}), "'sections' is float"),
    "sections wrong": (page_meta(lambda m: {**m, "sections": m["sections"] + 1}),
                       "sections says"),
    "threads 1.5": (page_meta(lambda m: {**m, "threads": [1.5]}), "thread count"),
    "threads for 2 nodes": (page_meta(lambda m: {**m, "threads": [1, 1]}), "threads lists"),
    "zone with zid 2**62": (page_meta(lambda m: {**m, "zones": [[0, 2**62]] + m["zones"][1:]}),
                            "zones are not"),
    "zones not pairs": (page_meta(lambda m: {**m, "zones": [0, 1]}), "pairs"),
    "fingerprint forged": (page_meta(lambda m: {**m, "fingerprint": "0" * 64}),
                           "fingerprint mismatch"),
    "layout changed": (page_meta(lambda m: {**m, "layout": {**m["layout"],
                                                            "zones_pgshift": 1}}),
                       "another layout"),
    "deeply nested": (lambda d: json.dumps(d)[:-1].encode() + b', "x": ' + b"[" * 100
                      + b"]" * 100 + b"}", "deeper than"),
    "nested past the parser": (lambda d: b"[" * 100000 + b"]" * 100000, "deeper than"),
    "1e400": (lambda d: json.dumps(d).replace('"sections": ', '"sections": 1e400, "s": ')
              .encode(), "finite"),
    "not an object": (page_meta(lambda m: [m]), "not an object"),
    "zone records with a field renamed": (lambda d: {**d, "arrays": d["arrays"][:2] + [{
        **d["arrays"][2], "dtype": {**d["arrays"][2]["dtype"], "names": [
            "nid", "zzz", *d["arrays"][2]["dtype"]["names"][2:]]}}]}, "other dtypes"),
    "pages array too short": (lambda d: {**d, "arrays": [{**d["arrays"][0], "shape": [5]}]
                                         + d["arrays"][1:]}, "longer than its header"),
}


@pytest.mark.parametrize("name", HEADER_FORGERIES)
def test_a_resealed_header_is_refused_with_exit_2_naming_file_and_field(capsys, path, name):
    change, message = HEADER_FORGERIES[name]
    reseal(path, meta=change)
    status, out, err = verify_status(capsys, path)
    assert status == 2, (out, err)
    assert str(path) in err and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_metadata_longer_than_the_cap_is_refused_before_it_is_read(capsys, path):
    with open(path, "r+b") as file:  # claim 80 MB of metadata, checksums recomputed
        file.seek(-fmt.HEADER_BYTES, os.SEEK_END)
        raw = bytearray(file.read(fmt.HEADER_BYTES))
        struct.pack_into("<Q", raw, 24, 80 << 20)
        raw[96:128] = __import__("hashlib").sha256(bytes(raw[:96])).digest()
        file.seek(-fmt.HEADER_BYTES, os.SEEK_END)
        file.write(raw)
    status, _, err = verify_status(capsys, path)
    assert status == 2 and "more than the 1048576 this fastinit reads" in err


def zones_at(path):
    _, _, data = parts(path)
    offset = array_offset(path, "zones")
    return offset, np.frombuffer(data, dtype=ZONE_STATE_DTYPE, offset=offset,
                                 count=(len(data) - offset) // ZONE_STATE_DTYPE.itemsize).copy()


@pytest.mark.parametrize("field, value, message", [
    ("nid", 2**62, "names node"), ("zid", -1, "names node"),
    ("managed", 2**62, "managed pages"), ("managed", -5, "managed pages"),
    ("nr_free", 2**62, "more free blocks"), ("nr_free", -1, "more free blocks"),
    ("heads", 2**63 + 8, "head does not point at itself|list end outside"),
])
def test_a_forged_zone_state_is_refused_as_damaged(capsys, path, field, value, message):
    offset, zones = zones_at(path)
    zones[field][-1:].reshape(-1)[0] = value  # a view into the last zone's record
    mutate_data(path, offset, zones.tobytes())
    status, _, err = verify_status(capsys, path)
    assert status == 1 and f"{path} is damaged" in err and "Traceback" not in err
    assert __import__("re").search(message, err), err


def test_free_counts_that_chain_through_every_descriptor_are_refused(capsys, path):
    offset, zones = zones_at(path)
    zones["nr_free"][-1, 0, 1] = 2**62  # issue 9 item 7: 223 s and 2 GB before
    mutate_data(path, offset, zones.tobytes())
    assert verify_status(capsys, path)[0] == 1


def test_one_random_byte_in_the_zone_state_is_caught(capsys, path):
    offset, _ = zones_at(path)
    with open(path, "r+b") as file:
        file.seek(npy_length(path.read_bytes()) + offset + 17)
        file.write(b"\xfe")
    status, out, err = verify_status(capsys, path)
    assert status == 1 and ("is damaged" in err or "verification FAILED" in out)


@pytest.mark.parametrize("block", [0, 1, -1])
@pytest.mark.parametrize("value", [MIGRATE_TYPES, 0x10, 0x7F, 0xFF])
def test_a_pageblock_migratetype_without_a_list_is_refused(capsys, path, block, value):
    offset = array_offset(path, "pageblock_mt")
    blocks = array_offset(path, "zones") - offset
    mutate_data(path, offset + block % blocks, bytes([value]))
    status, _, err = verify_status(capsys, path)
    assert status == 1 and f"has migratetype {value}" in err


def test_a_sparse_file_with_a_valid_header_is_refused(capsys, tmp_path, good_file):
    sparse = tmp_path / "sparse.bin"  # issue 9 item 7: the header of a real file, holes after
    _, meta, _, npy, _ = split(good_file)
    head, tail = len(npy), header_at(good_file) - len(meta)
    sparse.write_bytes(good_file[:head] + good_file[head:head + 8192])
    os.truncate(sparse, tail)
    with open(sparse, "ab") as file:
        file.write(good_file[tail:])
    status, _, err = verify_status(capsys, sparse)
    assert status == 1 and f"{sparse} is damaged: the zone record" in err
    from fastinit.mm.page_file import DamagedMemmapError
    from fastinit.mm.run import load
    with pytest.raises(DamagedMemmapError, match="no longer matches the checksum"):
        load(str(sparse), check_data=True)


def parts_of(raw):
    return None, split(raw)[1], None


def test_issue_9_item_4_a_pageblock_byte_of_a_real_log_file_never_reaches_verify(tmp_path):
    from fastinit.machine.bootlog import read_bootlog
    from fastinit.mm.page_file import DamagedMemmapError
    from fastinit.mm.run import load
    log = Path(__file__).parent / "data" / "dmesg" / "kvm-512m-syslog-3.13.txt"
    path = tmp_path / "k.bin"  # free ranges start mid-pageblock here, as on real machines
    boot(read_bootlog(str(log))[0], threads=1, memmap_file=str(path))
    offset = array_offset(path, "pageblock_mt")
    blocks = array_offset(path, "zones") - offset
    for block in range(0, blocks, 61):
        original = parts(path)[2][offset + block:offset + block + 1]
        mutate_data(path, offset + block, b"\xff")  # checksum resealed: only the check stops it
        with pytest.raises(DamagedMemmapError, match="has migratetype 255"):
            load(str(path))
        mutate_data(path, offset + block, original)
    assert load(str(path)).memmap.file.state == "complete"
