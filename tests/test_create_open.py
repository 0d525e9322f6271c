"""Memmap files for any dtype: round trips, crash safety, what may be replaced, refusals."""

import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastinit
from fastinit.arrays import (DamagedMemmapError, IncompleteMemmapError, MemmapBusyError,
                             MemmapFile, MemmapFileError, create_memmap, open_memmap_file)
from fastinit.arrays import fileformat as fmt
from fixtures import file_made_by
from memmap_tools import header_at, listing, rewrite, split
from memmap_tools import reseal as reseal_file

RECORD = np.dtype([("id", "<i8"), ("xyz", "<f4", (3,)), ("tag", "S4")])


def write(path, dtype=RECORD, shape=(100,), metadata=None, **options):
    with create_memmap(path, dtype, shape, metadata, **options) as handle:
        handle.data[:handle.array.nbytes] = np.arange(handle.array.nbytes) % 251
    return handle


old_file = file_made_by(write, "a.bin")  # a complete file of 100 RECORDs
int64_file = file_made_by(lambda path: write(path, np.int64, 10000), "a.bin")  # 80,000 B data


@pytest.mark.parametrize("dtype, shape", [
    (RECORD, (100,)), (np.float64, (7, 3)), (np.uint8, 0), (np.dtype("<U5"), (2, 2, 2)),
    (np.dtype({"names": ["a", "b"], "formats": ["u1", "<u8"]}, align=True), (33,)),
    (np.dtype(("<i2", (4,))), (5,)), (np.dtype("<M8[ns]"), 3)])
def test_any_dtype_round_trips_with_its_metadata(tmp_path, dtype, shape):
    path = tmp_path / "a.bin"
    written = write(path, dtype, shape, {"run": 7, "names": ["x", "y"], "ok": None})
    opened = open_memmap_file(path)
    assert opened.state == "complete" and opened.metadata == {"run": 7, "names": ["x", "y"],
                                                                "ok": None}
    like = np.empty(shape, dtype)
    assert opened.array.dtype == like.dtype and opened.array.shape == like.shape
    assert opened.array.tobytes() == written.array.tobytes()
    assert not opened.array.flags.writeable and opened.array.flags.c_contiguous
    assert listing(tmp_path) == [".a.bin.fastinit-lock", "a.bin"]  # a reader holds it
    opened.close()
    assert listing(tmp_path) == ["a.bin"]  # no temporary or lock file is left


def test_the_package_root_exports_the_file_api():
    assert fastinit.create_memmap is create_memmap and fastinit.open_memmap_file is open_memmap_file
    assert fastinit.MemmapFile is MemmapFile


def test_a_new_file_appears_only_when_complete(tmp_path):
    path = tmp_path / "a.bin"
    handle = create_memmap(path, np.int64, 1000)
    assert not path.exists() and handle.state == "initializing"
    handle.array[:] = 5
    handle.complete()
    assert path.exists() and open_memmap_file(path).array.sum() == 5000


def test_an_error_in_the_block_leaves_the_old_file_byte_for_byte_and_no_temporary(
        tmp_path, old_file):
    before = old_file.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with create_memmap(old_file, np.float32, 10**6, force=True) as handle:
            handle.array[:] = 1
            raise RuntimeError("boom")
    assert old_file.read_bytes() == before and listing(tmp_path) == ["a.bin"]


def test_ctrl_c_while_committing_takes_effect_after_and_says_the_file_is_complete(
        tmp_path, old_file, monkeypatch):
    from fastinit.arrays import atomic
    rename = atomic.commit_temp

    def ctrl_c_then_commit(*args):
        # A real SIGINT to this process, arriving in the middle of the commit.
        os.kill(os.getpid(), signal.SIGINT)
        rename(*args)

    monkeypatch.setattr(atomic, "commit_temp", ctrl_c_then_commit)
    handle = create_memmap(old_file, np.int64, 1000, force=True)
    handle.array[:] = 7
    with pytest.raises(KeyboardInterrupt) as stopped:
        handle.complete()
    assert stopped.value.__notes__ == [
        f"{old_file} was complete before the interrupt: it holds the new data"]
    assert listing(tmp_path) == ["a.bin"]
    assert open_memmap_file(old_file).array.sum() == 7000


def test_fail_of_a_new_file_leaves_nothing(tmp_path):
    handle = create_memmap(tmp_path / "a.bin", np.float32, 1000)
    handle.fail()
    assert listing(tmp_path) == []


