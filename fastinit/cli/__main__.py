"""``python -m fastinit.cli``: the command line."""

import sys

from fastinit.cli import run

sys.exit(run())
