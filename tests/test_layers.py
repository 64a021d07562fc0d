"""The architecture holds: the layers contract, no import cycle, no product
import of tests, and no lazy import hiding a dependency.

The contract itself is `[tool.importlinter]` in pyproject.toml: raftcore
never imports virtraft, and each virtraft layer imports only those below it.
Every import counts here, also one inside a function: a lazy import hides a
dependency from the reader, not from the interpreter.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("raftcore", "virtraft")
# Imports inside a function are allowed only for these: optional extras, and
# the CLI's subcommands (each loads what it needs, so `virtraft --help`
# starts fast). Anything else lazy would be hiding a cycle.
LAZY_ALLOWED_MODULES = ("distributed",)
LAZY_ALLOWED_IN = ("virtraft/cli/commands.py",)


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names]


def test_the_layers_contract_is_kept() -> None:
    done = _lint(ROOT, ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_no_product_module_imports_tests() -> None:
    offenders = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom) and any(
                name == "tests" or name.startswith("tests.") for name in _imported(node)
            ):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_no_lazy_import_dodges_a_cycle() -> None:
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT).as_posix()
        if rel in LAZY_ALLOWED_IN:
            continue
        tree = ast.parse(path.read_text())
        for func in ast.walk(tree):
            if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = _imported(node)
                    if not all(n.split(".")[0] in LAZY_ALLOWED_MODULES for n in names):
                        offenders.append(f"{rel}:{node.lineno} {', '.join(names)}")
    assert offenders == []


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(lint), "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env
    )


def test_the_contract_would_catch_an_upward_import(tmp_path: Path) -> None:
    """The contract can fail: a copy of the tree whose sim imports the report breaks it."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "virtraft" / "sim" / "probe.py").write_text("import virtraft.report.summary\n")
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "virtraft.sim.probe" in done.stdout


def _modules(package: str) -> dict[str, Path]:
    modules = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under `if TYPE_CHECKING:` (imports for type hints
    only, which never run; import-linter leaves them out too)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            skipped.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return [n for n in ast.walk(tree) if id(n) not in skipped]


def _names(path: Path) -> set[str]:
    """Every module name an absolute import in `path` names (`from a import b`
    names a and a.b)."""
    names = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_no_import_cycle_between_virtraft_modules() -> None:
    modules = _modules("virtraft")
    graph = nx.DiGraph()
    for module, path in modules.items():
        for name in _names(path):
            while name and name not in modules:  # a.b.c names module a.b, or a
                name = name.rpartition(".")[0]
            if name and name != module:
                graph.add_edge(module, name)
    cycles = list(nx.simple_cycles(graph))
    assert cycles == [], " ; ".join(" -> ".join(c) for c in cycles[:5])
