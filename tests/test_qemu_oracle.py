"""The real-kernel oracle: its layout generator and its parser (default suite), and real boots
under QEMU on a fixed set of seeds (``pytest -m qemu``; skipped with the reason where the
Debian packages are missing)."""

import json
import tempfile
from pathlib import Path

import pytest

import qemu_oracle as qo
from qemu_oracle.compare import FastinitResult
from qemu_oracle.corpus import cases
from qemu_oracle.generate import MAX_GUEST_MIB, MIN_GUEST_MIB, MAX_SMP
from qemu_oracle.kernels import cached_boot

# Seeds booted by `pytest -m qemu`: together they cover NUMA layouts with memory-less and
# CPU-less nodes, pc and q35, mem=, memmap= ($, #, !, plain), movablecore=/kernelcore=,
# numa=off, numa=fake= (count and size), crashkernel=, 2 MiB and 1 GiB huge pages, and both
# console levels (test_fixed_seeds_cover_every_option checks it).
QEMU_SEEDS = [3, 6, 9, 10, 15, 36, 50, 52]


def test_layouts_are_reproducible_and_within_bounds():
    for seed in range(300):
        layout = qo.generate(seed)
        assert layout == qo.generate(seed)
        assert MIN_GUEST_MIB <= layout.mem_mib <= MAX_GUEST_MIB
        assert 1 <= layout.smp <= MAX_SMP
        if layout.nodes:
            assert sum(n.mem_mib for n in layout.nodes) == layout.mem_mib
            assert sorted(c for n in layout.nodes for c in n.cpus) == list(range(layout.smp))
            assert all(n.mem_mib or n.cpus for n in layout.nodes)
        assert qo.Layout.from_json(json.loads(layout.dumps())) == layout


def test_qemu_arguments_name_a_backend_for_each_node_with_memory():
    layout = qo.Layout(-1, "q35", "max", 3072, 3, (qo.NodeSpec(1024, (0,)),
                                                   qo.NodeSpec(2048, ()), qo.NodeSpec(0, (1, 2))),
                       ("mem=2G",))
    args = layout.qemu_args()
    assert args[:8] == ["-machine", "q35", "-cpu", "max", "-m", "3072M", "-smp", "3"]
    assert "memory-backend-ram,id=m1,size=2048M" in args
    assert "node,nodeid=1,memdev=m1" in args and "node,nodeid=2,cpus=1-2" in args
    assert layout.append() == "console=ttyS0 panic=-1 mem=2G"


def test_fixed_seeds_cover_every_option():
    options = " ".join(" ".join(qo.generate(seed).options) for seed in QEMU_SEEDS)
    for option in ("mem=", "memmap=", "movablecore=", "kernelcore=", "numa=off",
                   "numa=fake=", "crashkernel=", "hugepages=", "loglevel=8"):
        assert option in options, option
    layouts = [qo.generate(seed) for seed in QEMU_SEEDS]
    assert {layout.machine for layout in layouts} == {"pc", "q35"}
    assert any(not node.mem_mib for layout in layouts for node in layout.nodes)
    assert any(not node.cpus for layout in layouts for node in layout.nodes)


@pytest.mark.skipif(not cases(), reason="no captured boots in tests/data/qemu")
def test_parser_reads_a_captured_boot():
    # seed-N cases are Debian 6.1's (the other kernels' captures are named for the kernel)
    case = qo.load_case(next(path for path in cases() if path.name.startswith("seed-")))
    report = qo.read_report(case.serial)
    assert report.complete and report.panic is None
    assert report.version.startswith("6.1") and report.command_line.startswith("console=ttyS0")
    assert report.node_ranges and report.zoneinfo and report.hugepages
    for figures in report.zoneinfo.values():
        assert {"spanned", "present", "managed"} <= set(figures)
        assert figures["present"] <= figures["spanned"]
    # The console part ends where the initramfs started printing.
    assert "@@ZONEINFO-BEGIN@@" not in report.console and "Zone ranges" in report.console


