"""The memset limit: every byte written by the threads, and bad arguments refused."""

import numpy as np
import pytest

from fastinit.bench.membw import FILL_BYTE, memset_limit, memset_seconds


@pytest.mark.parametrize("size, threads", [(1, 1), (4096, 2), ((1 << 20) + 123, 3),
                                           (10_000, 64)])
def test_memset_fills_every_byte_whatever_the_thread_count(size, threads):
    buffer = np.zeros(size, np.uint8)
    memset_seconds(buffer, threads)
    assert (buffer == FILL_BYTE).all()
    assert memset_limit(buffer, threads, repeat=2) >= 0


@pytest.mark.parametrize("buffer, threads, error, words", [
    (np.zeros(10, np.uint8), 0, ValueError, "threads must be >= 1"),
    (np.zeros(10, np.uint8), 1.0, TypeError, "threads must be an integer"),
    (np.zeros((4, 4), np.uint8)[:, 1], 1, ValueError, "C-contiguous"),
    (bytearray(10), 1, TypeError, "buffer must be a NumPy array"),
])
def test_bad_arguments_are_refused(buffer, threads, error, words):
    with pytest.raises(error, match=words):
        memset_seconds(buffer, threads)
