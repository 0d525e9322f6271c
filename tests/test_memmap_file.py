"""Page memmap files: what a boot leaves, what a failure or a kill leaves, and everything a
file says checked before verify uses it (the file is untrusted input)."""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fastinit.arrays import fileformat as fmt
from fastinit.cli import main
from fastinit.machine.spec import parse_spec
from fastinit.mm.page_file import (DamagedMemmapError, IncompleteMemmapError,
                                     MemmapFileError, open_file, topology_fingerprint)
from fastinit.mm.run import boot, load
from fastinit.mm.verify import verify
from fixtures import file_made_by
from memmap_tools import header_at, listing, mutate_data, reseal, rewrite

SPEC = "2x1G,cpus=2"


def boot_into(path, spec=SPEC, **options):
    return boot(parse_spec(spec), threads=2, memmap_file=str(path), **options)


booted_file = file_made_by(boot_into, "m.bin")  # the memmap file a boot of SPEC left


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
    del loaded
    assert listing(tmp_path) == ["m.bin"]


def test_file_memmap_equals_the_in_memory_one(tmp_path):
    in_file = boot_into(tmp_path / "m.bin")
    in_memory = boot(parse_spec(SPEC), threads=1, kernel="plain")
    heads = in_memory.memmap.pages["mapcount"] == -129
    raws = []
    for result in (in_file, in_memory):  # list order depends on chunk timing
        pages = result.memmap.pages.copy()
        pages["lru_next"][heads] = pages["lru_prev"][heads] = 0
        raws.append(pages.tobytes() + result.memmap.pageblock_mt.tobytes())
    assert raws[0] == raws[1]


def test_file_blocks_are_reserved_up_front(tmp_path):
    path = tmp_path / "m.bin"
    booted = boot_into(path)
    assert path.stat().st_blocks * 512 >= booted.memmap.nbytes  # not sparse


def test_loaded_memmap_is_read_only(tmp_path):
    boot_into(tmp_path / "m.bin")
    loaded = load(str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="read-only"):
        loaded.memmap.pages["refcount"][0] = 5


def test_an_existing_file_is_replaced_only_with_force(booted_file):
    before = booted_file.read_bytes()
    with pytest.raises(MemmapFileError, match="exists; pass force=True"):
        boot_into(booted_file, spec="1x1G")
    assert booted_file.read_bytes() == before
    boot_into(booted_file, spec="1x1G", force=True)
    assert load(str(booted_file)).plan.topology.present_pages == \
        parse_spec("1x1G").present_pages


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(MemmapFileError, match="its directory .*No such file"):
        boot_into(tmp_path / "no" / "such" / "m.bin")


def test_a_file_that_is_not_a_memmap_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"just some text, long enough to hold a header and then some" * 4)
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        load(str(path))
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        load(str(tmp_path / "empty"))


def test_format_version_1_files_are_refused_naming_both_versions(booted_file):
    rewrite(booted_file, 0, fmt.MAGIC + struct.pack("<I", 1))  # v1 began with its header
    with pytest.raises(MemmapFileError, match="format version 1, this fastinit reads "
                                              "version 3; write it again"):
        load(str(booted_file))


def test_damaged_header_is_refused(booted_file):
    raw = booted_file.read_bytes()
    end = header_at(raw)
    for offset in (end - 20, end + 64 + 3, 200):  # metadata, fixed header, NPY header
        rewrite(booted_file, offset, b"#")
        with pytest.raises(MemmapFileError, match="damaged header"):
            load(str(booted_file))


def test_another_descriptor_layout_is_refused(booted_file):
    reseal(booted_file, meta=lambda d: {**d, "metadata": {**d["metadata"], "layout": {
        **d["metadata"]["layout"], "page_itemsize": 128}}})
    with pytest.raises(MemmapFileError, match="another layout"):
        load(str(booted_file))


