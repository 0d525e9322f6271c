"""A read lease broken while Numba types a kernel's arguments: the file's change is the
error (MemmapChangedError, exit 2 naming the file), not Numba's "No matching definition".

The lease's signal handler raises in whatever Python code the main thread runs; Numba's
typing of an argument (the first call with each array type) caught it as a ValueError
and reported a typing error (seen once in tests/test_memmap_file_lease.py). Here the
break is made to land there every time: a real second process opens the file for
writing while the verifying process types its first argument.
"""

import subprocess
import sys
import textwrap

import pytest

from fastinit.kernels import check_lists

# Loads (main thread: a lease), then verifies; the first argument Numba types in Python
# starts another process that opens the file for writing (without blocking: the lease
# breaks, its signal reaches us, the open fails with EAGAIN).
READER = textwrap.dedent("""
    import subprocess, sys
    import numba.core.dispatcher
    import numba.core.typing.typeof as typing
    from fastinit.arrays.errors import MemmapChangedError
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify

    path = sys.argv[1]
    result = load(path)
    assert result.memmap.file.handle._lease is not None, "no lease taken"
    BREAK = ("import os, sys\\n"
             "try: os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)\\n"
             "except BlockingIOError: pass")
    original, fired = typing.typeof, []

    def typeof(value, purpose=typing.Purpose.argument):
        if not fired:
            fired.append(True)
            subprocess.run([sys.executable, "-c", BREAK, path], check=True)
        return original(value, purpose)

    typing.typeof = numba.core.dispatcher.typeof = typeof
    try:
        verify(result)
    except MemmapChangedError as error:
        print("changed:", error, flush=True)
        sys.exit(2)
    sys.exit(0 if fired else 3)
""")


@pytest.fixture(scope="module")
def page_path(tmp_path_factory, page_file):
    path = tmp_path_factory.mktemp("typing_lease") / "p.bin"
    path.write_bytes(page_file)
    return path


def test_a_lease_broken_while_numba_types_an_argument_is_the_files_error(page_path):
    done = subprocess.run([sys.executable, "-c", READER, str(page_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"changed: {page_path} was truncated or opened for writing" in done.stdout
    assert "No matching definition" not in done.stderr


def test_a_value_numba_cannot_type_is_still_no_matching_definition():
    with pytest.raises(TypeError, match="No matching definition"):
        check_lists.descriptor_of_link(object(), 1)
