"""The twins package's modules import each other one way: no cycle (images builds on
platforms, never the reverse), counting imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import patchtwin.twins

PACKAGE = Path(patchtwin.twins.__file__).parent
MODULES = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}


def imports(module: str) -> set[str]:
    """The package's modules that `module` imports (`from patchtwin.twins[.X] import ...`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "patchtwin.twins":
            found |= {alias.name for alias in node.names} & MODULES
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("patchtwin.twins."):
            found.add((node.module or "").split(".")[2])
    return found


def cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module):], module]
        path.append(module)
        for target in sorted(graph[module]):
            if found := visit(target):
                return found
        path.pop()
        return None

    return visit(start)


def test_no_module_of_twins_imports_itself_back() -> None:
    graph = {module: imports(module) for module in MODULES}
    assert "platforms" in graph["images"]
    cycles = [cycle for module in sorted(MODULES) if (cycle := cycle_from(module, graph))]
    assert cycles == []
