"""virtraft.run.stateful: the Hypothesis state machine over the simulator.

The unmodified raftcore must pass it (no false alarms); a failing run must
name the broken invariant and leave a trace `virtraft replay` accepts.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import INVARIANT_MARKER, run_state_machine_as_test

from raftcore import RaftServer
from virtraft.adapter import NodeOptions
from virtraft.check.checker import INVARIANTS, Violation
from virtraft.cli import commands as cli
from virtraft.nodes.raftcore import factory
from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.run.stateful import (
    FAULTS,
    MACHINE_OPTIONS,
    NODE_EXCEPTION,
    InvariantViolated,
    RaftMachine,
    machine_for,
)
from virtraft.trace.format import read_trace

# The public recipe: a unittest TestCase for pytest to collect.
TestRaftcoreMachine = machine_for(DEFAULT_FACTORY).TestCase
TestRaftcoreMachine.settings = settings(max_examples=60, stateful_step_count=60)

TestRaftcoreFiveServersNoPrevote = machine_for(
    DEFAULT_FACTORY,
    MACHINE_OPTIONS.replace(
        servers=5,
        node=NodeOptions(
            election_timeout_ms=100, request_timeout_ms=20, prevote=False, check_quorum=False
        ),
    ),
).TestCase
TestRaftcoreFiveServersNoPrevote.settings = settings(max_examples=40, stateful_step_count=80)


class CommitGoesBack(RaftServer):
    """A follower that takes every leaderCommit as is (ongardie/raft.tla#19):
    the machine finds CommitMonotonic broken within a few steps."""

    def _advance_follower_commit(self, index: int) -> None:
        self.commit_index = index
        self._apply_committed()


def _find(machine: type[RaftMachine], examples: int = 200) -> InvariantViolated:
    """Search without shrinking (Hypothesis's shrinker takes tens of seconds)."""
    with pytest.raises(InvariantViolated) as caught:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=60,
                derandomize=True,
                database=None,
                deadline=None,
                report_multiple_bugs=False,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            ),
        )
    return caught.value


def test_every_checker_invariant_is_a_machine_invariant() -> None:
    for name in (*INVARIANTS, NODE_EXCEPTION):
        method = getattr(RaftMachine, f"holds_{name}")
        assert getattr(method, INVARIANT_MARKER, None) is not None


def test_an_invariant_fails_only_for_its_own_violation() -> None:
    machine = machine_for(DEFAULT_FACTORY)()
    machine.violation = Violation("VoteOnce", 7, (1,), "two votes", {})
    for name in INVARIANTS:
        check = getattr(machine, f"holds_{name}")
        if name == "VoteOnce":
            with pytest.raises(InvariantViolated, match="VoteOnce violated at step 7"):
                check()
        else:
            check()


def test_a_failing_run_names_the_invariant_and_writes_a_replayable_trace(tmp_path) -> None:
    path = tmp_path / "failing.jsonl"
    spec = "virtraft.zoo.mutants:commit_index_goes_back"
    machine = machine_for(spec, trace_path=str(path))
    error = _find(machine)
    assert error.violation.invariant == "CommitMonotonic"
    trace = read_trace(path)
    # Hypothesis runs the failing example last: the file holds that one.
    assert machine.last_failure is not None
    assert len(trace.events) == machine.last_failure.events
    assert trace.verdict["violation"]["invariant"] == "CommitMonotonic"
    assert cli.main(["replay", str(path), "--node-factory", spec, "--quiet"]) == cli.EXIT_VIOLATION


def test_a_callable_factory_works_too() -> None:
    machine = machine_for(factory(CommitGoesBack))
    assert _find(machine).violation.invariant == "CommitMonotonic"


def test_a_fault_that_is_off_never_happens() -> None:
    """Swarm testing: the faults a run may use are drawn first; with none
    allowed, only deliveries and ticks happen."""
    kinds: set[str] = set()
    base = machine_for(DEFAULT_FACTORY, faults=())

    class Recording(base):  # type: ignore[valid-type, misc]
        def teardown(self) -> None:
            kinds.update(self.sim.stats.events)

    run_state_machine_as_test(
        Recording,
        settings=settings(
            max_examples=30,
            stateful_step_count=40,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert kinds <= {"deliver", "tick"}
    assert "deliver" in kinds


def test_with_every_fault_allowed_faults_do_happen() -> None:
    kinds: set[str] = set()
    base = machine_for(DEFAULT_FACTORY)

    class Recording(base):  # type: ignore[valid-type, misc]
        def teardown(self) -> None:
            kinds.update(self.sim.stats.events)

    run_state_machine_as_test(
        Recording,
        settings=settings(
            max_examples=60,
            stateful_step_count=60,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert {"crash", "partition", "client", "drop"} <= kinds


def test_machine_for_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        machine_for(DEFAULT_FACTORY, faults=("earthquake",))
    assert set(FAULTS) >= {"crash", "restart", "partition", "heal", "membership", "snapshot"}


def test_the_trace_header_names_the_factory(tmp_path) -> None:
    path = tmp_path / "t.jsonl"
    machine = machine_for("virtraft.zoo.mutants:commit_index_goes_back", trace_path=str(path))
    _find(machine)
    header = json.loads(path.read_text().splitlines()[0])
    assert header["factory"] == "virtraft.zoo.mutants:commit_index_goes_back"
    assert header["source"] == "virtraft.run.stateful"
