"""distributed.memmap_dir.remove_temporaries: what killed writers left, and nothing else."""

import fcntl
import os

from fastinit.arrays import atomic
from fastinit.distributed.memmap_dir import node_file_name, remove_temporaries


def temp_of(directory, nid: int, pid: int) -> str:
    name = f".{node_file_name(nid)}{atomic.TEMP_INFIX}{pid}-0123abcd"
    (directory / name).write_bytes(b"")
    return name


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_temporaries_go_unless_their_node_or_their_writer_is_alive(tmp_path):
    gone = temp_of(tmp_path, 0, 11)
    writing = temp_of(tmp_path, 1, 12)  # its writer still holds its flock
    locked = temp_of(tmp_path, 2, 13)  # another run holds node 2's file lock
    writer = os.open(tmp_path / writing, os.O_RDONLY)
    fcntl.flock(writer, fcntl.LOCK_EX)
    dfd = atomic.open_directory(str(tmp_path), str(tmp_path))
    lock = atomic.PathLock(str(tmp_path / node_file_name(2)), dfd, node_file_name(2),
                           exclusive=True)
    try:
        before = open_fds()
        assert remove_temporaries(str(tmp_path), [0, 1, 2, 3]) == [node_file_name(0)]
        assert open_fds() == before  # the directory and every lock taken were let go
    finally:
        lock.release()
        os.close(dfd)
        os.close(writer)
    assert (tmp_path / writing).exists() and (tmp_path / locked).exists()
    assert not (tmp_path / gone).exists()


def test_a_missing_directory_has_nothing_to_remove(tmp_path):
    assert remove_temporaries(str(tmp_path / "none"), [0]) == []