def test_an_abandoned_handle_keeps_its_data_with_a_warning_saying_where_and_what_to_do(
        tmp_path):
    handle = create_memmap(tmp_path / "a.bin", np.float32, 1000)
    handle.array[:] = 7
    assert len(listing(tmp_path)) == 2  # the temporary file and the lock
    with pytest.warns(RuntimeWarning, match=r"a\.bin was written and dropped .*without "
                                            r"complete\(\) or fail\(\): its new data is kept"
                                            r".*MemmapFile\.of\(array\)\.complete\(\)"):
        del handle
    kept = listing(tmp_path)
    assert len(kept) == 1 and kept[0].startswith("a.bin.fastinit-unfinished-")
    assert (np.load(tmp_path / kept[0], mmap_mode="r") == 7).all()
    with pytest.raises(IncompleteMemmapError, match="state closed"):
        open_memmap_file(tmp_path / kept[0])
    # A later writer of the same path leaves it alone: only fail() discards.
    create_memmap(tmp_path / "a.bin", np.int8, 3).complete()
    assert kept[0] in listing(tmp_path)


def test_arrays_keep_their_file_alive_and_lead_back_to_it(tmp_path):
    handle = create_memmap(tmp_path / "a.bin", np.int32, (10, 10))
    view = handle.array[2:5, ::2]
    del handle
    assert MemmapFile.of(view).state == "initializing"
    MemmapFile.of(view).complete()
    assert MemmapFile.of(np.zeros(3)) is None
    assert open_memmap_file(tmp_path / "a.bin").array.shape == (10, 10)


def test_replacing_needs_force_and_keeps_the_old_files_mode(old_file):
    os.chmod(old_file, 0o600)
    with pytest.raises(MemmapFileError, match="exists; pass force=True"):
        create_memmap(old_file, np.int8, 3)
    write(old_file, np.int8, 3, force=True)
    assert open_memmap_file(old_file).array.dtype == np.int8
    assert stat.S_IMODE(old_file.stat().st_mode) == 0o600


def test_force_replaces_only_fastinit_files_unless_told_otherwise(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"precious")
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file.*replace_any_file=True"):
        create_memmap(path, np.int8, 3, force=True)
    assert path.read_bytes() == b"precious"
    write(path, np.int8, 3, force=True, replace_any_file=True)
    assert open_memmap_file(path).array.shape == (3,)
    (tmp_path / "empty").write_bytes(b"")
    write(tmp_path / "empty", np.int8, 3, force=True)  # nothing to lose


def special_files(tmp_path):
    """A FIFO, a character device (like /dev/null), a directory, a socket and symlinks."""
    import socket
    os.mkfifo(tmp_path / "fifo")
    made = {"fifo": "a FIFO", "dir": "a directory", "sock": "a socket"}
    (tmp_path / "dir").mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        made["null"] = "a character device"
    os.symlink("/dev/null", tmp_path / "link-to-null")
    write(tmp_path / "real.bin")
    os.symlink(tmp_path / "real.bin", tmp_path / "link-to-memmap")
    made.update({"link-to-null": "a symbolic link", "link-to-memmap": "a symbolic link"})
    return made, server


def test_force_never_replaces_a_device_fifo_socket_directory_or_symlink(tmp_path):
    made, server = special_files(tmp_path)
    before = {name: os.lstat(tmp_path / name) for name in made}
    for name, kind in made.items():
        for options in ({}, {"force": True}, {"force": True, "replace_any_file": True}):
            with pytest.raises(MemmapFileError, match=f"is {kind}"):
                create_memmap(tmp_path / name, np.int8, 3, **options)
    for name, info in before.items():
        after = os.lstat(tmp_path / name)
        assert (after.st_ino, after.st_mode) == (info.st_ino, info.st_mode)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert not [p for p in listing(tmp_path) if "fastinit-tmp" in p or "lock" in p]
    server.close()


OPEN_SPECIAL = textwrap.dedent("""
    import sys
    from fastinit.arrays import MemmapFileError, open_memmap_file
    try:
        open_memmap_file(sys.argv[1])
    except MemmapFileError as error:
        print(error)
""")


@pytest.mark.parametrize("name, kind", [("fifo", "is a FIFO"), ("dir", "is a directory"),
                                        ("sock", "is a socket")])
def test_opening_a_special_file_is_refused_at_once(tmp_path, name, kind):
    special_files(tmp_path)[1].close()
    done = subprocess.run([sys.executable, "-c", OPEN_SPECIAL, str(tmp_path / name)],
                          capture_output=True, text=True, timeout=60)  # a FIFO blocked forever
    assert kind in done.stdout and "Traceback" not in done.stderr


def test_a_symlink_to_a_memmap_file_can_be_read(tmp_path):
    special_files(tmp_path)[1].close()
    assert open_memmap_file(tmp_path / "link-to-memmap").array.dtype == RECORD


