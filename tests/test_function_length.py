"""Functions one can hold in one's head: none in fastinit/ or kernels/ over 60 lines of code."""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60

# Still over the limit, in files other engineers were changing when the limit came in
# (issue 21): each to be split, then taken off this list. A function that grows past the
# limit fails the test; one on the list that shrinks below it fails it too (the list must
# not outlive its entries).
ALLOWED = {
    # A hand-written cleanup ladder: to become one contextlib.ExitStack (issue 21 item 2).
    "fastinit/arrays/create_open.py:open_file",
}


def code_lines(source_lines, node, docstrings) -> int:
    """Lines of ``node`` holding code: not blank, not only a comment, not a docstring."""
    first = min([d.lineno for d in node.decorator_list] + [node.lineno])
    return sum(1 for number in range(first, node.end_lineno + 1)
               if number not in docstrings and source_lines[number - 1].strip()
               and not source_lines[number - 1].lstrip().startswith("#"))


def function_lengths(path: Path) -> dict[str, int]:
    """``{"file:function": lines of code}`` for every function and method in ``path``
    (a nested function counts in itself and in the function around it)."""
    source = path.read_text()
    tree = ast.parse(source)
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef,
                                                              ast.AsyncFunctionDef))]
    docstrings = set()
    for node in functions:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                and isinstance(first.value.value, str):
            docstrings.update(range(first.lineno, first.end_lineno + 1))
    lines = source.splitlines()
    relative = path.relative_to(ROOT).as_posix()
    return {f"{relative}:{node.name}": code_lines(lines, node, docstrings)
            for node in functions}


def all_lengths() -> dict[str, int]:
    lengths = {}
    for folder in ("fastinit", "kernels"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for name, count in function_lengths(path).items():
                lengths[name] = max(count, lengths.get(name, 0))
    return lengths


def test_no_function_is_longer_than_60_lines_of_code():
    lengths = all_lengths()
    over = {name: count for name, count in lengths.items() if count > LIMIT}
    assert sorted(set(over) - ALLOWED) == [], {n: over[n] for n in set(over) - ALLOWED}
    assert sorted(name for name in ALLOWED if lengths.get(name, 0) <= LIMIT) == []


def test_the_count_skips_blank_lines_comments_and_docstrings(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "m.py").write_text(f'def f():\n    """Doc\n    string."""\n\n    # why\n{body}\n')
    assert function_lengths(tmp_path / "m.py") == {"m.py:f": LIMIT + 1}


def test_no_module_defines_a_name_twice():
    # A second `def kind_of` (a merge's leftover) silently replaced the first.
    twice = []
    for folder in ("fastinit", "kernels"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            seen = set()
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    if node.name in seen:
                        twice.append(f"{path.relative_to(ROOT).as_posix()}:{node.name}")
                    seen.add(node.name)
    assert twice == []
