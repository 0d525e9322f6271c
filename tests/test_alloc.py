"""fastinit.empty: aligned, huge-page advised, faulted in, alive while any view lives."""

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastinit
import fastinit.arrays.alloc as alloc
import fastinit.arrays.touch as touch
from fastinit.arrays.alloc import allocation, empty
from test_limits import memory_cgroup  # noqa: F401 (a fixture)

MiB = 1 << 20


def mappings():
    """(low, high) of every mapping of this process."""
    spans = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        low, high = line.split()[0].split("-")
        spans.append((int(low, 16), int(high, 16)))
    return spans


def is_mapped(address):
    return any(low <= address < high for low, high in mappings())


def smaps_fields():
    """Every field line of /proc/self/smaps as ((low, high) of its mapping, name, line)."""
    span = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(None, 1)[0]
        if head.endswith(":"):
            yield span, head, line
        else:
            span = tuple(int(part, 16) for part in head.split("-"))


def resident_bytes(address, nbytes):
    """Rss of the mappings over [address, address + nbytes) (whole mappings: the array
    owns its mapping but for less than a huge page of slack)."""
    return sum(int(line.split()[1]) * 1024 for (low, high), head, line in smaps_fields()
               if head == "Rss:" and low < address + nbytes and high > address)


def test_an_array_is_c_contiguous_2mib_aligned_zero_and_of_the_asked_shape():
    dtype = np.dtype([("x", "<u4"), ("y", "<f8")], align=True)
    array = empty((300, 7), dtype, threads=2)
    assert array.shape == (300, 7) and array.dtype == dtype
    assert array.flags.c_contiguous and array.flags.writeable
    assert array.ctypes.data % (2 * MiB) == 0
    assert not array.view(np.uint8).any()
    assert type(array) is np.ndarray


def test_a_sub_array_dtype_adds_its_shape_as_numpy_empty_does():
    array = empty(5, ("<f4", (2, 3)))
    assert array.shape == np.empty(5, ("<f4", (2, 3))).shape == (5, 2, 3)


def test_every_page_is_resident_after_empty_returns():
    array = empty(64 * MiB, np.uint8, threads=2)
    report = allocation(array)
    assert report.touched_by == "MADV_POPULATE_WRITE"
    assert resident_bytes(array.ctypes.data, array.nbytes) >= array.nbytes
    assert report.first_touch > 0 and report.threads >= 1


def test_a_kernel_without_populate_write_gets_the_touch_kernel(monkeypatch):
    # An advice number no kernel knows: madvise answers EINVAL, as before Linux 5.14.
    monkeypatch.setattr(touch, "MADV_POPULATE_WRITE", 4095)
    array = empty(40 * MiB + 12345, np.uint8, threads=2)
    assert allocation(array).touched_by == "touch kernel"
    assert resident_bytes(array.ctypes.data, array.nbytes) >= array.nbytes
    assert not array.any()


def thp_mode():
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "absent"
    return text.split("[")[1].split("]")[0]


def vm_flags(address):
    """The VmFlags of the mapping holding ``address``."""
    for (low, high), head, line in smaps_fields():
        if head == "VmFlags:" and low <= address < high:
            return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(thp_mode() not in ("madvise", "always"),
                    reason="transparent huge pages are off here")
def test_huge_pages_advised_as_asked():
    advised = empty(32 * MiB, np.uint8, huge_pages=True)
    refused = empty(32 * MiB, np.uint8, huge_pages=False)
    assert allocation(advised).huge_pages and not allocation(refused).huge_pages
    # The advice, as the kernel recorded it: hg = MADV_HUGEPAGE, nh = MADV_NOHUGEPAGE.
    assert "hg" in vm_flags(advised.ctypes.data) and "nh" in vm_flags(refused.ctypes.data)
    # Whether huge pages were free to back it depends on fragmentation; none were used
    # where they were advised against.
    assert allocation(refused).huge_page_bytes() == 0


def test_any_view_finds_the_allocation_and_a_copy_does_not():
    array = empty((100, 10), np.float64)
    owner = allocation(array)
    for view in (array[3:], array.T, array.reshape(-1)[::3], array.view(np.uint8),
                 array[5], np.asarray(memoryview(array))):
        assert allocation(view) is owner
    for other in (array.copy(), array + 1, np.empty(3)):
        with pytest.raises(ValueError, match="not allocated by fastinit.empty"):
            allocation(other)
    with pytest.raises(TypeError, match="needs a NumPy array"):
        allocation([1, 2])


def test_memory_lives_while_a_view_lives_and_is_unmapped_after():
    array = empty(8 * MiB, np.uint8)
    address = array.ctypes.data
    ours = [span for span in mappings() if span[0] <= address + 4 * MiB < span[1]]
    view = array[MiB:2 * MiB]
    view[:] = 7
    del array
    gc.collect()
    assert is_mapped(address) and (view == 7).all()
    del view
    gc.collect()
    # The span may be mapped again by anyone since, but not as the same mapping.
    assert ours and not set(ours) & set(mappings())


def test_progress_counts_bytes_up_to_the_total():
    seen = []
    empty(100 * MiB + 5, np.uint8, threads=2, progress=lambda done, total: seen.append(
        (done, total)))
    assert seen[-1] == (100 * MiB + 5, 100 * MiB + 5)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_a_zero_size_array_is_an_allocation_too():
    array = empty((0, 5), np.int32)
    assert array.shape == (0, 5) and allocation(array).touched_by == "nothing"


def test_more_than_the_available_memory_is_refused_naming_both_sizes(monkeypatch):
    monkeypatch.setattr(alloc, "available_memory", lambda: 1 << 30)
    with pytest.raises(ValueError, match=r"needs 2\.00 GiB, but only 1\.00 GiB .*path="):
        empty((1 << 28,), np.float64)


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((-1,), {}, ValueError, "every extent of shape -1 must be >= 0, got -1"),
    ((1.5,), {}, TypeError, "shape must be an integer or a tuple"),
    (((2, "3"),), {}, TypeError, r"every extent of shape \(2, '3'\) must be an integer"),
    ((True,), {}, TypeError, "must be an integer, got True"),
    ((4, object), {}, TypeError, "holds Python objects"),
    ((4, "no such type"), {}, TypeError, "is not a NumPy dtype"),
    ((4, "V0"), {}, TypeError, "has no bytes"),
    ((4,), dict(threads=0), ValueError, "threads must be >= 1, got 0"),
    ((4,), dict(threads=True), TypeError, "threads must be an integer, got True"),
    ((4,), dict(progress="yes"), TypeError, "progress must be callable"),
    ((4,), dict(path=5), TypeError, "path must be a str or os.PathLike"),
    ((4,), dict(huge_pages="no"), TypeError, "huge_pages must be True or False"),
])
def test_bad_arguments_are_refused(args, kwargs, error, words):
    with pytest.raises(error, match=words):
        empty(*args, **kwargs)


def test_exported_lazily_from_the_package_root():
    assert fastinit.empty is empty and fastinit.allocation is allocation


CGROUP_CHILD = textwrap.dedent("""
    import fastinit, numpy as np
    try:
        fastinit.empty(512 << 20, np.uint8)
    except ValueError as error:
        print("refused:", error)
    else:
        print("allocated")
""")


def test_an_array_larger_than_the_cgroup_limit_is_refused(memory_cgroup):  # noqa: F811
    procs = memory_cgroup(256 * MiB)
    done = subprocess.run(["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(procs),
                           sys.executable, "-c", CGROUP_CHILD],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "refused: the array needs 0.50 GiB, but only" in done.stdout