def test_a_second_writer_or_a_reader_of_a_path_being_written_is_refused(tmp_path):
    path = tmp_path / "a.bin"
    writing = create_memmap(path, np.int8, 3)
    with pytest.raises(MemmapBusyError, match=f"{path} is in use"):
        create_memmap(path, np.int8, 3, force=True)
    writing.complete()
    reader, second_reader = open_memmap_file(path), open_memmap_file(path)  # readers share
    with pytest.raises(MemmapBusyError, match=f"{path} is in use"):
        create_memmap(path, np.int8, 3, force=True)
    with pytest.raises(MemmapBusyError):
        open_memmap_file(path, "r+")
    reader.close()
    second_reader.close()
    write(path, np.int8, 4, force=True)
    assert listing(tmp_path) == ["a.bin"]


HOLD = textwrap.dedent("""
    import sys, time
    import numpy as np
    from fastinit.arrays import create_memmap, open_memmap_file
    if sys.argv[2] == "write":
        handle = create_memmap(sys.argv[1], np.int64, 1 << 16, force=True)
    else:
        handle = open_memmap_file(sys.argv[1])
    print("holding", flush=True)
    if sys.argv[3] == "kill":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
""")


def hold(path, how, then="sleep"):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path), how, then],
                             stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline().strip()
    return child, line


def test_another_process_writing_or_reading_the_path_refuses_at_once(old_file):
    for how in ("write", "read"):
        child, line = hold(old_file, how)
        try:
            assert line == "holding"
            with pytest.raises(MemmapBusyError, match=f"{old_file} is in use"):
                create_memmap(old_file, np.int8, 3, force=True)
            if how == "write":
                with pytest.raises(MemmapBusyError, match="another fastinit is writing it"):
                    open_memmap_file(old_file)
            else:
                assert open_memmap_file(old_file).state == "complete"
        finally:
            child.kill()
            child.wait()
            child.stdout.close()
    assert open_memmap_file(old_file).array.dtype == RECORD  # the old file is intact


def test_a_killed_writer_leaves_a_temporary_file_the_next_writer_removes(tmp_path, old_file):
    before = old_file.read_bytes()
    child, line = hold(old_file, "write", "kill")
    assert child.wait() == -signal.SIGKILL and line == "holding"
    child.stdout.close()
    left = [p for p in listing(tmp_path) if ".fastinit-tmp-" in p]
    assert len(left) == 1 and left[0].startswith(".a.bin.fastinit-tmp-")
    assert old_file.read_bytes() == before
    foreign = tmp_path / ".a.bin.fastinit-tmp-1-deadbeef"
    foreign.write_bytes(b"not ours")  # the pattern alone is not enough
    write(old_file, np.int8, 3, force=True)
    assert listing(tmp_path) == [".a.bin.fastinit-tmp-1-deadbeef", "a.bin"]


def test_a_missing_file_says_a_writer_was_killed(tmp_path):
    child, _ = hold(tmp_path / "a.bin", "write", "kill")
    child.wait()
    child.stdout.close()
    with pytest.raises(MemmapFileError, match="does not exist; a fastinit writing it was "
                                              "killed and left .a.bin.fastinit-tmp-"):
        open_memmap_file(tmp_path / "a.bin")


def test_update_in_place_says_initializing_until_complete(tmp_path):
    path = tmp_path / "a.bin"
    write(path, np.int64, 10)
    with open_memmap_file(path, "r+") as handle:
        handle.array[:] = 3
        with pytest.raises(MemmapBusyError):
            open_memmap_file(path)
        assert handle.state == "initializing"
    assert open_memmap_file(path).array.sum() == 30
    handle = open_memmap_file(path, "r+")
    handle.fail()
    with pytest.raises(IncompleteMemmapError, match="state failed"):
        open_memmap_file(path)


def test_damaged_data_is_refused_with_the_checksum(int64_file):
    raw = int64_file.read_bytes()
    rewrite(int64_file, header_at(raw) - len(split(raw)[1]) - 3, b"\xff")  # data's last bytes
    with pytest.raises(DamagedMemmapError, match=f"{int64_file} is damaged: its data no "
                                                 f"longer matches the checksum"):
        open_memmap_file(int64_file)


@pytest.mark.parametrize("part, offset, data, message", [
    ("fixed", 0, b"X", "without fastinit's header at its end"),
    ("fixed", 16, struct.pack("<I", 2), "format version 2, this fastinit reads version 3"),
    ("fixed", 20, struct.pack("<I", 7), "damaged header"),
    ("fixed", fmt.HEADER_BYTES - 1, b"\0", "damaged header"),
    ("meta", 2, b"#", "damaged header .metadata checksum"),
    ("npy", 0, b"X", "its NumPy header is not the one its metadata describes"),
    ("npy", 300, b"#", "its NumPy header is not the one its metadata describes"),
])
def test_damaged_or_foreign_headers_are_refused(old_file, part, offset, data, message):
    raw = old_file.read_bytes()
    meta = split(raw)[1]
    start = {"fixed": header_at(raw), "meta": header_at(raw) - len(meta), "npy": 0}[part]
    rewrite(old_file, start + offset, data)
    with pytest.raises(MemmapFileError, match=message):
        open_memmap_file(old_file)


