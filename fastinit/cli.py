"""The ``fastinit`` command line."""

from __future__ import annotations

import argparse
import sys

import fastinit

DESCRIPTION = """\
fastinit simulates how Linux initializes struct page for every page of memory at boot
("deferred struct page init"), in parallel with a padata-style job engine and Numba
kernels, for this machine, a machine described by its kernel boot log, or a short spec.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastinit", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"fastinit {fastinit.__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
