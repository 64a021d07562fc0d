"""A trace never runs code (hardening issue, item 1).

The node factory a trace names is a record of what ran, not an instruction:
`replay`, `report`, `shrink` and `replay --story` import only the default
factory or the one the user names with --node-factory.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

from tests.hardening.util import cli, python_m, small_trace_lines

_names = itertools.count()

PLANTED = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")


def factory(*args):
    pathlib.Path({marker!r}).write_text("called")
"""


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return small_trace_lines()


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module of this test's own, importable from where the test says, that
    leaves a marker file when imported or called; and the marker's path."""
    name = f"hardening_planted_{next(_names)}"
    home = tmp_path / "planted"
    home.mkdir()
    marker = tmp_path / "marker"
    (home / f"{name}.py").write_text(PLANTED.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(home))
    yield name, home, marker
    sys.modules.pop(name, None)


def naming(lines: list[str], path: Path, spec: str) -> Path:
    """The trace `lines`, its header naming `spec` and its verdict a safety
    violation (so that shrink, too, gets as far as it can)."""
    header = json.loads(lines[0])
    header["factory"] = spec
    verdict = json.loads(lines[-1])
    verdict["safety"] = "violation"
    verdict["violation"] = {
        "invariant": "VoteOnce",
        "step": 3,
        "nodes": [1],
        "message": "two votes in one term",
        "witness": {},
    }
    path.write_text("\n".join([json.dumps(header), *lines[1:-1], json.dumps(verdict)]) + "\n")
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["replay"],
        ["replay", "--story"],
        ["report", "-o", "{tmp}/r.html"],
        ["shrink", "-o", "{tmp}/small.jsonl"],
    ],
)
def test_a_factory_named_by_the_trace_is_never_imported(command, planted, lines, tmp_path):
    name, _home, marker = planted
    trace = naming(lines, tmp_path / "t.jsonl", f"{name}:factory")
    argv = [part.format(tmp=tmp_path) for part in command]
    ran = cli(argv[0], str(trace), *argv[1:])
    assert not marker.exists(), f"{command[0]} imported the trace's factory"
    ran.one_line_error("--node-factory", f"{name}:factory")


def test_nor_from_the_current_directory_in_a_child_process(planted, lines, tmp_path):
    name, home, marker = planted
    trace = naming(lines, tmp_path / "t.jsonl", f"{name}:factory")
    for argv in (["replay", str(trace)], ["report", str(trace), "-o", str(tmp_path / "r.html")]):
        ran = python_m(*argv, cwd=home)
        assert not marker.exists(), argv
        ran.one_line_error("--node-factory")


def test_a_factory_the_user_names_is_the_one_that_runs(lines, tmp_path):
    """The trace's own factory may be anything; naming one runs that one."""
    trace = naming(lines, tmp_path / "t.jsonl", "no_such_module_anywhere:factory")
    header, *rest = trace.read_text().splitlines()
    verdict = json.loads(lines[-1])  # the real verdict: replay checks it
    trace.write_text("\n".join([header, *rest[:-1], json.dumps(verdict)]) + "\n")
    ran = cli("replay", str(trace), "--node-factory", "virtraft.nodes.raftcore:default_factory")
    assert ran.code == 0, ran.err
    assert "as recorded" in ran.out
    report = tmp_path / "r.html"
    ran = cli(
        "report",
        str(trace),
        "-o",
        str(report),
        "--node-factory",
        "virtraft.nodes.raftcore:default_factory",
    )
    assert ran.code == 0, ran.err
    assert "could not load" not in report.read_text()
