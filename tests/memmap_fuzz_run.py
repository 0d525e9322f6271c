"""Run mutated memmap files through load + verify in a watched worker process.

The worker is one long-lived Python process (starting one per file would cost a second
each); the parent feeds it paths and watches it: a worker that dies by a signal, takes
longer than the time limit or grows past the memory limit is recorded with the mutation
that did it, and replaced. Outcomes: ``refused`` / ``incomplete`` / ``damaged`` (a
MemmapFileError naming the file), ``failed`` (verify found problems), ``verified``; and
the failures ``traceback`` (any other exception), ``signal``, ``hang``, ``memory``,
``unnamed`` (a refusal whose message does not name the file).
"""

from __future__ import annotations

import json
import random
import select
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from memmap_fuzz import DATA_KINDS, data_mutation, meta_mutation

FAILURES = ("traceback", "signal", "hang", "memory", "unnamed")
KIND_WEIGHTS = {"meta-resealed": 20, "meta-raw": 4, "header-fields": 4, "size": 3,
                "desc-bytes": 12, "desc-words": 14, "desc-targeted": 16, "desc-runs": 6,
                "pageblock": 10, "zone-state": 11}

WORKER = r"""
import json, sys, time, traceback
from fastinit.arrays.errors import DamagedMemmapError, IncompleteMemmapError, MemmapFileError
from fastinit.mm.run import load
from fastinit.mm.verify import verify

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
print("ready", flush=True)
for line in sys.stdin:
    path, began, message = line.rstrip("\n"), time.perf_counter(), ""
    try:
        report = verify(load(path))
        outcome = "verified" if report.ok else "failed"
        message = "; ".join(report.problems[:1])
    except (DamagedMemmapError, IncompleteMemmapError, MemmapFileError) as error:
        outcome = {DamagedMemmapError: "damaged", IncompleteMemmapError: "incomplete"}.get(
            type(error), "refused")
        message = str(error)
        if path not in message:
            outcome = "unnamed"
    except BaseException:
        outcome, message = "traceback", traceback.format_exc()
    print(json.dumps({"outcome": outcome, "message": message[-2000:],
                      "seconds": time.perf_counter() - began, "peak": peak()}), flush=True)
"""


class Worker:
    """A watched process that loads and verifies the files it is given (or runs another
    ``script`` that answers each line of input with one JSON line)."""

    def __init__(self, seconds: float, memory: int, script: str = WORKER, argv=()):
        self.seconds, self.memory, self.process = seconds, memory, None
        self.script, self.argv = script, list(argv)

    def _start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", self.script, *self.argv],
                                        stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1)
        assert self.process.stdout.readline().strip() == "ready"

    def _rss(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def check(self, path: Path) -> dict:
        return self.ask(str(path))

    def ask(self, line: str) -> dict:
        if self.process is None or self.process.poll() is not None:
            self._start()
        self.process.stdin.write(f"{line}\n")
        self.process.stdin.flush()
        deadline = time.monotonic() + self.seconds
        while True:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.2)
            if ready:
                line = self.process.stdout.readline()
                if line:
                    return json.loads(line)
                code = self.process.wait()
                self.close()
                return {"outcome": "signal", "message": f"worker exited with {code}",
                        "seconds": 0.0, "peak": 0}
            failure = ("hang" if time.monotonic() > deadline else
                       "memory" if self._rss() > self.memory else None)
            if failure:
                self.close()
                return {"outcome": failure, "message": f"killed after {self.seconds} s or "
                        f"past {self.memory >> 20} MiB", "seconds": self.seconds, "peak": 0}

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process.stdin.close()
            self.process.stdout.close()
            self.process = None


def mutate(seed: int, index: int, bases: list):
    """The ``index``-th mutation of a campaign: ``(base, kind, edit or None, rng)``."""
    rng = random.Random(seed * 1_000_003 + index)
    # Small machines more often: a mutation of a 2 MiB file checks in a few ms, of the
    # 34 MiB two-node log in ~60; every base is still drawn thousands of times.
    base = rng.choices(bases, weights=[4 if len(b.raw) < 10 << 20 else 1 for b in bases])[0]
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    if kind in DATA_KINDS:
        edit = data_mutation(rng, base, kind)
        resealed = rng.random() < 0.85
        return base, kind + ("" if resealed else "-unsealed"), edit, edit.apply(resealed)
    meta_mutation(rng, base, kind)
    return base, kind, None, True


def campaign(bases: list, count: int, seed: int, findings: Path, seconds: float = 60.0,
             memory: int = 4 << 30, report_every: int = 0) -> dict:
    """Check ``count`` mutated files; returns the tallies (see the module docstring)."""
    worker = Worker(seconds, memory)
    outcomes: dict[str, Counter] = defaultdict(Counter)
    samples: dict[str, list] = defaultdict(list)
    slowest, peak, checked, began = 0.0, 0, 0, time.monotonic()
    try:
        for index in range(count):
            base, kind, edit, changed = mutate(seed, index, bases)
            if not changed:
                edit.undo()
                outcomes[kind]["unchanged"] += 1
                continue
            result = worker.check(base.work)
            checked += 1
            outcome = result["outcome"]
            outcomes[kind][outcome] += 1
            slowest, peak = max(slowest, result["seconds"]), max(peak, result["peak"])
            keep = outcome in FAILURES or (outcome == "verified" and len(samples["verified"]) < 50)
            if keep:
                findings.mkdir(parents=True, exist_ok=True)
                saved = findings / f"{seed}-{index}-{kind}-{outcome}.bin"
                if outcome in FAILURES:
                    shutil.copyfile(base.work, saved)
                samples[outcome].append({"seed": seed, "index": index, "kind": kind,
                                         "base": base.name, "message": result["message"],
                                         "file": str(saved) if outcome in FAILURES else None})
            edit.undo() if edit is not None else base.restore()
            if report_every and (index + 1) % report_every == 0:
                print(f"{index + 1} files, {time.monotonic() - began:.0f} s, failures "
                      f"{sum(c[f] for c in outcomes.values() for f in FAILURES)}",
                      file=sys.stderr, flush=True)
    finally:
        worker.close()
    return {"count": count, "checked": checked, "seed": seed, "slowest_s": slowest,
            "peak_rss": peak, "seconds": time.monotonic() - began,
            "outcomes": {k: dict(v) for k, v in sorted(outcomes.items())},
            "failures": sum(c[f] for c in outcomes.values() for f in FAILURES),
            "samples": dict(samples)}


def replay(seed: int, index: int, bases: list) -> dict:
    """Rebuild one mutation and run it in this process (for a traceback to read)."""
    from fastinit.mm.run import load
    from fastinit.mm.verify import verify
    base, kind, edit, _ = mutate(seed, index, bases)
    print(f"mutation {seed}:{index}: {kind} of {base.name} -> {base.work}", file=sys.stderr)
    return {"problems": verify(load(str(base.work))).problems}


__all__ = ["Worker", "campaign", "replay", "FAILURES", "KIND_WEIGHTS"]
