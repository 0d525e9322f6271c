"""fastinit.empty(path=...) and fill into memmap files: complete only when filled and synced."""

import numba
import numpy as np
import pytest

import fastinit
import fastinit.arrays.alloc as alloc
import naive
from fastinit.arrays import MemmapFile, MemmapFileError, create_memmap, open_memmap_file
from fastinit.arrays.alloc import allocation, empty
from fastinit.arrays.fill import fill
from test_limits import small_tmpfs  # noqa: F401 (a fixture)

DTYPE = np.dtype([("id", "<u8"), ("x", "<f4"), ("ok", "?")], align=True)  # 16 bytes


@numba.njit
def record(i):
    return i, i * 0.5, i % 2 == 0


@numba.njit
def fails_at_700(i):
    if i == 700:
        raise ValueError("bad record 700")
    return i, i * 0.5, True


def expected(count, start=0):
    return naive.fill(np.empty(count, DTYPE), record, start).tobytes()


def test_a_filled_file_appears_complete_at_its_path_with_the_records(tmp_path):
    path = tmp_path / "table.bin"
    array = empty(1000, DTYPE, path=path, threads=2)
    assert allocation(array).path == str(path) and not path.exists()
    report = fill(array, record, threads=2)
    assert report.completed == str(path) and path.exists()
    with open_memmap_file(path) as handle:
        assert handle.state == "complete"
        assert handle.array.tobytes() == expected(1000)


def test_a_file_is_not_faulted_in_and_may_be_larger_than_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(alloc, "available_memory", lambda: 1 << 20)
    array = empty(100000, DTYPE, path=tmp_path / "big.bin", threads=2)
    assert allocation(array).touched_by == "nothing" and not array.view(np.uint8).any()
    assert fill(array, record).completed == str(tmp_path / "big.bin")


def test_filling_a_slice_does_not_complete_the_file(tmp_path):
    path = tmp_path / "t.bin"
    array = empty(1000, DTYPE, path=path)
    report = fill(array[:500], record)
    assert report.completed is None and not path.exists()
    assert MemmapFile.of(array).state == "initializing"
    assert fill(array, record).completed == str(path)


def test_a_failed_fill_leaves_the_file_incomplete_and_the_path_untouched(tmp_path):
    path = tmp_path / "t.bin"
    path.write_bytes(b"the user's old data")
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        empty(2000, DTYPE, path=path, force=True)
    array = empty(2000, DTYPE, path=path, force=True, replace_any_file=True)
    with pytest.raises(ValueError, match="bad record 700"):
        fill(array, fails_at_700, threads=2)
    assert MemmapFile.of(array).state == "initializing"
    assert path.read_bytes() == b"the user's old data"
    MemmapFile.of(array).fail()
    assert path.read_bytes() == b"the user's old data"


def test_an_existing_file_is_kept_without_force_and_replaced_with_it_when_complete(tmp_path):
    path = tmp_path / "t.bin"
    fill(empty(10, DTYPE, path=path), record, start=100)
    with pytest.raises(MemmapFileError, match="exists"):
        empty(10, DTYPE, path=path)
    old = path.read_bytes()
    array = empty(10, DTYPE, path=path, force=True)
    assert path.read_bytes() == old  # the new file is written beside it
    fill(array, record)
    assert open_memmap_file(path).array.tobytes() == expected(10)


def test_create_memmap_and_open_memmap_r_plus_arrays_are_completed_by_fill(tmp_path):
    path = tmp_path / "t.bin"
    handle = create_memmap(path, DTYPE, (30, 7))
    assert fill(handle.array, record).completed == str(path)
    again = open_memmap_file(path, "r+")
    assert again.state == "initializing"
    fill(again.array, record, start=5)
    assert again.state == "complete"
    assert open_memmap_file(path).array.tobytes() == expected(210, 5)


def test_a_completed_file_is_read_only_and_fill_refuses_it(tmp_path):
    path = tmp_path / "t.bin"
    fill(empty(10, DTYPE, path=path), record)
    with pytest.raises(ValueError, match="writeable"):
        fill(open_memmap_file(path).array, record)


@pytest.mark.parametrize("finish", ["complete", "fail", "close"])
def test_fill_refuses_the_array_of_a_file_already_finished(tmp_path, finish):
    # Was: a fill after complete() rewrote the data behind its checksum (the file then
    # read as damaged); after fail() it wrote into a removed file, then raised.
    path = tmp_path / "t.bin"
    handle = create_memmap(path, DTYPE, 100)
    array = handle.array  # taken while the file is written, so still writeable
    fill(array[:10], record)  # a slice: the file stays initializing
    if finish == "close":  # kept with a warning (tested in test_create_open)
        with pytest.warns(RuntimeWarning, match="without complete"):
            handle.close()
    else:
        getattr(handle, finish)()
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(ValueError, match="already completed, failed or closed"):
        fill(array, record, start=7)
    assert (path.read_bytes() if path.exists() else None) == before
    if finish == "complete":
        assert open_memmap_file(path).state == "complete"


def test_a_disk_too_small_is_refused_and_leaves_no_file(small_tmpfs):  # noqa: F811
    path = small_tmpfs / "t.bin"  # the disk has 8 MiB
    with pytest.raises(MemmapFileError, match="on a disk with room"):
        empty(16 << 20, np.uint8, path=path)
    assert list(small_tmpfs.iterdir()) == []


def test_exported_from_the_package_root():
    assert fastinit.fill is fill and fastinit.FillReport is fill.__globals__["FillReport"]
