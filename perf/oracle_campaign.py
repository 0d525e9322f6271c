"""Real-kernel oracle campaign: boot Linux under QEMU on random layouts, compare with fastinit.

For each seed, tests/qemu_oracle draws a machine and a kernel command line, boots Debian's
kernel on it (TCG), reads the kernel's printed figures and /proc/zoneinfo, and compares
them with ``fastinit topology --dmesg LOG --json``; then it boots the log with fastinit
itself, ``fastinit boot --dmesg LOG --verify``, which must boot and verify (the machines the
real kernel booted are the ones the boot model must handle). Every capture is kept in
--out (one directory per seed, the same format as tests/data/qemu cases), so --replay can
compare and verify them again with a changed fastinit without booting anything.

    On a shared machine, --lock FILE makes the script flock FILE around each batch of boots:
    python perf/oracle_campaign.py --seeds 0:50 --out /tmp/oracle-run [--jobs 2]
    python perf/oracle_campaign.py --replay /tmp/oracle-run
    python perf/oracle_campaign.py --seeds 7 --save-mismatches tests/data/qemu
    python perf/oracle_campaign.py --kernel /var/cache/fastinit-kernels/sid/vmlinuz ...

Prints one line per layout and a summary (layouts, boots that failed, match rate, how many
boot and verify, boot time); writes summary.json into --out. Exit status 1 if any layout
mismatched or did not boot and verify in fastinit.
"""

import argparse
import contextlib
import fcntl
import io
import json
import os
import subprocess as processes
import statistics
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import qemu_oracle as qo  # noqa: E402
from qemu_oracle.corpus import cases  # noqa: E402
from qemu_oracle.hugepages import PREFIX as HUGE_PREFIX  # noqa: E402
from qemu_oracle.hugepages import generate_hugepages  # noqa: E402
from qemu_oracle.kernels import cache_path, keep  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``0:50`` (a range), ``3,7,11`` or a mix: ``0:10,42``."""
    seeds = []
    for part in text.split(","):
        if ":" in part:
            lo, hi = part.split(":")
            seeds += range(int(lo), int(hi))
        elif part.strip():
            seeds.append(int(part))
    return seeds


@contextlib.contextmanager
def bench_lock(path: str | None):
    """Hold the shared bench lock (flock) for one batch of boots."""
    if not path:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def kind_of(figure: str) -> str:
    """A mismatch's kind, for the summary: 'zone Movable spanned', 'memory ranges', ..."""
    words = figure.split()
    if figure.startswith("node ") and len(words) > 2:
        words = words[2:]
    return " ".join(words)


def evaluate(name: str, layout, serial: str, seconds: float | None,
             subprocess: bool = False, verify: bool = True) -> dict:
    """Read the kernel's figures from a capture and compare them with fastinit (run in this
    process through its command-line entry point, or as its own process)."""
    report = qo.read_report(serial)
    record = {"name": name, "seed": layout.seed, "layout": layout.describe(),
              "boot_s": seconds}
    if not report.complete:
        record["status"] = "boot-failed"
        record["why"] = report.panic or "the initramfs did not finish (timeout or crash)"
        return record
    if subprocess:
        result = qo.run_fastinit(report.console)
    else:
        with tempfile.TemporaryDirectory(prefix="oracle-compare-") as directory:
            result = qo.run_fastinit_here(report.console, directory)
    comparison = qo.compare(report, result)
    record["status"] = "match" if comparison.ok else "mismatch"
    record["figures"] = len(comparison.checks)
    record["problems"] = comparison.lines()
    record["kinds"] = sorted({kind_of(c.figure) for c in comparison.mismatches} |
                             ({"fastinit refused the log"} if comparison.error else set()))
    record["not_modelled"] = comparison.not_modelled
    record["within_upper_bounds"] = comparison.within_upper_bounds
    if verify:
        record.update(boot_and_verify(report.console, subprocess))
    return record


