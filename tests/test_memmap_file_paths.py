"""Issue 18 items 4-10 and 13, reproduced with real files, real second processes and real
signals: the commit replaces only what was checked, cleanup and locks touch only what
fastinit made, symbolic links and ``..`` are resolved as the kernel does, modes are never
carried past the umask or with setuid bits, a killed writer's temporary file is always
cleaned up, and a file opened "r+" and left unwritten stays complete."""

import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from fastinit.arrays import (IncompleteMemmapError, MemmapBusyError, MemmapFileError,
                             create_memmap, open_memmap_file)
from memmap_tools import listing

CLI = [sys.executable, "-m", "fastinit.cli"]


def complete_file(path, value=1, size=10, **options):
    handle = create_memmap(path, np.uint8, size, **options)
    handle.array[:] = value
    handle.complete()
    handle.close()


def another_process_writes(path, text="my data"):
    """``echo TEXT > PATH`` by a shell, as a user would."""
    subprocess.run(["sh", "-c", f'echo "{text}" > "$0"', str(path)], check=True)


def kept_files(directory, name):
    return [n for n in listing(directory) if n.startswith(f"{name}.fastinit-new-")]


# item 4 -------------------------------------------------------------------------------

@pytest.mark.parametrize("force", [False, True])
def test_a_file_that_appears_while_writing_is_kept_and_the_new_data_named(tmp_path, force):
    path = tmp_path / "data.bin"
    handle = create_memmap(path, np.uint8, 100, force=force)
    handle.array[:] = 7
    another_process_writes(path)
    with pytest.raises(MemmapFileError, match="appeared while fastinit wrote it") as refused:
        handle.complete()
    assert path.read_bytes() == b"my data\n"
    [kept] = kept_files(tmp_path, "data.bin")
    assert str(tmp_path / kept) in str(refused.value)
    assert open_memmap_file(tmp_path / kept).array.sum() == 700  # complete, and ours
    handle.close()
    create_memmap(path, np.uint8, 3, force=True, replace_any_file=True).fail()
    assert kept in listing(tmp_path)  # no cleanup takes it


def test_a_file_rewritten_in_place_while_replacing_it_is_kept(tmp_path):
    path = tmp_path / "data.bin"
    complete_file(path)
    handle = create_memmap(path, np.uint8, 100, force=True)
    another_process_writes(path)  # same inode, new contents
    with pytest.raises(MemmapFileError, match="changed while fastinit wrote it"):
        handle.complete()
    assert path.read_bytes() == b"my data\n" and len(kept_files(tmp_path, "data.bin")) == 1


def test_a_file_replaced_by_another_while_replacing_it_is_kept(tmp_path):
    path = tmp_path / "data.bin"
    complete_file(path)
    handle = create_memmap(path, np.uint8, 100, force=True)
    subprocess.run(["sh", "-c", 'echo theirs > "$0.x" && mv "$0.x" "$0"', str(path)],
                   check=True)
    with pytest.raises(MemmapFileError, match="changed while fastinit wrote it"):
        handle.complete()
    assert path.read_bytes() == b"theirs\n"


