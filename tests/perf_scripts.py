"""The scripts of perf/ as modules, for tests that reuse what a script measures or checks
(perf/ is a folder of scripts, not a package)."""

import importlib.util
from pathlib import Path

PERF = Path(__file__).resolve().parents[1] / "perf"


def perf_script(name: str):
    """``perf/<name>.py`` imported by path, as a fresh module (its ``main`` does not run)."""
    spec = importlib.util.spec_from_file_location(name, PERF / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
