"""An HVO memmap file read without a read lease (a private copy, fastinit.arrays.snapshot)
and truncated by another process: load and verify end cleanly, never by a signal.

The reader is a real second process; the truncation is done by this one, between the
reader's load and its verify (a line on its stdin is the barrier).
"""

import contextlib
import ctypes
import io
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fastinit.cli import main
from fastinit.layout import PAGE_SIZE
from fastinit.mm.hugetlb.hvo import file_ident, file_mappings
from fastinit.mm.run import load
from fastinit.mm.verify import verify

SPEC = "1x2G"
CMDLINE = "hugepagesz=2M hugepages=8 hugetlb_free_vmemmap=on"

# Loads the file (from a thread if asked: no lease there), says so, waits for the
# truncation, verifies. A fastinit file error is the clean error: exit 2.
READER = textwrap.dedent("""
    import sys, threading
    from fastinit.arrays.errors import MemmapFileError
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify

    path, where = sys.argv[1], sys.argv[2]
    outcome = {}

    def read():
        try:
            result = load(path, check_data=True)
            leased = result.memmap.file.handle._lease is not None
            print("loaded", "leased" if leased else "copied", flush=True)
            sys.stdin.readline()
            report = verify(result)
            outcome["code"] = 0 if report.ok else 1
            print("verified", report.ok, report.problems, flush=True)
        except MemmapFileError as error:
            print("error", error, flush=True)
            outcome["code"] = 2

    if where == "thread":
        worker = threading.Thread(target=read)
        worker.start()
        worker.join()
    else:
        read()
    sys.exit(outcome.get("code", 3))
""")

# Holds the file open for writing (no read lease can be taken then) until told to stop.
WRITER = textwrap.dedent("""
    import os, sys
    fd = os.open(sys.argv[1], os.O_WRONLY)
    print("open", flush=True)
    sys.stdin.readline()
""")


@pytest.fixture(scope="module")
def hvo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("hvo_truncated") / "memmap.bin"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["boot", "--spec", SPEC, "--cmdline", CMDLINE, "--memmap-file",
                     str(path), "--no-progress"]) == 0
    return path


def spawn(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_truncated(path, where):
    """Run the reader on ``path`` (a copy of the fixture's), truncate the file once it is
    loaded, let it verify; returns (return code, stdout, stderr)."""
    reader = spawn(READER, path, where)
    try:
        loaded = reader.stdout.readline()
        assert loaded.startswith("loaded copied"), loaded + reader.stderr.read()
        os.truncate(path, 0)
        out, err = reader.communicate("go\n", timeout=600)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    return reader.returncode, loaded + out, err


@pytest.mark.parametrize("where", ["thread", "main"])
def test_a_copied_hvo_file_truncated_under_its_reader_never_raises_a_signal(
        hvo_file, tmp_path, where):
    path = tmp_path / "memmap.bin"
    # A copy with the same holes (released blocks stay released).
    subprocess.run(["cp", "--sparse=always", str(hvo_file), str(path)], check=True)
    writer = None
    if where == "main":  # the main thread would take a lease: a writer prevents it
        writer = spawn(WRITER, path)
        assert writer.stdout.readline() == "open\n"
    try:
        code, out, err = read_truncated(path, where)
    finally:
        if writer is not None:
            writer.communicate("done\n", timeout=60)
    assert code >= 0, f"the reader was killed by signal {-code}: {out}{err}"
    assert code in (0, 2) and "Traceback" not in err, out + err
    # Everything it read was its own copy, taken before the truncation: it verifies.
    assert code == 0 and "verified True" in out, out + err


def test_a_copied_hvo_file_maps_nothing_of_the_file_and_its_tails_equal_their_kept_page(
        hvo_file):
    outcome = {}

    def read():  # off the main thread: no lease, a private copy
        result = load(str(hvo_file), check_data=True)  # the checksum holds
        remapper = result.memmap.file.hvo
        raw = result.memmap.raw
        lo, hi = raw.ctypes.data // PAGE_SIZE, (raw.ctypes.data + raw.nbytes) // PAGE_SIZE
        outcome["mapped"] = [m for m in file_mappings(file_ident(remapper.fd))
                             if m[0] < hi and m[1] > lo]
        outcome["tails"] = all(
            (pages[1:] == pages[0]).all() and pages[0].any()
            for first, count in remapper.aliases
            for pages in [raw[first * PAGE_SIZE:(first + count) * PAGE_SIZE]
                          .view(np.uint64).reshape(count, -1)])
        outcome["remapped"] = remapper.remapped
        outcome["report"] = verify(result)

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    assert outcome["remapped"] == 8
    assert outcome["mapped"] == [] and outcome["tails"]
    assert outcome["report"].ok, outcome["report"].problems
    assert any("remapped onto one page each (copies of the file read without a lease)"
               in (check.summary or "") for check in outcome["report"].checks)


def verify_copy_after(path, change):
    """Problems verify finds in a private copy of ``path`` (loaded off the main thread)
    after ``change(remapper)``."""
    outcome = {}

    def read():
        result = load(str(path))
        change(result.memmap.file.hvo)
        outcome["problems"] = verify(result).problems

    worker = threading.Thread(target=read)
    worker.start()
    worker.join()
    return outcome["problems"]


def test_verify_of_a_copy_finds_a_tail_that_differs_from_its_kept_page(hvo_file):
    def change(remapper):
        first, count = remapper.aliases[-1]
        tail = remapper.base + (first + count - 1) * PAGE_SIZE
        ctypes.memset(tail + 8, 0x5A, 8)  # the copy's own memory: writable

    problems = verify_copy_after(hvo_file, change)
    assert any("1 remapped huge pages have vmemmap pages that are not copies" in p
               for p in problems), problems


def test_verify_of_a_copy_finds_a_mapping_of_the_file_in_it(hvo_file):
    def change(remapper):
        first, _ = remapper.aliases[0]
        assert remapper._mmap(first + 1, 1, False, first)  # as the leased path aliases

    problems = verify_copy_after(hvo_file, change)
    assert any("the private copy of the memmap file maps 1 pages of the file itself" in p
               for p in problems), problems
