"""Shrinking a failing trace (issue: finding bugs, item 4)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from virtraft.checker import Checker
from virtraft.options import SimOptions
from virtraft.runner import load_factory, replay_events, run_seed
from virtraft.shrink import ShrinkError, shrink_events
from virtraft.simulator import Simulation

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
    outcome = shrink_events(failing_run.seed, failing_run.options, FACTORY,
                            failing_run.events, violation.invariant, max_seconds=60)
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
        shrink_events(healthy.seed, healthy.options, FACTORY, healthy.events[:5],
                      "VoteOnce", max_seconds=5)


def test_cli_shrink_writes_a_trace_that_replays(failing_run, tmp_path):
    from virtraft.trace import write_trace

    big = tmp_path / "big.jsonl"
    small = tmp_path / "small.jsonl"
    write_trace(big, failing_run.trace_lines())
    done = subprocess.run([sys.executable, "-m", "virtraft", "shrink", str(big), "-o", str(small)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert f"shrunk {len(failing_run.events)} events to" in " ".join(done.stdout.split())
    replay = subprocess.run([sys.executable, "-m", "virtraft", "replay", str(small)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1
    assert "same violation as recorded" in replay.stdout
    healthy = tmp_path / "healthy.jsonl"
    write_trace(healthy, run_seed(0, OPTIONS.replace(steps=300)).trace_lines())
    refused = subprocess.run([sys.executable, "-m", "virtraft", "shrink", str(healthy), "-o",
                              str(tmp_path / "x.jsonl")], cwd=REPO, capture_output=True,
                             text=True, timeout=300)
    assert refused.returncode == 2 and "no safety violation" in refused.stderr
