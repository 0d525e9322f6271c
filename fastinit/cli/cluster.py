"""``--cluster``: boot and verify with one node per dask worker (fastinit.distributed)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from fastinit.cli.output import emit, say
from fastinit.engine.progress import ProgressBar

# A node's task failed or its worker died (after any retries).
EXIT_CLUSTER = 3


def add_cluster_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "cluster", "one NUMA node per dask worker, for memmaps no single computer holds "
                   "(needs the distributed extra: pip install 'fastinit[distributed]')")
    group.add_argument("--cluster", metavar="ADDRESS",
                       help="local:N starts N dask worker processes on this computer; "
                            "tcp://HOST:8786 uses a running 'dask scheduler' and its "
                            "'dask worker's (default: this process alone)")
    checks = parser.prog.endswith("verify")  # verify reads the files a boot left there
    group.add_argument("--memmap-dir", metavar="DIR",
                       help="with --cluster: check each node's file DIR/node<N>.memmap on "
                            "the worker whose disk holds it, and name any node whose file "
                            "is missing" if checks else
                            "with --cluster: each node's memmap in the file "
                            "DIR/node<N>.memmap on its worker's disk (default: in memory)")
    group.add_argument("--retries", type=int, default=0, metavar="N",
                       help="with --cluster: boot a node again on another worker, up to N "
                            "times, when its worker dies (default 0)")
    group.add_argument("--digests", action="store_true",
                       help="print each node's SHA-256 digest of its descriptors, "
                            "pageblocks and zones, in one process or with --cluster "
                            "(compare boots node by node)")


def wants_cluster(args: argparse.Namespace) -> bool:
    """Whether the command runs on a cluster; ValueError for cluster flags without one."""
    if getattr(args, "cluster", None) is not None:
        if getattr(args, "memmap_file", None) is not None:
            raise ValueError("--memmap-file is one file on this computer; with --cluster "
                             "each node has its own: --memmap-dir DIR")
        if getattr(args, "nice", None) is not None:
            raise ValueError("--nice applies to boots in this process; a dask worker's "
                             "niceness is its own (start it with nice -n N dask worker ...)")
        return True
    for flag, value, fix in (
            ("--memmap-dir", getattr(args, "memmap_dir", None), "one file: --memmap-file PATH"),
            ("--retries", getattr(args, "retries", 0) or None, "drop it")):
        if value is not None:
            raise ValueError(f"{flag} applies to --cluster boots (in one process, {fix})")
    return False


def cmd_cluster(args: argparse.Namespace) -> int:
    """``fastinit boot|verify --cluster ...``."""
    # What goes wrong on the cluster is said once, in fastinit's words: a lost scheduler
    # would otherwise add distributed's own error lines and tracebacks to it.
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        return _cmd_cluster(args)
    finally:
        logging.disable(previous)


def _cmd_cluster(args: argparse.Namespace) -> int:
    from fastinit.distributed.cluster import MissingExtraError
    from fastinit.distributed.run import NodeFailedError
    try:
        if args.command == "verify" and args.memmap_dir is not None:
            return _verify_files(args)
        return _boot(args, verify=args.command == "verify" or args.verify)
    except MissingExtraError as error:
        say(f"fastinit {args.command}: error: {error}")
        return 2
    except NodeFailedError as error:
        say(f"fastinit {args.command}: FAILED: {error}")
        return EXIT_CLUSTER


def _boot(args: argparse.Namespace, verify: bool) -> int:
    from fastinit.cli.commands import load_topology, warn_threads
    from fastinit.distributed.api import cluster_boot
    from fastinit.report.cluster import cluster_boot_json, cluster_boot_lines
    from fastinit.mm.plan import plan_boot
    topology, _ = load_topology(args)
    warn_threads(args.command, args.threads)
    bar = None
    if sys.stderr.isatty() and not args.no_progress and not args.json:
        plan = plan_boot(topology, args.arch, args.threads)
        bar = ProgressBar(sum(n.job[1] - n.job[0] for n in plan.nodes),
                          "deferred init (all nodes)", unit_bytes=64)
    try:
        result = cluster_boot(topology, args.cluster, arch=args.arch, threads=args.threads,
                              kernel=args.kernel, force=getattr(args, "force", False),
                              verify=verify, digests=args.digests, retries=args.retries,
                              memmap_dir=args.memmap_dir, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        emit(json.dumps(cluster_boot_json(result), indent=2))
    else:
        emit("\n".join(cluster_boot_lines(result, args.digests)))
    verification = result.verification
    return 1 if verification is not None and not verification.ok else 0


def _verify_files(args: argparse.Namespace) -> int:
    from fastinit.cli.commands import load_topology
    from fastinit.distributed.files import verify_files
    from fastinit.report.cluster import cluster_boot_json, cluster_boot_lines
    named = args.dmesg is not None or args.spec is not None
    topology = load_topology(args)[0] if named else None
    result, problems = verify_files(args.cluster, args.memmap_dir, topology,
                                    digests=args.digests)
    if problems:
        for problem in problems:
            say(f"fastinit verify: FAILED: {problem}")
        return 1
    if args.json:
        emit(json.dumps(cluster_boot_json(result), indent=2))
    else:
        emit("\n".join(cluster_boot_lines(result, args.digests)))
    return 0 if result.verification.ok else 1
