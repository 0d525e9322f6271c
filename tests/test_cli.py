"""The command line: what users type, what they read, and the exit status."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli_run import run

LOG = Path(__file__).parent / "data" / "dmesg" / "hyperv-2node-3.15.txt"


def test_kernel_choices_are_the_deferred_kernels():
    from fastinit.cli import KERNELS
    from fastinit.mm.deferred import CHUNK_KERNELS
    from fastinit.mm.memmap_meta import KERNELS as FILE_KERNELS
    assert KERNELS == tuple(CHUNK_KERNELS) == FILE_KERNELS


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
    assert set(node) == {"nid", "cpus", "ranges", "zones", "hugepages"}
    assert set(node["zones"][0]) == {"name", "start_pfn", "spanned", "present", "unavailable"}
    # Like sysfs: every registered huge page size (a spec's CPU has 1 GiB pages).
    assert node["hugepages"] == {"2048kB": 0, "1048576kB": 0}
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
    # --force replaces fastinit memmap files only; any other file needs saying so.
    status, _, err = run(capsys, "boot", "--spec", "1x1G", "--memmap-file", str(path), "--force")
    assert status == 2 and "--replace-any-file" in err and path.read_bytes() == b"precious"
    assert run(capsys, "boot", "--spec", "1x1G", "--memmap-file", str(path), "--force",
               "--replace-any-file")[0] == 0
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
    from fastinit.engine.progress import ProgressBar
    stream = io.StringIO()
    bar = ProgressBar(1000, "sparse_init", stream=stream)
    for done in (0, 250, 500, 750, 1000):
        bar(done, 1000)
    assert "] 100%" in stream.getvalue()
    assert "sparse_init" in stream.getvalue()


def test_progress_bar_measures_rate_and_time_left_over_the_stage_alone():
    import io
    from fastinit.engine.progress import ProgressBar
    now = [100.0]
    stream = io.StringIO()
    bar = ProgressBar(4000, "deferred init", unit_bytes=64, stream=stream, clock=lambda: now[0])
    now[0] += 30.0  # compiling, allocating: before the stage, not counted
    bar(0, 4000)  # the stage starts (a Tally's first call)
    now[0] += 2.0
    bar(1000, 4000)  # 1000 pages of 64 bytes in 2 s: 32 kB/s, 3000 left: 6 s
    assert stream.getvalue().rstrip().endswith("25%   32.0 kB/s  ETA 0:06")
    now[0] += 6.0
    bar(4000, 4000)
    assert stream.getvalue().rstrip().endswith("100%   32.0 kB/s  0:08 total")


def fastinit_cli(*argv, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastinit.cli", *argv], text=True,
                          capture_output=True, **kwargs)


def test_closed_pipe_ends_quietly_with_sigpipe_status():
    # Issue 9 item 12: `fastinit topology --spec 1x5G | true` printed a BrokenPipeError.
    reader, writer = os.pipe()
    os.close(reader)  # the reader is gone before anything is written, as with `| true`
    try:
        done = subprocess.run([sys.executable, "-m", "fastinit.cli", "topology", "--spec",
                               "1x5G"], stdout=writer, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(writer)
    assert done.returncode == 141
    assert done.stderr == ""


def test_reader_that_leaves_after_one_line_ends_it_quietly():
    # `| head -1` on output bigger than a pipe's buffer.
    process = subprocess.Popen([sys.executable, "-m", "fastinit.cli", "topology", "--spec",
                                "1x5G", "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with process:
        assert process.stdout.readline().startswith("{")
        process.stdout.close()
        assert process.wait(60) in (0, 141)  # 0 if it had written everything already
        assert process.stderr.read() == ""


def test_full_disk_on_stdout_says_so_and_exits_74():
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "fastinit.cli", "topology", "--spec",
                               "1x5G"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 74
    assert done.stderr == ("fastinit topology: error: cannot write the output: No space left "
                           "on device\n")


def test_spec_without_unit_says_sizes_are_bytes(capsys):
    # Issue 9 item 16.
    for spec in ("2x64", "1x4K"):
        status, out, err = run(capsys, "topology", "--spec", spec)
        assert status == 2 and out == ""
        assert "sizes are in bytes unless a unit follows" in err and "2x64G" in err


def test_boot_log_that_is_a_device_exits_2_at_once(capsys):
    status, out, err = run(capsys, "topology", "--dmesg", "/dev/zero")
    assert status == 2 and "is a character device, not a log" in err


def test_verify_help_describes_checking_a_file_and_has_no_force():
    done = fastinit_cli("verify", "--help")
    assert done.returncode == 0
    assert "--force" not in done.stdout
    assert "back the memmap" not in done.stdout
    assert "check this memmap file" in done.stdout


def test_empty_memmap_file_is_refused_as_an_empty_path():
    done = fastinit_cli("verify", "--memmap-file", "")
    assert done.returncode == 2
    assert "--memmap-file: empty path" in done.stderr and "--force" not in done.stderr


def test_more_threads_than_cpus_warns_naming_the_flag(capsys):
    from fastinit.host.cpus import usable_cpus
    status, out, err = run(capsys, "boot", "--spec", "1x1G", "--threads",
                           str(usable_cpus() + 1), "--json")
    assert status == 0
    assert (f"warning: --threads {usable_cpus() + 1} is more than the {usable_cpus()} CPUs"
            in err)
    assert "OversubscriptionWarning" not in err
    node = json.loads(out)["nodes"][0]
    assert node["threads"] <= usable_cpus()


def test_type_error_from_the_library_exits_2_without_traceback(capsys, monkeypatch):
    from fastinit.cli import commands

    def wrong_kind(args):
        raise TypeError("threads must be an integer, got 1.5 (float)")

    monkeypatch.setattr(commands, "load_topology", wrong_kind)
    status, out, err = run(capsys, "topology", "--spec", "1x1G")
    assert status == 2 and out == ""
    assert err == "fastinit topology: error: --threads must be an integer, got 1.5 (float)\n"
