"""fastinit.fill against the NumPy reference, at every record size, address and thread count."""

import functools
import threading

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastinit
import fastinit.arrays.fill as fill_module
import naive
from fastinit.arrays.fill import fill, first_whole_batch
from fill_records import make_record

# Record sizes the issue names (8, 24, 32, 64, 72, 128), sizes that share no factor with a
# line (1, 3, 7, 11, 100), fields that straddle a word (11: a u8 at byte 1), padding,
# complex numbers, nested structures and sub-arrays.
DTYPES = {
    "u8": np.dtype("<u8"),
    "8:u4,f4": np.dtype([("a", "<u4"), ("b", "<f4")]),
    "24:u8,f8,i8": np.dtype([("a", "<u8"), ("b", "<f8"), ("c", "<i8")]),
    "24:aligned u4,f8,bool": np.dtype([("a", "<u4"), ("b", "<f8"), ("c", "?")], align=True),
    "32:f8x3,u4,u1": np.dtype([("x", "<f8", (3,)), ("id", "<u4"), ("f", "u1")], align=True),
    "64:u8x8": np.dtype([(f"w{k}", "<u8") for k in range(8)]),
    "72:mixed": np.dtype([("a", "<u8"), ("b", "<f4"), ("c", "<i2"), ("d", "u1"),
                          ("e", "<f8", (7,)), ("g", "i1")], align=True),
    "128:f4x16,i8x8": np.dtype([("v", "<f4", (16,)), ("w", "<i8", (8,))]),
    "1:u1": np.dtype("u1"),
    "3:u1,u2": np.dtype([("a", "u1"), ("b", "<u2")]),
    "7:u4,u2,i1": np.dtype([("a", "<u4"), ("b", "<u2"), ("c", "i1")]),
    "11:straddle": np.dtype([("a", "u1"), ("b", "<u8"), ("c", "<u2")]),
    "100:f8x12,u4": np.dtype([("a", "<f8", (12,)), ("b", "<u4")]),
    "24:c8,c16": np.dtype([("z", "<c8"), ("w", "<c16")]),
    "nested": np.dtype([("p", [("x", "<f4"), ("y", "<i2", (2, 3))]), ("q", "?")]),
}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    # Chunks of a few hundred bytes, so small test arrays still split into many chunks
    # and every chunk boundary case occurs.
    monkeypatch.setattr(fill_module, "MIN_CHUNK_BYTES", 256)


def carve(dtype, count, misalign, garbage=0xA5):
    """``count`` elements starting ``misalign`` bytes past a 64-byte boundary, with guard
    bytes around them; returns (array, whole buffer)."""
    buffer = np.full(count * dtype.itemsize + 256, garbage, np.uint8)
    offset = -buffer.ctypes.data % 64 + 64 + misalign
    return buffer[offset:offset + count * dtype.itemsize].view(dtype), buffer


@functools.cache
def record_of(name):
    return make_record(DTYPES[name])  # one per dtype: its kernels compile once


@pytest.mark.parametrize("name", list(DTYPES))
@pytest.mark.parametrize("misalign", [0, 8, 13])
def test_fill_equals_naive_and_is_the_same_on_one_and_two_threads(name, misalign):
    dtype = DTYPES[name]
    record = record_of(name)
    count = 700
    want = naive.fill(np.empty(count, dtype), record, start=41)
    for threads in (1, 2):
        got, buffer = carve(dtype, count, misalign)
        before = buffer.copy()
        fill(got, record, start=41, threads=threads)
        assert got.view(np.uint8).tobytes() == want.view(np.uint8).tobytes(), threads
        written = (buffer != before).nonzero()[0]
        start = got.ctypes.data - buffer.ctypes.data
        assert written.min(initial=start) >= start
        assert written.max(initial=start) < start + got.nbytes  # nothing outside


def test_whole_lines_are_streamed_and_only_head_and_tail_take_plain_stores():
    dtype = DTYPES["24:u8,f8,i8"]
    got, _ = carve(dtype, 1000, 16)
    report = fill(got, record_of("24:u8,f8,i8"))
    # 16 bytes past a line: records 2.. start a batch of 8 records (3 lines).
    assert first_whole_batch(got.ctypes.data, 24, 8) == 2
    whole = (1000 - 2) // 8 * 8
    assert report.streamed <= whole * 24
    assert report.streamed >= whole * 24 - 2 * 8 * 24 * len(report.job.chunks)
    assert report.records == 1000 and report.nbytes == 24000


def test_an_address_no_record_can_start_a_line_at_takes_plain_stores_only():
    dtype = DTYPES["24:u8,f8,i8"]
    got, _ = carve(dtype, 500, 3)  # records start at odd addresses
    record = record_of("24:u8,f8,i8")
    report = fill(got, record, threads=2)
    assert report.streamed == 0
    assert np.array_equal(got, naive.fill(np.empty(500, dtype), record))


