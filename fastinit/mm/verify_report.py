"""What verify found: each check's summary and problems, and the report of all of them.

Apart from `fastinit.mm.verify` so that printing a boot, or a cluster's summaries of
its nodes, needs none of verify's kernels (compiling them costs seconds on a cold cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field

_MAX_PROBLEMS = 20


@dataclass
class Check:
    """One of verify's checks: what it covered, and the problems it found (the first few)."""

    name: str
    summary: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(text)


@dataclass
class VerifyReport:
    """Outcome of `verify`: the four checks in order, each with its problems, the seconds
    they took, and the section pass's tallies: ``{kind: (count, first pfn or -1)}`` with the
    kinds of `fastinit.kernels.check_sections` in lower case (``"wrong_state"``...)."""

    checks: list[Check] = field(default_factory=list)
    elapsed: float = 0.0
    tallies: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return [problem for check in self.checks for problem in check.problems]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)
