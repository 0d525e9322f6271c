"""Memory and disk limits, for real: a cgroup smaller than the memmap, a tmpfs too small for
the memmap file, and a file-size limit that makes preallocation itself fail."""

import os
import subprocess
import sys
import textwrap

import pytest

from fastinit.host.cgroup import cgroup_dirs
from fastinit.cli import main

MiB = 1 << 20


def run_fastinit(*argv, cgroup_procs=None, timeout=300):
    """Run the CLI in a new process, moved into a cgroup first when one is given."""
    command = [sys.executable, "-m", "fastinit.cli", *argv]
    if cgroup_procs is not None:
        command = ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(cgroup_procs), *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def memory_cgroup():
    """A child memory cgroup (v1 or v2) of this process's; yields a function setting its
    limit and returning its cgroup.procs. Skips where cgroups cannot be made."""
    unified, legacy = cgroup_dirs("memory")
    choices = [(legacy[0], "memory.limit_in_bytes")] if legacy else []
    choices += [(unified[0], "memory.max")] if unified else []
    for parent, limit_file in choices:
        child = parent / f"fastinit-test-{os.getpid()}"
        try:
            child.mkdir()
        except OSError:
            continue
        if (child / limit_file).exists():
            break
        child.rmdir()
    else:
        pytest.skip("no memory cgroup can be created here (needs root and a memory "
                    "controller)")

    def limited_to(nbytes):
        (child / limit_file).write_text(str(nbytes))
        return child / "cgroup.procs"

    yield limited_to
    child.rmdir()  # its processes have exited


def test_memmap_larger_than_the_cgroup_memory_works_only_in_a_file(memory_cgroup, tmp_path):
    procs = memory_cgroup(256 * MiB)
    spec = "1x32G"  # a 512 MiB memmap: twice the memory the process may use
    refused = run_fastinit("boot", "--spec", spec, "--no-progress", cgroup_procs=procs)
    assert refused.returncode == 2
    assert "the memmap needs 0.50 GiB" in refused.stderr and "--memmap-file" in refused.stderr
    path = str(tmp_path / "big.bin")
    booted = run_fastinit("boot", "--spec", spec, "--memmap-file", path, "--no-progress",
                          cgroup_procs=procs)
    assert booted.returncode == 0, booted.stderr
    assert "marked complete" in booted.stdout
    assert os.path.getsize(path) > 2 * 256 * MiB
    checked = run_fastinit("verify", "--memmap-file", path, cgroup_procs=procs)
    assert checked.returncode == 0, checked.stderr
    assert "verified: parallel result equals the serial reference" in checked.stdout


@pytest.fixture
def small_tmpfs(tmp_path):
    """A tmpfs of 8 MiB; skips where mounting is not allowed."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs",
                              str(mountpoint)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mountpoint
    subprocess.run(["umount", str(mountpoint)], check=True)


def test_memmap_file_on_a_full_disk_fails_clearly_and_leaves_no_file(small_tmpfs, capsys):
    path = small_tmpfs / "m.bin"  # the 1x1G memmap needs 16 MiB; the disk has 8
    status = main(["boot", "--spec", "1x1G", "--memmap-file", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2
    assert "the memmap file needs 0.02 GiB" in err and "0.01 GiB free" in err
    assert list(small_tmpfs.iterdir()) == []


def test_disk_filled_by_another_file_is_seen(small_tmpfs, capsys):
    (small_tmpfs / "filler").write_bytes(b"\0" * (7 * MiB))
    path = small_tmpfs / "m.bin"  # 1x256M needs about 4 MiB; 1 MiB is left
    status = main(["boot", "--spec", "1x256M", "--memmap-file", str(path), "--no-progress"])
    assert status == 2 and "(--memmap-file) on a disk with room" in capsys.readouterr().err
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]


FILE_SIZE_LIMITED = textwrap.dedent("""
    import resource, sys
    # Python ignores SIGXFSZ, so going past the limit is an EFBIG error, as on a full disk.
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))
    from fastinit.cli import main
    sys.exit(main(["boot", "--spec", "1x1G", "--memmap-file", sys.argv[1], "--no-progress"]))
""")


def test_failed_preallocation_is_a_clear_error_and_leaves_no_file(tmp_path):
    path = tmp_path / "m.bin"
    done = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMITED, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "cannot allocate 0.02 GiB in" in done.stderr and "File too large" in done.stderr
    assert "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one
