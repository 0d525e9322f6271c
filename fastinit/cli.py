"""The ``fastinit`` command line: topology, boot, verify, bench."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import fastinit

DESCRIPTION = """\
fastinit simulates how Linux initializes struct page for every page of memory at boot
("deferred struct page init"), in parallel with a padata-style job engine and Numba
kernels, for this machine, a machine described by its kernel boot log, or a short spec.

machines:
  (default)        this machine: /sys, /proc/zoneinfo, /proc/iomem
  --dmesg FILE     a kernel boot log (dmesg, journalctl -k, syslog); - reads stdin
  --spec SPEC      e.g. 2x384G,cpus=52 (N nodes of a size, CPUs per node);
                   1x256G; 2x16G:4+1x8G:0 (a memory-only node); pci_hole=SIZE
  --cmdline TEXT   with --spec: the kernel command line it boots with (mem=, memmap=,
                   movablecore=, kernelcore=, numa=off, numa=fake=, crashkernel=);
                   a boot log carries its own

exit status: 0 ok, 1 verification failed, 2 bad input, 130 interrupted
"""

ARCH_HELP = "thread cap per node: x86 (Linux 5.8, all CPUs of the node; default), " \
            "generic (5.8 elsewhere: 1), linux-6.11 (the node's CPUs everywhere)"


def _machine_args(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dmesg", metavar="FILE", help="read the machine from a boot log "
                        "(- for stdin)")
    source.add_argument("--spec", metavar="SPEC", help="describe the machine, e.g. "
                        "2x64G,cpus=8")
    parser.add_argument("--cmdline", metavar="TEXT", help="kernel command line of a --spec "
                        "machine, e.g. 'movablecore=25%% numa=fake=4'")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _boot_args(parser: argparse.ArgumentParser) -> None:
    _machine_args(parser)
    threads = parser.add_mutually_exclusive_group()
    threads.add_argument("--arch", default="x86", help=ARCH_HELP)
    threads.add_argument("--threads", type=int, metavar="N",
                         help="threads per node, instead of the arch profile")
    parser.add_argument("--memmap-file", metavar="PATH",
                        help="back the memmap with this file (for memmaps larger than RAM); "
                             "it is marked complete only when the boot finishes")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing --memmap-file")
    parser.add_argument("--kernel", default="stream", choices=("stream", "plain"),
                        help="deferred-init kernel: stream (one pass, streaming stores; "
                             "default) or plain (the kernel's two passes, ordinary stores)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar, even on a terminal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastinit", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastinit {fastinit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    topology = commands.add_parser(
        "topology", help="print the machine as the kernel sees it: zones, node ranges, holes",
        description="Print zone ranges, early memory node ranges, and per node and zone the "
                    "spanned, present and unavailable pages. With --dmesg, the figures are "
                    "checked against the kernel's own lines in the log.")
    _machine_args(topology)
    boot = commands.add_parser(
        "boot", help="simulate boot-time struct page init (early + parallel deferred)",
        description="Allocate the memmap, run early init on one thread and deferred init "
                    "with one padata job per node, and report kernel-style timings, a per-node "
                    "table and the buddy allocator's state.")
    _boot_args(boot)
    boot.add_argument("--verify", action="store_true",
                      help="also check the result against the serial reference")
    verify = commands.add_parser(
        "verify", help="boot and check the result, or check a memmap file a boot left",
        description="Without --memmap-file: the same as 'boot --verify'. With --memmap-file "
                    "PATH: check the file an earlier 'fastinit boot --memmap-file PATH' "
                    "wrote, against the serial reference; the machine is read from the "
                    "file's header (--dmesg or --spec, if given, must name the same "
                    "machine). A file whose run was killed or failed is reported "
                    "incomplete. Exit status 1 if any check fails or the file is incomplete.")
    _boot_args(verify)
    bench = commands.add_parser(
        "bench", help="deferred init against memset (the write limit) and the peers",
        description="Boot the machine repeatedly on one pre-faulted memmap for each thread "
                    "count and report deferred-init time (median, stdev), speedup, GB/s and "
                    "the ratio to glibc memset of a non-zero byte over the same bytes with the "
                    "same threads, all measured in this run; then the peers (numba.prange, "
                    "NumPy field by field, fastinit's plain-store kernel). First touch of the "
                    "memmap is reported separately.")
    _machine_args(bench)
    bench.add_argument("--threads", default=None, metavar="1,2,...",
                       help="thread counts per node (default: 1 and every power of two up "
                            "to the usable CPUs)")
    bench.add_argument("--repeat", type=int, default=5, metavar="N",
                       help="boots per thread count (default 5)")
    bench.add_argument("--kernel", default="stream", choices=("stream", "plain"),
                       help="deferred-init kernel to measure (default stream)")
    bench.add_argument("--no-peers", action="store_true", help="skip the peers")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="draw speedup and GB/s against threads (needs the perf extra)")
    return parser


def load_topology(args: argparse.Namespace):
    """The machine the arguments name: a boot log, a spec, or this machine."""
    if getattr(args, "cmdline", None) is not None and args.spec is None:
        raise ValueError("--cmdline applies to --spec machines: a boot log carries its own "
                         "command line, and this machine booted with /proc/cmdline")
    if args.dmesg is not None:
        from fastinit.machine.bootlog import read_bootlog
        return read_bootlog(args.dmesg)
    if args.spec is not None:
        from fastinit.machine.spec import parse_spec
        return parse_spec(args.spec, cmdline=getattr(args, "cmdline", None)), None
    from fastinit.machine.host import this_machine
    return this_machine(), None


def cmd_topology(args: argparse.Namespace) -> int:
    from fastinit.machine.figures import checks, read_figures
    from fastinit.report import topology_json, topology_lines
    topology, text = load_topology(args)
    found = checks(topology, read_figures(text)) if text is not None else None
    problems = [check.problem() for check in found if not check.ok] if found else []
    if args.json:
        document = topology_json(topology)
        if found is not None:
            document["kernel_check"] = {"compared": len(found),
                                        "checked": [check.name for check in found],
                                        "mismatches": problems}
        print(json.dumps(document, indent=2))
        return 1 if problems else 0
    print("\n".join(topology_lines(topology)))
    if found is not None:
        if not found:
            print("the log prints none of the kernel's own memory figures to check against")
        elif not problems:
            print(f"checked against the kernel's own lines in the log: all {len(found)} "
                  f"figures match")
        for problem in problems:
            print(f"MISMATCH {problem}")
    # A check that finds a disagreement says so in its exit status, like verify.
    return 1 if problems else 0


class ProgressBar:
    """A one-line bar on stderr, redrawn at most ten times a second from any thread.

    Called with the amount each piece of work added; bars of successive phases share the
    line, each overwriting the one before.
    """

    def __init__(self, total: int, label: str, stream=sys.stderr):
        self.total, self.done, self.stream = max(total, 1), 0, stream
        self.label = f"{label:<14}"
        self.lock = threading.Lock()
        self.drawn = 0.0

    def __call__(self, amount: int) -> None:
        with self.lock:
            self.done += amount
            now = time.monotonic()
            if now - self.drawn < 0.1 and self.done < self.total:
                return
            self.drawn = now
            filled = 40 * self.done // self.total
            self.stream.write(f"\r{self.label} [{'#' * filled}{' ' * (40 - filled)}] "
                              f"{100 * self.done // self.total:3d}%")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\r" + " " * 64 + "\r")
        self.stream.flush()


def cmd_boot(args: argparse.Namespace, verify: bool = False) -> int:
    from fastinit.mm.run import boot
    from fastinit.mm.plan import plan_boot
    from fastinit.report import boot_json, boot_lines
    from fastinit.mm.verify import verify as run_verify
    topology, _ = load_topology(args)
    arch = args.arch if args.threads is None else "x86"
    plan = plan_boot(topology, arch, args.threads)
    touch_bar = bar = None
    if sys.stderr.isatty() and not args.no_progress and not args.json:
        touch_bar = ProgressBar(plan.memmap_bytes, "sparse_init")
        bar = ProgressBar(sum(n.job[1] - n.job[0] for n in plan.nodes), "deferred init")
    try:
        result = boot(topology, arch=arch, threads=args.threads, memmap_file=args.memmap_file,
                      force=args.force, kernel=args.kernel, progress=bar,
                      touch_progress=touch_bar)
    finally:
        if bar is not None:
            bar.close()
    verification = run_verify(result) if verify or getattr(args, "verify", False) else None
    if args.json:
        print(json.dumps(boot_json(result, verification), indent=2))
    else:
        print("\n".join(boot_lines(result, verification)))
    return 1 if verification is not None and not verification.ok else 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.memmap_file is None:
        return cmd_boot(args, verify=True)
    from fastinit.mm.run import load
    from fastinit.mm.memmap_file import IncompleteMemmapError
    from fastinit.report import boot_json, memmap_file_lines
    from fastinit.mm.verify import verify as run_verify
    named = args.dmesg is not None or args.spec is not None
    topology = load_topology(args)[0] if named else None
    try:
        result = load(args.memmap_file, topology)
    except IncompleteMemmapError as error:
        print(f"fastinit verify: FAILED: {error}", file=sys.stderr)
        return 1
    verification = run_verify(result)
    if args.json:
        document = boot_json(result, verification)
        document["memmap_file"] = {key: result.memmap.file.meta[key] for key in
                                   ("format", "fastinit", "created", "kernel", "fingerprint")}
        document["memmap_file"]["state"] = result.memmap.file.state
        print(json.dumps(document, indent=2))
    else:
        print("\n".join(memmap_file_lines(result, verification)))
    return 0 if verification.ok else 1


def _thread_counts(text: str | None) -> list[int]:
    from fastinit.engine.cpus import usable_cpus
    if text is None:
        counts, n = [1], 2
        while n <= usable_cpus():
            counts.append(n)
            n *= 2
        return counts if usable_cpus() in counts else counts + [usable_cpus()]
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--threads {text!r}: write thread counts like 1,2,4") from None
    if not counts or min(counts) < 1:
        raise ValueError(f"--threads {text!r}: thread counts must be at least 1")
    return counts


def cmd_bench(args: argparse.Namespace) -> int:
    from fastinit.bench.run import bench_lines, plot, run_bench
    topology, _ = load_topology(args)
    result = run_bench(topology, _thread_counts(args.threads), args.repeat, args.kernel,
                       peers=not args.no_peers)
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        cpus = max((n.cpus for n in topology.memory_nodes), default=1)
        print("\n".join(bench_lines(result, cpus)))
        if args.plot:
            print(f"plot written to {args.plot}")
    return 0


# Library errors name the argument (``threads must be >= 1``); the user typed a flag.
ARGUMENT_FLAGS = {"threads": "--threads", "arch": "--arch", "memmap_file": "--memmap-file",
                  "force": "--force", "kernel": "--kernel", "repeat": "--repeat"}


def as_flags(message: str) -> str:
    """``message`` with a leading library argument name replaced by its flag."""
    first, space, rest = message.partition(" ")
    return ARGUMENT_FLAGS[first] + space + rest if first in ARGUMENT_FLAGS else message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {"topology": cmd_topology, "boot": cmd_boot, "bench": cmd_bench,
                "verify": cmd_verify}
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return handlers[args.command](args)
    except (ValueError, TypeError) as error:
        print(f"fastinit {args.command}: error: {as_flags(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"fastinit {args.command}: interrupted; every thread was stopped",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
