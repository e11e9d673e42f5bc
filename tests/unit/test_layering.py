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


def _violations(source: str, forbidden: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """Imports from package ``source`` into any of ``forbidden`` (packages or modules), except
    into the modules named in ``allowed``."""
    return sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if _under(module, source)
        for target in targets
        if any(_under(target, f) for f in forbidden) and target.removeprefix(f"{PACKAGE}.") not in allowed
    )


def test_the_walk_sees_the_packages() -> None:
    # A walk that found nothing would let every rule below pass; these imports are known to exist.
    assert "leofs.gateway.context" in GRAPH["leofs.gateway.app"]
    assert "leofs.storage.model" in GRAPH["leofs.node.coordinator"]
    assert "leofs.gateway.handlers.acl" in GRAPH["leofs.gateway.handlers"]  # `from pkg import mod`
    assert "leofs.gateway.uploads" in GRAPH["leofs.gateway.maintenance"]


_ROLES = ["manager", "gateway", "node", "embedded", "embedded_control", "workers", "gateway_workers", "process_pool",
          "cli"]

RULES: list[tuple[str, list[str], tuple[str, ...]]] = [
    # the engine knows nothing of roles, the cluster or S3
    ("storage", [*_ROLES, "s3", "internal"], ()),
    # the storage-node process: the engine on the cluster; no S3, no manager, no gateway
    ("node", [r for r in _ROLES if r != "node"] + ["s3"], ()),
    # a gateway never loads the manager (its SQLite store) nor the engine's writer: only its types
    ("gateway", ["manager", "node", "embedded", "embedded_control", "workers", "cli", "storage"], ("storage.model",)),
    # the manager reads S3 records (whereis) through the gateway's key layout and record formats,
    # and the engine's data types; never the S3 protocol
    ("manager", ["s3", "gateway", "node", "storage", "embedded", "embedded_control", "workers", "cli"],
     ("gateway.keys", "gateway.records", "storage.model")),
    ("internal", [*_ROLES, "s3", "storage"], ("storage.model",)),
    ("ring", [*_ROLES, "s3", "storage", "internal", "accounts"], ()),
    ("s3", [*_ROLES, "storage", "internal", "ring", "accounts"], ()),
    # pure modules: data types and rules every layer may use
    ("accounts", [*_ROLES, "s3", "storage", "internal", "ring", "names"], ()),
    ("names", [*_ROLES, "s3", "storage", "internal", "ring", "accounts"], ()),
    # the options of every role: pure, but for the ring's default vnodes
    ("config", [*_ROLES, "s3", "storage", "internal", "accounts", "names"], ()),
    ("gateway.keys", ["gateway", "s3", "storage", "internal", "ring", "accounts", "names", *_ROLES], ()),
]


@pytest.mark.parametrize(("source", "forbidden", "allowed"), RULES, ids=[r[0] for r in RULES])
def test_package_does_not_import(source: str, forbidden: list[str], allowed: tuple[str, ...]) -> None:
    assert _violations(source, forbidden, allowed) == []


def test_only_the_manager_and_the_embedded_server_open_the_manager_store() -> None:
    users = sorted(m for m, targets in GRAPH.items() if "leofs.manager.store" in targets)
    assert users and all(_under(m, "manager") or m in ("leofs.embedded", "leofs.embedded_control", "leofs.workers")
                         for m in users), users


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
