"""Signal campaign: SIGINT, SIGTERM and SIGKILL at random moments of ``fastinit boot
--memmap-file P``, in the foreground and as a background job of a non-interactive shell
(which starts it with SIGINT ignored), over a path that holds an old fastinit file
(``--force``) or nothing.

Every trial must leave the path byte-identical to before, or holding the new file complete
(its checksum checked; every ``--verify-every``-th one also through ``fastinit verify``),
with the exit status the README gives: 128 + the signal when the old contents were kept
(or death by the signal, before the program took it), 0 when the new file is in place;
a SIGINT to a background job is ignored (exit 0). No traceback, and no temporary file
left, except after SIGKILL (nothing can clean up after it; the next boot on that path
removes what it left, which the campaign checks too).

    python perf/signal_campaign.py --trials 120 --out runs/signals
    python perf/signal_campaign.py --trials 12 --spec 1x4G      # a quick look

A third of the signals fall in the first half second (start-up and imports), a third
around the end of the boot (the commit), a third anywhere. Each trial is a line of
``OUT/trials.jsonl``; the summary counts outcomes by signal, mode and moment ("start": before the program took the signals, during the interpreter's own
start-up; "run"; "exit": after its work, when it ignores them; "gone": already exited).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "fastinit.cli"]
# What a trial starts: the console script users run (its entry is fastinit.entry), or
# with --entry module, ``python -m fastinit.cli``.
SCRIPT = [str(Path(sys.executable).parent / "fastinit")]
PROGRAM = {"script": SCRIPT, "module": CLI}
SIGNALS = {"INT": signal.SIGINT, "TERM": signal.SIGTERM, "KILL": signal.SIGKILL}
TEMP = ".fastinit-tmp-"


def digest(path: Path) -> str | None:
    if not path.exists():
        return None
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 22), b""):
            sha.update(block)
    return sha.hexdigest()


def moment(pid: int) -> str:
    """Where the process is, from the kernel's view of its signal handlers."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return "gone"
    masks = dict(line.split(":\t") for line in status.splitlines() if line.startswith("Sig"))
    term = 1 << (signal.SIGTERM - 1)
    if int(masks.get("SigCgt", "0"), 16) & term:
        return "run"
    if int(masks.get("SigIgn", "0"), 16) & term:
        return "exit"
    return "start" if "State:\tZ" not in status else "gone"


