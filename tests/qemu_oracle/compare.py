"""The kernel's figures against ``fastinit topology --dmesg LOG --json``, figure by figure.

fastinit runs as a user runs it, in a subprocess on the boot log the console captured;
only its JSON output and exit status are used. Figures compared:

- each node's memory ranges ("Early memory node ranges");
- pages in unavailable ranges per node and zone (the kernel's lines, summed per zone);
- all nodes' present memory (the total of the ``Memory:`` line);
- per node and zone, ``spanned``, ``present`` and ``start_pfn`` from /proc/zoneinfo (for
  every zone either side has: a zone only one side has is a mismatch);
- per node and huge page size, ``nr_hugepages`` from sysfs, once fastinit's JSON reports
  huge pages (until then they are listed as not modelled, not compared);
- fastinit's own check of the log (``kernel_check`` in its JSON, and its exit status).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from qemu_oracle.printed import ZONES, KernelReport


@dataclass(frozen=True)
class Check:
    """One figure: what the kernel says and what fastinit says."""

    figure: str
    kernel: object
    fastinit: object

    @property
    def ok(self) -> bool:
        return self.kernel == self.fastinit


@dataclass
class FastinitResult:
    """``fastinit topology --dmesg LOG --json``: exit status, parsed JSON, stderr."""

    returncode: int
    document: dict | None
    stderr: str


@dataclass
class Comparison:
    """All figures of one boot.

    ``error`` is set when fastinit could not read the log at all (every figure is then
    counted as a mismatch: a real log was refused).
    """

    checks: list[Check] = field(default_factory=list)
    not_modelled: list[str] = field(default_factory=list)
    error: str | None = None
    # The nr_hugepages checks whose every differing size fastinit flagged as a bound: an
    # upper bound (the node ran out of room; the kernel's own allocations before
    # hugetlb_init() are not modelled) or a lower bound (another node of the same spread
    # count ran out, so the kernel gives this one more).
    upper_bounded: list[Check] = field(default_factory=list)

    @property
    def within_upper_bounds(self) -> bool:
        """Every mismatch is a flagged count on the flagged side: at or under an upper
        bound, at or over a lower bound (each bound is also a check of its own)."""
        return self.error is None and all(check in self.upper_bounded
                                          for check in self.mismatches)

    @property
    def mismatches(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    @property
    def ok(self) -> bool:
        return self.error is None and not self.mismatches

    def lines(self) -> list[str]:
        """One line per problem, for reports."""
        result = [f"fastinit failed: {self.error}"] if self.error else []
        return result + [f"{c.figure}: kernel {c.kernel}, fastinit {c.fastinit}"
                         for c in self.mismatches]


def run_fastinit(console: str, timeout: float = 300.0) -> FastinitResult:
    """Run ``fastinit topology --dmesg FILE --json`` on a boot log (the console text)."""
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False,
                                     encoding="utf-8", newline="") as handle:
        handle.write(console)
        path = handle.name
    try:
        process = subprocess.run([sys.executable, "-m", "fastinit.cli", "topology",
                                  "--dmesg", path, "--json"], capture_output=True,
                                 text=True, timeout=timeout, check=False)
    finally:
        os.unlink(path)
    try:
        document = json.loads(process.stdout) if process.stdout.strip() else None
    except json.JSONDecodeError:
        document = None
    return FastinitResult(process.returncode, document, process.stderr.strip())


def run_fastinit_here(console: str, directory: str) -> FastinitResult:
    """The same as `run_fastinit`, in this process (``fastinit.cli.main``): for the test
    suite, which checks many captured logs and should not start a Python for each."""
    import contextlib
    import io

    from fastinit.cli import main
    path = os.path.join(directory, "console.log")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(console)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(["topology", "--dmesg", path, "--json"])
    try:
        document = json.loads(out.getvalue()) if out.getvalue().strip() else None
    except json.JSONDecodeError:
        document = None
    return FastinitResult(status, document, err.getvalue().strip())


def _merged(ranges) -> list[tuple[int, int]]:
    result: list[tuple[int, int]] = []
    for start, end in sorted(tuple(r) for r in ranges):
        if result and start <= result[-1][1]:
            result[-1] = (result[-1][0], max(end, result[-1][1]))
        else:
            result.append((start, end))
    return result


def _fastinit_zones(document: dict) -> dict:
    return {(node["nid"], zone["name"]): zone for node in document.get("nodes", [])
            for zone in node.get("zones", [])}


def compare(report: KernelReport, result: FastinitResult) -> Comparison:
    """Compare every figure the kernel gave with fastinit's."""
    comparison = Comparison()
    document = result.document
    if document is None or result.returncode == 2:
        comparison.error = (f"exit {result.returncode}: "
                            f"{result.stderr.splitlines()[-1] if result.stderr else 'no output'}")
        return comparison
    checks = comparison.checks
    nodes = {node["nid"]: node for node in document.get("nodes", [])}

    kernel_ranges = {nid: _merged(r) for nid, r in report.node_ranges.items()}
    ours_ranges = {nid: _merged(n.get("ranges", [])) for nid, n in nodes.items()
                   if n.get("ranges")}
    for nid in sorted(set(kernel_ranges) | set(ours_ranges)):
        checks.append(Check(f"node {nid} memory ranges", kernel_ranges.get(nid, []),
                            ours_ranges.get(nid, [])))

    zones = _fastinit_zones(document)
    unavailable = {key: zone.get("unavailable", 0) for key, zone in zones.items()
                   if zone.get("unavailable", 0)}
    for key in sorted(set(report.unavailable) | set(unavailable)):
        checks.append(Check(f"node {key[0]} zone {key[1]} pages in unavailable ranges",
                            report.unavailable.get(key, 0), unavailable.get(key, 0)))

    kernel_zones = {key: figures for key, figures in report.zoneinfo.items()
                    if figures.get("spanned") or figures.get("present")}
    for key in sorted(set(kernel_zones) | set(zones),
                      key=lambda k: (k[0], ZONES.index(k[1]) if k[1] in ZONES else 99)):
        kernel, ours = kernel_zones.get(key, {}), zones.get(key, {})
        name = f"node {key[0]} zone {key[1]}"
        checks.append(Check(f"{name} spanned", kernel.get("spanned", 0),
                            ours.get("spanned", 0)))
        checks.append(Check(f"{name} present", kernel.get("present", 0),
                            ours.get("present", 0)))
        if "start_pfn" in kernel or ours.get("present"):
            checks.append(Check(f"{name} start_pfn", kernel.get("start_pfn"),
                                ours.get("start_pfn")))

    if report.physpages_kib is not None:
        checks.append(Check("present memory, all nodes (KiB, the Memory: line)",
                            report.physpages_kib,
                            sum(z.get("present", 0) for z in zones.values()) * 4))
    if any("hugepages" in node for node in nodes.values()):
        for nid in sorted(set(report.hugepages) | set(nodes)):
            kernel = {f"{size}kB": count for size, count in
                      report.hugepages.get(nid, {}).items() if count}
            ours = {size: count for size, count in
                    nodes.get(nid, {}).get("hugepages", {}).items() if count}
            if kernel or ours:
                counts = Check(f"node {nid} nr_hugepages", kernel, ours)
                checks.append(counts)
                upper = {bound["size"] for bound in
                         document.get("hugepages_upper_bounds", []) if bound["nid"] == nid}
                lower = {bound["size"] for bound in
                         document.get("hugepages_lower_bounds", []) if bound["nid"] == nid}
                for size in sorted(upper):
                    kept = kernel.get(size, 0) <= ours.get(size, 0)
                    checks.append(Check(f"node {nid} {size} pages at most fastinit's "
                                        f"upper bound", "yes",
                                        "yes" if kept else "no"))
                for size in sorted(lower):
                    kept = kernel.get(size, 0) >= ours.get(size, 0)
                    checks.append(Check(f"node {nid} {size} pages at least fastinit's "
                                        f"lower bound", "yes",
                                        "yes" if kept else "no"))
                bounded = upper | lower
                if bounded and all(kernel.get(size, 0) == ours.get(size, 0)
                                   or size in bounded for size in set(kernel) | set(ours)):
                    comparison.upper_bounded.append(counts)
    elif any(count for sizes in report.hugepages.values() for count in sizes.values()):
        comparison.not_modelled.append("nr_hugepages (fastinit reports no huge pages)")

    own = document.get("kernel_check")
    if own is not None:
        checks.append(Check("fastinit's own check of the log: mismatches", [],
                            own.get("mismatches", [])))
    checks.append(Check("fastinit exit status", 0, result.returncode))
    return comparison
