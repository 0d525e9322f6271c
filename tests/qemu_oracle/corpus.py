"""Captured boots kept as test cases, so the default suite checks them without QEMU.

A case is a directory under tests/data/qemu/: ``serial.log`` (the guest's whole serial
console, byte for byte: the boot log, then zoneinfo, huge page counts and /proc/cmdline)
and ``case.json`` (the layout, the QEMU command, the kernel, the boot time, and what the
comparison found when the case was captured).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from qemu_oracle.generate import Layout

CORPUS = Path(__file__).resolve().parents[1] / "data" / "qemu"


@dataclass(frozen=True)
class Case:
    """One captured boot."""

    name: str
    layout: Layout
    serial: str
    meta: dict


def save_case(directory: str | Path, name: str, layout: Layout, serial: str,
              meta: dict) -> Path:
    """Write a case to ``directory/name`` (created; an existing case is replaced)."""
    path = Path(directory) / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "serial.log").write_bytes(serial.encode("utf-8", errors="replace"))
    document = {"layout": layout.to_json(), **meta}
    (path / "case.json").write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def load_case(path: str | Path) -> Case:
    """Read a case directory."""
    path = Path(path)
    document = json.loads((path / "case.json").read_text())
    serial = (path / "serial.log").read_bytes().decode("utf-8", errors="replace")
    layout = Layout.from_json(document.pop("layout"))
    return Case(path.name, layout, serial, document)


def cases(directory: str | Path = CORPUS) -> list[Path]:
    """Every case directory, sorted by name."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / "case.json").is_file())
