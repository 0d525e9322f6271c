"""Boots of the real kernel captured under QEMU (tests/data/qemu), each of which once exposed
a bug in the machine model: fastinit must now agree with every figure the kernel printed
and reported, and no QEMU is needed to check it."""

import pytest

import qemu_oracle as qo
from qemu_oracle.corpus import cases


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.name)
def test_captured_boot_agrees_on_every_figure(path, tmp_path):
    case = qo.load_case(path)
    report = qo.read_report(case.serial)
    assert report.complete, f"{path.name}: the capture is incomplete"
    comparison = qo.compare(report, qo.run_fastinit_here(report.console, str(tmp_path)))
    assert comparison.ok, f"{case.layout.describe()}\n" + "\n".join(comparison.lines())
    assert len(comparison.checks) >= 8
