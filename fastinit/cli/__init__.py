"""The ``fastinit`` command line: topology, boot, verify, bench."""

from __future__ import annotations

# Only what takes the signals is imported here: the program's first act is to take them
# (a Ctrl-C while the rest is imported must stop it without a traceback), and the
# commands and what they need are imported after, inside main().
import signal
import sys

from fastinit.cli.stopped import Run, Target
from fastinit.engine.interrupts import stop_on_signals

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
                   movablecore=, kernelcore=, numa=off, numa=fake=, crashkernel=,
                   hugepagesz=, hugepages=, default_hugepagesz=, hugetlb_free_vmemmap=);
                   a boot log carries its own

exit status: 0 ok, 1 verification (or topology's check against the log) failed,
2 bad input, 3 a node failed on its dask worker or the scheduler was lost (--cluster),
74 output could not be written (disk full), 130 interrupted, 141 output pipe closed
(as SIGPIPE would), 143 terminated (SIGTERM, handled like Ctrl-C); 130 and 143 mean a
--memmap-file kept its old contents: an interrupt that comes after the new file is in
place says so and exits 0
"""


# The deferred-init kernels, the keys of fastinit.mm.deferred.CHUNK_KERNELS: named here so
# that parsing the command line imports no NumPy (a test keeps the two equal).
KERNELS = ("stream", "plain")
ARCH_HELP = "thread cap per node: x86 (Linux 5.8, all CPUs of the node; default), " \
            "generic (5.8 elsewhere: 1), linux-6.11 (the node's CPUs everywhere)"


def _machine_args(parser) -> None:
    from fastinit.host.cpus import usable_cpus
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dmesg", metavar="FILE", help="read the machine from a boot log "
                        "(- for stdin); without --dmesg or --spec: this machine")
    source.add_argument("--spec", metavar="SPEC", help="describe the machine, e.g. "
                        "2x64G,cpus=8; CPUs per node default to the CPUs this process may "
                        f"use ({usable_cpus()} here)")
    parser.add_argument("--cmdline", metavar="TEXT", help="kernel command line of a --spec "
                        "machine, e.g. 'movablecore=25%% numa=fake=4' (default: none)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text "
                        "(default: text)")


LINUX_HELP = "model the machine under this Linux generation's rules, e.g. 5.10 or 6.12 " \
             "(default: the log's 'Linux version' line; the newest for a spec)"


def _nonempty_path(text: str) -> str:
    import argparse
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path; name a file, e.g. --memmap-file m.bin")
    return text


def _threads_arg(parser, group=None) -> None:
    (group or parser).add_argument("--threads", type=int, metavar="N",
                                   help="threads per node, instead of the arch profile "
                                        "(default: the profile's cap)")


def _boot_args(parser) -> None:
    _machine_args(parser)
    # --kernel already names the deferred-init kernel (stream, plain) here.
    parser.add_argument("--linux", metavar="VERSION", help=LINUX_HELP)
    threads = parser.add_mutually_exclusive_group()
    threads.add_argument("--arch", default="x86", help=ARCH_HELP)
    _threads_arg(parser, threads)
    parser.add_argument("--kernel", default="stream", choices=KERNELS,
                        help="deferred-init kernel: stream (one pass, streaming stores; "
                             "default) or plain (the kernel's two passes, ordinary stores)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (default: a bar on a terminal)")
    parser.add_argument("--nice", type=int, metavar="N", default=None,
                        help="run the boot's helper threads at niceness N (0-19, Linux), "
                             "so other work keeps the CPUs (default: as this process)")


def build_parser():
    """The command line's argparse parser."""
    import argparse
    import fastinit
    parser = argparse.ArgumentParser(prog="fastinit", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastinit {fastinit.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_command in (_topology_command, _boot_command, _verify_command, _bench_command):
        add_command(commands)
    return parser


def _topology_command(commands) -> None:
    topology = commands.add_parser(
        "topology", help="print the machine as the kernel sees it: zones, node ranges, holes",
        description="Print zone ranges, early memory node ranges, and per node and zone the "
                    "spanned, present and unavailable pages. With --dmesg, the figures are "
                    "checked against the kernel's own lines in the log.")
    _machine_args(topology)
    # topology has no deferred-init kernel to choose: --kernel names the Linux version.
    topology.add_argument("--linux", "--kernel", dest="linux", metavar="VERSION",
                          help=LINUX_HELP)


def _boot_command(commands) -> None:
    from fastinit.cli.cluster import add_cluster_args
    boot = commands.add_parser(
        "boot", help="simulate boot-time struct page init (early + parallel deferred)",
        description="Allocate the memmap, run early init on one thread and deferred init "
                    "with one padata job per node, and report kernel-style timings, a per-node "
                    "table and the buddy allocator's state.")
    _boot_args(boot)
    boot.add_argument("--memmap-file", metavar="PATH", type=_nonempty_path,
                      help="back the memmap with this file (for memmaps larger than RAM); "
                           "it is marked complete only when the boot finishes (default: "
                           "in memory)")
    boot.add_argument("--force", action="store_true",
                      help="replace an existing fastinit --memmap-file (the new one is "
                           "written beside it and takes its place only when complete)")
    boot.add_argument("--replace-any-file", action="store_true",
                      help="with --force, replace any regular file, not only a fastinit "
                           "memmap file (never a device, FIFO, directory or symlink)")
    boot.add_argument("--verify", action="store_true",
                      help="also check the result against the serial reference")
    add_cluster_args(boot)


def _verify_command(commands) -> None:
    from fastinit.cli.cluster import add_cluster_args
    verify = commands.add_parser(
        "verify", help="boot and check the result, or check a memmap file a boot left",
        description="Without --memmap-file: the same as 'boot --verify'. With --memmap-file "
                    "PATH: check the file an earlier 'fastinit boot --memmap-file PATH' "
                    "wrote, against the serial reference; the machine is read from the "
                    "file's header (--dmesg or --spec, if given, must name the same "
                    "machine). A file whose run was killed or failed is reported "
                    "incomplete. Exit status 1 if any check fails or the file is incomplete.")
    _boot_args(verify)
    verify.add_argument("--memmap-file", metavar="PATH", type=_nonempty_path,
                        help="check this memmap file, which 'fastinit boot --memmap-file' "
                             "wrote, instead of booting")
    add_cluster_args(verify)


def _bench_command(commands) -> None:
    bench = commands.add_parser(
        "bench", help="deferred init against memset (the write limit) and the peers",
        description="Boot the machine repeatedly on one pre-faulted memmap for each thread "
                    "count and report deferred-init time (median, stdev), speedup, GB/s and "
                    "the ratio to glibc memset of a non-zero byte over the same bytes with the "
                    "same threads, all measured in this run; then the peers (numba.prange, "
                    "NumPy field by field, fastinit's plain-store kernel). First touch of the "
                    "memmap is reported separately. A thread count above the usable CPUs "
                    "is measured with the threads that really ran, and says so.")
    _machine_args(bench)
    bench.add_argument("--threads", default=None, metavar="1,2,...",
                       help="thread counts per node (default: 1 and every power of two up "
                            "to the usable CPUs)")
    bench.add_argument("--repeat", type=int, default=5, metavar="N",
                       help="boots per thread count (default 5)")
    bench.add_argument("--kernel", default="stream", choices=KERNELS,
                       help="deferred-init kernel to measure (default stream)")
    bench.add_argument("--no-peers", action="store_true", help="skip the peers")
    bench.add_argument("--plot", metavar="FILE.png",
                       help="draw time, speedup and GB/s against threads, with the peers "
                            "(.png, .svg or .pdf; needs the perf extra); checked before the "
                            "benchmark runs")


def main(argv: list[str] | None = None, *, exiting: bool = False,
         early: list[int] | None = None) -> int:
    """Run the command line; returns the exit status.

    ``exiting``: the process ends when this returns (the ``fastinit`` program): a SIGINT
    or SIGTERM after the work is done is ignored rather than ending the process as if it
    had stopped the work. ``early``: signals that came before (`fastinit.entry`), sent
    again once this run's handlers take them.
    """
    with stop_on_signals(exiting=exiting) as stopper:
        run = Run(stopper)
        try:
            for signum in early or ():
                signal.raise_signal(signum)  # its handler runs before the next line
            status = _main(argv, run)
            stopper.disarm()  # done: a signal from here on is only noted
        except Exception as error:
            # After a signal, whatever it broke (an import cut short raises ImportError)
            # is the interrupt, not an error of its own.
            stopper.disarm()
            if stopper.first is None:
                raise
            status = run.stopped(error)
        except KeyboardInterrupt as stop:
            stopper.disarm()
            status = run.stopped(stop)
    return status


def run(early: list[int] | None = None) -> int:
    """The ``fastinit`` program (``python -m fastinit.cli``; the console script enters
    through `fastinit.entry`, which passes the signals it noted as ``early``)."""
    status = main(exiting=True, early=early)
    # CPython marks a KeyboardInterrupt "unhandled" when it leaves code run by exec() of a
    # string (dataclasses and Numba generate code that way), even if it is caught later,
    # and then ends the process by SIGINT whatever its exit status. The interrupt was
    # handled; an exec() of a string clears the mark.
    exec("")
    return status


def _main(argv: list[str] | None, run: Run) -> int:
    import errno
    import warnings
    from fastinit.cli.cluster import cmd_cluster, wants_cluster
    from fastinit.cli.commands import cmd_bench, cmd_boot, cmd_topology, cmd_verify
    from fastinit.cli.output import (EXIT_OUTPUT, EXIT_PIPE, OutputError, as_flags, say,
                                     silence_stdout)
    from fastinit.engine.padata import OversubscriptionWarning
    handlers = {"topology": cmd_topology, "boot": cmd_boot, "bench": cmd_bench,
                "verify": cmd_verify}
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        run.command = f"fastinit {args.command}" if args.command else run.command
        if args.command == "boot" and args.memmap_file is not None:
            run.target = Target(args.memmap_file)
        if args.command is None:
            parser.print_help()
            status = 0
        else:
            with warnings.catch_warnings():
                # The commands say it themselves, naming the flag (warn_threads).
                warnings.simplefilter("ignore", OversubscriptionWarning)
                status = cmd_cluster(args) if wants_cluster(args) else \
                    handlers[args.command](args)
        try:
            sys.stdout.flush()
        except OSError as error:
            raise OutputError(error) from error
        return status
    except (BrokenPipeError, OutputError) as failure:
        if run.stopper.first is not None:
            raise  # the interrupt's doing (main says so)
        error = failure.error if isinstance(failure, OutputError) else failure
        silence_stdout()
        if error.errno == errno.EPIPE:
            return EXIT_PIPE  # the reader left (| head, | true): no message, like Unix tools
        say(f"{run.command}: error: cannot write the output: {error.strerror or error}")
        return EXIT_OUTPUT
    except (ValueError, TypeError) as error:
        if run.stopper.first is not None:
            raise
        say(f"{run.command}: error: {as_flags(str(error))}")
        return 2
