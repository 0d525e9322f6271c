"""fastinit's build backend: setuptools', then the kernels compiled into the Numba cache.

pip runs this when it installs fastinit (``pip install .`` or ``pip install -e .``). After
setuptools built the wheel, the kernels of this source tree are compiled into the cache
folder the installed package will read (named by the kernels' key, under NUMBA_CACHE_DIR,
``$XDG_CACHE_HOME`` or ``~/.cache``: see ``kernels/_cache.py``), so the first ``fastinit
boot`` after an install runs warm. This costs the install about as long as a cold first
command would have (tens of seconds); FASTINIT_NO_PRECOMPILE=1 skips it, and a failure
only warns: the kernels then compile on first use, as they would have anyway.

The build environment has Numba (``build-system.requires``); where its Numba or NumPy
version differs from the one installed, the kernels' key differs and they compile on
first use.
"""

import os
import subprocess
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403 (every hook we do not override)

_TREE = Path(__file__).resolve().parent.parent


def _precompile() -> None:
    if os.environ.get("FASTINIT_NO_PRECOMPILE"):
        return
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_TREE), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, "-m", "fastinit.kernels._precompile"],
                          cwd=_TREE, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"warning: fastinit's kernels were not compiled ahead (they will compile on "
              f"first use):\n{done.stderr.strip()[-2000:]}", file=sys.stderr)
    else:
        print(done.stdout.strip(), file=sys.stderr)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    _precompile()
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _precompile()
    return name
