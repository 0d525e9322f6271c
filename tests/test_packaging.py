"""Packaging: conda users and pip users get the same dependencies; kernels use one decorator."""

import ast
import re
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
    for path in list((ROOT / "kernels").glob("*.py")) + list((ROOT / "fastinit").glob("*.py")):
        if path.name == "_jit.py":
            continue
        for function, name in jit_decorators(ast.parse(path.read_text())):
            if name in {"njit", "jit", "generated_jit", "vectorize", "guvectorize"}:
                offenders.append(f"{path.name}:{function} uses @{name}")
    assert offenders == []
