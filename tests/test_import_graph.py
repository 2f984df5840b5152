"""initreg's import graph: no circle, no function-local import of its own modules but those that defer a
heavy optional dependency, and every module importable first, in any order, in a fresh interpreter.

The graph is read from the source (ast): every import that runs, at module level or in a function;
imports under ``if TYPE_CHECKING:`` never run and are left out. An import of a package's submodule is
an edge to that submodule (its package's ``__init__`` runs first, as for any import, and is no edge).

Run ``python tests/test_import_graph.py [root]`` to print the figures of a source tree (default: this one).
"""

from __future__ import annotations

import ast
import importlib.util
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "initreg"

# (importing module, imported module) -> what the function-local import defers: a heavy optional dependency,
# or initreg.checking, loaded on first use so that `import initreg` and the plain command stay light
DEFERRED_IMPORTS = {
    ("initreg", "initreg.checking"): "initreg.check, loaded on first use (tests/test_check.py pins it)",
    ("initreg.cli", "initreg.checking.command"): "the check sub-command, loaded only when it runs",
    ("initreg.backends.numpy", "initreg.backends.fused_cpu"): "numba, imported on the first draw; None without it",
    ("initreg.schemas", "initreg.typed_nodes"): "omegaconf, imported once a structured config is built",
    ("initreg.moments", "initreg.backends.fused_moments"): "numba, imported when the command measures a piece",
}
SHUFFLE_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Import:
    """One import statement's edge: `source` imports `target` at `line`, in a function if `local`."""

    source: str
    target: str
    line: int
    local: bool


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package under `root`, by dotted name."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _resolved(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module that `name` starts with, or None outside the package."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.Import | ast.ImportFrom, module: str, modules: dict[str, Path]) -> list[str]:
    """The package's modules an import statement in `module` imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the package `module` is in (or is, for an __init__)
            package = module.split(".")
            if modules[module].name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - node.level + 1]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    return sorted({t for t in (_resolved(name, modules) for name in names) if t is not None})


def imports(root: Path) -> list[Import]:
    """Every import of the package's own modules that runs (TYPE_CHECKING blocks left out)."""
    modules = module_files(root)
    found: list[Import] = []

    def visit(node: ast.AST, module: str, local: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, module, local)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.extend(Import(module, target, node.lineno, local) for target in _targets(node, module, modules))
        inner = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, module, inner)

    for module, path in modules.items():
        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), module, False)
    return found


def circles(edges: list[Import]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module (or one importing itself)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's algorithm; the graph is small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(groups)


def undeferred_local_imports(edges: list[Import]) -> list[Import]:
    """Function-local imports of the package's modules that defer no heavy optional dependency."""
    return [e for e in edges if e.local and (e.source, e.target) not in DEFERRED_IMPORTS]


def test_the_package_has_no_import_circle() -> None:
    assert circles(imports(ROOT)) == []


def test_function_local_imports_of_own_modules_only_defer_a_heavy_optional_dependency() -> None:
    assert [f"{e.source}:{e.line} imports {e.target}" for e in undeferred_local_imports(imports(ROOT))] == []
    local = {(e.source, e.target) for e in imports(ROOT) if e.local}
    assert set(DEFERRED_IMPORTS) <= local, "an import listed as deferred is no longer local: drop it from the list"


def test_the_reader_finds_a_planted_circle_and_a_local_import(tmp_path: Path) -> None:
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from initreg import a\n")
    (package / "a.py").write_text("from typing import TYPE_CHECKING\nfrom initreg.sub import b\nif TYPE_CHECKING:\n"
                                  "    from initreg import c\n")  # fmt: skip
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def late():\n    from .. import c\n")
    (package / "c.py").write_text("import initreg.a\n")
    edges = imports(tmp_path)
    assert circles(edges) == [["initreg.a", "initreg.c", "initreg.sub.b"]]
    assert undeferred_local_imports(edges) == [Import("initreg.sub.b", "initreg.c", 2, True)]
    (package / "sub" / "b.py").write_text("")
    assert circles(imports(tmp_path)) == []  # the TYPE_CHECKING import of c from a is no edge


@pytest.mark.parametrize("seed", SHUFFLE_SEEDS)
def test_every_module_imports_in_a_fresh_interpreter_in_any_order(seed: int) -> None:
    order = sorted(module_files(ROOT))
    random.Random(seed).shuffle(order)
    code = (
        "import importlib, sys\n"
        f"for name in {order!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ModuleNotFoundError as error:\n"  # an optional dependency not installed here (cupy, say)
        f"        if (error.name or '').split('.')[0] == {PACKAGE!r}:\n"
        "            raise\n"
        "        print('skipped', name, error.name)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    missing = {line.split()[2] for line in done.stdout.splitlines() if line.startswith("skipped ")}
    assert [name for name in missing if importlib.util.find_spec(name.split(".")[0]) is not None] == []


def main() -> None:
    root = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT
    edges = imports(root)
    local = [e for e in edges if e.local]
    found = circles(edges)
    print(f"modules: {len(module_files(root))}")
    print(f"imports of initreg's own modules: {len(edges)} ({len(local)} function-local)")
    for edge in local:
        reason = DEFERRED_IMPORTS.get((edge.source, edge.target), "defers no heavy optional dependency")
        print(f"  {edge.source}:{edge.line} -> {edge.target}  ({reason})")
    print(f"circles: {len(found)}")
    for group in found:
        print(f"  {len(group)} modules: {', '.join(group)}")


if __name__ == "__main__":
    main()
