"""The commands: topology, boot, verify, bench."""

from __future__ import annotations

import argparse
import json
import sys

from fastinit.cli.output import EXIT_OUTPUT, emit, say
from fastinit.host.cpus import usable_cpus
from fastinit.engine.progress import ProgressBar


def load_topology(args: argparse.Namespace):
    """The machine the arguments name: a boot log, a spec, or this machine."""
    if getattr(args, "cmdline", None) is not None and args.spec is None:
        raise ValueError("--cmdline applies to --spec machines: a boot log carries its own "
                         "command line, and this machine booted with /proc/cmdline")
    from fastinit.machine.kernel_rules import parse_version
    linux = getattr(args, "linux", None)
    rules = parse_version(linux) if linux is not None else None
    if args.dmesg is not None:
        from fastinit.machine.bootlog import read_bootlog
        return read_bootlog(args.dmesg, rules)
    if args.spec is not None:
        from fastinit.machine.spec import parse_spec
        return parse_spec(args.spec, cmdline=getattr(args, "cmdline", None),
                          **({"kernel": rules} if rules is not None else {})), None
    from fastinit.machine.host import this_machine
    return this_machine(), None


def cmd_topology(args: argparse.Namespace) -> int:
    from fastinit.machine.figures import checks, read_figures
    from fastinit.report.boot import topology_json, topology_lines
    topology, text = load_topology(args)
    found = checks(topology, read_figures(text)) if text is not None else None
    problems = [check.problem() for check in found if not check.ok] if found else []
    if args.json:
        document = topology_json(topology)
        if found is not None:
            document["kernel_check"] = {"compared": len(found),
                                        "checked": [check.name for check in found],
                                        "mismatches": problems}
        emit(json.dumps(document, indent=2))
        return 1 if problems else 0
    emit("\n".join(topology_lines(topology)))
    if found is not None:
        if not found:
            emit("the log prints none of the kernel's own memory figures to check against")
        elif not problems:
            emit(f"checked against the kernel's own lines in the log: all {len(found)} "
                 f"figures match")
        for problem in problems:
            emit(f"MISMATCH {problem}")
    # A check that finds a disagreement says so in its exit status, like verify.
    return 1 if problems else 0


def warn_threads(command: str, threads: int | None) -> None:
    """Say so when --threads asks for more threads than this process has CPUs."""
    cpus = usable_cpus()
    if threads is not None and threads > cpus:
        say(f"fastinit {command}: warning: --threads {threads} is more than the {cpus} CPUs "
            f"this process may use; deferred init runs at most {cpus} threads at once")


def run_verify(args: argparse.Namespace, result):
    """`fastinit.mm.verify.verify` with a progress bar on a terminal."""
    from fastinit.mm.verify import verify
    bar = None
    if sys.stderr.isatty() and not args.no_progress and not args.json:
        bar = ProgressBar(len(result.memmap.pages), "verify", unit_bytes=64)
    try:
        return verify(result, progress=bar)
    finally:
        if bar is not None:
            bar.close()


def cmd_boot(args: argparse.Namespace, verify: bool = False) -> int:
    from fastinit.api import boot, node_digests
    from fastinit.arrays.handle import completed_note
    from fastinit.mm.plan import plan_boot
    from fastinit.report.boot import boot_json, boot_lines
    topology, _ = load_topology(args)
    warn_threads(args.command, args.threads)
    plan = plan_boot(topology, args.arch, args.threads)
    touch_bar = bar = None
    if sys.stderr.isatty() and not args.no_progress and not args.json:
        touch_bar = ProgressBar(plan.memmap_bytes, "sparse_init")
        bar = ProgressBar(sum(n.job[1] - n.job[0] for n in plan.nodes), "deferred init",
                          unit_bytes=64)
    try:
        result = boot(topology, arch=args.arch, threads=args.threads,
                      memmap_file=getattr(args, "memmap_file", None),
                      force=getattr(args, "force", False),
                      replace_any_file=getattr(args, "replace_any_file", False),
                      kernel=args.kernel, progress=bar,
                      touch_progress=touch_bar, nice=args.nice)
    finally:
        if bar is not None:
            bar.close()
    try:
        verification = run_verify(args, result) if verify or getattr(args, "verify", False) \
            else None
        if getattr(args, "digests", False):
            result.digests = node_digests(result)
        if args.json:
            emit(json.dumps(boot_json(result, verification), indent=2))
        else:
            emit("\n".join(boot_lines(result, verification)))
    except KeyboardInterrupt as stop:
        if result.memmap.file is not None:
            stop.add_note(completed_note(result.memmap.file.path))
        raise
    return 1 if verification is not None and not verification.ok else 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.memmap_file is None:
        return cmd_boot(args, verify=True)
    from fastinit.mm.run import load
    from fastinit.mm.page_file import DamagedMemmapError, IncompleteMemmapError
    from fastinit.report.boot import boot_json, memmap_file_lines
    named = args.dmesg is not None or args.spec is not None
    topology = load_topology(args)[0] if named else None
    try:
        result = load(args.memmap_file, topology)
    except (IncompleteMemmapError, DamagedMemmapError) as error:
        say(f"fastinit verify: FAILED: {error}")
        return 1
    verification = run_verify(args, result)
    if args.json:
        document = boot_json(result, verification)
        document["memmap_file"] = {key: result.memmap.file.meta[key] for key in
                                   ("format", "fastinit", "created", "kernel", "fingerprint")}
        document["memmap_file"]["state"] = result.memmap.file.state
        emit(json.dumps(document, indent=2))
    else:
        emit("\n".join(memmap_file_lines(result, verification)))
    return 0 if verification.ok else 1


def _thread_counts(text: str | None) -> list[int]:
    cpus = usable_cpus()
    if text is None:
        counts, n = [1], 2
        while n <= cpus:
            counts.append(n)
            n *= 2
        return counts if cpus in counts else counts + [cpus]
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--threads {text[:40]!r}: write thread counts like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"--threads {text[:40]!r}: thread counts must be at least 1")
    return counts


def cmd_bench(args: argparse.Namespace) -> int:
    from fastinit.report.bench_plot import check_plot_path, plot
    from fastinit.bench.run import run_bench
    from fastinit.report.bench import bench_lines
    counts = _thread_counts(args.threads)
    if args.plot:
        check_plot_path(args.plot)  # before the benchmark, not after it
    topology, _ = load_topology(args)
    if max(counts) > usable_cpus():
        say(f"fastinit bench: warning: --threads {max(counts)} is more than the "
            f"{usable_cpus()} CPUs this process may use; such rows show the threads that "
            f"really ran, and memset runs with as many")
    result = run_bench(topology, counts, args.repeat, args.kernel, peers=not args.no_peers)
    if args.json:
        emit(json.dumps(result.to_json(), indent=2))
    else:
        cpus = max((n.cpus for n in topology.memory_nodes), default=1)
        emit("\n".join(bench_lines(result, cpus)))
    if args.plot:
        try:
            plot(result, args.plot)
        except OSError as error:
            say(f"fastinit bench: error: cannot write the plot {args.plot!r}: "
                f"{error.strerror or error}")
            return EXIT_OUTPUT
        if not args.json:
            emit(f"plot written to {args.plot}")
    return 0


# Library errors name the argument (``threads must be >= 1``); the user typed a flag.
