"""Issue 18 item 2: a memmap file truncated by another process while fastinit verifies it
ends the verify with a clean error naming the file (exit 2), never SIGBUS: the reader's
read lease holds the truncating process until the job stopped and the mapping is gone."""

import gc
import os
import subprocess
import sys
import textwrap
import time

import pytest

from fastinit.arrays import lease
from memmap_tools import listing

CLI = [sys.executable, "-m", "fastinit.cli"]

# Verifies the file over and over until told to stop, or until the file changes.
VERIFIER = textwrap.dedent("""
    import sys
    from fastinit.arrays.errors import MemmapChangedError
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    result = load(sys.argv[1])
    assert result.memmap.file.handle._lease is not None, "no lease taken"
    print("verifying", flush=True)
    try:
        for _ in range(10000):
            assert verify(result).ok
    except MemmapChangedError as error:
        print(error, file=sys.stderr)
        result.memmap.file.handle.close()
        sys.exit(2)
""")

TRUNCATE = "import os, sys; os.truncate(sys.argv[1], 4096)"  # blocks while a lease is held


def test_a_file_truncated_during_verify_stops_it_cleanly_naming_the_file(tmp_path,
                                                                         page_file):
    path = tmp_path / "p.bin"
    path.write_bytes(page_file)
    verifier = subprocess.Popen([sys.executable, "-c", VERIFIER, str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert verifier.stdout.readline().strip() == "verifying", verifier.stderr.read()
    truncating = subprocess.Popen([sys.executable, "-c", TRUNCATE, str(path)])
    out, err = verifier.communicate(timeout=120)
    assert verifier.returncode == 2, err  # -7 (SIGBUS) before
    assert f"{path} was truncated or opened for writing by another process" in err
    assert truncating.wait(timeout=60) == 0 and path.stat().st_size == 4096
    assert listing(tmp_path) == ["p.bin"]  # its lock file went with it


def test_fastinit_verify_of_a_file_truncated_under_it_exits_2_or_0_never_by_a_signal(
        tmp_path, page_file):
    path = tmp_path / "p.bin"
    for delay in (0.0, 0.05, 0.2):
        path.write_bytes(page_file)
        verifying = subprocess.Popen(CLI + ["verify", "--memmap-file", str(path)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        lock = tmp_path / ".p.bin.fastinit-lock"
        while not lock.exists() and verifying.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        subprocess.run([sys.executable, "-c", TRUNCATE, str(path)], check=True, timeout=120)
        out, err = verifying.communicate(timeout=120)
        # 0: verify had finished reading before the truncation; 1 never (no descriptor
        # changed, only the size); 2: stopped, naming the file.
        assert verifying.returncode in (0, 2), err
        if verifying.returncode == 2:
            assert f"{path} was truncated" in err and "Traceback" not in err


def test_no_lease_on_a_file_open_for_writing_elsewhere_reads_as_before(tmp_path):
    from fastinit.arrays import create_memmap, open_memmap_file
    path = tmp_path / "a.bin"
    with create_memmap(path, "u1", 10) as handle:
        handle.array[:] = 1
    del handle  # its writable mapping counts as a writer too
    gc.collect()
    writer = os.open(path, os.O_RDWR)  # any writer: no read lease can be taken
    try:
        opened = open_memmap_file(path)
        assert opened._lease is None and opened.array.sum() == 10
        opened.close()
    finally:
        os.close(writer)
    opened = open_memmap_file(path)
    assert opened._lease is not None and opened._lease in lease._HELD
    opened.close()
    assert not lease._HELD