@pytest.mark.parametrize("version", [1, 2])
def test_files_of_earlier_format_versions_are_refused_naming_both_and_the_fix(old_file,
                                                                              version):
    # Versions 1 and 2 began with the fixed header: magic, then the version.
    rewrite(old_file, 0, fmt.MAGIC + struct.pack("<I", version))
    with pytest.raises(MemmapFileError, match=f"{old_file} has memmap format version "
                                              f"{version}, this fastinit reads version 3; "
                                              f"write it again"):
        open_memmap_file(old_file)


def test_truncated_or_extended_files_are_refused(int64_file):
    size = int64_file.stat().st_size
    os.truncate(int64_file, size + 1)
    with pytest.raises(MemmapFileError, match="truncated or extended since"):
        open_memmap_file(int64_file)
    for cut in (size - 1, 4200, 100, 0):
        os.truncate(int64_file, cut)
        with pytest.raises(MemmapFileError, match="truncated|not a fastinit memmap"):
            open_memmap_file(int64_file)


def reseal(path, change):
    """Rewrite a file's metadata through ``change`` and recompute every header checksum."""
    reseal_file(path, meta=change)


@pytest.mark.parametrize("change, message", [
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "shape": [2**60]}]}, "shape extent"),
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "shape": [1.5]}]}, "shape extent"),
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "shape": [10**6, 10**6]}]}, "truncated"),
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "shape": [10**9, 10**9]}]}, "1 PiB"),
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "dtype": "O"}]}, "plain NumPy type"),
    (lambda d: {**d, "arrays": [{**d["arrays"][0], "dtype": {"base": "<f8",
                                                             "shape": [2**20] * 3}}]},
     "cannot use"),
    (lambda d: {**d, "format": 3.0}, "format"),
    (lambda d: {k: v for k, v in d.items() if k != "kind"}, "fields are"),
    (lambda d: [d], "fields are"),
    (lambda d: b"[" * 100000 + b"]" * 100000, "deeper than"),
    (lambda d: json.dumps({**d, "metadata": {"x": 1.5}}).encode().replace(b"1.5", b"1e400"),
     "finite"),
    (lambda d: b'{"format": NaN}', "not a number"),
    (lambda d: b"\xff\xfe", "UTF-8|JSON"),
    (lambda d: {**d, "metadata": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
     "deeper than"),
])
def test_resealed_metadata_out_of_range_is_refused_naming_the_file(old_file, change, message):
    reseal(old_file, change)
    with pytest.raises(MemmapFileError, match=message) as refused:
        open_memmap_file(old_file)
    assert str(old_file) in str(refused.value)


def test_metadata_too_large_or_not_json_is_refused_when_creating(tmp_path):
    with pytest.raises(ValueError, match="keep it under"):
        create_memmap(tmp_path / "a.bin", np.int8, 1, {"x": "y" * (2 << 20)})
    with pytest.raises(ValueError, match="plain JSON"):
        create_memmap(tmp_path / "a.bin", np.int8, 1, {"x": float("nan")})
    with pytest.raises(ValueError, match="Python objects"):
        create_memmap(tmp_path / "a.bin", object, 1)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("dtype, options, message", [
    ("no such type", {}, "dtype 'no such type' is not a NumPy dtype"),
    (np.int8, dict(force="yes"), "force must be True or False"),
    (np.int8, dict(replace_any_file=1), "replace_any_file must be True or False")])
def test_arguments_of_the_wrong_type_are_a_type_error_as_for_empty(
        tmp_path, dtype, options, message):
    with pytest.raises(TypeError, match=message):
        create_memmap(tmp_path / "a.bin", dtype, 1, **options)
    assert listing(tmp_path) == []


def test_a_file_of_another_kind_is_refused_by_open_memmap(tmp_path):
    from fastinit.arrays.create_open import create_file
    with create_file(tmp_path / "p.bin", [("x", np.int8, 3), ("y", np.int64, 2)],
                     kind="something-else") as handle:
        assert sorted(handle.arrays) == ["x", "y"]
    with pytest.raises(MemmapFileError, match="holds 'something-else', not 'array'"):
        open_memmap_file(tmp_path / "p.bin")


def test_the_npy_headers_padding_must_be_what_fastinit_writes(old_file):
    rewrite(old_file, 4094, b"\x01")  # covered by no checksum: compared byte for byte
    with pytest.raises(MemmapFileError, match="its NumPy header is not the one"):
        open_memmap_file(old_file)


def test_an_unknown_checksum_kind_is_refused(old_file):
    reseal(old_file, lambda d: {**d, "checksum": "mix6"})
    with pytest.raises(MemmapFileError, match="checksum of kind 'mix6'"):
        open_memmap_file(old_file)
