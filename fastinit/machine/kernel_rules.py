"""What differs between Linux generations, in one table, chosen by the kernel's version.

Each row is one behaviour the model follows, the release that brought it, what the kernel
did before, and where it comes from (the file, and the commit where one is known). A
kernel's rules are every row up to its version: `rules_for` reads a version as the boot
log's ``Linux version`` line prints it (``6.12.117+deb13-amd64``) or as a user writes it
(``6.12``). A log without a version line, or a spec, gets the newest rules; ``--linux``
picks another generation. The model asks a `KernelRules` by row name
(``rules.has("numa_emu_generic")``): no version is compared anywhere else.

Printouts that only changed form (the e820 type names) are read in every form whatever
the version, so the parser needs no rule for them; their row says when the form changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastinit.machine.kernel_rows import OLDEST, RULES, SAME_IN_EVERY_GENERATION, Rule, Same


NEWEST = max(rule.since for rule in RULES if rule.since is not None)

__all__ = ["OLDEST", "RULES", "SAME_IN_EVERY_GENERATION", "Rule", "Same", "NEWEST",
           "KernelRules", "parse_version", "rules_in_log", "NEWEST_RULES", "low_reserved"]


# "Linux version 6.12.117+deb13-amd64 (...)": the release numbers only.
_LOG_VERSION = re.compile(r"Linux version (\d{1,3})\.(\d{1,3})(?:\.(\d{1,5}))?(\S*)")
_VERSION = re.compile(r"(\d{1,3})\.(\d{1,3})(?:\.(\d{1,5}))?(\S*)")
# The rest of the line after the build number ("#1 SMP Debian 5.10.223-1 (2024-08-10)",
# Ubuntu's "(Ubuntu 5.15.0-91.101-generic 5.15.131)"): where distributions whose uname
# release keeps an ABI number at the patch level ("5.10.0-32-amd64") say the real one.
_POINT = r"(?<![\d.]){major}\.{minor}\.(\d{{1,5}})(?![\d.]*\d\.)"


@dataclass(frozen=True)
class KernelRules:
    """The rules of one kernel.

    Attributes
    ----------
    version : str
        The version as given (``"6.12.117+deb13-amd64"``), or ``"newest"``.
    release : (int, int)
        Major and minor the rules were chosen by.
    from_log : bool
        The version came from the log's ``Linux version`` line.
    patch : int or None
        The stable point release (223 for Debian's ``5.10.0-32-amd64``, whose log says
        ``Debian 5.10.223-1``); None when only ``x.y`` or ``x.y.0`` is known, and then the
        series' newest point release's rules apply (rows with ``stable`` backports).
    """

    version: str = "newest"
    release: tuple[int, int] = NEWEST
    from_log: bool = False
    patch: int | None = None

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(rule for rule in RULES if rule.holds(self.release, self.patch))

    @property
    def generation(self) -> str:
        """The rule set's name: the newest mainline row's release (``"6.12"``), and the
        point release when a stable backport row of the series decides something."""
        major, minor = max((rule.since for rule in self.rules
                            if rule.since is not None and rule.since <= self.release),
                           default=OLDEST)
        name = f"{major}.{minor}"
        if not any(tuple(w[:2]) == self.release for rule in RULES for w in rule.stable):
            return name
        series = f"{self.release[0]}.{self.release[1]}"
        if self.patch is None:
            return f"{name} with {series}.y's backports (point release unknown: the newest)"
        return f"{name} with {series}.{self.patch}'s backports"

    def has(self, name: str) -> bool:
        """True when the kernel behaves as row ``name`` says (ValueError for no such row)."""
        for rule in RULES:
            if rule.name == name:
                return rule.holds(self.release, self.patch)
        raise ValueError(f"no kernel rule {name!r}; rules are "
                         f"{', '.join(rule.name for rule in RULES)}")

    def describe(self) -> str:
        """One line for reports: which kernel, which rules (``Linux 6.1 (from the log):
        rules of 5.16 until 6.4``)."""
        where = " (from the log)" if self.from_log else ""
        later = [rule.since for rule in RULES
                 if rule.since is not None and rule.since > self.release]
        until = f"until {min(later)[0]}.{min(later)[1]}" if later else "the newest"
        return f"Linux {self.version}{where}: rules of {self.generation} {until}"

    def to_json(self) -> dict:
        return {"version": self.version, "from_log": self.from_log, "point": self.patch,
                "rules": self.generation,
                "behaviours": {rule.name: rule.now for rule in self.rules}}


def parse_version(text: str, from_log: bool = False, patch: int | None = None) -> KernelRules:
    """The rules for a version a user gave (``6.12``, ``5.10.223``, ``7.2.13+deb14``), or
    (``from_log``) one a log printed, as a memmap file keeps it (with its ``patch``).

    Raises
    ------
    ValueError
        For text that is no version, or (given by a user) one older than the series this
        project models.
    """
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"kernel version {text[:40]!r} is not a version; give one as "
                         f"'uname -r' prints it, e.g. 6.12 or 5.10.223")
    return _rules(match, text.strip(), from_log, patch)


def rules_in_log(text: str) -> KernelRules:
    """The rules for the first ``Linux version`` line of a log (newest without one)."""
    match = _LOG_VERSION.search(text)
    if match is None:
        return KernelRules()
    version = match.group(0).removeprefix("Linux version ")
    line = text[match.end():].split("\n", 1)[0]
    build = line[line.find("#"):] if "#" in line else ""
    points = re.findall(_POINT.format(major=match.group(1), minor=match.group(2)), build)
    patch = max((int(p) for p in points), default=0) or None
    return _rules(match, version, True, patch)


def _rules(match: re.Match, version: str, from_log: bool, patch: int | None) -> KernelRules:
    release = (int(match.group(1)), int(match.group(2)))
    if patch is None and match.group(3) is not None and int(match.group(3)) > 0:
        patch = int(match.group(3))
    if release < OLDEST:
        if from_log:
            # An older kernel's log still reads: the oldest rules are the nearest.
            return KernelRules(version, OLDEST, from_log)
        raise ValueError(f"kernel version {version} is older than {OLDEST[0]}.{OLDEST[1]}, "
                         f"where parallel deferred init begins; give {OLDEST[0]}."
                         f"{OLDEST[1]} or later")
    return KernelRules(version, release, from_log, patch)


NEWEST_RULES = KernelRules()

# x86's low memory reservation (kernel rule low_1m_reserved): the first 1 MiB since 5.13;
# before, CONFIG_X86_RESERVE_LOW's 64 KiB (Debian's and the default; Debian's 5.10.223 has
# no backport of the 1 MiB reservation). The real-mode trampoline's pages below 640K
# (reserve_real_mode()) are reserved too before 5.13, but no figure a log prints depends on
# them (see the row), so they are left out.
LOW_1M = (0, (1 << 20) >> 12)
LOW_64K = (0, (64 << 10) >> 12)


def low_reserved(rules: KernelRules) -> tuple[int, int]:
    """The pfn range x86 memblock-reserves at the bottom of memory under ``rules``."""
    return LOW_1M if rules.has("low_1m_reserved") else LOW_64K