def boot_and_verify(console: str, subprocess: bool = False) -> dict:
    """``fastinit boot --dmesg LOG --verify --json`` on a capture's boot log (in this
    process, or as its own process): ``{"verify": "ok" | "failed" | "refused" | "error",
    "verify_problems": [...]}`` (failed: a check found a problem; refused: fastinit would
    not boot the log; error: anything else)."""
    with tempfile.TemporaryDirectory(prefix="oracle-verify-") as directory:
        path = os.path.join(directory, "console.log")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(console)
        argv = ["boot", "--dmesg", path, "--verify", "--json", "--no-progress"]
        if subprocess:
            done = processes.run([sys.executable, "-m", "fastinit.cli", *argv],
                                 capture_output=True, text=True, check=False)
            status, out, err = done.returncode, done.stdout, done.stderr
        else:
            from fastinit.cli import main
            out_buffer, err_buffer = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out_buffer), \
                    contextlib.redirect_stderr(err_buffer):
                status = main(argv)
            out, err = out_buffer.getvalue(), err_buffer.getvalue()
    try:
        problems = json.loads(out).get("verify_problems", []) if out.strip() else []
    except json.JSONDecodeError:
        problems = []
    verdict = {0: "ok", 1: "failed", 2: "refused"}.get(status, "error")
    if verdict != "ok" and not problems:
        problems = [line for line in err.splitlines() if line.strip()][-3:] or \
            [f"exit status {status}"]
    return {"verify": verdict, "verify_problems": problems}


def boot_one(seed: int, tools, initramfs: str, workdir: str, timeout: float,
             focus: str | None = None, out: Path | None = None):
    """Boot one seed's layout, or take the boot a resumed campaign already has: its case in
    ``out`` (a boot that failed, too, is not tried again) or the shared boot cache."""
    layout = generate_hugepages(seed) if focus == "hugepages" else qo.generate(seed)
    name = f"{HUGE_PREFIX if focus else 'seed'}-{seed}"
    if out is not None and (out / name / "case.json").is_file():
        case = qo.load_case(out / name)
        if case.meta.get("kernel") == tools.kernel and case.layout.dumps() == layout.dumps():
            return layout, qo.Boot(layout, case.serial, case.meta.get("boot_seconds"),
                                   case.meta.get("qemu_returncode"),
                                   tuple(case.meta.get("qemu_command", ())))
    cached = cache_path(layout, tools)
    if cached.is_file():
        serial = cached.read_bytes().decode("utf-8", errors="replace")
        return layout, qo.Boot(layout, serial, None, 0, ())
    return layout, qo.boot(layout, tools, initramfs, workdir, timeout)


def summarize(records: list[dict]) -> dict:
    booted = [r for r in records if r["status"] != "boot-failed"]
    matched = [r for r in booted if r["status"] == "match"]
    times = [r["boot_s"] for r in records if r.get("boot_s")]
    kinds = Counter(kind for r in booted for kind in r.get("kinds", []))
    return {
        "layouts": len(records), "booted": len(booted),
        "boot_failed": len(records) - len(booted), "matched": len(matched),
        "match_rate": round(len(matched) / len(booted), 4) if booted else None,
        # Matched but for HugeTLB counts fastinit itself flags as upper bounds (a node
        # out of room), each of which the kernel stayed at or under.
        "matched_or_within_upper_bounds": sum(r["status"] == "match"
                                              or r.get("within_upper_bounds", False)
                                              for r in booted),
        "figures_compared": sum(r.get("figures", 0) for r in booted),
        "boot_seconds": {"median": round(statistics.median(times), 2),
                         "min": round(min(times), 2), "max": round(max(times), 2)}
        if times else None,
        "mismatch_kinds": dict(kinds.most_common()),
        "mismatched_seeds": [r["seed"] for r in booted if r["status"] != "match"],
        "failed_seeds": [r["seed"] for r in records if r["status"] == "boot-failed"],
        # fastinit boot --verify on every log the real kernel booted.
        "boots_and_verifies": sum(r.get("verify") == "ok" for r in booted),
        "verify_failed_seeds": [r["seed"] for r in booted
                                if r.get("verify", "ok") != "ok"],
    }


def print_record(record: dict) -> None:
    time_text = f"{record['boot_s']:5.1f}s" if record.get("boot_s") else "  -   "
    verified = f"verify {record['verify']:<7}" if "verify" in record else " " * 14
    print(f"{record['status']:<11} {verified} {time_text} {record['layout']}", flush=True)
    for problem in record.get("problems", [])[:12]:
        print(f"      {problem}")
    for problem in record.get("verify_problems", [])[:6]:
        print(f"      verify: {problem}")
    if record["status"] == "boot-failed":
        print(f"      {record['why']}")


