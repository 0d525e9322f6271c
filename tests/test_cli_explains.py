"""The command line says what it knows: a boot prints the notes topology prints and every
reservation, --digests works in one process, --help states every default, errors name flags."""

import json

import pytest

from cli_run import run

CMDLINE = "mem=banana movablecore=150% crashkernel=512M"


def test_boot_prints_the_same_notes_as_topology_and_the_crashkernel_reservation(capsys):
    _, topology_out, _ = run(capsys, "topology", "--spec", "2x2G,cpus=2", "--cmdline", CMDLINE)
    notes = [line for line in topology_out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 2  # the kernel's warnings about mem= and movablecore=
    status, out, _ = run(capsys, "boot", "--spec", "2x2G,cpus=2", "--cmdline", CMDLINE,
                         "--no-progress")
    assert status == 0
    assert [line for line in out.splitlines() if line.startswith("note: ")] == notes
    assert "(crashkernel 512 MiB of it)" in out


def test_boot_json_carries_the_notes_and_every_reservation(capsys):
    status, out, _ = run(capsys, "boot", "--spec", "2x2G,cpus=2", "--cmdline", CMDLINE,
                         "--json")
    document = json.loads(out)
    assert status == 0
    assert len(document["notes"]) == 2
    reserved = document["reserved"]
    assert reserved["crashkernel"] == {"bytes": 512 << 20, "high": False, "reserved": True}
    pages = sum(end - start for start, end in reserved["ranges"])
    assert pages * 4096 >= 512 << 20 and reserved["mib"] == pages * 4096 >> 20


def test_digests_in_one_process_print_each_nodes_digests_equal_for_equal_boots(capsys):
    argv = ["boot", "--spec", "2x1G,cpus=2", "--threads", "1", "--digests", "--json"]
    first = json.loads(run(capsys, *argv)[1])["digests"]
    again = json.loads(run(capsys, *argv)[1])["digests"]
    assert sorted(first) == ["0", "1"] and first == again
    status, out, _ = run(capsys, "boot", "--spec", "2x1G,cpus=2", "--digests",
                         "--no-progress")  # any thread count: only the lists' order differs
    assert status == 0
    lines = [line.split() for line in out.splitlines() if " digest " in line]
    assert [(words[1], words[-1].rstrip(")")) for words in lines] == \
        [(nid, first[nid]["state_digest"]) for nid in ("0", "1")]


@pytest.mark.parametrize("command", ["topology", "boot", "verify", "bench"])
def test_help_states_the_default_machine_and_every_flags_default(capsys, command):
    with pytest.raises(SystemExit):
        run(capsys, command, "--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "without --dmesg or --spec: this machine" in out
    assert "CPUs per node default to the CPUs this process may use" in out
    if command in ("boot", "verify"):
        for default in ("default: the profile's cap", "default: a bar on a terminal",
                        "default: as this process", "default: this process alone"):
            assert default in out, default


def test_verify_help_says_memmap_dir_is_checked_not_written(capsys):
    with pytest.raises(SystemExit):
        run(capsys, "verify", "--help")
    out = " ".join(capsys.readouterr().out.split())
    assert "check each node's file DIR/node<N>.memmap" in out


@pytest.mark.parametrize("argv, message", [
    (["--nice", "20"], "--nice must be <= 19, got 20"),
    (["--nice", "3", "--cluster", "local:1"], "--nice applies to boots in this process"),
    (["--retries", "1"], "--retries applies to --cluster boots"),
])
def test_bad_flags_are_refused_naming_the_flag(capsys, argv, message):
    status, _, err = run(capsys, "boot", "--spec", "1x1G", "--no-progress", *argv)
    assert status == 2
    assert message in err


def test_a_cli_error_names_the_flag_where_the_api_names_the_keyword(capsys, tmp_path):
    path = tmp_path / "m.bin"
    path.write_bytes(b"not ours")
    status, _, err = run(capsys, "boot", "--spec", "1x1G", "--memmap-file", str(path),
                         "--no-progress")
    assert status == 2
    assert "pass --force" in err and "=True" not in err
    import fastinit
    from fastinit.machine.spec import parse_spec
    with pytest.raises(fastinit.MemmapFileError, match="pass force=True"):
        fastinit.boot(parse_spec("1x1G"), memmap_file=str(path))
