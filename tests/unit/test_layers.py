"""The package's layers point down: no import cycle among its modules, counting imports inside
functions (a cycle hidden in a function is still one a reader meets), and the models import
nothing above them. The package's ``__init__`` (the lazy public face) is left out."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "django_edgejobs"
#: What a module of each layer must never import (prefixes of module names).
ABOVE = {
    "django_edgejobs.models": ("django_edgejobs.services", "django_edgejobs.store",
                               "django_edgejobs.runtime", "django_edgejobs.admin",
                               "django_edgejobs.registry", "django_edgejobs.handlers",
                               "django_edgejobs.tasks"),
    "django_edgejobs.crontimes": ("django_edgejobs.",),
    "django_edgejobs.registry": ("django_edgejobs.store", "django_edgejobs.runtime",
                                 "django_edgejobs.admin", "django_edgejobs.services.enqueue",
                                 "django_edgejobs.handlers"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if "migrations" not in p.parts]
    modules = {module_name(p): p for p in files}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        if mod == "django_edgejobs":
            continue
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join([*parts, *([node.module] if node.module else [])])
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                         for a in node.names]
            else:
                continue
            for name in names:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != mod:
                    graph[mod].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while (w := stack.pop()) != v:
                comp.append(w)
            if comp:
                found.append(sorted([v, *comp]))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_lower_layers_import_nothing_above_them() -> None:
    wrong = [f"{mod} imports {dep}" for mod, deps in import_graph().items() for dep in deps
             for layer, banned in ABOVE.items()
             if (mod == layer or mod.startswith(layer + ".")) and dep.startswith(banned)]
    assert wrong == []
