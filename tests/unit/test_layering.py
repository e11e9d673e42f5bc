"""The package layering of src/leofs, read from the source with `ast` so it stays true.

Every import counts: module level, under TYPE_CHECKING, and inside function bodies.
The rules are the ones docs/architecture.md draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = "leofs"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved)."""
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, anywhere in its body."""
    files = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", node)
                # `from pkg import mod` imports a module; `from mod import name` a name.
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            else:
                continue
            targets.update(n for n in names if n in files and n != module)
        graph[module] = targets
    return graph


GRAPH = import_graph()


def _under(module: str, package: str) -> bool:
    return module == f"{PACKAGE}.{package}" or module.startswith(f"{PACKAGE}.{package}.")


def _violations(source: str, forbidden: list[str]) -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _under(module, source)
        for target in targets
        if any(target == f"{PACKAGE}.{f}" or _under(target, f) for f in forbidden)
    )


def test_the_walk_sees_the_packages() -> None:
    # A walk that found nothing would let every rule below pass.
    assert GRAPH.get("leofs.gateway.app")
    assert "leofs.storage.store" in GRAPH


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("storage", ["manager", "gateway", "node", "s3", "embedded", "cli"]),
        ("gateway", ["manager.store", "node", "embedded", "cli"]),
        ("node", ["manager.store", "gateway", "s3", "embedded", "cli"]),
        ("manager", ["s3", "gateway", "node", "storage", "embedded", "cli"]),
        ("internal", ["manager", "gateway", "node", "s3", "embedded", "cli"]),
        ("ring", ["manager", "gateway", "node", "storage", "internal", "s3", "embedded", "cli"]),
        ("s3", ["manager", "gateway", "node", "storage", "internal", "ring", "embedded", "cli"]),
        ("accounts", ["manager", "gateway", "node", "storage", "internal", "ring", "s3", "embedded", "cli"]),
        ("names", ["manager", "gateway", "node", "storage", "internal", "ring", "s3", "embedded", "cli"]),
    ],
)
def test_package_does_not_import(source: str, forbidden: list[str]) -> None:
    assert _violations(source, forbidden) == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles() -> None:
    assert _cycles() == []
