"""A checksum of a memmap file's data that runs at memory bandwidth.

Each 64-bit word is mixed with its position by a bijection (xor with the scaled index,
multiply by an odd constant, xorshift), and the results are added modulo 2**64. So any
change of one word changes the sum, words moved to other positions change it, and the
sums of chunks computed on different threads add up to the sum of the whole. It guards
against damage (a flipped bit, a zeroed or sparse region, a torn write), not against
someone who rewrites the sum: SHA-256 would cost 15 times a memset of the same bytes.
"""

from __future__ import annotations

import numpy as np
from numba import types

from fastinit.kernels._jit import kernel

_POSITION = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads index bits
_MULTIPLIER = np.uint64(0xBF58476D1CE4E5B9)  # odd, so multiplying is a bijection
_SHIFT = np.uint64(31)


_WORDS = types.uint64[::1]
_READONLY_WORDS = types.Array(types.uint64, 1, "C", readonly=True)  # files opened to read


@kernel(types.uint64(_WORDS, types.int64), types.uint64(_READONLY_WORDS, types.int64))
def mix_sum(words, first):
    """Sum of every word mixed with its position, modulo 2**64.

    Parameters
    ----------
    words : ndarray of uint64, shape (n,)
        A run of the data.
    first : int
        Position of ``words[0]`` in the whole data, in words.

    Returns
    -------
    uint64
    """
    total = np.uint64(0)
    for i in range(words.shape[0]):
        x = (words[i] ^ (np.uint64(first + i) * _POSITION)) * _MULTIPLIER
        total += x ^ (x >> _SHIFT)
    return total
