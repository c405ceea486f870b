"""The package's import graph: acyclic, and no module imports from a layer above its own.

Layers, bottom to top (DESIGN.md): the registry idiom, data, the zoo, metrics, callbacks,
evaluation, benchmark, the command line. Every import counts, at module level or inside a
function (a function-level import is still an arrow of the graph), except those under
``if TYPE_CHECKING:``, which only name a type for the checker and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "latentzoo"

# Top-level name -> layer; modules directly in latentzoo/ are listed by file.
LAYERS = {
    "registry": 0,
    "signals": 0,
    "datamodules": 1,
    "zoo": 2,
    "loading": 3,
    "metrics": 3,
    "callbacks": 4,
    "evaluation": 5,
    "benchmark": 6,
    "parsing": 7,
    "cli": 7,
    "__main__": 8,
    "__init__": 8,
    "configs": 9,  # make_configs.py, a script that writes the configs through the CLI
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # the package itself: its __init__
        return LAYERS["__init__"]
    return LAYERS[parts[1]]


def imports(path: Path) -> set[str]:
    """The latentzoo modules ``path`` imports (absolute imports; the repo uses no other)."""
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("latentzoo")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentzoo"):
            assert node.level == 0, f"{path}: relative import"
            base = node.module or ""
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return found


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node, less the bodies of ``if TYPE_CHECKING:`` blocks."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def test_every_top_level_module_has_a_layer() -> None:
    tops = {module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py") if "." in module_name(p)}
    assert tops <= set(LAYERS), sorted(tops - set(LAYERS))


@pytest.mark.parametrize("module", sorted(graph()))
def test_no_import_goes_up_a_layer(module: str) -> None:
    up = sorted(m for m in graph()[module] if layer(m) > layer(module))
    assert not up, f"{module} (layer {layer(module)}) imports {up}"


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()

    # A package's __init__ re-exports its modules: the edge package -> module is structural.
    # A cycle that runs through such an edge back into the package is a real cycle still,
    # except for the package importing its own children; drop only those.
    def children(pkg: str, mods: set[str]) -> set[str]:
        return {m for m in mods if not m.startswith(pkg + ".")}

    edges = {m: children(m, deps) for m, deps in edges.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if state.get(node) is None:
            visit(node)
