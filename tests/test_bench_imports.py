"""The bench modules import one another one way only: shared tables and the plan live in modules of their own."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The bench modules that `path` imports, at the top, in functions or under TYPE_CHECKING alike."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "bench":
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("bench."))
    return found - {path.stem}


def test_bench_imports_have_no_cycle() -> None:
    modules = {path.stem for path in BENCH.glob("*.py")}
    edges = {path.stem: _imports(path, modules) for path in BENCH.glob("*.py")}
    done: set[str] = set()

    def visit(module: str, chain: list[str]) -> None:
        if module in chain:
            raise AssertionError("bench imports in a circle: " + " → ".join([*chain[chain.index(module) :], module]))
        if module not in done:
            for target in sorted(edges.get(module, ())):
                visit(target, [*chain, module])
            done.add(module)

    for module in sorted(edges):
        visit(module, [])
    assert edges["tables"] == set() and edges["plan"] == set()  # the shared leaves import no other bench module
