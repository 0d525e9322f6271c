"""HugeTLB boot pools in memmap files: the same pools as in memory, recorded so that the
file verifies later (in this process and in another), and a file whose pools were changed
fails verification by name."""

import json
import mmap
import subprocess
import sys

import numpy as np

from cli_run import run
from fastinit.kernels.compound import PG_HEAD
from fastinit.machine.spec import parse_spec
from fastinit.mm.run import boot, load
from fastinit.mm.verify import verify

EXAMPLE = "hugepagesz=1G hugepages=0:2,1:3 hugepagesz=2M hugepages=1000"
SPEC = "2x16G,cpus=4"


def test_a_file_holds_the_pools_a_boot_in_memory_makes_and_verifies_when_reopened(tmp_path):
    topology = parse_spec("2x4G,cpus=2", cmdline="hugepagesz=1G hugepages=0:1,1:1 "
                                                 "hugepagesz=2M hugepages=300")
    path = str(tmp_path / "pools.memmap")
    in_memory, in_file = boot(topology, threads=1), boot(topology, threads=1, memmap_file=path)
    assert in_file.pools.counts() == in_memory.pools.counts() == \
        {0: {18: 1, 9: 150}, 1: {18: 1, 9: 150}}
    for key in in_memory.zones:
        assert in_file.zones[key].managed == in_memory.zones[key].managed
    assert verify(in_file).ok
    pools = in_file.pools
    del in_file
    reopened = load(path)
    assert reopened.pools.counts() == pools.counts()
    assert reopened.pools.freelists == pools.freelists
    for order in pools.pages:
        assert np.array_equal(reopened.pools.heads(order), pools.heads(order))
    assert verify(reopened).ok


def test_the_issue_example_gives_the_same_counts_in_a_file_and_verifies_later(tmp_path,
                                                                             capsys):
    path = str(tmp_path / "pools.memmap")
    argv = ["boot", "--spec", SPEC, "--cmdline", EXAMPLE, "--verify", "--json"]
    status, out, _ = run(capsys, *argv)
    in_memory = json.loads(out)
    status_file, out, _ = run(capsys, *argv, "--memmap-file", path)
    in_file = json.loads(out)
    counts = [{"2048kB": 500, "1048576kB": 2}, {"2048kB": 500, "1048576kB": 3}]
    assert status == status_file == 0 and in_file["verified"]
    assert [n["hugepages"] for n in in_memory["nodes"]] == counts
    assert [n["hugepages"] for n in in_file["nodes"]] == counts
    # Another process, later: the file alone says what its pools must be.
    done = subprocess.run([sys.executable, "-m", "fastinit.cli", "verify", "--memmap-file",
                           path], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "HugeTLB pools" in done.stdout


def test_a_pool_page_changed_in_the_file_fails_verify(tmp_path, capsys):
    topology = parse_spec("2x4G,cpus=2", cmdline="hugepagesz=2M hugepages=100")
    path = tmp_path / "pools.memmap"
    result = boot(topology, threads=1, memmap_file=str(path))
    pfn = int(result.pools.heads(9)[5])
    record = result.memmap.pages[result.memmap.index(pfn)].tobytes()
    del result
    # Clear PG_head of one pool page's head on disk (its 64 bytes name its own pfn).
    with open(path, "r+b") as handle, mmap.mmap(handle.fileno(), 0) as data:
        at = data.find(record)
        assert at > 0 and data.find(record, at + 1) == -1
        flags = int.from_bytes(data[at:at + 8], "little") & ~PG_HEAD
        data[at:at + 8] = flags.to_bytes(8, "little")
    status, out, _ = run(capsys, "verify", "--memmap-file", str(path))
    assert status == 1 and "HugeTLB" in out
