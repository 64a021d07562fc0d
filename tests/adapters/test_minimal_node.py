"""The door is enough: a node with only the required methods runs under
every command, and what it lacks is never asked of it.

`tests/adapters/minimal.py` subclasses NodeAdapter with the abstract methods
only: no capabilities, no message facts, no caught-up list, no scalars.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from virtraft.adapter import Capabilities, NodeAdapter
from virtraft.cli.commands import main
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions

from .minimal import MinimalNode

SPEC = "tests.adapters.minimal:factory"
RICH = [
    "--member-rate",
    "0.01",
    "--snapshot-rate",
    "0.01",
    "--crash-rate",
    "0.002",
    "--partition-rate",
    "0.005",
]


def test_the_minimal_node_declares_nothing_optional() -> None:
    optional = {"capabilities", "caught_up", "last_applied", "entry_kind", "leader_hint", "scalars"}
    assert MinimalNode.capabilities == Capabilities()
    assert not optional & set(vars(MinimalNode))
    assert MinimalNode.scalars is NodeAdapter.scalars


def test_a_factory_that_is_not_a_node_adapter_is_refused(tmp_path: Path, capsys) -> None:
    code = main(
        [
            "run",
            "--node-factory",
            "tests.adapters.test_minimal_node:not_a_node",
            "--steps",
            "10",
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "not a node (a virtraft.adapter.NodeAdapter)" in err[0]


def not_a_node(*args: object) -> object:
    return object()


def test_the_scheduler_draws_no_event_it_lacks_the_capability_for() -> None:
    options = SimOptions(steps=3000, member_rate=0.05, snapshot_rate=0.05, liveness=False)
    result = run_seed(4, options, factory=SPEC)
    kinds = result.sim.stats.events
    assert result.violation is None
    assert kinds["member"] == 0 and kinds["snapshot"] == 0
    assert result.sim.stats.max_commit_index > 0
    # The same options with raftcore, which has both capabilities, do draw them.
    rich = run_seed(4, options).sim.stats.events
    assert rich["member"] > 0 and rich["snapshot"] > 0


def test_run_replay_shrink_and_report_work_with_it(tmp_path: Path, capsys) -> None:
    trace = tmp_path / "t.jsonl"
    assert (
        main(
            [
                "run",
                "--seed",
                "2",
                "--steps",
                "1500",
                "--node-factory",
                SPEC,
                *RICH,
                "--trace",
                str(trace),
                "--quiet",
            ]
        )
        == 0
    )
    header = json.loads(trace.read_text().splitlines()[0])
    assert header["factory"] == SPEC
    assert main(["replay", str(trace), "--node-factory", SPEC, "--quiet"]) == 0
    assert main(["replay", str(trace), "--node-factory", SPEC, "--story", "--quiet"]) == 0
    page = tmp_path / "r.html"
    assert main(["report", str(trace), "--node-factory", SPEC, "-o", str(page), "--quiet"]) == 0
    assert "<svg" in page.read_text()
    # Nothing fails, so there is nothing to shrink: the command says so in one line.
    capsys.readouterr()
    assert (
        main(
            [
                "shrink",
                str(trace),
                "--node-factory",
                SPEC,
                "-o",
                str(tmp_path / "s.jsonl"),
                "--quiet",
            ]
        )
        == 2
    )
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_fuzz_works_with_it(tmp_path: Path) -> None:
    assert (
        main(
            [
                "fuzz",
                "--seeds",
                "0:6",
                "--workers",
                "1",
                "--steps",
                "800",
                "--node-factory",
                SPEC,
                "--out",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )


@pytest.mark.parametrize("seed", [0])
def test_a_failing_minimal_node_is_found_shrunk_and_reported(tmp_path: Path, seed: int) -> None:
    """A safety bug behind the minimal door is caught, shrinks and reports."""
    spec = "tests.adapters.minimal:promiscuous_factory"
    trace = tmp_path / "bad.jsonl"
    code = main(
        [
            "run",
            "--seed",
            str(seed),
            "--steps",
            "4000",
            "--node-factory",
            spec,
            "--no-prevote",
            "--election-timeout-ms",
            "100",
            "--request-timeout-ms",
            "20",
            "--drop",
            "0.1",
            "--trace",
            str(trace),
            "--quiet",
        ]
    )
    assert code == 1
    small = tmp_path / "small.jsonl"
    assert (
        main(
            [
                "shrink",
                str(trace),
                "--node-factory",
                spec,
                "-o",
                str(small),
                "--max-replays",
                "2000",
                "--quiet",
            ]
        )
        == 1
    )  # the smaller trace still fails
    assert len(small.read_text().splitlines()) < len(trace.read_text().splitlines())
    page = tmp_path / "r.html"
    assert main(["report", str(small), "--node-factory", spec, "-o", str(page), "--quiet"]) == 0
    assert "VoteOnce" in page.read_text() or "ElectionSafety" in page.read_text()


def test_swarm_varies_only_the_options_a_factory_honours() -> None:
    """A factory that says (before any node exists) it ignores pre-vote and
    the batch size gets a header that does not pretend they varied."""
    from virtraft.adapter import Capabilities
    from virtraft.run.factory import load_factory
    from virtraft.run.seed import resolve_options

    from . import minimal

    def timers_only(*args):  # type: ignore[no-untyped-def]
        return minimal.factory(*args)

    timers_only.capabilities = Capabilities(  # type: ignore[attr-defined]
        options=frozenset({"election_timeout_ms", "request_timeout_ms"})
    )
    base = SimOptions()
    honest = [resolve_options(s, base, True, factory=timers_only).node for s in range(40)]
    assert {n.prevote for n in honest} == {True}
    assert {n.max_entries_per_msg for n in honest} == {64}
    assert len({n.election_timeout_ms for n in honest}) > 1  # honoured: still drawn
    everything = [
        resolve_options(s, base, True, factory=load_factory(SPEC)).node for s in range(40)
    ]
    assert len({n.prevote for n in everything}) == 2
