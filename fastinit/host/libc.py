"""The C library calls fastinit makes through ctypes, each declared once with its C types.

ctypes releases the GIL for the call, which is why threads first-touch memory, memset it
and remap it this way rather than through Python's ``mmap`` module. A call without
declared argument types would pass a Python int as a C ``int``, cutting an address above
4 GiB: every function used is declared here, with its prototype from ``<sys/mman.h>``,
``<string.h>``, ``<fcntl.h>`` or ``<stdio.h>``, and nowhere else. ``CDLL(None)`` is the process's own
symbols (the C library CPython runs on), found without the subprocess
``ctypes.util.find_library`` starts. Errors: the functions set errno, read with
``ctypes.get_errno()``.
"""

from __future__ import annotations

import ctypes

libc = ctypes.CDLL(None, use_errno=True)

# void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long)
# int munmap(void *addr, size_t length)
libc.munmap.restype = ctypes.c_int
libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
# int mprotect(void *addr, size_t len, int prot)
libc.mprotect.restype = ctypes.c_int
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
# int madvise(void *addr, size_t length, int advice)
libc.madvise.restype = ctypes.c_int
libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
# void *memset(void *s, int c, size_t n)
libc.memset.restype = ctypes.c_void_p
libc.memset.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t)
# int fallocate(int fd, int mode, off_t offset, off_t len)
libc.fallocate.restype = ctypes.c_int
libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long)
# int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath,
#               unsigned int flags): glibc 2.28 and later; None where the C library lacks it.
if hasattr(libc, "renameat2"):
    libc.renameat2.restype = ctypes.c_int
    libc.renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_uint)
renameat2 = getattr(libc, "renameat2", None)

# What mmap returns on failure, (void *) -1, as ctypes gives a c_void_p back.
MAP_FAILED = ctypes.c_void_p(-1).value
# <sys/mman.h> on Linux (Python's mmap module does not export MAP_FIXED).
MAP_FIXED = 0x10
