"""fastinit.host.libc: the C calls made through ctypes, declared once, addresses whole."""

import ast
import ctypes
import errno
import mmap
from pathlib import Path

import numpy as np

from fastinit.host.libc import MAP_FAILED, MAP_FIXED, libc

ROOT = Path(__file__).resolve().parents[1]
DECLARED = {"mmap", "munmap", "mprotect", "madvise", "memset", "fallocate", "renameat2"}
# Bindings made elsewhere, by name: none (a new one belongs in fastinit/host/libc.py).
NOT_YET = {}


def bindings(path: Path) -> set[str]:
    """The library functions ``path`` declares C types for (``X.f.argtypes = ...``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and \
                        target.attr in ("argtypes", "restype") and \
                        isinstance(target.value, ast.Attribute):
                    found.add(target.value.attr)
    return found


def test_each_call_is_declared_in_the_libc_module_only():
    files = [*(ROOT / "fastinit").rglob("*.py"), *(ROOT / "kernels").glob("*.py"),
             *(ROOT / "tests").glob("*.py")]
    elsewhere = {str(p.relative_to(ROOT)): found for p in files
                 if (found := bindings(p)) and p.name != "libc.py"}
    assert elsewhere == NOT_YET
    assert bindings(ROOT / "fastinit" / "host" / "libc.py") == DECLARED


def test_an_address_above_4_gib_reaches_the_call_whole():
    # Undeclared, ctypes passes a Python int as a C int: an address above 2**32 is cut
    # and the call fails (or hits other memory).
    size = mmap.PAGESIZE
    address = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE,
                        mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert address not in (None, MAP_FAILED)
    try:
        assert address > 2**32  # 64-bit Linux maps anonymous memory high
        assert libc.memset(address, 0x5A, size) == address
        assert ctypes.string_at(address, size) == b"\x5a" * size
        assert libc.madvise(address, size, mmap.MADV_DONTNEED) == 0
        assert ctypes.string_at(address, size) == bytes(size)  # private anonymous: zeros
        # Over the same range, MAP_FIXED replaces it: the address comes back as given.
        again = libc.mmap(address, size, mmap.PROT_READ, mmap.MAP_PRIVATE |
                          mmap.MAP_ANONYMOUS | MAP_FIXED, -1, 0)
        assert again == address
        assert libc.mprotect(address, size, mmap.PROT_READ | mmap.PROT_WRITE) == 0
    finally:
        assert libc.munmap(address, size) == 0


def test_a_failed_call_sets_errno():
    # Unaligned address: EINVAL, read through ctypes.get_errno (use_errno=True).
    buffer = np.zeros(2 * mmap.PAGESIZE, np.uint8)
    assert libc.madvise(buffer.ctypes.data | 1, 1, mmap.MADV_DONTNEED) == -1
    assert ctypes.get_errno() == errno.EINVAL
