"""Boots of the real kernel captured under QEMU (tests/data/qemu), each of which once exposed
a bug in the machine model: fastinit must now agree with every figure the kernel printed
and reported, and no QEMU is needed to check it.

A case's ``unmodelled_figures`` (case.json) names figures the model knowingly gets wrong
there, each with the reason; they must still disagree (an annotation that no longer
applies fails, so it is removed), and every other figure must agree."""

import pytest

import qemu_oracle as qo
from qemu_oracle.corpus import cases


@pytest.mark.parametrize("path", cases(), ids=lambda p: p.name)
def test_captured_boot_agrees_on_every_figure(path, tmp_path):
    case = qo.load_case(path)
    report = qo.read_report(case.serial)
    assert report.complete, f"{path.name}: the capture is incomplete"
    comparison = qo.compare(report, qo.run_fastinit_here(report.console, str(tmp_path)))
    unmodelled = case.meta.get("unmodelled_figures", {})
    wrong = [c for c in comparison.mismatches if c.figure not in unmodelled]
    assert comparison.error is None and not wrong, \
        f"{case.layout.describe()}\n" + "\n".join(comparison.lines())
    assert sorted(unmodelled) == sorted(c.figure for c in comparison.mismatches
                                        if c.figure in unmodelled), \
        f"{path.name}: unmodelled_figures that now agree: remove them from case.json"
    assert len(comparison.checks) >= 8