def start(mode: str, argv: list[str], err: Path, program: list[str]):
    """``(pid, wait)``: the boot started in the foreground or as ``cmd &`` of ``sh -c``;
    ``wait()`` returns its exit status as a shell reports it (128 + signal if killed)."""
    if mode == "foreground":
        with open(err, "w") as stderr:
            child = subprocess.Popen(program + argv, stdout=subprocess.DEVNULL,
                                     stderr=stderr)

        def wait():
            status = child.wait(timeout=600)
            return 128 - status if status < 0 else status
        return child.pid, wait
    command = " ".join(shlex.quote(a) for a in program + argv)
    shell = subprocess.Popen(["sh", "-c", f"{command} >/dev/null 2>{shlex.quote(str(err))} "
                                          f"& echo $!; wait $!; echo $?"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pid = int(shell.stdout.readline())

    def wait():
        out = shell.communicate(timeout=600)[0]
        return int(out)
    return pid, wait


def file_state(path: Path, before: str | None, verify: bool) -> str:
    """identical, complete (and verified, if asked) or BAD: what the path holds."""
    now = digest(path)
    if now == before:
        return "identical"
    from fastinit.arrays.errors import MemmapFileError
    from fastinit.mm.run import load
    try:
        loaded = load(str(path), check_data=True)
    except (MemmapFileError, OSError) as error:
        return f"BAD ({error})"
    if loaded.memmap.file.state != "complete":
        return f"BAD ({loaded.memmap.file.state})"
    if verify:
        done = subprocess.run(CLI + ["verify", "--memmap-file", str(path)],
                              capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return f"BAD (verify exit {done.returncode})"
    return "complete"


def judge(name: str, mode: str, when: str, status: int, state: str, said: str,
          temps: list[str]) -> list[str]:
    """The ways a trial broke the README's promises (empty: none)."""
    signum = SIGNALS[name]
    wrong = []
    if state.startswith("BAD"):
        wrong.append(f"path: {state}")
    if "Traceback" in said and name != "KILL":
        # CPython's own start-up (site and its .pth files) fails so, before any of ours.
        own = "Fatal Python error: init_import_site" in said
        wrong.append("traceback" + (" (interpreter start-up)" if own else ""))
    if temps and name != "KILL":
        wrong.append(f"temporary files left: {temps}")
    if name == "KILL":
        return wrong  # no status to expect but the kernel's; the path is what counts
    if mode == "background" and name == "INT":
        expected = {0} if state == "complete" else set()
    elif state == "complete":
        expected = {0}
    else:
        expected = {128 + signum}
    if status not in expected:
        wrong.append(f"exit {status}, expected {sorted(expected)} for a path {state}")
    return wrong


def trial(number: int, rng: random.Random, out: Path, spec: str, template: Path,
          longest: float, verify: bool, program: list[str] = SCRIPT) -> dict:
    name = rng.choice(sorted(SIGNALS))
    mode = rng.choice(["foreground", "background"])
    prior = rng.choice(["old", "none"])
    folder = out / f"trial{number:04d}"
    folder.mkdir()
    path, err = folder / "m.bin", out / f"trial{number:04d}.err"
    if prior == "old":
        shutil.copyfile(template, path)
    before = digest(path)
    argv = ["boot", "--spec", spec, "--memmap-file", str(path), "--no-progress"]
    argv += ["--force"] if prior == "old" else []
    # A third of the signals in the interpreter's start-up and the imports, a third
    # around the commit at the end, a third anywhere.
    edge = rng.choice(["start", "end", "any"])
    delay = {"start": rng.uniform(0, 0.5), "end": rng.uniform(0.75, 1.0) * longest,
             "any": rng.uniform(0, longest)}[edge]
    began = time.monotonic()
    pid, wait = start(mode, argv, err, program)
    time.sleep(max(0.0, delay - (time.monotonic() - began)))
    when = moment(pid)
    try:
        os.kill(pid, SIGNALS[name])
    except ProcessLookupError:
        when = "gone"
    status = wait()
    said = err.read_text()
    temps = sorted(n for n in os.listdir(folder) if TEMP in n)
    state = file_state(path, before, verify and number % verify == 0)
    record = {"trial": number, "signal": name, "mode": mode, "prior": prior,
              "delay": round(delay, 3), "moment": when, "status": status, "path": state,
              "temps": temps, "said": said.strip()[-400:]}
    if temps:  # the next boot on the path must take them away
        again = subprocess.run(CLI + argv + ["--force"] * (prior != "old"),
                               capture_output=True, text=True, timeout=600)
        record["next_boot_cleaned"] = again.returncode == 0 and \
            not [n for n in os.listdir(folder) if TEMP in n]
    record["wrong"] = judge(name, mode, when, status, state, said, temps)
    if record.get("next_boot_cleaned") is False:
        record["wrong"].append("the next boot left the temporary files")
    shutil.rmtree(folder)
    return record


def calibrate(spec: str, out: Path) -> float:
    """Seconds a boot of ``spec`` into a new file takes here, start to exit."""
    path = out / "calibrate.bin"
    began = time.monotonic()
    subprocess.run(CLI + ["boot", "--spec", spec, "--memmap-file", str(path),
                          "--no-progress"], check=True, capture_output=True, timeout=600)
    took = time.monotonic() - began
    path.unlink()
    return took


def campaign(trials: int, spec: str, out: Path, seed: int = 0, verify_every: int = 5,
             log=print, entry: str = "script") -> list[dict]:
    """Run the trials; returns their records."""
    out.mkdir(parents=True, exist_ok=True)
    template = out / "old.bin"
    subprocess.run(CLI + ["boot", "--spec", "1x1G", "--memmap-file", str(template),
                          "--no-progress", "--force"], check=True, capture_output=True,
                   timeout=600)
    # Signals fall anywhere from the start to a little past the end of a boot.
    longest = 1.15 * calibrate(spec, out)
    rng = random.Random(seed)
    records = []
    with open(out / "trials.jsonl", "w") as lines:
        for number in range(trials):
            record = trial(number, rng, out, spec, template, longest, verify_every,
                           PROGRAM[entry])
            lines.write(json.dumps(record) + "\n")
            lines.flush()
            records.append(record)
            if record["wrong"]:
                log(f"trial {number}: {record['wrong']} ({record})")
    return records


def summary(records: list[dict]) -> list[str]:
    counts = collections.Counter((r["signal"], r["mode"], r["moment"], r["path"].split()[0],
                                  r["status"]) for r in records)
    own = sum(1 for r in records if any("(interpreter start-up)" in w for w in r["wrong"]))
    lines = [f"{len(records)} trials; {sum(1 for r in records if r['wrong'])} broke a "
             f"promise ({own} of them by a traceback of the interpreter's own start-up)"]
    lines += [f"  {n:4d}  SIG{s:<4} {m:<10} at {w:<5} -> path {p:<9} exit {st}"
              for (s, m, w, p, st), n in sorted(counts.items())]
    kills = [r for r in records if r["temps"]]
    if kills:
        lines.append(f"SIGKILL left temporary files in {len(kills)} trials; the next boot "
                     f"removed them in {sum(1 for r in kills if r['next_boot_cleaned'])}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--spec", default="1x16G")
    parser.add_argument("--out", type=Path, default=Path("runs/signals"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verify-every", type=int, default=5, metavar="N",
                        help="also run 'fastinit verify' on every N-th trial's file (0: none)")
    parser.add_argument("--entry", choices=sorted(PROGRAM), default="script",
                        help="start the console script (default) or python -m fastinit.cli")
    args = parser.parse_args()
    # Started as a background job of a script, this process has SIGINT ignored, and the
    # programs it starts would inherit that: they start as from a terminal instead.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    records = campaign(args.trials, args.spec, args.out, args.seed, args.verify_every,
                       entry=args.entry)
    print("\n".join(summary(records)))


if __name__ == "__main__":
    main()
