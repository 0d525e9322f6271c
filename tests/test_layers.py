"""The layers import only downward: the tree reads as the pipeline, and no stage reaches up.

    host  <-  engine  <-  machine  <-  mm (with the kernels)  <-  bench, report, cli
    layout, engine, kernels  <-  arrays (users' own arrays)  <-  mm, bench
    mm, bench, distributed  <-  report (presentation)  <-  cli
    units and validate (stdlib only) below them all

Imports are read from the source (every ``import`` and ``from ... import``, also inside
functions), so a lazy import cannot hide an upward dependency.
"""

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each layer may import of ours, besides itself.
ALLOWED = {
    # Rounding and byte amounts (stdlib only), below every layer: see BOTTOM.
    "fastinit.units": set(),
    # Argument checks (stdlib only), below every layer too: every layer checks its callers.
    "fastinit.validate": set(),
    "fastinit.layout": set(),
    # What the host lets this process use (CPUs, cgroup limits, memory, niceness).
    "fastinit.host": set(),
    "fastinit.engine": {"fastinit.host"},
    "fastinit.kernels": {"fastinit.layout"},
    "fastinit.machine": {"fastinit.layout", "fastinit.engine"},
    "fastinit.arrays": {"fastinit.layout", "fastinit.engine", "fastinit.kernels"},
    "fastinit.mm": {"fastinit.layout", "fastinit.engine", "fastinit.machine",
                    "fastinit.kernels", "fastinit.arrays"},
    # HugeTLB pools and HVO: a room of mm below the boot (run.py calls its jobs, verify.py
    # its checks), so it takes nothing from them.
    "fastinit.mm.hugetlb": {"fastinit.layout", "fastinit.engine", "fastinit.machine",
                            "fastinit.kernels", "fastinit.arrays", "fastinit.mm.plan",
                            "fastinit.mm.memmap", "fastinit.mm.watermarks",
                            "fastinit.mm.expected", "fastinit.mm.early", "fastinit.mm.buddy"},
    "fastinit.bench": {"fastinit.layout", "fastinit.engine", "fastinit.machine",
                       "fastinit.kernels", "fastinit.arrays", "fastinit.mm",
                       "fastinit.mm.hugetlb"},
    # Nodes as dask tasks: may use everything below the command line and its reports.
    "fastinit.distributed": {"fastinit.layout", "fastinit.engine", "fastinit.machine",
                             "fastinit.kernels", "fastinit.arrays", "fastinit.mm",
                             "fastinit.mm.hugetlb", "fastinit.bench"},
    # Presentation, one package above all it presents (a cluster's results included:
    # test_the_reports_import_no_dask keeps the optional extra optional).
    "fastinit.report": {"fastinit.layout", "fastinit.machine", "fastinit.mm",
                        "fastinit.mm.hugetlb", "fastinit.bench", "fastinit.distributed"},
    # fastinit.boot: one process; it takes node digests from distributed.digest (no dask).
    "fastinit.api": {"fastinit.engine", "fastinit.machine", "fastinit.mm",
                     "fastinit.mm.hugetlb", "fastinit.distributed"},
}
# The host lies below the engine: whoever may use the engine may use the host.
for _layer, _below in ALLOWED.items():
    if "fastinit.engine" in _below:
        _below.add("fastinit.host")
# What every layer may import.
BOTTOM = {"fastinit.units", "fastinit.validate"}
# The rest of mm may use the HugeTLB room (the plan places pools, run.py runs them).
ALLOWED["fastinit.mm"].add("fastinit.mm.hugetlb")


def module_files():
    for path in sorted((ROOT / "fastinit").rglob("*.py")):
        relative = path.relative_to(ROOT).with_suffix("")
        yield ".".join(relative.parts).removesuffix(".__init__"), path
    for path in sorted((ROOT / "kernels").glob("*.py")):
        yield "fastinit.kernels" + ("" if path.stem == "__init__" else "." + path.stem), path


def module_names() -> set[str]:
    return _module_names(ROOT)


