"""Issue 18 items 1 and 15: a header rewritten by another process while a file is opened
is read once and never trusted after its check (a racing writer process, real pwrite
calls); dtypes and shapes NumPy cannot map are refused when a file is created and when
one is opened, naming them."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastinit.arrays import MemmapFileError, create_memmap, open_memmap_file
from memmap_tools import reseal

# Flips the metadata length (bytes 24..32) between 2**40 and the true value, as fast as
# it can, until told to stop; the checksums are left alone.
FLIPPER = textwrap.dedent("""
    import os, struct, sys
    fd = os.open(sys.argv[1], os.O_RDWR)
    good = os.pread(fd, 8, 24)
    bad = struct.pack("<Q", 1 << 40)
    print("flipping", flush=True)
    os.set_blocking(0, False)
    while not sys.stdin.read(1):
        for _ in range(1000):
            os.pwrite(fd, bad, 24)
            os.pwrite(fd, good, 24)
    os.pwrite(fd, good, 24)
""")

# Opens the file again and again while the header flips under it; a signal ends it.
OPENER = textwrap.dedent("""
    import sys
    from fastinit.arrays import MemmapFileError, open_memmap_file
    opened = refused = 0
    for _ in range(int(sys.argv[2])):
        try:
            with open_memmap_file(sys.argv[1], "r") as handle:
                assert int(handle.array.sum()) == 7 * 4096 and handle.state == "complete"
                opened += 1
        except MemmapFileError as error:
            assert sys.argv[1] in str(error), error
            refused += 1
    print(opened, refused)
""")


def test_a_header_flipped_by_another_process_while_opening_never_crashes(tmp_path):
    path = tmp_path / "a.bin"
    with create_memmap(path, np.uint8, 4096) as handle:
        handle.array[:] = 7
    flipper = subprocess.Popen([sys.executable, "-c", FLIPPER, str(path)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert flipper.stdout.readline().strip() == "flipping"
        opener = subprocess.run([sys.executable, "-c", OPENER, str(path), "1000"],
                                capture_output=True, text=True, timeout=300)
    finally:
        flipper.communicate("stop", timeout=60)
    assert opener.returncode == 0, opener.stderr  # -11 (SIGSEGV) before
    opened, refused = map(int, opener.stdout.split())
    assert opened + refused == 1000
    assert open_memmap_file(path).array.sum() == 7 * 4096


@pytest.mark.parametrize("dtype, shape, named", [
    ("u1", (0, 2**50, 2**50), "shape (0, 1125899906842624, 1125899906842624)"),
    (np.dtype((np.dtype(("<u8", (4,))), (2,))), 3, "dtype (('<u8', (4,)), (2,))")])
def test_what_numpy_cannot_map_is_refused_at_create_naming_it(tmp_path, dtype, shape, named):
    with pytest.raises(ValueError, match=f"cannot be mapped by NumPy") as refused:
        create_memmap(tmp_path / "a.bin", dtype, shape)
    assert named in str(refused.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("entry, named", [
    ({"dtype": "|u1", "shape": [0, 2**50, 2**50]}, "shape (0, 1125899906842624"),
    ({"dtype": {"base": {"base": "<u8", "shape": [4]}, "shape": [2]}, "shape": [3]},
     "dtype (('<u8', (4,)), (2,))")])
def test_what_numpy_cannot_map_is_refused_at_open_naming_it(tmp_path, entry, named):
    path = tmp_path / "a.bin"
    with create_memmap(path, np.uint8, 0) as handle:
        pass

    def forged(meta):
        meta["arrays"][0].update(entry)
        return meta

    reseal(path, meta=forged)
    with pytest.raises(MemmapFileError, match="cannot be mapped by NumPy") as refused:
        open_memmap_file(path)
    assert str(path) in str(refused.value) and named in str(refused.value)
