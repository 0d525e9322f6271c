"""Reading a boot log: what the path is, checked first, and a size cap (issue 9 item 13)."""

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fastinit.machine.bootlog import read_bootlog
from fastinit.machine.logfile import MAX_LOG_BYTES, read_capped, read_log_bytes

LOG = Path(__file__).parent / "data" / "dmesg" / "hyperv-2node-3.15.txt"


def bytes_read() -> int:
    """Bytes this process has read so far (Linux's rchar): "refused before reading" as a
    count, not a time, so it holds however fast or loaded the machine is."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_dev_zero_is_refused_at_once_as_a_character_device():
    before = bytes_read()
    with pytest.raises(ValueError, match="'/dev/zero' is a character device, not a log"):
        read_bootlog("/dev/zero")
    assert bytes_read() - before < MAX_LOG_BYTES // 16  # nothing of /dev/zero was read


def test_directory_is_refused_by_what_it_is(tmp_path):
    with pytest.raises(ValueError, match="is a directory, not a log"):
        read_log_bytes(str(tmp_path))


def test_regular_file_over_the_cap_is_refused_before_reading(tmp_path):
    big = tmp_path / "huge.log"
    with big.open("wb") as handle:  # sparse: nothing written, but 1 GiB long
        handle.truncate(1 << 30)
    before = bytes_read()
    with pytest.raises(ValueError, match=f"larger than {MAX_LOG_BYTES >> 20} MiB"):
        read_bootlog(str(big))
    assert bytes_read() - before < MAX_LOG_BYTES // 16


def test_stream_over_the_cap_is_refused_after_reading_the_cap():
    with pytest.raises(ValueError, match="larger than 1 MiB"):
        read_capped(io.BytesIO(b"x" * ((1 << 20) + 1)), "<stdin>", limit=1 << 20)
    assert read_capped(io.BytesIO(b"x" * (1 << 20)), "<stdin>", limit=1 << 20) == \
        b"x" * (1 << 20)


def test_fifo_without_a_writer_does_not_block(tmp_path):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(read_log_bytes(str(fifo))),
                              daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive() and outcome == [b""]


def wait_in_open(pid, seconds=60):
    """Wait until process ``pid`` sits in openat(2) (blocked on a fifo with no reader)."""
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}/syscall").read_text().split()[0] != str(OPENAT):
        assert time.monotonic() < deadline, f"process {pid} never blocked in open()"
        time.sleep(0.001)


# openat's number on x86-64 and arm64, as /proc/PID/syscall prints it.
OPENAT = {"x86_64": 257, "aarch64": 56}.get(os.uname().machine, 257)


def test_fifo_with_a_writer_is_read_like_process_substitution(tmp_path):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    # The writer waits in open() for a reader, as the writer of `--dmesg <(dmesg)` has
    # its end open before fastinit starts.
    data = LOG.read_bytes()
    writer = subprocess.Popen([sys.executable, "-c", f"print(flush=True); open({str(fifo)!r}, "
                               f"'wb').write({data!r})"], stdout=subprocess.PIPE)
    writer.stdout.readline()  # past start-up: the next file it opens is the fifo
    wait_in_open(writer.pid)
    try:
        topology, text = read_bootlog(str(fifo))
    finally:
        writer.wait(10)
        writer.stdout.close()
    assert text.encode() == data and topology.nodes


def test_missing_file_names_the_path_and_the_reason():
    with pytest.raises(ValueError, match="cannot read boot log '/nonexistent/log': No such"):
        read_bootlog("/nonexistent/log")
