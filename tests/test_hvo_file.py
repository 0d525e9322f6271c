"""HVO on a memmap file: the aliased pages' blocks released (holes), the file recording
its aliases so a reopened file reads its tails right, verifies and holds its checksum;
what a forged record, a process short of mappings, a file system without holes and a
failure after the remapping do."""

import contextlib
import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from fastinit.cli import main
from fastinit.layout import PAGE_SIZE
from fastinit.machine.spec import parse_spec
from fastinit.mm.hugetlb import hvo_budget
from fastinit.mm.hugetlb.hvo_file import FileRemapper
from fastinit.mm.hugetlb.state import PoolState
from fastinit.mm.page_file import DamagedMemmapError, MemmapFileError
from fastinit.mm.run import boot, load
from fastinit.mm.verify import verify
from memmap_tools import array_offset, listing, npy_length, rewrite

SPEC = "2x4G,cpus=2"
CMDLINE = ("hugepagesz=1G hugepages=0:1,1:1 hugepagesz=2M hugepages=300 "
           "hugetlb_free_vmemmap=on")


def topology(cmdline=CMDLINE):
    return parse_spec(SPEC, cmdline=cmdline)


ARGV = ["boot", "--spec", SPEC, "--cmdline", CMDLINE, "--verify", "--json", "--no-progress"]


def boot_json(argv) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def hvo_file(tmp_path_factory):
    """A file booted with HVO by the CLI, and the JSON it printed (verified in the boot)."""
    path = tmp_path_factory.mktemp("hvo") / "memmap.bin"
    return path, boot_json(ARGV + ["--memmap-file", str(path)])


def data_offset(path) -> int:
    with open(path, "rb") as file:
        return npy_length(file.read(16))


def first_aliased(path) -> int:
    """The first page of descriptors the file's first ``hvo`` row names."""
    with open(path, "rb") as file:
        file.seek(data_offset(path) + array_offset(path, "hvo"))
        return struct.unpack("<q", file.read(8))[0]


def test_a_file_boot_gives_the_in_memory_counts_and_releases_the_aliased_blocks(hvo_file):
    path, in_file = hvo_file
    in_memory = boot_json(ARGV)
    assert in_file["verified"] and in_memory["verified"]
    assert [n["hugepages"] for n in in_file["nodes"]] == \
        [n["hugepages"] for n in in_memory["nodes"]]
    figures, memory = in_file["hugetlb"]["hvo"], in_memory["hugetlb"]["hvo"]
    for name in ("pages_remapped", "released_bytes", "freed_to_buddy_pages", "mappings"):
        assert figures[name] == memory[name]
    assert figures["pages_remapped"] == 302
    # du below ls -l by what HVO released (a block or two of slack for the file system).
    size, allocated = os.stat(path).st_size, os.stat(path).st_blocks * 512
    assert figures["file_bytes"] == size
    assert size - figures["released_bytes"] <= allocated <= \
        size - figures["released_bytes"] + 16 * PAGE_SIZE


def test_a_reopened_file_reads_its_tails_through_the_aliases_and_verifies(hvo_file):
    path, _ = hvo_file
    result = load(str(path), check_data=True)  # the checksum holds over the holes
    remapper = result.memmap.file.hvo
    assert remapper.remapped == 302 and remapper.unreleased() == 0
    first, count = remapper.aliases[0]
    words = result.memmap.raw[first * PAGE_SIZE:(first + count) * PAGE_SIZE]
    pages = words.view(np.uint64).reshape(count, -1)
    assert (pages[1:] == pages[0]).all() and pages[0].any()
    assert result.pools.counts() == result.plan.pools.counts()
    report = verify(result)
    assert report.ok, report.problems


