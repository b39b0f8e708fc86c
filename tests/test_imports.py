"""No import cycle among corral's modules, the imports made inside functions included.

A lazy import (`def f(): from x import y`) hides a cycle from the interpreter until the
function runs, and from import-linter's layers only when the two modules sit in one layer; it
still ties the two modules together, so the graph here holds every import statement anywhere
in a module. Imports under `if TYPE_CHECKING:` are left out: they never execute (the names
are only read by mypy, with `from __future__ import annotations`), so they can neither fail at
import time nor order module initialisation; a type that both modules mention is not a
dependency of either at run time. A package's own `__init__` is not added as an edge of each of
its modules (the interpreter imports it first, but the light `__init__`s import nothing back).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import corral

ROOT = Path(corral.__file__).parent
PACKAGES = ("core", "worktrees", "tui")
"""corral's subpackages (symbolic links in the source tree, so each is walked from its name)."""


def corral_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of corral by dotted name: (its file, whether it is a package's __init__)."""
    found = {"corral": (ROOT / "__init__.py", True)}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = ("corral", package, *path.relative_to(ROOT / package).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(tree: ast.Module, package: str) -> set[str]:
    """Every dotted name an import statement of `tree` may load, outside `if TYPE_CHECKING:`;
    `from pkg import name` yields both `pkg.name` (a module, if it is one) and `pkg`."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the corral modules it imports (the nearest enclosing module of each name)."""
    modules = corral_modules()
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for imported in _imported_names(ast.parse(path.read_text(), str(path)), package):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as [a, b, ..., a], or None (depth-first search, three colours)."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for target in sorted(graph.get(node, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        on_path.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_no_import_cycle_among_corrals_modules() -> None:
    graph = import_graph()
    assert len(graph) > 100  # every subpackage was walked, through its symbolic link
    assert "corral.core.findings.sarif" in graph["corral.core.findings.output"]
    assert "corral.core.agent.heartbeat_command" in graph["corral.core.entry"]  # a lazy import
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_graph_sees_lazy_relative_and_from_imports_but_not_type_checking(
    tmp_path: Path,
) -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .inner import thing\n"
        "if TYPE_CHECKING:\n"
        "    from corral.core.engine import scheduler\n"
        "else:\n"
        "    import corral.core.atomic\n"
        "def later():\n"
        "    from corral.core.log import events\n"
    )
    names = _imported_names(ast.parse(source), "corral.core.x")
    assert {"corral.core.x.sibling", "corral.core.x.inner.thing", "corral.core.atomic"} <= names
    assert "corral.core.log.events" in names
    assert "corral.core.engine.scheduler" not in names


def test_find_cycle_reports_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_agent_side_imports_only_the_standard_library() -> None:
    """corral.core.agent runs inside agents, often: any module added to it later is held to the
    standard library and its own package too (import-linter's contract names today's
    packages; this check needs no list). The one exception is corral.core.errors, the error
    root: one standard-library module that imports nothing (tests/core/test_errors.py)."""
    modules = corral_modules()
    agent_modules = [name for name in modules if name.startswith("corral.core.agent")]
    assert "corral.core.agent.heartbeat_command" in agent_modules
    outside = []
    for name in agent_modules:
        path, is_package = modules[name]
        package = name if is_package else name.rpartition(".")[0]
        for imported in _imported_names(ast.parse(path.read_text()), package):
            top = imported.partition(".")[0]
            if imported.startswith("corral.core.agent") or imported in ("", "__future__"):
                continue
            if imported == "corral.core.errors" or imported.startswith("corral.core.errors."):
                continue
            if top not in sys.stdlib_module_names:
                outside.append(f"{name} imports {imported}")
    assert outside == []


def test_only_corrals_mcp_modules_import_the_mcp_sdk() -> None:
    """The MCP SDK (and its anyio) costs most of a second to import: only `corral mcp`, whose
    modules are corral.core.mcp, may load it, never the heartbeat path or the engine."""
    modules = corral_modules()
    found = []
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        for imported in _imported_names(ast.parse(path.read_text()), package):
            if imported.partition(".")[0] in ("mcp", "mcp_types", "anyio"):
                found.append(name)
                break
    assert "corral.core.mcp.agent_server" in found
    assert [name for name in found if not name.startswith("corral.core.mcp.")] == []