def test_a_plain_dtype_takes_a_scalar_record_and_any_shape_in_c_order():
    @numba.njit
    def square(i):
        return i * i

    got = np.empty((3, 50, 7), np.float32)
    fill(got, square, start=2)
    assert np.array_equal(got.ravel(), (np.arange(2, 2 + got.size) ** 2).astype(np.float32))


def test_padding_bytes_become_zero():
    dtype = np.dtype([("a", "u1"), ("b", "<u8")], align=True)  # 7 padding bytes
    got, _ = carve(dtype, 300, 0, garbage=0xFF)
    fill(got, make_record(dtype))
    assert not got.view(np.uint8).reshape(300, 16)[:, 1:8].any()


def test_empty_array_writes_nothing_and_reports_zero():
    report = fill(np.empty(0, DTYPES["u8"]), record_of("u8"))
    assert (report.records, report.nbytes, report.streamed) == (0, 0, 0)


def test_np_memmap_of_a_file_is_filled(tmp_path):
    dtype = DTYPES["72:mixed"]
    record = record_of("72:mixed")
    mapped = np.memmap(tmp_path / "data.bin", dtype=dtype, mode="w+", shape=(333,))
    fill(mapped, record, threads=2)
    mapped.flush()
    again = np.fromfile(tmp_path / "data.bin", dtype=dtype)
    assert again.tobytes() == naive.fill(np.empty(333, dtype), record).tobytes()


def test_kernels_compile_once_per_record_and_dtype():
    dtype = np.dtype([("a", "<i4"), ("b", "<f8")])
    record = make_record(dtype)
    first = fill(np.empty(100, dtype), record)
    again = fill(np.empty(200, dtype), record)
    other_layout = fill(np.empty(100, np.dtype([("a", "<i4"), ("b", "<f8")], align=True)),
                        record)
    assert first.compile_seconds > 0 and again.compile_seconds == 0
    assert other_layout.compile_seconds > 0


def test_progress_reaches_every_element_and_cancel_stops_with_jobcancelled():
    dtype = DTYPES["u8"]
    seen = []
    fill(np.empty(10000, dtype), record_of("u8"), threads=2,
         progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (10000, 10000)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(fastinit.JobCancelled):
        fill(np.empty(10000, dtype), record_of("u8"), cancel=cancel)


@numba.njit
def failing_record(i):
    if i == 5000:
        raise ValueError("record 5000 is bad")
    return i


def test_an_exception_in_record_reaches_the_caller_after_every_thread_stopped():
    with pytest.raises(ValueError, match="record 5000 is bad") as caught:
        fill(np.empty(20000, np.int64), failing_record, threads=2)
    assert any("raised in chunk" in note for note in caught.value.__notes__)


@st.composite
def dtypes(draw):
    """Structured dtypes of 1 to 6 scalar or sub-array fields, packed or aligned."""
    kinds = st.sampled_from(["?", "i1", "<i2", "<i4", "<i8", "u1", "<u2", "<u4", "<u8",
                             "<f4", "<f8", "<c8", "<c16"])
    fields = []
    for k in range(draw(st.integers(1, 6))):
        kind = draw(kinds)
        shape = draw(st.sampled_from([(), (), (2,), (3,), (2, 2)]))
        fields.append((f"f{k}", kind, shape) if shape else (f"f{k}", kind))
    dtype = np.dtype(fields, align=draw(st.booleans()))
    if draw(st.booleans()):  # a plain dtype now and then
        dtype = np.dtype(draw(kinds))
    return dtype


def check_random_case(dtype, count, misalign, start):
    record = make_record(dtype)
    want = naive.fill(np.empty(count, dtype), record, start=start)
    one, _ = carve(dtype, count, misalign)
    two, _ = carve(dtype, count, (misalign * 7) % 64)
    fill(one, record, start=start, threads=1)
    fill(two, record, start=start, threads=2)
    assert one.tobytes() == want.tobytes() == two.tobytes()


CASES = dict(dtype=dtypes(), count=st.integers(0, 400), misalign=st.integers(0, 63),
             start=st.integers(0, 2**40))
# Each example compiles a record function and its kernels (about a second).
SLOW = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                   HealthCheck.function_scoped_fixture])


@settings(max_examples=12, **SLOW)
@given(**CASES)
def test_random_dtypes_shapes_starts_and_addresses_match_naive(dtype, count, misalign, start):
    check_random_case(dtype, count, misalign, start)


# 300 examples ran once (5:44, all passed); CI's soak run keeps to a minute or so.
@pytest.mark.soak
@settings(max_examples=60, **SLOW)
@given(**CASES)
def test_soak_random_layouts_match_naive(dtype, count, misalign, start):
    check_random_case(dtype, count, misalign, start)
