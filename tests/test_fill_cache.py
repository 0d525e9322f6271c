"""Fill kernels are cached across processes under a key of everything they compile from:
a second process loads them without compiling (not even ``record``), and a changed
constant that ``record`` reads is never served stale."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
from numba.core.caching import NullCache

from fastinit.arrays.fill import kernels_for
from fastinit.arrays.fill_key import record_digest

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = """
import json, sys
import numba, numpy as np, fastinit
from fastinit.arrays.fill import kernels_for
SCALE = int(sys.argv[1])
SALT = int(sys.argv[2])  # a key no earlier run cached (the rest of the cache stays warm)
DTYPE = np.dtype([("id", "<u8"), ("x", "<f4")])

@numba.njit
def record(i):
    return i + SALT * 0, i * SCALE

array = np.empty(1000, DTYPE)
fastinit.fill(array, record)
kernels, _ = kernels_for(record, DTYPE)
stats = kernels.plain.stats
print(json.dumps({"x": float(array["x"][10]), "hits": sum(stats.cache_hits.values()),
                  "misses": sum(stats.cache_misses.values()),
                  "record_compiled": len(record.signatures)}))
"""


def run(scale: int, salt: int) -> dict:
    # The suite's own cache: its kernels are warm, and the salt makes the fill's key new.
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(scale), str(salt)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def salt() -> int:
    return int.from_bytes(os.urandom(7), "little")


def test_a_second_process_loads_the_fill_kernels_and_a_changed_constant_compiles_anew():
    key = salt()
    first = run(2, key)
    assert (first["hits"], first["misses"]) == (0, 1) and first["x"] == 20.0
    second = run(2, key)
    assert (second["hits"], second["misses"]) == (1, 0) and second["x"] == 20.0
    assert second["record_compiled"] == 0  # its return type was remembered too
    # SCALE is a constant to Numba: another value is another key, never stale code
    changed = run(3, key)
    assert (changed["hits"], changed["misses"]) == (0, 1) and changed["x"] == 30.0


class Opaque:
    factor = 2


OPAQUE = Opaque()
TABLE = np.arange(4, dtype=np.int64)


@numba.njit
def reads_an_array(i):
    return TABLE[i % 4]


@numba.njit
def calls_another(i):
    return reads_an_array(i) + 1


def test_constants_and_called_functions_are_part_of_the_key():
    digest = record_digest(calls_another)
    assert digest is not None and digest == record_digest(calls_another)
    TABLE[0] = 7  # the array is a constant to Numba: another key
    try:
        assert record_digest(calls_another) != digest
    finally:
        TABLE[0] = 0


def test_a_record_reading_an_object_we_cannot_hash_is_compiled_per_process():
    def uses_object(i):
        return OPAQUE.factor * i
    assert record_digest(numba.njit(uses_object)) is None
    kernels, _ = kernels_for(reads_an_array, np.dtype("<i8"))
    assert not isinstance(kernels.plain._cache, NullCache)  # hashable: cached
