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
from qemu_oracle.generate import Layout, NodeSpec
from qemu_oracle.runner import Tools

# HugeTLB pools with kernelcore= and loglevel=8 on memory-less nodes (0), memmap=! with a
# user map (3), numa=fake= (6; on the cloud flavour, which ignores it, 7: its kernel
# crashed booting 6 under TCG, an int3 Oops in sched_clock_cpu, no oracle).
KERNEL_SEEDS = {generation: [0, 3, 7 if generation == "6.12-cloud" else 6]
                for generation in GENERATIONS}


# The 2 MiB pool job's calls show in the per-node counts (captures 6.12-pools-3node and
# sid-pools-smp8): 6.12's 2 threads per node make calls of one page on 3 nodes, 7.x runs
# hugepage_allocation_threads = CPUs / 4, so a guest needs 8 CPUs (TCG boots it in ~25 s)
# for two calls. The random layouts keep to 4 CPUs; these are drawn by hand.
POOL_LAYOUTS = {
    "6.12": Layout(-1, "pc", "qemu64", 3072, 3, tuple(NodeSpec(1024, (cpu,)) for cpu in range(3)),
                   ("hugepagesz=2M", "hugepages=10")),
    "sid": Layout(-1, "pc", "qemu64", 3072, 8, (NodeSpec(1024, (0, 1, 2)),
                                                 NodeSpec(1024, (3, 4, 5)), NodeSpec(1024, (6, 7))),
                  ("hugepagesz=2M", "hugepages=10")),
}


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
    images = fetched_kernels()
    if not images:
        pytest.skip("no kernel generation fetched: run tests/qemu_oracle/fetch_kernels.sh "
                    "(as root)")
    tools = qo.find_tools(next(iter(images.values())))
    if isinstance(tools, str):
        pytest.skip(tools)
    with tempfile.TemporaryDirectory(prefix="fastinit-qemu-") as workdir:
        yield tools, str(qo.build_initramfs(tools.busybox, workdir)), workdir


@pytest.mark.qemu
@pytest.mark.parametrize("generation, seed", [(generation, seed) for generation in GENERATIONS
                                              for seed in KERNEL_SEEDS[generation]])
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


def test_fetch_script_names_no_archive_host_and_pins_every_added_suite_at_50():
    from pathlib import Path
    script = (Path(qo.__file__).parent / "fetch_kernels.sh").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    assert "http" not in code and ".org" not in code  # the URIs line is read, not written
    assert "Pin-Priority: 50" in code and "apt-get install" not in code
    assert "apt-get download" in code and "dpkg-deb -x" in code
    for generation in GENERATIONS:
        assert f"unpack {generation} " in code


@pytest.mark.qemu
@pytest.mark.parametrize("generation", sorted(POOL_LAYOUTS))
def test_the_pool_jobs_calls_deal_the_pages_as_the_kernel_does(oracle, generation):
    tools, initramfs, workdir = oracle
    image = fetched_kernels().get(generation)
    if image is None:
        pytest.skip(f"Linux {generation} not fetched: run tests/qemu_oracle/fetch_kernels.sh "
                    f"(as root)")
    layout = POOL_LAYOUTS[generation]
    boot = cached_boot(layout, with_kernel(tools, image), initramfs, workdir)
    report = qo.read_report(boot.serial)
    assert report.complete, f"{generation} {layout.describe()}: {report.panic or 'no zoneinfo'}"
    comparison = qo.compare(report, qo.run_fastinit(report.console))
    assert comparison.ok, f"{generation} {layout.describe()}\n" + "\n".join(comparison.lines())
    # Not the one round robin (4/3/3) a single call would give.
    counts = [report.hugepages.get(nid, {}).get(2048, 0) for nid in range(3)]
    assert counts != [4, 3, 3] and sum(counts) == 10