def test_truncated_file_is_refused_before_mapping(booted_file):
    # Reading past the end would be SIGBUS.
    os.truncate(booted_file, booted_file.stat().st_size // 2)
    with pytest.raises(MemmapFileError, match="truncated"):
        load(str(booted_file))


def test_file_for_another_machine_is_refused(booted_file):
    with pytest.raises(MemmapFileError, match="written for another machine"):
        load(str(booted_file), parse_spec("2x2G"))
    # CPU counts do not change the descriptors, so they do not change the fingerprint.
    assert topology_fingerprint(parse_spec("2x1G,cpus=7")) == \
        topology_fingerprint(parse_spec(SPEC))
    assert load(str(booted_file), parse_spec("2x1G,cpus=7")).memmap.file.state == "complete"


def test_a_changed_descriptor_fails_verification_and_the_data_checksum(tmp_path, capsys):
    path = tmp_path / "m.bin"
    booted = boot_into(path)
    offset = booted.memmap.file.handle.data.ctypes.data - \
        booted.memmap.file.handle._base.ctypes.data + 64 * (len(booted.memmap.pages) - 5)
    del booted
    rewrite(path, offset, b"\x01")
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "verification FAILED" in capsys.readouterr().out
    with pytest.raises(DamagedMemmapError, match="is damaged: its data no longer matches "
                                                 "the checksum"):
        load(str(path), check_data=True)


def test_a_forged_descriptor_with_a_resealed_checksum_fails_verification(tmp_path, capsys):
    path = tmp_path / "m.bin"
    pages = len(boot_into(path).memmap.pages)
    mutate_data(path, 64 * (pages - 5), b"\x01")
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "verification FAILED" in capsys.readouterr().out


def test_a_failed_boot_leaves_no_file_and_the_old_one_intact(tmp_path, capsys):
    path = tmp_path / "m.bin"
    calls = []

    def fail_second_chunk(nid, start, end):
        # The second: on a process with one CPU each node's job is one call, two in all.
        calls.append(start)
        if len(calls) == 2:
            raise OSError("injected fault")

    with pytest.raises(OSError, match="injected fault"):
        boot_into(path, chunk_hook=fail_second_chunk)
    assert listing(tmp_path) == []
    boot_into(path, spec="1x1G")
    before = path.read_bytes()
    calls.clear()
    with pytest.raises(OSError, match="injected fault"):
        boot_into(path, force=True, chunk_hook=fail_second_chunk)
    assert path.read_bytes() == before and listing(tmp_path) == ["m.bin"]
    assert main(["verify", "--memmap-file", str(path)]) == 0


def test_reusing_a_file_memmap_marks_it_initializing_until_done(tmp_path):
    path = tmp_path / "m.bin"
    first = boot_into(path)
    states = []
    boot(parse_spec(SPEC), threads=2, memmap=first.memmap,
         chunk_hook=lambda *chunk: states.append(first.memmap.file.state))
    assert set(states) == {"initializing"}
    assert first.memmap.file.state == "complete"
    assert verify(load(str(path))).ok


def test_a_failure_while_reusing_a_file_marks_it_failed(tmp_path):
    path = tmp_path / "m.bin"
    first = boot_into(path)

    def fail(*chunk):
        raise OSError("injected fault")

    with pytest.raises(OSError):
        boot(parse_spec(SPEC), threads=2, memmap=first.memmap, chunk_hook=fail)
    with pytest.raises(IncompleteMemmapError, match="state failed.*stopped with an error"):
        load(str(path))
    memmap, _ = open_file(str(path), require_complete=False)
    assert memmap.file.state == "failed"


KILLED_MID_INIT = textwrap.dedent("""
    import sys, threading, time
    from fastinit.mm.run import boot
    from fastinit.machine.spec import parse_spec
    lock, calls = threading.Lock(), []
    def hook(nid, start, end):
        with lock:
            calls.append(start)
            if len(calls) == 2:  # of at least two: one call per node on one CPU
                print("mid-init", flush=True)
                time.sleep(120)
    boot(parse_spec(sys.argv[2]), threads=2, memmap_file=sys.argv[1], chunk_hook=hook,
         force=True)
    print("finished", flush=True)
""")


def kill_mid_init(path, spec=SPEC):
    child = subprocess.Popen([sys.executable, "-c", KILLED_MID_INIT, str(path), spec],
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


def test_kill_9_in_the_middle_of_deferred_init_leaves_the_old_file(tmp_path, capsys):
    path = tmp_path / "m.bin"
    kill_mid_init(path)
    left = [name for name in listing(tmp_path) if ".fastinit-tmp-" in name]
    # Only our temporary file and the lock file the killed writer held.
    assert len(left) == 1 and listing(tmp_path) == [".m.bin.fastinit-lock"] + left
    with pytest.raises(IncompleteMemmapError, match="does not exist; a fastinit writing "
                                                    "it was killed"):
        load(str(path))
    assert main(["verify", "--memmap-file", str(path)]) == 1
    assert "was killed" in capsys.readouterr().err
    boot_into(path, spec="1x1G")  # the next writer removes what the killed one left
    before = path.read_bytes()
    kill_mid_init(path)
    assert path.read_bytes() == before
    assert main(["verify", "--memmap-file", str(path)]) == 0
    boot_into(path, force=True)
    assert listing(tmp_path) == ["m.bin"]
