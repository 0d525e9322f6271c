"""The README's example for users' own arrays runs as written."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def example() -> str:
    text = README.read_text()
    section = text.split("## Your own arrays", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_own_arrays_example_runs_as_written_twice_and_leaves_nothing_behind(tmp_path):
    for _ in range(2):  # its file goes to a temporary folder: a second run is no different
        done = subprocess.run([sys.executable, "-c", example()], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split()[0] in ("MADV_POPULATE_WRITE", "touch") and \
            lines[0].endswith("True")
        assert lines[1].startswith("[(0, [ 0. ,  0. , -1. ], False) (1, [ 0.5,")
        assert lines[-2].startswith("complete (999999, [499999.5,") and "False" in lines[-2]
        assert lines[-1] == "True"  # numpy.load gives the same bytes
    assert list(tmp_path.iterdir()) == []
