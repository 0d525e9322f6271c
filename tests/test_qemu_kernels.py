"""Every kernel generation booted as the oracle (``pytest -m qemu``): Debian's 5.10, 6.1,
6.12, 6.12 cloud and sid kernels, as tests/qemu_oracle/fetch_kernels.sh unpacks them, each on
a few fixed layouts (boots cached, so CI boots only what changed); skipped, saying how to
fetch them, where they are missing. The default suite checks the cache key and the
generations' captures in tests/data/qemu without QEMU."""

import tempfile

import pytest

import qemu_oracle as qo
from qemu_oracle.kernels import (GENERATIONS, cache_path, cached_boot, fetched_kernels,
                                 with_kernel)
from qemu_oracle.runner import Tools

# numa=fake= (6: a flavour without NUMA emulation ignores it), memmap=! with a user map (3),
# HugeTLB pools with kernelcore= and loglevel=8 on memory-less nodes (0).
KERNEL_SEEDS = [0, 3, 6]


def test_a_cached_boot_is_not_booted_again_and_a_new_image_is(tmp_path):
    image, busybox = tmp_path / "vmlinuz", tmp_path / "busybox"
    image.write_bytes(b"kernel")
    busybox.write_bytes(b"busybox")
    # No QEMU at this path: a boot attempt fails, a cache hit does not try.
    tools = Tools(str(tmp_path / "no-qemu"), str(image), str(busybox))
    layout, cache = qo.generate(6), tmp_path / "cache"
    path = cache_path(layout, tools, cache)
    path.parent.mkdir()
    path.write_text("console of seed 6")
    assert cached_boot(layout, tools, "initrd", str(tmp_path), cache).serial == \
        "console of seed 6"
    assert cache_path(qo.generate(7), tools, cache) != path
    image.write_bytes(b"another kernel")
    assert cache_path(layout, tools, cache) != path
    with pytest.raises(FileNotFoundError):
        cached_boot(layout, tools, "initrd", str(tmp_path), cache)


def test_fetched_kernels_are_found_by_generation(tmp_path):
    for name in ("6.12", "sid", "junk"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "vmlinuz").write_bytes(b"x")
    assert sorted(fetched_kernels(tmp_path)) == ["6.12", "sid"]


@pytest.fixture(scope="module")
def oracle():
    tools = qo.find_tools()
    if isinstance(tools, str):
        pytest.skip(tools)
    with tempfile.TemporaryDirectory(prefix="fastinit-qemu-") as workdir:
        yield tools, str(qo.build_initramfs(tools.busybox, workdir)), workdir


@pytest.mark.qemu
@pytest.mark.parametrize("seed", KERNEL_SEEDS)
@pytest.mark.parametrize("generation", GENERATIONS)
def test_every_generation_agrees_with_fastinit_on_every_figure(oracle, generation, seed):
    tools, initramfs, workdir = oracle
    image = fetched_kernels().get(generation)
    if image is None:
        pytest.skip(f"Linux {generation} not fetched: run tests/qemu_oracle/fetch_kernels.sh "
                    f"(as root)")
    layout = qo.generate(seed)
    boot = cached_boot(layout, with_kernel(tools, image), initramfs, workdir)
    report = qo.read_report(boot.serial)
    assert report.complete, f"{generation} {layout.describe()}: {report.panic or 'no zoneinfo'}"
    comparison = qo.compare(report, qo.run_fastinit(report.console))
    assert comparison.ok, f"{generation} {layout.describe()}\n" + "\n".join(comparison.lines())
    assert len(comparison.checks) >= 8