def test_verify_in_another_process_passes_later(hvo_file):
    path, _ = hvo_file
    done = subprocess.run([sys.executable, "-m", "fastinit.cli", "verify", "--memmap-file",
                           str(path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "KiB of the file released" in done.stdout


def test_verify_off_the_main_thread_reads_a_private_copy_and_passes(hvo_file):
    # No read lease off the main thread: the file is copied (arrays.snapshot), and the
    # aliases must be checked against the file's kept pages, not the copy's.
    path, _ = hvo_file
    outcome = {}

    def load_and_verify():
        result = load(str(path), check_data=True)
        outcome["lease"] = result.memmap.file.handle._lease
        outcome["problems"] = [problem for check in verify(result).checks
                               for problem in check.problems]

    worker = threading.Thread(target=load_and_verify)
    worker.start()
    worker.join()
    assert outcome["lease"] is None and outcome["problems"] == []


def test_a_changed_kept_page_fails_the_checksum_over_the_aliases(hvo_file, tmp_path):
    path, _ = hvo_file
    copy = tmp_path / "copy.bin"
    copy.write_bytes(path.read_bytes())  # holes read back as zeros: the aliases still hold
    assert load(str(copy), check_data=True).pools is not None
    first = first_aliased(copy)
    rewrite(copy, data_offset(copy) + first * PAGE_SIZE + 40, b"\x01")
    with pytest.raises(DamagedMemmapError, match="checksum"):
        load(str(copy), check_data=True)


def test_a_forged_hvo_record_is_refused_before_anything_is_mapped(hvo_file, tmp_path):
    path, _ = hvo_file
    # A size no pool page has; descriptors before the memmap's first.
    for row, field, value in ((0, 8, 3), (5, 0, -8)):
        copy = tmp_path / f"forged{row}.bin"
        copy.write_bytes(path.read_bytes())
        rewrite(copy, data_offset(copy) + array_offset(copy, "hvo") + row * 16 + field,
                struct.pack("<q", value))
        with pytest.raises(DamagedMemmapError, match="HVO record"):
            load(str(copy))


def test_a_process_short_of_mappings_is_told_to_raise_max_map_count(hvo_file, monkeypatch):
    path, _ = hvo_file
    monkeypatch.setattr(hvo_budget, "map_count_budget", lambda: 100)
    with pytest.raises(MemmapFileError, match="vm.max_map_count"):
        load(str(path))


def test_a_file_system_without_holes_keeps_every_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(FileRemapper, "_punch", lambda self, first, count: False)
    path = tmp_path / "memmap.bin"
    result = boot(topology(), memmap_file=str(path))
    assert result.pools.remapper.remapped == 0 and result.pools.kept_vmemmap == 302
    assert verify(result).ok
    assert os.stat(path).st_blocks * 512 >= os.stat(path).st_size
    assert load(str(path)).memmap.file.hvo is None


def test_a_boot_failing_after_the_remapping_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "memmap.bin"
    boot(parse_spec("1x2G"), memmap_file=str(path))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    calls = []

    def enqueue_then_fail(self, heads, order, nid):
        calls.append(self.out.remapper.remapped)
        raise RuntimeError("injected after the remapping")

    monkeypatch.setattr(PoolState, "enqueue", enqueue_then_fail)
    with pytest.raises(RuntimeError, match="injected"):
        boot(topology(), memmap_file=str(path), force=True)
    assert calls and max(calls) > 0  # it failed with pages remapped and holes punched
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert listing(tmp_path) == ["memmap.bin"]


def test_hvo_into_a_memmap_file_given_again_is_refused(tmp_path):
    result = boot(topology(CMDLINE.replace("=on", "=off")), memmap_file=str(tmp_path / "m"))
    with pytest.raises(ValueError, match="into a new file"):
        boot(topology(), memmap=result.memmap)


KILLED_AFTER_REMAPPING = textwrap.dedent("""
    import sys, time
    from fastinit.machine.spec import parse_spec
    from fastinit.mm.hugetlb.state import PoolState
    from fastinit.mm.run import boot
    enqueue = PoolState.enqueue
    def stop_here(self, heads, order, nid):
        if self.out.remapper.remapped:  # aliases mapped, the first page's blocks released
            print("remapped", flush=True)
            time.sleep(120)
        enqueue(self, heads, order, nid)
    PoolState.enqueue = stop_here
    boot(parse_spec(sys.argv[2], cmdline=sys.argv[3]), memmap_file=sys.argv[1], force=True)
""")


def test_kill_9_after_the_remapping_leaves_the_old_file(tmp_path):
    path = tmp_path / "memmap.bin"
    boot(parse_spec("1x2G"), memmap_file=str(path))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    child = subprocess.Popen([sys.executable, "-c", KILLED_AFTER_REMAPPING, str(path), SPEC,
                              CMDLINE], stdout=subprocess.PIPE, text=True)
    timer = threading.Timer(300, child.kill)  # never hang the suite
    timer.start()
    try:
        assert child.stdout.readline().strip() == "remapped"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        timer.cancel()
        child.stdout.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
    assert verify(load(str(path))).ok
    boot(topology(), memmap_file=str(path), force=True)  # removes what the killed one left
    assert listing(tmp_path) == ["memmap.bin"]