@functools.lru_cache
def _module_names(root: Path) -> frozenset[str]:
    return frozenset(name for name, _ in module_files())


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def our_imports(path: Path, module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative imports resolve against the importing package
                parts = module.split(".")[:-node.level]
                base = ".".join(parts + [node.module])
            names = {f"{base}.{alias.name}" for alias in node.names}
            # `from package import submodule` needs the submodule; the package itself
            # only as every submodule's parent (parents are no edge, see import_cycles).
            if not names <= module_names():
                found.add(base)
            found |= names
    return {name for name in found if name == "fastinit" or name.startswith("fastinit.")}


def test_layer_table_covers_every_module_but_the_front_ends():
    unplaced = [m for m, _ in module_files() if layer_of(m) is None]
    assert sorted(unplaced) == ["fastinit", "fastinit.cli", "fastinit.cli.__main__",
                                "fastinit.cli.cluster",
                                "fastinit.cli.commands", "fastinit.cli.output",
                                "fastinit.cli.stopped", "fastinit.entry"]


@pytest.mark.parametrize("module,path", list(module_files()), ids=lambda v: str(v))
def test_module_imports_only_its_own_layer_and_those_below(module, path):
    layer = layer_of(module)
    if layer is None:
        pytest.skip("the package root and the CLI may import anything")
    upward = []
    for name in our_imports(path, module):
        target = layer_of(name)
        if name == "fastinit" and layer not in ("fastinit.layout", "fastinit.engine"):
            continue  # the root (version, the tree check) imports only the engine eagerly
        if target is None:
            # `from fastinit.mm import verify` names the package; the layer is its own.
            upward.append(name)
        elif target != layer and not any(name == below or name.startswith(below + ".")
                                         for below in ALLOWED[layer] | BOTTOM):
            upward.append(name)
    assert upward == [], f"{module} imports {upward} from a layer above {layer}"


def import_cycles() -> list[list[str]]:
    """The groups of our modules that import each other, eagerly or inside functions
    (Tarjan's strongly connected components of the import graph)."""
    files = dict(module_files())
    graph = {m: sorted(n for n in our_imports(p, m) if n in files and n != m)
             for m, p in files.items()}
    order, low, stack, cycles = {}, {}, [], []

    def visit(module):
        order[module] = low[module] = len(order)
        stack.append(module)
        for name in graph[module]:
            if name not in order:
                visit(name)
                low[module] = min(low[module], low[name])
            elif name in stack:
                low[module] = min(low[module], order[name])
        if low[module] == order[module]:
            group = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in graph:
        if module not in order:
            visit(module)
    return cycles


def test_the_boot_and_its_hugetlb_room_import_in_no_cycle():
    # mm/plan.py places the pools (hugetlb.plan); the pools' report (fastinit.report.hugetlb)
    # plans a topology's pools through mm/plan.py: nothing may lead back, not even lazily.
    cycles = [group for group in import_cycles()
              if any(m.startswith("fastinit.mm") for m in group)]
    assert cycles == []


def test_no_modules_of_ours_import_each_other_in_a_cycle():
    # Issue 21: none at all, eager or function-local (a cycle through arrays/__init__,
    # create_open and handle was the last).
    assert import_cycles() == []


def test_the_cycle_finder_finds_a_lazy_import_cycle(tmp_path, monkeypatch):
    package = tmp_path / "fastinit"
    package.mkdir()
    (package / "a.py").write_text("import fastinit.b\n")
    (package / "b.py").write_text("def f():\n    from fastinit import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_cycles() == [["fastinit.a", "fastinit.b"]]


def imported_of(modules: str, condition: str) -> list[str]:
    """The modules a fresh interpreter holds after ``import modules`` for which the
    expression ``condition`` (of ``m``, a module name) is true."""
    program = (f"import sys, {modules}\n"
               f"print(sorted(m for m in sys.modules if {condition}))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          check=True)
    return ast.literal_eval(done.stdout)


def test_a_boot_without_verify_or_pools_compiles_none_of_their_kernels():
    # Each of these kernel groups costs about 5 s to compile on a cold Numba cache: a plain
    # boot and its report must not import them (the report types live in verify_report).
    assert imported_of("fastinit.cli.commands, fastinit.report.boot, fastinit.mm.run",
                       "m in ('fastinit.mm.verify', 'fastinit.kernels.check_sections', "
                       "'fastinit.mm.hugetlb.jobs', 'fastinit.mm.hugetlb.verify', "
                       "'fastinit.kernels.compound', 'fastinit.kernels.buddy_alloc')") == []


def test_the_reports_import_no_dask():
    # A cluster's report reads its result types only; dask is the optional extra.
    assert imported_of("fastinit.report.boot, fastinit.report.cluster, "
                       "fastinit.report.hugetlb",
                       "m.split('.')[0] in ('dask', 'distributed')") == []


def test_verify_of_a_boot_without_pools_compiles_none_of_the_pool_kernels():
    assert imported_of("fastinit.mm.verify",
                       "m in ('fastinit.mm.hugetlb.verify', 'fastinit.kernels.compound', "
                       "'fastinit.kernels.buddy_alloc')") == []