def run(args) -> list[dict]:
    tools = qo.find_tools(args.kernel)
    if isinstance(tools, str):
        sys.exit(f"oracle_campaign: {tools}")
    seeds = parse_seeds(args.seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    with tempfile.TemporaryDirectory(prefix="fastinit-oracle-") as workdir:
        initramfs = str(qo.build_initramfs(tools.busybox, workdir))
        for first in range(0, len(seeds), args.batch):
            batch = seeds[first:first + args.batch]
            with bench_lock(args.lock), ThreadPoolExecutor(args.jobs) as pool:
                boots = list(pool.map(lambda s: boot_one(s, tools, initramfs, workdir,
                                                         args.timeout, args.focus, out),
                                      batch))
            for layout, boot in boots:
                keep(boot, tools)  # pytest -m qemu boots no layout a campaign booted
                name = f"{HUGE_PREFIX if args.focus else 'seed'}-{layout.seed}"
                record = evaluate(name, layout, boot.serial, boot.seconds, args.subprocess,
                                  not args.no_verify)
                meta = {"kernel": tools.kernel, "qemu_command": list(boot.command),
                        "boot_seconds": round(boot.seconds, 2) if boot.seconds else None,
                        "qemu_returncode": boot.returncode,
                        "captured": time.strftime("%Y-%m-%d"),
                        "status_when_captured": record["status"],
                        "problems_when_captured": record.get("problems", [])}
                qo.save_case(out, name, layout, boot.serial, meta)
                if args.save_mismatches and record["status"] == "mismatch":
                    qo.save_case(args.save_mismatches, name, layout, boot.serial,
                                 meta)
                print_record(record)
                records.append(record)
    return records


def replay(directory: str, subprocess: bool, verify: bool = True) -> list[dict]:
    records = []
    for path in cases(directory):
        case = qo.load_case(path)
        record = evaluate(case.name, case.layout, case.serial, case.meta.get("boot_seconds"),
                          subprocess, verify)
        print_record(record)
        records.append(record)
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0:30", help="e.g. 0:50 or 3,7,11 (default 0:30)")
    parser.add_argument("--out", default=None, help="keep every capture here "
                        "(default: a new directory under /tmp)")
    parser.add_argument("--replay", metavar="DIR", help="compare the captures in DIR again, "
                        "booting nothing")
    parser.add_argument("--focus", choices=["hugepages"], default=None,
                        help="hugepages: layouts that all ask for HugeTLB boot pools "
                             "(tests/qemu_oracle/hugepages.py; cases huge-N)")
    parser.add_argument("--kernel", metavar="IMAGE", default=None,
                        help="boot this kernel image (e.g. /var/cache/fastinit-kernels/"
                             "6.12/vmlinuz from tests/qemu_oracle/fetch_kernels.sh; default: "
                             "$FASTINIT_ORACLE_KERNEL or the newest /boot/vmlinuz-*)")
    parser.add_argument("--jobs", type=int, default=2, help="guests booted at once (2)")
    parser.add_argument("--batch", type=int, default=8,
                        help="boots per hold of the bench lock (8)")
    parser.add_argument("--lock", default="",
                        help="flock this file around each batch of boots, so other "
                             "benchmarks on a shared machine do not disturb them or run "
                             "out of memory (default: none)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per boot")
    parser.add_argument("--subprocess", action="store_true",
                        help="run 'fastinit topology --dmesg LOG --json' as a process for each "
                             "layout, as a user would (default: its entry point, in this "
                             "process)")
    parser.add_argument("--no-verify", action="store_true",
                        help="compare the figures only: no 'fastinit boot --verify' of each "
                             "log (a campaign of many layouts on a busy machine)")
    parser.add_argument("--save-mismatches", metavar="DIR",
                        help="also save mismatching captures as cases here "
                             "(e.g. tests/data/qemu)")
    args = parser.parse_args()
    if args.replay:
        records = replay(args.replay, args.subprocess, not args.no_verify)
        out = Path(args.replay)
    else:
        args.out = args.out or tempfile.mkdtemp(prefix="oracle-campaign-")
        records = run(args)
        out = Path(args.out)
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "records": records},
                                                 indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 1 if summary["mismatched_seeds"] or summary["verify_failed_seeds"] else 0


if __name__ == "__main__":
    sys.exit(main())
