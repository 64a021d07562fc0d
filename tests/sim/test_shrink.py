"""Shrinking a failing trace (issue: finding bugs, item 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtraft.adapter import NodeOptions
from virtraft.check.checker import Checker
from virtraft.run.factory import load_factory
from virtraft.run.seed import run_seed
from virtraft.run.shrink import ShrinkError, shrink_events
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.replay import replay_events

REPO = Path(__file__).resolve().parents[2]
FACTORY = "tests.sim.factories:votes_for_anyone"
OPTIONS = SimOptions(steps=3000)


@pytest.fixture(scope="module", autouse=True)
def importable_tests(tmp_path_factory):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


@pytest.fixture(scope="module")
def failing_run():
    for seed in range(40):
        result = run_seed(seed, OPTIONS, factory=FACTORY, swarm=True)
        if result.violation is not None:
            return result
    pytest.fail("the double-voting mutant was not caught in 40 seeds")


def test_shrunk_trace_is_much_smaller_and_fails_the_same_way(failing_run):
    violation = failing_run.violation
    outcome = shrink_events(
        failing_run.seed,
        failing_run.options,
        FACTORY,
        failing_run.events,
        violation.invariant,
        max_seconds=60,
    )
    assert outcome.after < outcome.before
    assert outcome.after <= max(40, outcome.before // 10)
    sim = Simulation(outcome.options, failing_run.seed, load_factory(FACTORY), checker=Checker())
    replayed, diverged, why = replay_events(sim, outcome.events)
    assert diverged is None, why
    assert replayed is not None and replayed.invariant == violation.invariant
    assert replayed.step == len(outcome.events)


def test_shrinking_a_trace_that_does_not_fail_is_refused(failing_run):
    healthy = run_seed(failing_run.seed, OPTIONS.replace(steps=200), swarm=True)
    with pytest.raises(ShrinkError):
        shrink_events(
            healthy.seed, healthy.options, FACTORY, healthy.events[:5], "VoteOnce", max_seconds=5
        )


def test_cli_shrink_writes_a_trace_that_replays(failing_run, tmp_path):
    from virtraft.trace.format import write_trace

    big = tmp_path / "big.jsonl"
    small = tmp_path / "small.jsonl"
    write_trace(big, failing_run.trace_lines())
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "virtraft",
            "shrink",
            str(big),
            "-o",
            str(small),
            "--node-factory",
            FACTORY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr
    said = " ".join(done.stdout.split())
    assert f"shrunk {len(failing_run.events)} events to" in said
    # A short result is told step by step, ending with the violation.
    shrunk_events = len(small.read_text().splitlines()) - 2
    assert f"Step by step ({shrunk_events} events)" in said
    assert f"{failing_run.violation.invariant} violated at step {shrunk_events}" in said
    # The header names the source by file name only: a shared trace must not
    # carry where it lay on the machine that shrank it.
    header = json.loads(small.read_text().splitlines()[0])
    assert header["shrunk_from"]["trace"] == "big.jsonl"
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "virtraft",
            "replay",
            str(small),
            "--story",
            "--node-factory",
            FACTORY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replay.returncode == 1
    assert "same violation as recorded" in replay.stdout
    assert "Step by step" in replay.stdout and "voted for" in replay.stdout
    healthy = tmp_path / "healthy.jsonl"
    write_trace(healthy, run_seed(0, OPTIONS.replace(steps=300)).trace_lines())
    refused = subprocess.run(
        [sys.executable, "-m", "virtraft", "shrink", str(healthy), "-o", str(tmp_path / "x.jsonl")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and "no safety violation" in refused.stderr


def test_a_cut_keeps_the_clock_for_what_follows():
    from virtraft.run.shrink import _cut
    from virtraft.sim.events import ClientRequest, Tick

    events = [Tick(1, 5), Tick(2, 30), ClientRequest(1, 1, "k", 1), Tick(3, 7), Tick(1, 2)]
    assert _cut(events, 1, 3) == [Tick(1, 5), Tick(3, 37), Tick(1, 2)]
    assert _cut(events, 3, 5) == events[:3]  # no tick after: the time is gone with them


def test_figure_8_counterexample_shrinks_to_at_most_40_events_deterministically():
    """Issue #4: the mutant that commits an old term's entry by counting
    replicas (the paper's Figure 8), first found on three servers with one
    entry per message (the zoo's hunt before swarm drew such seeds itself),
    shrinks to a trace of at most 40 events that replays strictly, and the
    budget in replays gives the same trace every time."""
    from virtraft.zoo import hunt as zoo

    spec = zoo.load_mutants().factory_spec("fig8_commit_old_term")
    options = SimOptions(
        servers=3,
        steps=3000,
        drop_probability=0.1,
        duplicate_probability=0.1,
        partition_rate=0.02,
        crash_rate=0.01,
        client_rate=0.15,
        member_rate=0.02,
        snapshot_rate=0.02,
        delay_ms_max=100,
        liveness=False,
        node=NodeOptions(
            election_timeout_ms=100, request_timeout_ms=20, prevote=False, max_entries_per_msg=1
        ),
    )
    result = next(
        r for r in (run_seed(seed, options, factory=spec) for seed in range(100)) if r.violation
    )
    assert result.violation is not None
    outcomes = [
        shrink_events(
            result.seed,
            result.options,
            spec,
            result.events,
            result.violation.invariant,
            max_seconds=float("inf"),
            max_replays=zoo.SHRINK_REPLAYS,
        )
        for _ in range(2)
    ]
    first = outcomes[0]
    assert first.before > 1000 and first.after <= 40, (first.before, first.after)
    assert outcomes[1].events == first.events
    sim = Simulation(first.options, result.seed, load_factory(spec), checker=Checker())
    replayed, diverged, why = replay_events(sim, first.events)
    assert diverged is None, why
    assert replayed is not None and replayed.invariant == result.violation.invariant


def test_a_replay_budget_alone_gives_the_same_bytes_and_says_it_stopped(failing_run, tmp_path):
    from virtraft.cli.commands import main
    from virtraft.trace.format import write_trace

    big = tmp_path / "big.jsonl"
    write_trace(big, failing_run.trace_lines())
    outputs = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.jsonl"
        assert (
            main(
                [
                    "shrink",
                    str(big),
                    "-o",
                    str(out),
                    "--max-replays",
                    "20",
                    "--node-factory",
                    FACTORY,
                    "--quiet",
                ]
            )
            == 1
        )
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) < len(big.read_bytes().splitlines())  # it did shrink
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "virtraft",
            "shrink",
            str(big),
            "-o",
            os.devnull,
            "--max-replays",
            "20",
            "--node-factory",
            FACTORY,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr  # the story comes from memory, not the output
    assert "stopped after 20 replays" in done.stdout


def test_ctrl_c_keeps_the_shortest_failing_trace_so_far(failing_run):
    passes = []

    def interrupt(name, size):
        passes.append((name, size))
        if len(passes) == 2:
            raise KeyboardInterrupt

    outcome = shrink_events(
        failing_run.seed,
        failing_run.options,
        FACTORY,
        failing_run.events,
        failing_run.violation.invariant,
        on_progress=interrupt,
    )
    assert outcome.stopped_by == "interrupted"
    assert outcome.after < outcome.before
    assert outcome.after <= passes[-1][1]
    assert outcome.violation.invariant == failing_run.violation.invariant


def test_a_server_exception_shrinks_to_the_same_exception_not_another():
    from virtraft.run.seed import run_seed as run
    from virtraft.run.shrink import shrink_events

    factory = "tests.adapters.two_faults:factory"
    result = run(0, SimOptions(servers=3, steps=3000, liveness=False), factory=factory)
    assert result.violation is not None
    assert result.violation.witness["exception"] == "RuntimeError"
    outcome = shrink_events(
        0, result.options, factory, result.events, "NodeException", max_replays=200
    )
    assert outcome.after < outcome.before
    assert outcome.violation.witness["exception"] == "RuntimeError"
    assert "delivery" in outcome.violation.witness["message"]


@pytest.mark.parametrize(("asked", "given"), [(None, 200), (350, 350), (20, 20)])
def test_a_liveness_shrink_takes_the_replay_budget_it_is_given(
    monkeypatch, tmp_path, asked, given
) -> None:
    """--max-replays is honoured for a liveness trace too; only when it is not
    given does a liveness shrink take its own, smaller budget."""
    pytest.importorskip("pysyncobj")
    from virtraft.run import shrink

    seen: list[int] = []

    def fake_shrink_liveness(*args, max_replays, **kwargs):
        seen.append(max_replays)
        raise ShrinkError("stop here")

    monkeypatch.setattr(shrink, "shrink_liveness", fake_shrink_liveness)
    trace = REPO / "tests/findings/pysyncobj-unadded-server-campaigns-for-ever.jsonl"
    with pytest.raises(ShrinkError, match="stop here"):
        shrink.shrink_file(
            str(trace),
            str(tmp_path / "out.jsonl"),
            node_factory="virtraft.nodes.pysyncobj:corrected_snapshots",
            max_replays=asked,
        )
    assert seen == [given]
