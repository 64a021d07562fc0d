"""A worker process that dies (a native crash) costs no seed: the campaign
reruns each lost seed alone and reports the one that dies as a NodeException
whose trace ends with the event it died in."""

from __future__ import annotations

import ctypes
import inspect
from pathlib import Path

import pytest

from tests.adapters import dying
from virtraft.cli.commands import main
from virtraft.run.campaign import CampaignSpec, run_campaign
from virtraft.sim.events import Deliver
from virtraft.sim.options import SimOptions
from virtraft.trace.format import read_trace


def dying_spec(tmp_path) -> CampaignSpec:
    """Seeds whose node 2 takes its process down (tests/adapters/dying.py)."""
    return CampaignSpec(
        SimOptions(servers=3, steps=1500, liveness=False),
        "tests.adapters.dying:factory",
        False,
        str(tmp_path),
    )


def test_a_dead_worker_is_a_finding_with_its_trace(tmp_path) -> None:
    spec = dying_spec(tmp_path)
    results = run_campaign(range(3), spec, workers=2)
    assert [r.seed for r in results] == [0, 1, 2]
    for result in results:
        assert result.invariant == "NodeException"
        assert "died of SIGSEGV" in (result.message or "")
        trace = read_trace(result.trace)
        assert len(trace.events) == result.step
        last = trace.events[-1]
        assert isinstance(last, Deliver) and last.dst == 2
        assert trace.verdict["violation"]["invariant"] == "NodeException"
        assert trace.verdict["violation"]["witness"]["where"][-2:] == DIES_WHERE


def _dying_line() -> int:
    """The line of tests/adapters/dying.py that takes the process down."""
    lines = Path(dying.__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if "string_at(0)" in line)


def _string_at_line() -> int:
    """The line of ctypes' string_at that calls into C (it moves between
    Python releases)."""
    lines, start = inspect.getsourcelines(ctypes.string_at)
    return next(n for n, line in enumerate(lines, start=start) if "_string_at(" in line)


DIES_WHERE = [
    f"dying.py:{_dying_line()} in deliver",
    f"__init__.py:{_string_at_line()} in string_at",
]
"""The innermost frames a dying node's finding names: its door call, and the
native call under it (ctypes' string_at, in ctypes/__init__.py)."""


def test_replaying_a_trace_whose_process_died_reruns_it_in_a_child(tmp_path, capsys) -> None:
    """The replay, a report and a story would run the event that killed the
    server in this process: the replay runs in a child and holds its death
    against the record; the others refuse in one line."""
    [result] = run_campaign(range(1), dying_spec(tmp_path), workers=1)
    factory = ["--node-factory", "tests.adapters.dying:factory"]
    assert main(["replay", result.trace, *factory]) == 1
    out = capsys.readouterr().out
    assert "same death as recorded" in out
    assert f"dying.py:{_dying_line()} in deliver" in out
    raftcore = ["--node-factory", "virtraft.nodes.raftcore:default_factory"]
    assert main(["replay", result.trace, *raftcore]) == 2  # raftcore itself does not die
    err = capsys.readouterr().err
    assert "did not die" in err and len(err.strip().splitlines()) == 1
    for command in (["replay", result.trace, "--story"], ["report", result.trace, "-o", "r.html"]):
        assert main([*command, *factory]) == 2
        err = capsys.readouterr().err
        assert "would die the same way" in err and len(err.strip().splitlines()) == 1


def test_one_worker_survives_a_dying_server(tmp_path) -> None:
    """`--workers 1` runs its seeds in a process of its own too."""
    spec = dying_spec(tmp_path)
    results = run_campaign(range(2), spec, workers=1)
    assert [r.seed for r in results] == [0, 1]
    assert all("died of SIGSEGV" in (r.message or "") for r in results)
    assert all(read_trace(r.trace).verdict["safety"] == "violation" for r in results)


def test_fuzz_says_to_replay_a_seed_whose_process_died_not_to_run_or_shrink_it(
    tmp_path, capsys, monkeypatch
) -> None:
    """`virtraft run` of that seed, and `shrink` of its trace, would replay the
    death in their own process: the summary points at `virtraft replay`."""
    monkeypatch.setenv("COLUMNS", "1000")  # each of the summary's lines on one line
    factory = ["--node-factory", "tests.adapters.dying:factory"]
    words = ["--servers", "3", "--steps", "1500", "--no-liveness", "--no-swarm"]
    code = main(
        ["fuzz", "--seeds", "0:1", "--workers", "1", "--out", str(tmp_path), *words, *factory]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "reproduce the first with: virtraft replay " in out
    assert "seed-0.jsonl --node-factory tests.adapters.dying:factory" in out
    assert "virtraft run --seed 0" not in out and "shrink the shortest" not in out


def test_a_dask_worker_that_dies_is_a_finding_too(tmp_path) -> None:
    pytest.importorskip("distributed")
    spec = dying_spec(tmp_path)
    results = run_campaign(range(2), spec, workers=2, executor="dask")
    assert [r.seed for r in results] == [0, 1]
    for result in results:
        assert result.invariant == "NodeException"
        assert "died of SIGSEGV" in (result.message or "")
        assert isinstance(read_trace(result.trace).events[-1], Deliver)


def test_shrinking_a_trace_whose_process_died_is_refused_not_fatal(tmp_path) -> None:
    from virtraft.run.shrink import ShrinkError, shrink_file

    spec = dying_spec(tmp_path)
    [result] = run_campaign(range(1), spec, workers=1)
    with pytest.raises(ShrinkError, match="died of SIGSEGV"):
        shrink_file(
            result.trace,
            str(tmp_path / "shrunk.jsonl"),
            node_factory="tests.adapters.dying:factory",
        )
