"""Packaging: conda users and pip users get the same dependencies; kernels use one decorator;
the package and its kernels always come from one tree."""

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_names(requirements):
    return {re.split(r"[<>=!~ \[]", req.strip(), maxsplit=1)[0].lower() for req in requirements}


def conda_dependencies():
    """Package names under ``dependencies:``, without the nested ``pip:`` list."""
    names, section, item_indent = set(), None, None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        line = line.split("#")[0].rstrip()
        if re.match(r"^\w[\w-]*:", line):
            section = line.split(":")[0]
            continue
        match = re.match(r"^(\s*)- (\S+)", line)
        if section != "dependencies" or not match:
            continue
        item_indent = len(match.group(1)) if item_indent is None else item_indent
        if len(match.group(1)) == item_indent and not match.group(2).endswith(":"):
            names.add(re.split(r"[<>=!~ ]", match.group(2), maxsplit=1)[0].lower())
    return names


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = package_names(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= package_names(extra)
    conda = conda_dependencies() - {"python", "pip"}
    assert conda == wanted, f"only in environment.yml: {conda - wanted}; " \
                            f"only in pyproject.toml: {wanted - conda}"


def test_environment_yml_installs_the_project_itself():
    assert re.search(r"^\s+- -e \.\s*$", (ROOT / "environment.yml").read_text(), re.M)


def jit_decorators(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                name = target.attr if isinstance(target, ast.Attribute) else \
                    getattr(target, "id", "")
                yield node.name, name


def test_no_kernel_bypasses_the_shared_jit_decorator():
    offenders = []
    for path in list((ROOT / "kernels").glob("*.py")) + list((ROOT / "fastinit").rglob("*.py")):
        if path.name == "_jit.py":
            continue
        for function, name in jit_decorators(ast.parse(path.read_text())):
            if name in {"njit", "jit", "generated_jit", "vectorize", "guvectorize"}:
                offenders.append(f"{path.name}:{function} uses @{name}")
    assert offenders == []


def copy_tree(destination: Path) -> Path:
    """The package and its kernels copied as a source checkout has them."""
    for folder in ("fastinit", "kernels"):
        shutil.copytree(ROOT / folder, destination / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return destination


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def test_a_checkout_run_without_installing_imports_its_own_kernels(tmp_path):
    # Another tree (this one) is installed; the checkout in cwd must still use its own.
    checkout = copy_tree(tmp_path / "checkout")
    done = run_python("import fastinit.kernels as k; print(k.__file__)", checkout)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == checkout / "kernels" / "__init__.py"


def test_kernels_of_another_tree_refuse_to_load(tmp_path):
    checkout = copy_tree(tmp_path / "checkout")
    other = copy_tree(tmp_path / "other")
    # What a second clone's editable install does: map fastinit.kernels to its own folder.
    code = (f"import importlib.util, sys, fastinit\n"
            f"spec = importlib.util.spec_from_file_location('fastinit.kernels', "
            f"{str(other / 'kernels' / '__init__.py')!r})\n"
            f"module = importlib.util.module_from_spec(spec)\n"
            f"sys.modules['fastinit.kernels'] = module\n"
            f"spec.loader.exec_module(module)\n")
    done = run_python(code, checkout)
    assert done.returncode != 0
    assert "two different trees" in done.stderr
    assert str(other / "kernels") in done.stderr and str(checkout / "fastinit") in done.stderr


def test_pyproject_names_its_license_as_setuptools_77_wants_it():
    # The table form ({text = ...}) draws a deprecation warning from setuptools 77 on.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"
    assert "setuptools>=77" in project["build-system"]["requires"]


def test_the_sdist_carries_the_build_backend_pyproject_names(tmp_path):
    # pyproject's backend-path is _build_backend/: an sdist without it cannot be built.
    tree = copy_tree(tmp_path / "tree")
    for name in ("_build_backend", ):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "MANIFEST.in", "environment.yml"):
        shutil.copy(ROOT / name, tree / name)
    import setuptools
    if int(setuptools.__version__.split(".")[0]) < 77:
        # pip builds with the setuptools>=77 pyproject asks for; a venv's own older one
        # (what runs here) knows only the table form of the license.
        text = (tree / "pyproject.toml").read_text()
        (tree / "pyproject.toml").write_text(text.replace('license = "MIT"',
                                                          'license = { text = "MIT" }'))
    code = ("import sys; sys.path.insert(0, '_build_backend'); import fastinit_build; "
            "print(fastinit_build.build_sdist(sys.argv[1]))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tree,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    import tarfile
    with tarfile.open(tmp_path / done.stdout.split()[-1]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"_build_backend/fastinit_build.py", "pyproject.toml", "kernels/_cache.py",
            "fastinit/arrays/npyheader.py"} <= names
