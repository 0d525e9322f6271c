"""The README's quick start: a virtual environment, one install, and its commands run as
written; the Python API example runs as written, twice."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def block(section: str, language: str = "") -> str:
    text = README.read_text().split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", text, re.S).group(1)


def quick_start() -> list[str]:
    return [line.strip() for line in block("Quick start").splitlines() if line.strip()]


def test_the_quick_start_makes_a_venv_and_installs_once_for_both_commands():
    commands = quick_start()
    assert commands[0].startswith("python3 -m venv .venv")
    installs = [c for c in commands if "pip install" in c]
    assert installs == ["python -m pip install -e '.[test]'"]
    assert commands[-2:] == ["fastinit boot", "pytest"]


def test_the_quick_start_boot_runs_as_written(tmp_path):
    # The installed command, in this environment (the install itself is test_install_warm).
    command = shlex.split(quick_start()[-2])
    fastinit = Path(sys.executable).with_name("fastinit")
    done = subprocess.run([str(fastinit), *command[1:]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "deferred pages initialised in" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_the_python_api_example_runs_as_written_twice(tmp_path):
    code = block("The Python API", "python")
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, timeout=600,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        first = done.stdout.splitlines()[0].split()
        assert first[0] == "True" and len(first[2]) == 16
    assert list(tmp_path.iterdir()) == []
