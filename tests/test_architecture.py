"""The package's plan (docs/architecture.md), checked: the front door is the only typer user, the bottom
floor imports nothing of ours, nothing imports in a circle, files and functions stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "llm2rec"


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return out


MODULES = _modules()


def _imports(tree: ast.Module, top_level_only: bool) -> set[str]:
    """Modules of ours (and typer) that ``tree`` imports; ``from pkg import sub`` counts as ``pkg.sub``."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m.split(".")[0] in ("llm2rec", "typer")}


# The front door's other entrance: ``python -m llm2rec`` runs the command, and is no library module.
ENTRY_POINTS = {"llm2rec.__main__"}


def test_only_the_cli_imports_typer_and_nothing_imports_the_cli():
    for name, tree in MODULES.items():
        if name == "llm2rec.cli" or name.startswith("llm2rec.cli."):
            continue
        if name in ENTRY_POINTS:
            assert _imports(tree, top_level_only=False) == {"llm2rec.cli"}, (
                f"{name} does more than start the cli"
            )
            continue
        bad = {m for m in _imports(tree, top_level_only=False) if m == "typer" or m.startswith("llm2rec.cli")}
        assert not bad, f"{name} imports {bad}"


def test_errors_import_nothing_of_ours():
    assert _imports(MODULES["llm2rec.errors"], top_level_only=False) == set()


def test_no_import_cycle():
    graph = {name: _imports(tree, top_level_only=True) & set(MODULES) for name, tree in MODULES.items()}
    # A package's __init__ runs before its submodules; an edge to a parent package is an edge to it.
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_files_and_functions_stay_small(name):
    tree = MODULES[name]
    assert tree.body is not None
    path = PACKAGE.parent / (
        name.replace(".", "/")
        + ("/__init__.py" if (PACKAGE.parent / name.replace(".", "/")).is_dir() else ".py")
    )
    assert len(path.read_text(encoding="utf-8").splitlines()) <= 400, f"{path} is over 400 lines"
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body[1:] if ast.get_docstring(node) and len(node.body) > 1 else node.body
            lines = node.end_lineno - body[0].lineno + 1  # the body only: typer option lists are signatures
            assert lines <= 60, f"{name}.{node.name} has a {lines}-line body"
