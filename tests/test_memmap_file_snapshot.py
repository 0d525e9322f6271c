"""Issue 18 item 2 where no read lease can be taken: the file is read into private memory
(fastinit.arrays.snapshot), so a truncation by another process never ends the reader by
SIGBUS. Each situation is made real: a writer holding the file open, a reader on another
thread, a reader that does not own the file (no CAP_LEASE); the truncation is a real
second process (or this test's process, for the child reading)."""

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from fastinit.arrays import MemmapFileError, create_memmap, open_memmap_file, snapshot
from fastinit.arrays.errors import MemmapChangedError

CLI = [sys.executable, "-m", "fastinit.cli"]
NOBODY = 65534

# Loads the page file in one of the no-lease situations, says so, waits until the test
# has truncated the file, then verifies what it loaded (SIGBUS here before the copy).
READER = textwrap.dedent("""
    import os, sys, threading
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    path, how = sys.argv[1], sys.argv[2]
    if how == "nobody":
        # Numba's typeof imports numpy.ma lazily, at the first array it types: import it
        # while this process may still read the environment (CI's venv is private, 0700).
        import numpy.ma
        os.setgid(%d); os.setuid(%d)
    box = []
    if how == "thread":
        reader = threading.Thread(target=lambda: box.append(load(path)))
        reader.start(); reader.join()
    else:
        box.append(load(path))
    result = box[0]
    assert result.memmap.file.handle._lease is None, "a lease was taken"
    print("loaded", flush=True)
    sys.stdin.readline()
    report = verify(result)
    print("ok" if report.ok else "FAILED", flush=True)
""" % (NOBODY, NOBODY))


@pytest.fixture
def shared_dir():
    """A directory anyone may write (sticky, as /tmp), for a reader that is not root."""
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm")
                                     else None) as work:
        os.chmod(work, 0o1777)
        yield Path(work)


def _situation(how: str, path: Path):
    """What makes a lease impossible for the reader, held until the returned fd closes."""
    if how == "nobody" and os.geteuid() != 0:
        pytest.skip("a reader that does not own the file needs the test to run as root")
    if how == "writer":
        return os.open(path, os.O_RDWR)  # this process: a writer the reader cannot see
    return None


@pytest.mark.parametrize("how", ["writer", "thread", "nobody"])
def test_a_file_truncated_after_a_reader_without_lease_opened_it_is_read_from_its_copy(
        how, shared_dir, page_file):
    path = shared_dir / "p.bin"
    path.write_bytes(page_file)
    path.chmod(0o644)
    writer = _situation(how, path)
    try:
        reader = subprocess.Popen([sys.executable, "-c", READER, str(path), how],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert reader.stdout.readline().strip() == "loaded", reader.stderr.read()
        # A real second process truncates it: nothing holds it back without a lease.
        subprocess.run([sys.executable, "-c", "import os, sys; os.truncate(sys.argv[1], 0)",
                        str(path)], check=True, timeout=60)
        out, err = reader.communicate("go\n", timeout=300)
    finally:
        if writer is not None:
            os.close(writer)
    assert reader.returncode == 0 and out.strip() == "ok", err  # -7 (SIGBUS) before
    assert path.stat().st_size == 0


def test_a_file_truncated_while_it_is_copied_is_a_clean_error_naming_it(tmp_path):
    path = tmp_path / "a.bin"
    with create_memmap(path, "u1", 64 << 20) as handle:
        handle.array[:] = 7
    del handle
    fd = os.open(path, os.O_RDONLY)
    nbytes = os.fstat(fd).st_size
    # Copies the file over and over, a page at a time, until a copy comes up short.
    copier = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        from fastinit.arrays import snapshot
        from fastinit.arrays.errors import MemmapChangedError
        snapshot.CHUNK = 4096
        fd, nbytes = os.open(sys.argv[1], os.O_RDONLY), int(sys.argv[2])
        print("copying", flush=True)
        try:
            while True:
                snapshot.copy(sys.argv[1], fd, nbytes).close()
        except MemmapChangedError as error:
            print(error, file=sys.stderr)
            sys.exit(2)
    """), str(path), str(nbytes)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert copier.stdout.readline().strip() == "copying", copier.stderr.read()
        os.truncate(path, nbytes // 2)  # this process: the copier's second process
        out, err = copier.communicate(timeout=120)
    finally:
        os.close(fd)
    assert copier.returncode == 2, err
    assert f"{path} was truncated by another process while fastinit read it" in err
    assert "Traceback" not in err


def test_fastinit_verify_of_a_file_held_open_for_writing_and_truncated_never_dies_by_a_signal(
        tmp_path, page_file):
    path = tmp_path / "p.bin"
    for delay in (0.0, 0.02, 0.2):
        path.write_bytes(page_file)
        writer = os.open(path, os.O_RDWR)  # no lease for the verify: it reads a copy
        try:
            verifying = subprocess.Popen(CLI + ["verify", "--memmap-file", str(path)],
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True)
            lock = tmp_path / ".p.bin.fastinit-lock"
            while not lock.exists() and verifying.poll() is None:
                time.sleep(0.001)
            time.sleep(delay)
            subprocess.run([sys.executable, "-c", "import os, sys; os.truncate(sys.argv[1], "
                            "4096)", str(path)], check=True, timeout=60)
            out, err = verifying.communicate(timeout=300)
        finally:
            os.close(writer)
        # 0: copied before the truncation (and the copy verifies); 2: cut short, naming
        # the file (at the copy, or at the size check before it). Never -7.
        assert verifying.returncode in (0, 2), err
        assert "Traceback" not in err
        if verifying.returncode == 2:
            assert str(path) in err and "truncated" in err


def test_a_copy_that_would_not_fit_in_memory_is_refused_naming_the_file_and_the_sizes(
        tmp_path, monkeypatch):
    path = tmp_path / "a.bin"
    with create_memmap(path, "u1", 1 << 20) as handle:
        handle.array[:] = 1
    del handle
    monkeypatch.setattr(snapshot, "available_memory", lambda: 1 << 20)
    writer = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(MemmapFileError, match="cannot be read safely") as caught:
            open_memmap_file(path)
    finally:
        os.close(writer)
    assert str(path) in str(caught.value) and "GiB" in str(caught.value)
    assert not isinstance(caught.value, MemmapChangedError)
    with open_memmap_file(path) as opened:  # with its lease: mapped, however little memory
        assert opened._lease is not None and int(opened.array.sum()) == 1 << 20
