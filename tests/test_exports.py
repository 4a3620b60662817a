"""Every module of relay states its public API in `__all__`, sorted and complete.

For each module under `src/relay` (read as source, nothing is imported):

- `__all__` is a literal list or tuple of strings, with no name twice;
- it is sorted as ruff's RUF022 sorts it ("isort-style": SCREAMING_SNAKE_CASE constants,
  then CamelCase classes, then the rest, each group in natural order), so the rule reads
  the same here, in ruff and in review;
- it names only what the module binds at top level (defines, assigns or imports), so
  `from relay.x import *` and the docs never promise a name that is not there;
- it holds every public (not `_`-prefixed) function and class the module defines at top
  level, so a new public function cannot slip in unexported; a helper that is not API
  gets a leading underscore instead.

Public constants, type aliases and re-exported imports are not required to be listed
(a module may use `Final` values internally); when listed, they must exist.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "relay"

# Modules that fail today, all in packages being restructured elsewhere. Strict: fixing
# one turns its xfail into a failure that says to remove it from this table. A function
# that is not API gets a leading underscore; one that is goes into `__all__`.
KNOWN_FAILURES: dict[str, str] = {}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _path(module: str) -> Path:
    base = SRC.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _top_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements run at import: the body, and the branches of top-level if/try/with."""
    found: list[ast.stmt] = []
    for node in body:
        found.append(node)
        if isinstance(node, ast.If | ast.For | ast.While):
            found.extend(_top_level(node.body + node.orelse))
        elif isinstance(node, ast.With | ast.AsyncWith):
            found.extend(_top_level(node.body))
        elif isinstance(node, ast.Try | ast.TryStar):
            found.extend(_top_level(node.body + node.orelse + node.finalbody))
            for handler in node.handlers:
                found.extend(_top_level(handler.body))
    return found


def _targets(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [name for element in node.elts for name in _targets(element)]
    return []


def _bound(tree: ast.Module) -> set[str]:
    """Every name the module binds at top level."""
    names: set[str] = set()
    for node in _top_level(tree.body):
        match node:
            case ast.FunctionDef() | ast.AsyncFunctionDef() | ast.ClassDef():
                names.add(node.name)
            case ast.Assign():
                names.update(n for target in node.targets for n in _targets(target))
            case ast.AnnAssign() | ast.AugAssign():
                names.update(_targets(node.target))
            case ast.Import():
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            case ast.ImportFrom():
                names.update(a.asname or a.name for a in node.names)
    return names


def _defined_public(tree: ast.Module) -> set[str]:
    """The public functions and classes the module itself defines at top level."""
    return {
        node.name
        for node in _top_level(tree.body)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        and not node.name.startswith("_")
    }


def _dunder_all(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any("__all__" in _targets(target) for target in targets):
            assert isinstance(node, ast.Assign | ast.AnnAssign)
            value = node.value
            assert isinstance(value, ast.List | ast.Tuple), "__all__ is not a literal list"
            names = []
            for element in value.elts:
                literal = element.value if isinstance(element, ast.Constant) else None
                assert isinstance(literal, str), f"__all__ holds {ast.unparse(element)}"
                names.append(literal)
            return names
    return None


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """RUF022's order: constants, then classes, then the rest; natural order within."""
    if len(name) > 1 and name.isupper():
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural: list[int | str] = [
        int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)
    ]
    return group, natural


def _problems(module: str) -> list[str]:
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    exported = _dunder_all(tree)
    if exported is None:
        return ["no __all__"]
    problems = []
    twice = sorted({name for name in exported if exported.count(name) > 1})
    if twice:
        problems.append(f"listed twice: {twice}")
    wanted = sorted(exported, key=_isort_key)
    if exported != wanted:
        problems.append(f"not sorted; RUF022's order is {wanted}")
    unbound = sorted(set(exported) - _bound(tree))
    if unbound:
        problems.append(f"names what the module does not bind: {unbound}")
    missing = sorted(_defined_public(tree) - set(exported))
    if missing:
        problems.append(f"leaves out public functions/classes it defines: {missing}")
    return problems


def _params() -> list[object]:
    return [
        pytest.param(
            module,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[module]),
        )
        if module in KNOWN_FAILURES
        else module
        for module in _modules()
    ]


@pytest.mark.parametrize("module", _params())
def test_all_is_sorted_and_complete(module: str) -> None:
    problems = _problems(module)
    assert not problems, f"{module}: " + "; ".join(problems)


def test_every_module_is_checked_and_every_known_failure_exists() -> None:
    modules = _modules()
    assert len(modules) > 40, modules  # the walk found the package
    assert set(KNOWN_FAILURES) <= set(modules), "a known failure names no module: drop it"


@pytest.mark.parametrize(
    ("names", "ordered"),
    [
        (["b", "a"], ["a", "b"]),
        (["run", "Relay", "MAX"], ["MAX", "Relay", "run"]),
        (["KINDS", "ErrorBody", "STATUSES"], ["KINDS", "STATUSES", "ErrorBody"]),
        (["v10", "v9", "T"], ["T", "v9", "v10"]),
    ],
)
def test_the_order_is_ruffs(names: list[str], ordered: list[str]) -> None:
    assert sorted(names, key=_isort_key) == ordered
