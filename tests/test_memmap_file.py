"""Memmap files: header, states, checks on open, and what a crash or a failure leaves."""

import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fastinit.mm.run import boot, load
from fastinit.cli import main
from fastinit.mm.memmap_file import (IncompleteMemmapError, MemmapFileError, open_file,
                                  topology_fingerprint)
from fastinit.machine.spec import parse_spec
from fastinit.mm.verify import verify

SPEC = "2x1G,cpus=2"


def boot_into(path, spec=SPEC, **options):
    return boot(parse_spec(spec), threads=2, memmap_file=str(path), **options)


def test_a_finished_boot_leaves_a_complete_file_that_verifies(tmp_path):
    path = tmp_path / "m.bin"
    booted = boot_into(path)
    assert booted.memmap.file.state == "complete"
    loaded = load(str(path))
    assert loaded.memmap.file.state == "complete"
    assert np.array_equal(loaded.memmap.raw, booted.memmap.raw)
    for key, area in booted.zones.items():
        assert np.array_equal(loaded.zones[key].heads, area.heads)
        assert np.array_equal(loaded.zones[key].nr_free, area.nr_free)
        assert loaded.zones[key].managed == area.managed
    assert verify(loaded).ok


def test_file_memmap_equals_the_in_memory_one(tmp_path):
    in_file = boot_into(tmp_path / "m.bin")
    in_memory = boot(parse_spec(SPEC), threads=1, kernel="plain")
    heads = in_memory.memmap.pages["mapcount"] == -129
    for result in (in_file, in_memory):  # list order depends on chunk timing
        result.memmap.pages["lru_next"][heads] = 0
        result.memmap.pages["lru_prev"][heads] = 0
    assert np.array_equal(in_file.memmap.raw, in_memory.memmap.raw)


def test_file_blocks_are_reserved_up_front(tmp_path):
    path = tmp_path / "m.bin"
    booted = boot_into(path)
    assert path.stat().st_blocks * 512 >= booted.memmap.nbytes  # not sparse


def test_loaded_memmap_is_read_only(tmp_path):
    boot_into(tmp_path / "m.bin")
    loaded = load(str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="read-only"):
        loaded.memmap.pages["refcount"][0] = 5


def test_existing_file_is_not_overwritten_without_force(tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"precious")
    with pytest.raises(MemmapFileError, match="exists; pass --force"):
        boot_into(path)
    assert path.read_bytes() == b"precious"
    boot_into(path, force=True)
    assert load(str(path)).memmap.file.state == "complete"


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MemmapFileError, match="cannot use .*No such file"):
        boot_into(tmp_path / "no" / "such" / "m.bin")


def test_a_file_that_is_not_a_memmap_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, long enough to hold a header and then some" * 4)
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        load(str(path))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(MemmapFileError, match="too short"):
        load(str(tmp_path / "empty"))


def rewrite(path, offset, data):
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


def test_another_format_version_is_refused_naming_both(tmp_path):
    path = tmp_path / "m.bin"
    boot_into(path)
    rewrite(path, 16, struct.pack("<I", 7))
    with pytest.raises(MemmapFileError, match="format version 7, this fastinit reads "
                                              "version 1"):
        load(str(path))


def test_damaged_header_is_refused(tmp_path):
    path = tmp_path / "m.bin"
    boot_into(path)
    rewrite(path, 64 + 3, b"#")
    with pytest.raises(MemmapFileError, match="damaged header"):
        load(str(path))


def test_another_descriptor_layout_is_refused(tmp_path):
    path = tmp_path / "m.bin"
    boot_into(path)
    memmap, _ = open_file(str(path))
    meta = dict(memmap.file.meta)
    del memmap
    meta["layout"] = dict(meta["layout"], page_itemsize=128)
    text = json.dumps(meta).encode()
    assert len(text) < meta["data_offset"] - 64
    rewrite(path, 24, struct.pack("<Q32s", len(text), hashlib.sha256(text).digest()))
    rewrite(path, 64, text)
    with pytest.raises(MemmapFileError, match="another layout"):
        load(str(path))


def test_truncated_file_is_refused_before_mapping(tmp_path):
    path = tmp_path / "m.bin"
    boot_into(path)
    os.truncate(path, path.stat().st_size // 2)  # reading past the end would be SIGBUS
    with pytest.raises(MemmapFileError, match="truncated"):
        load(str(path))


def test_file_for_another_machine_is_refused(tmp_path):
    path = tmp_path / "m.bin"
    boot_into(path)
    with pytest.raises(MemmapFileError, match="written for another machine"):
        load(str(path), parse_spec("2x2G"))
    # CPU counts do not change the descriptors, so they do not change the fingerprint.
    assert topology_fingerprint(parse_spec("2x1G,cpus=7")) == \
        topology_fingerprint(parse_spec(SPEC))
    assert load(str(path), parse_spec("2x1G,cpus=7")).memmap.file.state == "complete"


def test_corrupted_descriptor_in_a_complete_file_fails_verification(tmp_path, capsys):
    path = tmp_path / "m.bin"
    booted = boot_into(path)
    offset = booted.memmap.file.layout.data_offset + 64 * (len(booted.memmap.pages) - 5)
    del booted
    rewrite(path, offset, b"\x01")
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "verification FAILED" in capsys.readouterr().out


def test_a_failed_boot_marks_the_file_failed(tmp_path, capsys):
    path = tmp_path / "m.bin"
    calls = []

    def fail_third_chunk(nid, start, end):
        calls.append(start)
        if len(calls) == 3:
            raise OSError("injected fault")

    with pytest.raises(OSError, match="injected fault"):
        boot_into(path, chunk_hook=fail_third_chunk)
    with pytest.raises(IncompleteMemmapError, match="state failed.*stopped with an error"):
        load(str(path))
    assert open_file(str(path), require_complete=False)[0].file.state == "failed"
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "incomplete" in capsys.readouterr().err


def test_reusing_a_file_memmap_marks_it_initializing_until_done(tmp_path):
    path = tmp_path / "m.bin"
    first = boot_into(path)
    states = []
    boot(parse_spec(SPEC), threads=2, memmap=first.memmap,
         chunk_hook=lambda *chunk: states.append(first.memmap.file.state))
    assert set(states) == {"initializing"}
    assert first.memmap.file.state == "complete"
    assert verify(load(str(path))).ok


KILLED_MID_INIT = textwrap.dedent("""
    import sys, threading, time
    from fastinit.mm.run import boot
    from fastinit.machine.spec import parse_spec
    lock, calls = threading.Lock(), []
    def hook(nid, start, end):
        with lock:
            calls.append(start)
            if len(calls) == 3:
                print("mid-init", flush=True)
                time.sleep(120)
    boot(parse_spec(sys.argv[2]), threads=2, memmap_file=sys.argv[1], chunk_hook=hook)
    print("finished", flush=True)
""")


def test_kill_9_in_the_middle_of_deferred_init_leaves_an_incomplete_file(tmp_path, capsys):
    path = tmp_path / "m.bin"
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_INIT, str(path), SPEC],
                             stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(120, child.kill)  # never hang the suite
    timer.start()
    try:
        assert child.stdout.readline().strip() == "mid-init"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        timer.cancel()
        child.stdout.close()
    with pytest.raises(IncompleteMemmapError, match="state initializing.*did not finish"):
        load(str(path))
    memmap, _ = open_file(str(path), require_complete=False)
    assert memmap.file.state == "initializing"
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "incomplete" in capsys.readouterr().err
