"""Ctrl-C in the program's first milliseconds: how long after exec the ``fastinit``
program takes SIGINT, and what a SIGINT inside that span does, for the console script's
entry (`fastinit.entry`) against the entry it had before (``from fastinit.cli import
run``, as the wrapper pip wrote for ``fastinit.cli:run``), interleaved in one run.

    python perf/startup_signals.py --trials 200

Each trial starts ``fastinit --version`` under one entry (the two alternate, in random
order) and sends SIGINT at a uniform moment in [0, --span] ms; it records a traceback,
the exit status and the program's one line. Wanted: no traceback once the program's
first code ran (what the interpreter does before that, in its own start-up, is
Python's: "Fatal Python error: init_import_site", counted apart).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PACKAGE = str(Path(__file__).resolve().parents[1] / "fastinit") + "/"
ENTRIES = {
    "entry": [str(BIN / "fastinit")],  # the console script as installed
    "cli": [sys.executable, "-c", "import re, sys\nfrom fastinit.cli import run\n"
            "sys.argv[0] = 'fastinit'\nsys.exit(run())"],
}
ARGS = ["--version"]


def trial(name: str, span: float, rng: random.Random) -> dict:
    delay = rng.uniform(0, span) / 1e3
    began = time.perf_counter()
    child = subprocess.Popen(ENTRIES[name] + ARGS, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    time.sleep(max(0.0, delay - (time.perf_counter() - began)))
    try:
        child.send_signal(signal.SIGINT)
    except ProcessLookupError:
        pass
    err = child.communicate(timeout=60)[1]
    status = child.returncode
    return {"entry": name, "delay_ms": round(delay * 1e3, 2),
            "status": 128 - status if status < 0 else status,
            "traceback": "Traceback" in err, "interrupted_line": "interrupted" in err,
            # CPython's own start-up (importing site and its .pth files) fails so: no
            # code of the program has run yet.
            "in_interpreter_start": "Fatal Python error: init_import_site" in err,
            # A frame in fastinit's own files: raised after some of its code ran (the
            # frames of the import system itself are hidden from tracebacks).
            "in_fastinit_code": any(PACKAGE in frame for frame in
                                    re.findall(r'File "([^"]+)"', err)),
            "said": err.strip()[-3000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200, help="signal trials per entry")
    parser.add_argument("--span", type=float, default=150.0, metavar="MS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    # Started as a background job of a script, this process has SIGINT ignored, and the
    # programs it starts would inherit that: they start as from a terminal instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    # How long the whole program takes (--version: start-up, parse, exit), per entry.
    runs = {name: [] for name in ENTRIES}
    for _ in range(10):
        for name, command in ENTRIES.items():
            began = time.perf_counter()
            subprocess.run(command + ARGS, capture_output=True, check=True)
            runs[name].append((time.perf_counter() - began) * 1e3)
    records = []
    for _ in range(args.trials):
        for name in rng.sample(sorted(ENTRIES), len(ENTRIES)):
            records.append(trial(name, args.span, rng))
    summary = {}
    for name in ENTRIES:
        mine = [r for r in records if r["entry"] == name]
        summary[name] = {
            "program_ms_median": round(statistics.median(runs[name]), 1),
            "trials": len(mine),
            "tracebacks_interpreter_start": sum(r["traceback"] and r["in_interpreter_start"]
                                                for r in mine),
            "tracebacks_program": sum(r["traceback"] and not r["in_interpreter_start"]
                                      for r in mine),
            "tracebacks_in_fastinit_code": sum(r["traceback"] and r["in_fastinit_code"]
                                               for r in mine),
            "exit_130_with_line": sum(r["status"] == 130 and r["interrupted_line"]
                                      for r in mine),
            "killed_by_sigint_silently": sum(r["status"] == 130 and not r["said"]
                                             for r in mine),
            "exit_0_done_first": sum(r["status"] == 0 for r in mine),
            "program_traceback_delays_ms": sorted(r["delay_ms"] for r in mine if
                                                  r["traceback"] and
                                                  not r["in_interpreter_start"]),
        }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "records": records}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
