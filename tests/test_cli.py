"""The command line: what users type, what they read, and the exit status."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastinit.cli import main

LOG = Path(__file__).parent / "data" / "dmesg" / "hyperv-2node-3.15.txt"


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_help_lists_the_commands(capsys):
    status, out, _ = run(capsys)
    assert status == 0
    for command in ("topology", "boot", "verify"):
        assert command in out


def test_topology_from_log_matches_kernel(capsys):
    status, out, _ = run(capsys, "topology", "--dmesg", str(LOG))
    assert status == 0
    assert "Early memory node ranges" in out
    assert "figures match" in out and "MISMATCH" not in out


def test_topology_json_shape(capsys):
    status, out, _ = run(capsys, "topology", "--spec", "2x1G,cpus=2", "--json")
    document = json.loads(out)
    node = document["nodes"][0]
    assert set(node) == {"nid", "cpus", "ranges", "zones"}
    assert set(node["zones"][0]) == {"name", "start_pfn", "spanned", "present", "unavailable"}
    assert all(start < end for start, end in node["ranges"])


def test_topology_from_stdin(capsys, monkeypatch):
    with LOG.open("rb") as log:
        class Stdin:
            buffer = log
        monkeypatch.setattr(sys, "stdin", Stdin)
        status, out, _ = run(capsys, "topology", "--dmesg", "-", "--json")
    assert status == 0 and json.loads(out)["nodes"]


def test_boot_verify_prints_kernel_lines_and_passes(capsys):
    status, out, _ = run(capsys, "boot", "--spec", "2x1G,cpus=2", "--verify")
    assert status == 0
    assert "node 0 deferred pages initialised in" in out
    assert "verified: parallel result equals the serial reference" in out


def test_boot_json_fields(capsys):
    status, out, _ = run(capsys, "boot", "--spec", "1x2G,cpus=2", "--json", "--verify")
    document = json.loads(out)
    assert document["verified"] is True
    node = document["nodes"][0]
    assert {"threads", "deferred_ms", "reserved", "zones"} <= set(node)
    assert all(len(zone["free_by_order"]) == 11 for zone in node["zones"])
    assert {"present", "managed"} <= set(node["zones"][0])


def test_verify_checks_a_memmap_file_a_boot_left(capsys, tmp_path):
    path = str(tmp_path / "m.bin")
    status, out, _ = run(capsys, "boot", "--spec", "1x1G,cpus=1", "--memmap-file", path)
    assert status == 0 and path in out and "marked complete" in out
    status, out, _ = run(capsys, "verify", "--memmap-file", path)
    assert status == 0
    assert "state complete" in out and "verified:" in out
    status, out, _ = run(capsys, "verify", "--memmap-file", path, "--json")
    assert status == 0 and json.loads(out)["memmap_file"]["state"] == "complete"


def test_verify_of_a_file_for_another_machine_exits_2(capsys, tmp_path):
    path = str(tmp_path / "m.bin")
    assert run(capsys, "boot", "--spec", "1x1G,cpus=1", "--memmap-file", path)[0] == 0
    status, _, err = run(capsys, "verify", "--spec", "1x2G", "--memmap-file", path)
    assert status == 2 and "written for another machine" in err


def test_boot_refuses_to_overwrite_a_memmap_file_without_force(capsys, tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"precious")
    status, _, err = run(capsys, "boot", "--spec", "1x1G", "--memmap-file", str(path))
    assert status == 2 and "--force" in err
    assert path.read_bytes() == b"precious"
    assert run(capsys, "boot", "--spec", "1x1G", "--memmap-file", str(path), "--force")[0] == 0


@pytest.mark.parametrize("argv, words", [
    (["boot", "--spec", "2y64G"], "cannot read size"),
    (["topology", "--spec", ""], "empty spec"),
    (["topology", "--dmesg", "/nonexistent/log"], "cannot read boot log"),
    (["boot", "--spec", "1x1G", "--threads", "0"], "--threads must be >= 1, got 0"),
    (["boot", "--spec", "1x1G", "--arch", "sparc"], "unknown arch profile"),
])
def test_bad_input_exits_2_with_a_clear_message(capsys, argv, words):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert words in err
    assert "Traceback" not in err and out == ""


def test_installed_console_script_runs():
    done = subprocess.run([sys.executable, "-m", "fastinit.cli", "--version"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.startswith("fastinit ")


def test_progress_bar_draws_its_label_and_reaches_100_percent():
    import io
    from fastinit.cli import ProgressBar
    stream = io.StringIO()
    bar = ProgressBar(1000, "sparse_init", stream=stream)
    for _ in range(4):
        bar(250)
    assert stream.getvalue().endswith("] 100%")
    assert "sparse_init" in stream.getvalue()
