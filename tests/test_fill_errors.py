"""fastinit.fill refuses bad input with a TypeError or ValueError naming it, before writing."""

import re
import threading

import numba
import numpy as np
import pytest

from fastinit.arrays.fill import fill
from fastinit.arrays.records import leaves_of

PAIR = np.dtype([("a", "<u4"), ("b", "<f8")])


@numba.njit
def pair(i):
    return i, i * 0.5


@numba.njit
def index(i):
    return i


def untouched(array):
    """The array is still all 0x77 bytes."""
    return bool((array.view(np.uint8) == 0x77).all())


def marked(shape, dtype=PAIR):
    array = np.empty(shape, dtype)
    array.view(np.uint8)[...] = 0x77
    return array


@pytest.mark.parametrize("bad, error, words", [
    ([1, 2, 3], TypeError, "needs a NumPy array"),
    (np.empty((4, 6), PAIR)[:, ::2], ValueError, "C-contiguous"),
    (np.empty((4, 6), PAIR).T, ValueError, "C-contiguous"),
])
def test_arrays_fill_cannot_write_are_refused(bad, error, words):
    with pytest.raises(error, match=words):
        fill(bad, pair)


def test_a_read_only_array_is_refused_untouched():
    array = marked(10)
    array.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fill(array, pair)
    assert untouched(array)


@pytest.mark.parametrize("start, error, words", [
    (-1, ValueError, "start must be >= 0, got -1"),
    (1.5, TypeError, "start must be an integer, got 1.5"),
    (True, TypeError, "start must be an integer, got True"),
    (2**63 - 5, ValueError, "passes the largest int64"),
])
def test_bad_start_is_refused_untouched(start, error, words):
    array = marked(10)
    with pytest.raises(error, match=words):
        fill(array, pair, start=start)
    assert untouched(array)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(threads=0), ValueError, "threads must be >= 1, got 0"),
    (dict(threads="2"), TypeError, "threads must be an integer"),
    (dict(progress=5), TypeError, "progress must be callable"),
    (dict(cancel=True), TypeError, "cancel must be a threading.Event"),
])
def test_bad_options_are_refused(kwargs, error, words):
    with pytest.raises(error, match=words):
        fill(marked(10), pair, **kwargs)


def plain_python(i):
    return i, i * 0.5


@numba.njit(parallel=True)
def parallel_record(i):
    return i, i * 0.5


@numba.njit
def two_arguments(i, j):
    return i, j * 0.5


@numba.njit("Tuple((int32, float64))(int32)")
def int32_index(i):
    return i, i * 0.5


@numba.njit
def three_values(i):
    return i, i * 0.5, i


@numba.njit
def float_for_int(i):
    return i * 0.5, i * 0.5


@numba.njit
def array_value(i):
    return np.arange(3), i * 0.5


@pytest.mark.parametrize("record, words", [
    (plain_python, "must be a Numba-compiled function"),
    (parallel_record, "parallel=True"),
    (two_arguments, "does not compile for an int64 index"),
    (int32_index, "must take one int64 index"),
    (three_values, r"is Tuple\(int64, float64, int64\), but the dtype holds a structure "
                   r"of 2 fields"),
    (float_for_int, r"\[0\] \(field 'a'\) is float64, which fill does not convert into a "
                    r"uint32 field"),
    (array_value, r"\[0\] \(field 'a'\) is array"),
])
def test_record_functions_that_do_not_fit_are_refused_untouched(record, words):
    array = marked(10)
    with pytest.raises(TypeError, match=words):
        fill(array, record)
    assert untouched(array)


def test_a_declared_int32_record_is_refused_after_one_of_the_same_code_was_cached():
    # The return types fill remembers across processes are keyed by the record's code;
    # the declared signature is part of what the record is (int32_index's code is this).
    @numba.njit
    def same_code(i):
        return i, i * 0.5

    @numba.njit("Tuple((int32, float64))(int32)")
    def declared_int32(i):
        return i, i * 0.5

    fill(marked(10), same_code)
    array = marked(10)
    with pytest.raises(TypeError, match="must take one int64 index"):
        fill(array, declared_int32)
    assert untouched(array)


def test_a_number_for_a_bool_field_is_refused_and_a_bool_for_a_number_accepted():
    with pytest.raises(TypeError, match="int64, which fill does not convert into a bool"):
        fill(np.empty(4, np.bool_), index)

    @numba.njit
    def odd(i):
        return i % 2 == 1

    array = np.empty(4, np.float64)
    fill(array, odd)
    assert list(array) == [0.0, 1.0, 0.0, 1.0]


def test_a_sub_array_field_needs_a_tuple_of_its_length():
    dtype = np.dtype([("v", "<f8", (3,))])

    @numba.njit
    def two(i):
        return ((1.0, 2.0),)

    with pytest.raises(TypeError, match=r"sub-array of shape \(3,\)"):
        fill(np.empty(4, dtype), two)


@pytest.mark.parametrize("dtype, words", [
    (np.dtype(object), "type '|O'"),
    (np.dtype("S4"), "type '|S4'"),
    (np.dtype(">u4"), "type '>u4'"),
    (np.dtype("<f2"), "type '<f2'"),
    (np.dtype("<M8[s]"), "type '<M8[s]'"),
    (np.dtype([("a", "<u4"), ("t", "<U3")]), "field 't'"),
    (np.dtype({"names": ["a", "b"], "formats": ["<u4", "<u2"], "offsets": [0, 2]}),
     "overlapping fields"),
    (np.dtype([("big", "<f8", (600,))]), "at most 4096 bytes"),
    (np.dtype([("many", "u1", (600,))]), "at most 512 scalars"),
])
def test_dtypes_fill_cannot_write_are_refused(dtype, words):
    with pytest.raises(TypeError, match=re.escape(words)):
        leaves_of(dtype)


def test_an_unsupported_dtype_is_refused_before_anything_is_written():
    array = np.zeros(4, np.dtype(">u4"))
    with pytest.raises(TypeError, match="native byte order"):
        fill(array, index)
    assert not array.any()


def test_a_cancel_event_set_before_the_call_leaves_an_array_untouched():
    from fastinit import JobCancelled
    array = marked(1000)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        fill(array, pair, cancel=cancel)
    assert untouched(array)
