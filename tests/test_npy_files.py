"""Issue 20 items 2 and 3: fastinit memmap files are .npy files NumPy opens on its own, and
`fastinit.open_memmap` follows numpy.lib.format.open_memmap's conventions."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastinit
from fastinit.arrays import IncompleteMemmapError, MemmapFile, create_memmap, open_memmap_file
from memmap_tools import listing

DTYPES = [np.float64, np.dtype([("x", "<f8"), ("n", "<i4"), ("tag", "S3")]),
          np.dtype([("a", "u1"), ("b", "<i4")], align=True), np.dtype(("<f4", (2, 3))),
          np.dtype([("\u4e2d", "<u2")]), np.dtype(">i2")]


def written(path, dtype, shape):
    with create_memmap(path, dtype, shape, metadata={"run": 1}) as handle:
        handle.data[:] = np.arange(handle.data.size, dtype=np.uint64).astype(np.uint8)
    return path


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(5,), (3, 4), (), (0,)], ids=str)
def test_numpy_load_gives_the_array_open_memmap_gives(tmp_path, dtype, shape):
    path = written(tmp_path / "a.npy", dtype, shape)
    ours = fastinit.open_memmap(path, "r")
    theirs = np.load(path, mmap_mode="r")
    assert theirs.dtype == ours.dtype and theirs.shape == ours.shape
    assert theirs.tobytes() == ours.tobytes()
    assert np.load(path).tobytes() == ours.tobytes()  # read without mmap too


def test_numpy_alone_opens_a_file_fastinit_wrote_in_a_process_without_fastinit(tmp_path):
    path = written(tmp_path / "a.npy", DTYPES[1], (4, 2))
    script = textwrap.dedent("""
        import sys, numpy
        a = numpy.load(sys.argv[1], mmap_mode="r")
        assert "fastinit" not in sys.modules
        sys.stdout.write(a.tobytes().hex())
    """)
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert bytes.fromhex(out) == fastinit.open_memmap(path, "r").tobytes()


def test_page_memmap_files_are_npy_files_of_their_descriptors(tmp_path):
    from fastinit.machine.spec import parse_spec
    from fastinit.mm.run import boot, load
    path = tmp_path / "m.bin"
    boot(parse_spec("1x256M"), threads=1, memmap_file=str(path))
    pages = np.load(path, mmap_mode="r")
    result = load(str(path))
    try:
        expected = result.memmap.file.handle.arrays["pages"]
        assert pages.dtype == expected.dtype and pages.tobytes() == expected.tobytes()
    finally:
        result.memmap.file.handle.close()


def test_open_memmap_defaults_to_r_plus_and_returns_an_array_that_leads_to_its_file(tmp_path):
    path = written(tmp_path / "a.npy", np.int32, 10)
    array = fastinit.open_memmap(path)
    assert type(array) is np.ndarray and array.flags.writeable
    handle = MemmapFile.of(array)
    assert handle.mode == "r+" and handle.state == "initializing"
    assert handle.metadata == {"run": 1}
    array[:] = 5
    handle.complete()
    del array, handle
    assert (np.load(path) == 5).all() and open_memmap_file(path).state == "complete"


def test_r_plus_dropped_unchanged_stays_complete_and_changed_warns_and_is_marked_closed(
        tmp_path):
    path = written(tmp_path / "a.npy", np.int32, 10)
    array = fastinit.open_memmap(path, "r+")
    del array  # nothing written: no warning (warnings are errors here)
    assert open_memmap_file(path).state == "complete"
    array = fastinit.open_memmap(path, "r+")
    array[3] = -1
    with pytest.warns(RuntimeWarning, match="it is marked closed, not complete"):
        del array
    assert np.load(path)[3] == -1  # NumPy's r+: the write is in the file
    with pytest.raises(IncompleteMemmapError, match="state closed"):
        open_memmap_file(path)


def test_mode_r_is_read_only_and_mode_c_writes_never_reach_the_file(tmp_path):
    path = written(tmp_path / "a.npy", np.int64, 8)
    before = path.read_bytes()
    assert not fastinit.open_memmap(path, "r").flags.writeable
    copy = fastinit.open_memmap(path, "c")
    copy[:] = 99
    assert (copy == 99).all() and MemmapFile.of(copy).mode == "c"
    with pytest.raises(ValueError, match="read-only or still being written"):
        MemmapFile.of(copy).begin_update()
    del copy
    assert path.read_bytes() == before


def test_mode_w_plus_creates_the_file_at_its_path_when_complete(tmp_path):
    path = tmp_path / "new.npy"
    array = fastinit.open_memmap(path, "w+", dtype=np.float32, shape=(2, 3),
                                 metadata={"k": "v"})
    array[:] = 1.5
    assert not path.exists()  # written beside it until complete
    MemmapFile.of(array).complete()
    assert (np.load(path) == 1.5).all() and np.load(path).shape == (2, 3)
    with pytest.raises(fastinit.MemmapFileError, match="exists; pass force=True"):
        fastinit.open_memmap(path, "w+", dtype=np.float32, shape=3)
    again = fastinit.open_memmap(path, "w+", dtype=np.int8, shape=3, force=True)
    MemmapFile.of(again).complete()
    assert np.load(path).dtype == np.int8


@pytest.mark.parametrize("call, message", [
    (lambda p: fastinit.open_memmap(p, "w"), "mode 'w' is not one of 'r', 'r\\+', 'w\\+', 'c'"),
    (lambda p: fastinit.open_memmap(p, "w+", dtype=float), "pass dtype= and shape="),
    (lambda p: fastinit.open_memmap(p, "r", fortran_order=True), "C-ordered"),
    (lambda p: fastinit.open_memmap(p, "r", version=(1, 0)), "pass version=None"),
])
def test_open_memmap_names_what_it_refuses(tmp_path, call, message):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "a.npy")


def test_an_unfinished_empty_file_is_kept_at_exit_with_a_warning_in_a_real_process(tmp_path):
    path = tmp_path / "x.npy"
    script = textwrap.dedent("""
        import sys, fastinit
        a = fastinit.empty(6, "<i8", path=sys.argv[1])
        a[:] = 42  # plain assignment, no complete(): the program just ends
    """)
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    kept = [name for name in listing(tmp_path) if name.startswith("x.npy.fastinit-unfinished-")]
    assert len(kept) == 1 and not path.exists()
    assert "RuntimeWarning" in done.stderr and kept[0] in done.stderr
    assert "MemmapFile.of(array).complete()" in done.stderr
    assert (np.load(tmp_path / kept[0]) == 42).all()


def test_an_empty_file_completed_explicitly_is_at_its_path_for_numpy(tmp_path):
    path = tmp_path / "x.npy"
    array = fastinit.empty((3, 2), np.float64, path=path)
    array[:] = 2.5
    MemmapFile.of(array).complete()
    assert (np.load(path, mmap_mode="r") == 2.5).all()
    assert listing(tmp_path) == ["x.npy"]


def test_a_writer_killed_mid_write_leaves_numpy_the_old_file_and_the_next_writer_cleans_up(
        tmp_path):
    path = written(tmp_path / "a.npy", np.int64, 1000)
    before = np.load(path)
    script = textwrap.dedent("""
        import sys, numpy, fastinit
        a = fastinit.open_memmap(sys.argv[1], "w+", dtype="<i8", shape=1000, force=True)
        a[:] = -1
        print("written", flush=True)
        sys.stdin.read()  # killed here, before complete()
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
        temps = [n for n in listing(tmp_path) if ".fastinit-tmp-" in n]
        assert len(temps) == 1
        # Meanwhile NumPy reads the old file at the path; the new one is NumPy's too.
        assert (np.load(path) == before).all()
        assert (np.load(tmp_path / temps[0], mmap_mode="r") == -1).all()
        child.kill()
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    assert (np.load(path, mmap_mode="r") == before).all()
    assert temps[0] in listing(tmp_path)  # SIGKILL: nobody could clean up
    MemmapFile.of(fastinit.open_memmap(path, "w+", dtype=np.int8, shape=2,
                                       force=True)).complete()
    assert [n for n in listing(tmp_path) if ".fastinit-" in n] == []


def test_a_dtype_of_many_fields_needs_numpys_max_header_size_as_the_readme_says(tmp_path):
    dtype = np.dtype([(f"field_number_{i:04d}", "<f4") for i in range(400)])
    path = written(tmp_path / "wide.npy", dtype, 3)
    with pytest.raises(ValueError, match="max_header_size"):
        np.load(path, mmap_mode="r")
    theirs = np.load(path, mmap_mode="r", max_header_size=1 << 20)
    assert theirs.dtype == dtype and theirs.tobytes() == fastinit.open_memmap(path, "r").tobytes()
