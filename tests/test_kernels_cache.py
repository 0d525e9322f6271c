"""The kernels' on-disk cache: our own folder, keyed on every file the kernels depend on.

Each case runs fresh Python processes on a copy of the source tree with its own cache
folders, so nothing here depends on (or disturbs) the cache the rest of the suite uses.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from fastinit.kernels._cache import dependency_digest, dependency_files

ROOT = Path(__file__).resolve().parent.parent

# Runs a kernel whose output holds a layout constant (the lru link holds VMEMMAP_START).
KERNEL_RUN = """
import json, numpy as np, numba
import fastinit.kernels.page_init as page_init
from fastinit.layout import PAGE_DTYPE
pages = np.zeros(32768, PAGE_DTYPE)
page_init.init_pages_range(pages, np.zeros(1, np.int64), 0, 0, 1, np.uint64(0), False)
stats = page_init.init_pages_range.stats
result = {"lru": int(pages["lru_next"][0]), "hits": sum(stats.cache_hits.values()),
          "misses": sum(stats.cache_misses.values()), "path": stats.cache_path,
          "numba_cache_dir": numba.config.CACHE_DIR}
print(json.dumps(result))
"""

# Imports every kernel module; per kernel, its cache hits and misses.
ALL_KERNELS_RUN = """
import importlib, json, pkgutil
from numba.core.dispatcher import Dispatcher
import fastinit.kernels as package
found = {}
for info in pkgutil.iter_modules(package.__path__):
    module = importlib.import_module("fastinit.kernels." + info.name)
    for name, value in vars(module).items():
        if isinstance(value, Dispatcher) and value.py_func.__module__ == module.__name__:
            found[info.name + "." + name] = (sum(value.stats.cache_hits.values()),
                                             sum(value.stats.cache_misses.values()))
print(json.dumps(found))
"""

UNRELATED_LIBRARY = """
import numba

@numba.njit(cache=True)
def add_one(x):
    return x + 1
"""


def checkout(tmp_path: Path) -> Path:
    tree = tmp_path / "checkout"
    for folder in ("fastinit", "kernels"):
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def run(code: str, cwd: Path, home: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NUMBA_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / "xdg"), PYTHONPATH=str(cwd))
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_kernels_leaves_other_libraries_caches_alone(tmp_path):
    tree, home = checkout(tmp_path), tmp_path / "home"
    library = tmp_path / "library"
    library.mkdir()
    (library / "unrelated_library.py").write_text(UNRELATED_LIBRARY)
    code = KERNEL_RUN + f"""
import sys
sys.path.insert(0, {str(library)!r})
import unrelated_library
assert unrelated_library.add_one(1) == 2
print(json.dumps(dict(result, unrelated=unrelated_library.add_one.stats.cache_path)))
"""
    found = run(code, tree, home)
    assert found["numba_cache_dir"] == ""  # no process-wide setting changed
    ours = Path(found["path"])
    assert ours.is_relative_to(home / "xdg" / "fastinit")
    assert any(ours.glob("page_init.init_pages_range-*.nbi"))
    assert Path(found["unrelated"]) == library / "__pycache__"
    assert any((library / "__pycache__").glob("unrelated_library.add_one-*.nbi"))
    assert not list((home / "xdg").rglob("unrelated_library*"))


def test_an_edit_to_the_layout_recompiles_the_kernels_and_nothing_else_does(tmp_path):
    tree, home = checkout(tmp_path), tmp_path / "home"
    first = run(KERNEL_RUN, tree, home)
    again = run(KERNEL_RUN, tree, home)
    assert (again["hits"], again["misses"]) == (1, 0)
    assert again["lru"] == first["lru"]
    layout = tree / "fastinit" / "layout.py"
    text = layout.read_text()
    assert "VMEMMAP_START = 0xFFD4000000000000" in text
    layout.write_text(text.replace("VMEMMAP_START = 0xFFD4000000000000",
                                   "VMEMMAP_START = 0xFFD5000000000000"))
    edited = run(KERNEL_RUN, tree, home)
    assert (edited["hits"], edited["misses"]) == (0, 1)
    assert edited["lru"] == first["lru"] + 0x0001000000000000
    # Different code, a different folder: never code of one key under another's name
    assert edited["path"] != first["path"]
    assert Path(edited["path"]).parent == Path(first["path"]).parent


def test_the_cache_folder_is_named_by_the_code_not_by_where_the_tree_sits(tmp_path):
    # What lets the install's build step fill the cache the installed package reads.
    home = tmp_path / "home"
    first = run(KERNEL_RUN, checkout(tmp_path / "a"), home)
    moved = run(KERNEL_RUN, checkout(tmp_path / "b"), home)
    assert moved["path"] == first["path"]
    assert (moved["hits"], moved["misses"]) == (1, 0)


def test_every_kernel_loads_from_the_cache_on_a_warm_start(tmp_path):
    # A kernel Numba cannot cache (one whose code holds a Python object's address, such
    # as another kernel passed as an argument) would compile again in every process.
    tree, home = checkout(tmp_path), tmp_path / "home"
    cold = run(ALL_KERNELS_RUN, tree, home)
    warm = run(ALL_KERNELS_RUN, tree, home)
    assert "buddy_free.free_one_page" in cold and "buddy_alloc.free_ranges_to_zone" in cold
    assert warm.keys() == cold.keys()
    recompiled = {name: counts for name, counts in warm.items()
                  if counts[1] != 0 or counts[0] != cold[name][1]}
    assert recompiled == {}


def test_the_cache_key_covers_every_kernel_module_and_the_layout(tmp_path):
    files = dependency_files()
    names = {path.name for path in files}
    assert {"layout.py", "descriptors.py", "_jit.py", "buddy_free.py", "streaming.py"} <= names
    assert {p.name for p in (ROOT / "kernels").glob("*.py")} <= names
    copies = []
    for path in files:
        copies.append(tmp_path / f"{len(copies)}-{path.name}")
        copies[-1].write_bytes(path.read_bytes())
    before = dependency_digest(copies)
    for copy in copies:
        original = copy.read_bytes()
        copy.write_bytes(original + b"\n# edited\n")
        assert dependency_digest(copies) != before, copy.name
        copy.write_bytes(original)
    assert dependency_digest(copies) == before


def test_prune_removes_old_folders_of_other_keys_and_nothing_else(tmp_path):
    from fastinit.kernels._cache import prune, stamp
    key = stamp()[:16]
    names = [f"kernels-{key}", f"fill-{key}"]  # the current key's: kept however old
    names += [f"kernels-{n:016x}" for n in range(6)] + [f"fill-{n:016x}" for n in range(2)]
    names += ["kernels-notahexkey00000", "other-library", "kernels-0123"]  # not ours
    for age, name in enumerate(names):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.nbi").write_bytes(b"")
        # Folders of other keys: the first two recent, the rest a year old.
        days = 1 if name[-1] in "01" else 365 + age
        stamp_ns = os.stat(tmp_path).st_mtime_ns - days * 86400 * 10**9
        os.utime(tmp_path / name, ns=(stamp_ns, stamp_ns))
    removed = prune(keep=3, days=30, parents=[tmp_path])
    left = sorted(p.name for p in tmp_path.iterdir())
    # kernels-: 0 and 1 are recent and among the 3 newest, 2 is the third newest (kept),
    # 3, 4, 5 old and beyond the newest 3: removed. fill-: only two, both kept.
    assert sorted(p.name for p in removed) == [f"kernels-{n:016x}" for n in (3, 4, 5)]
    assert left == sorted(set(names) - {f"kernels-{n:016x}" for n in (3, 4, 5)})