def test_boot_keeps_a_file_that_appeared_during_the_boot(tmp_path):
    path = tmp_path / "P"
    child = subprocess.Popen(CLI + ["boot", "--spec", "1x8G", "--memmap-file", str(path),
                                    "--no-progress"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not [n for n in listing(tmp_path) if ".fastinit-tmp-" in n]:
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    another_process_writes(path)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 2, err
    assert "appeared while fastinit wrote it" in err and "Traceback" not in err
    assert path.read_bytes() == b"my data\n"
    [kept] = kept_files(tmp_path, "P")
    assert str(tmp_path / kept) in err


# item 5 -------------------------------------------------------------------------------

def test_cleanup_never_deletes_files_that_only_share_the_temporary_prefix(tmp_path):
    path = tmp_path / "data.bin"
    theirs = [".data.bin.fastinit-tmp-my-backup", ".data.bin.fastinit-tmp-notes",
              ".data.bin.fastinit-tmp-12-abcdef01.bak", ".data.bin.fastinit-tmp-012-abcdef01",
              ".data.bin.fastinit-tmp-12-ABCDEF01"]
    for name in theirs:
        (tmp_path / name).write_bytes(b"FASTINIT-MEMMAP\0 but not ours")
    (tmp_path / ".data.bin.fastinit-tmp-12-abcdef01").write_bytes(b"")  # exactly ours
    complete_file(path)
    complete_file(path, force=True)
    assert listing(tmp_path) == sorted(theirs + ["data.bin"])


# item 6 -------------------------------------------------------------------------------

def lock_of(path):
    return path.parent / f".{path.name}.fastinit-lock"


@pytest.mark.parametrize("kind", ["fifo", "chardev", "dir", "symlink"])
def test_a_lock_file_that_is_not_a_regular_file_refuses_writers_and_readers(tmp_path, kind):
    path = tmp_path / "f.bin"
    complete_file(path)
    lock = lock_of(path)
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "chardev":
        if os.geteuid() != 0:
            pytest.skip("mknod of a device needs root")
        os.mknod(lock, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    elif kind == "dir":
        lock.mkdir()
    else:
        os.symlink(tmp_path / "elsewhere", lock)
    before = os.lstat(lock)
    words = {"fifo": "a FIFO", "chardev": "a character device", "dir": "a directory",
             "symlink": "a symbolic link"}[kind]
    for attempt in (lambda: open_memmap_file(path), lambda: open_memmap_file(path, "r+"),
                    lambda: create_memmap(path, np.uint8, 3, force=True)):
        with pytest.raises(MemmapFileError, match=f"lock file {lock} is {words}"):
            attempt()
    after = os.lstat(lock)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not (tmp_path / "elsewhere").exists()


# item 7 -------------------------------------------------------------------------------

READER = textwrap.dedent("""
    import sys
    from fastinit.arrays import open_memmap_file
    handle = open_memmap_file(sys.argv[1], sys.argv[2])
    print("open", flush=True)
    sys.stdin.readline()
""")


def holding(path, mode):
    child = subprocess.Popen([sys.executable, "-c", READER, str(path), mode],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    return child


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_a_reader_through_a_link_keeps_writers_of_the_file_itself_out(tmp_path, link):
    real, alias = tmp_path / "real.bin", tmp_path / "link.bin"
    complete_file(real, value=5)
    os.symlink(real.name, alias) if link == "symlink" else os.link(real, alias)
    reader = holding(alias, "r")
    try:
        with pytest.raises(MemmapBusyError, match=f"{real} is in use"):
            open_memmap_file(real, "r+")
    finally:
        reader.communicate("\n", timeout=60)
    writer = holding(real, "r+")
    try:
        with pytest.raises(MemmapBusyError, match=f"{alias} is in use"):
            open_memmap_file(alias)
    finally:
        writer.communicate("\n", timeout=60)
    assert open_memmap_file(alias).array.sum() == 50  # opened and closed unwritten: complete


# item 8 -------------------------------------------------------------------------------

def test_dotdot_after_a_symlink_is_resolved_as_the_kernel_does(tmp_path):
    (tmp_path / "other" / "sub").mkdir(parents=True)
    (tmp_path / "sl").mkdir()
    os.symlink(tmp_path / "other" / "sub", tmp_path / "sl" / "dirlink")
    theirs = tmp_path / "other" / "x.bin"
    theirs.write_bytes(b"precious")
    given = tmp_path / "sl" / "dirlink" / ".." / "x.bin"
    with pytest.raises(MemmapFileError, match="exists; pass force=True"):
        create_memmap(given, np.uint8, 3)
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        create_memmap(given, np.uint8, 3, force=True)
    with pytest.raises(MemmapFileError, match="not a fastinit memmap file"):
        open_memmap_file(given)
    assert theirs.read_bytes() == b"precious" and listing(tmp_path / "sl") == ["dirlink"]
    theirs.unlink()
    complete_file(given, value=2)
    assert open_memmap_file(theirs).array.sum() == 20 and listing(tmp_path / "sl") == ["dirlink"]


def test_a_path_ending_in_dotdot_or_dot_names_no_file(tmp_path):
    for given in (tmp_path / "..", f"{tmp_path}/.", "."):
        with pytest.raises(MemmapFileError, match="names a directory"):
            create_memmap(given, np.uint8, 3)


# item 9 -------------------------------------------------------------------------------

def test_force_never_carries_setuid_setgid_or_sticky_bits(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # sticky, like /tmp
    path = shared / "f.bin"
    complete_file(path)
    os.chmod(path, 0o6777)
    if os.geteuid() == 0:
        os.chown(path, 1000, 1000)  # an unprivileged user's file, replaced by root
    complete_file(path, force=True)
    mode = stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o777 & ~umask and not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)


UMASKED = textwrap.dedent("""
    import os, sys
    import numpy as np
    from fastinit.arrays import create_memmap
    os.umask(0o077)
    create_memmap(sys.argv[1], np.uint8, 3, force=True).complete()
""")


def test_the_umask_applies_to_new_and_replacing_files(tmp_path):
    path = tmp_path / "f.bin"
    for _ in range(2):  # created, then replacing a file of mode 0644
        subprocess.run([sys.executable, "-c", UMASKED, str(path)], check=True)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        os.chmod(path, 0o644)


# item 10 ------------------------------------------------------------------------------

KILLED = textwrap.dedent("""
    import sys
    import numpy as np
    from fastinit.arrays import create_memmap
    print("ready", flush=True)
    sys.stdin.readline()
    handle = create_memmap(sys.argv[1], np.uint8, 1 << 30, force=True)
    sys.stdin.readline()
""")


def test_a_writer_killed_just_after_its_temporary_file_appears_leaves_nothing_behind(
        tmp_path):
    path = tmp_path / "big.bin"
    complete_file(path)
    pick = random.Random(18)
    for _ in range(6):
        child = subprocess.Popen([sys.executable, "-c", KILLED, str(path)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready"
        child.stdin.write(b"go\n")
        child.stdin.flush()
        deadline = time.monotonic() + 120
        while not [n for n in listing(tmp_path) if ".fastinit-tmp-" in n]:
            assert child.poll() is None and time.monotonic() < deadline
        time.sleep(pick.uniform(0, 0.004))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        complete_file(path, force=True)  # the next writer of the path cleans up
        assert listing(tmp_path) == ["big.bin"]


# item 13 ------------------------------------------------------------------------------

def test_a_file_opened_for_update_and_closed_unwritten_stays_complete(tmp_path):
    path = tmp_path / "p.bin"
    complete_file(path)
    open_memmap_file(path, "r+").close()
    assert open_memmap_file(path).state == "complete"
    holding(path, "r+").communicate("\n", timeout=60)  # a process that opens r+ and exits
    assert open_memmap_file(path).array.sum() == 10


WRITES = textwrap.dedent("""
    import sys
    from fastinit.arrays import open_memmap_file
    handle = open_memmap_file(sys.argv[1], "r+")
    handle.array[3] = 9
    if sys.argv[2] == "close":
        handle.close()
""")


@pytest.mark.parametrize("how", ["close", "exit"])
def test_a_file_written_in_place_and_not_completed_says_exactly_that(tmp_path, how):
    path = tmp_path / "p.bin"
    complete_file(path)
    subprocess.run([sys.executable, "-c", WRITES, str(path), how], check=True)
    with pytest.raises(IncompleteMemmapError, match=r"state closed\): it was opened for "
                       r"writing, written, and closed \(or its program ended\) without "
                       r"complete\(\)"):
        open_memmap_file(path)
