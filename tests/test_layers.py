"""The layers of DESIGN.md, read from the source: data flows one way.

Every import counts, also one inside a function: a lazy import hides a
dependency from the reader, not from the interpreter. `sim`, `check`,
`trace` and `run` never reach up into `report` or `cli`; `raftcore` never
imports `virtraft`; and no two virtraft modules import each other, however
indirectly.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LOWER = ("virtraft.sim", "virtraft.check", "virtraft.trace", "virtraft.run")
UPPER = ("virtraft.report", "virtraft.cli")


def _modules(package: str) -> dict[str, Path]:
    modules = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


VIRTRAFT = _modules("virtraft")


@pytest.mark.parametrize("module", [m for m in VIRTRAFT if _within(m, LOWER)])
def test_the_lower_layers_never_import_report_or_cli(module):
    upward = sorted(n for n in _imports(VIRTRAFT[module]) if _within(n, UPPER))
    assert upward == [], f"{module} imports {upward}"


def test_raftcore_never_imports_virtraft():
    for module, path in _modules("raftcore").items():
        assert not [n for n in _imports(path) if _within(n, ("virtraft",))], module


def test_no_import_cycle_between_virtraft_modules():
    edges: dict[str, set[str]] = {}
    for module, path in VIRTRAFT.items():
        targets = set()
        for name in _imports(path):
            while name and name not in VIRTRAFT:  # `from a.b import c` names a.b (or a.b.c)
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])