def test_parser_counts_every_unavailable_line_of_a_zone():
    serial = ("[    0.1] Early memory node ranges\n"
              "[    0.1]   node   0: [mem 0x0000000000001000-0x000000000009efff]\n"
              "[    0.2] On node 0, zone DMA: 1 pages in unavailable ranges\n"
              "[    0.2] On node 0, zone DMA: 97 pages in unavailable ranges\n"
              "@@ZONEINFO-BEGIN@@\nNode 0, zone      DMA\n  pages free     3\n"
              "        spanned  4095\n        present  3998\n        managed  3840\n"
              "  start_pfn:           1\n@@ZONEINFO-END@@\n")
    report = qo.read_report(serial)
    assert report.unavailable == {(0, "DMA"): 98}
    assert report.node_ranges == {0: [(1, 159)]}
    assert report.zoneinfo == {(0, "DMA"): {"spanned": 4095, "present": 3998, "managed": 3840,
                                            "start_pfn": 1}}
    assert not report.complete  # no huge page section, no end marker


def test_comparison_names_each_disagreeing_figure():
    report = qo.read_report(
        "[    0.1] Early memory node ranges\n"
        "[    0.1]   node   0: [mem 0x0000000000001000-0x000000000009efff]\n"
        "@@ZONEINFO-BEGIN@@\nNode 0, zone      DMA\n        spanned  4095\n"
        "        present  3998\n        managed  3840\n  start_pfn:           1\n"
        "@@ZONEINFO-END@@\n")
    document = {"nodes": [{"nid": 0, "ranges": [[0, 159]], "zones": [
        {"name": "DMA", "start_pfn": 0, "spanned": 4096, "present": 3998, "unavailable": 97}]}]}
    comparison = qo.compare(report, FastinitResult(0, document, ""))
    assert sorted(c.figure for c in comparison.mismatches) == [
        "node 0 memory ranges", "node 0 zone DMA pages in unavailable ranges",
        "node 0 zone DMA spanned", "node 0 zone DMA start_pfn"]
    refused = qo.compare(report, FastinitResult(2, None, "error: bad"))
    assert not refused.ok and refused.error == "exit 2: error: bad"


def _hugepage_report(counts):
    """A kernel report of two nodes' 2 MiB pool counts, as the initramfs prints them."""
    lines = "".join(f"/sys/devices/system/node/node{nid}/hugepages/hugepages-2048kB/"
                    f"nr_hugepages {count}\n" for nid, count in counts.items())
    return qo.read_report(f"@@HUGEPAGES-BEGIN@@\n{lines}@@HUGEPAGES-END@@\n")


@pytest.mark.parametrize("kernel, within", [({0: 240, 1: 3}, True), ({0: 251, 1: 3}, True),
                                            ({0: 252, 1: 3}, False), ({0: 240, 1: 4}, False)])
def test_a_count_fastinit_flags_as_an_upper_bound_may_only_be_higher(kernel, within):
    ours = {0: 251, 1: 3}
    document = {"nodes": [{"nid": nid, "hugepages": {"2048kB": count}}
                          for nid, count in ours.items()],
                "hugepages_upper_bounds": [{"nid": 0, "size": "2048kB"}]}
    comparison = qo.compare(_hugepage_report(kernel), FastinitResult(0, document, ""))
    assert comparison.ok == (kernel == ours)
    assert comparison.within_upper_bounds == within


@pytest.fixture(scope="module")
def qemu():
    tools = qo.find_tools()
    if isinstance(tools, str):
        pytest.skip(tools)
    with tempfile.TemporaryDirectory(prefix="fastinit-qemu-") as workdir:
        yield tools, str(qo.build_initramfs(tools.busybox, workdir)), workdir


@pytest.mark.qemu
@pytest.mark.parametrize("seed", QEMU_SEEDS)
def test_real_kernel_agrees_with_fastinit_on_every_figure(qemu, seed):
    tools, initramfs, workdir = qemu
    layout = qo.generate(seed)
    boot = cached_boot(layout, tools, initramfs, workdir)
    report = qo.read_report(boot.serial)
    assert report.complete, f"{layout.describe()}: {report.panic or 'no zoneinfo'}"
    comparison = qo.compare(report, qo.run_fastinit(report.console))
    assert comparison.ok, f"{layout.describe()}\n" + "\n".join(comparison.lines())
    assert len(comparison.checks) >= 8


@pytest.mark.qemu
def test_initramfs_is_built_with_cpio(qemu):
    _, initramfs, _ = qemu
    import gzip
    archive = gzip.decompress(Path(initramfs).read_bytes())
    assert archive.startswith(b"070701") and b"@@ZONEINFO-BEGIN@@" in archive
