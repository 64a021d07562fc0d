"""virtraft.run.stateful: the Hypothesis state machine over the simulator.

The unmodified raftcore must pass it (no false alarms); a failing run must
name the broken invariant and leave a trace `virtraft replay` accepts.
"""

from __future__ import annotations

import functools
import json
import re

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RULE_MARKER, initialize, run_state_machine_as_test

from raftcore import RaftServer
from virtraft.adapter import NodeOptions, Role
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
from virtraft.zoo import hunt as zoo
from virtraft.zoo import mutants

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


def test_any_checker_violation_fails_the_step_that_caused_it() -> None:
    """The checker runs after every event; the step that broke an invariant
    (or made a server raise) ends the run, naming it."""
    for name in (*INVARIANTS, NODE_EXCEPTION):
        machine = machine_for(DEFAULT_FACTORY)()
        machine.violation = Violation(name, 7, (1,), "broken", {})
        with pytest.raises(InvariantViolated, match=f"{name} violated at step 7"):
            machine.wait(10)
        assert machine.last_failure is not None
        assert machine.last_failure.violation.invariant == name


def test_a_healthy_step_does_not_fail() -> None:
    machine = machine_for(DEFAULT_FACTORY)()
    machine.elect_first(1)
    machine.wait(10)
    assert machine.violation is None
    assert machine.sim.leader() is not None


def test_a_timeout_ages_the_voters_past_leader_stickiness() -> None:
    """Dissertation §4.2.3: a follower that heard from its leader within the
    election timeout refuses votes. `timeout` lets that timeout pass for
    every voter first, so a follower of a settled cluster can still win."""
    machine = machine_for(DEFAULT_FACTORY)()
    machine.elect_first(1, settle=True)
    assert machine.sim.leader().node_id == 1
    machine.timeout(2, then="votes")
    leader = machine.sim.leader()
    assert leader is not None and leader.node_id == 2
    assert leader.term > 1


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


class RaisesOnFirstCommit(RaftServer):
    """A follower that raises when a leader first tells it of a commit: any
    run fails as soon as a heartbeat is delivered after an election."""

    def _advance_follower_commit(self, index: int) -> None:
        if index > self.commit_index:
            raise RuntimeError(f"told of commit {index}")
        super()._advance_follower_commit(index)


# Time and single deliveries only (every other rule shadowed by a
# plain attribute), so that a failing run is a short program of such steps.
_KEEP = {"choose_faults", "elect_first", "wait", "deliver"}


def _messages_only() -> type[RaftMachine]:
    base = machine_for(factory(RaisesOnFirstCommit))
    off = {
        name: None
        for name, value in vars(RaftMachine).items()
        if hasattr(value, RULE_MARKER) and name not in _KEEP
    }
    machine = type("MessagesOnly", (base,), off)

    class MessagesOnly(machine):  # type: ignore[valid-type, misc]
        @initialize(node=st.integers(1, 3))
        def elect_first(self, node: int, settle: bool = False) -> None:
            """A leader, its first AppendEntries still in flight."""
            super().elect_first(node, settle)

    return MessagesOnly


@functools.cache
def _falsifying_program(machine: type[RaftMachine]) -> tuple[list[str], InvariantViolated]:
    """The program Hypothesis prints for the failing example (shrunk), line by
    line (shrinking is the slow part: each machine is searched once)."""
    with pytest.raises(InvariantViolated) as caught:
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=50,
                stateful_step_count=20,
                derandomize=True,
                database=None,
                deadline=None,
                report_multiple_bugs=False,
                suppress_health_check=list(HealthCheck),
            ),
        )
    notes = "\n".join(getattr(caught.value, "__notes__", [])).splitlines()
    return [line for line in notes if line.startswith("state")], caught.value


_MESSAGES_ONLY = _messages_only()


def test_a_failing_example_prints_a_program_a_person_can_read() -> None:
    """Steps name servers and messages as they are (`deliver(src=2, dst=3,
    message="AppendEntries term 1 from leader 3: ...")`, the message's text
    at the door),
    not the numbers Hypothesis drew."""
    program, error = _falsifying_program(_MESSAGES_ONLY)
    text = "\n".join(program)
    assert program[0] == "state = MessagesOnly()"
    assert program[-1] == "state.teardown()"
    assert error.violation.invariant == NODE_EXCEPTION
    # The failing step is the delivery that told a follower of the commit.
    assert re.match(
        r'state\.deliver\(src=\d, dst=\d, message="AppendEntries term \d+ from leader \d: ',
        program[-2],
    ), text
    assert re.search(r"state\.elect_first\(node=\d, settle=(True|False)\)", text), text
    assert "pick=" not in text


def test_a_printed_program_pastes_back_and_fails_the_same_way() -> None:
    machine = _MESSAGES_ONLY
    program, error = _falsifying_program(machine)
    namespace: dict[str, object] = {"MessagesOnly": machine}
    with pytest.raises(InvariantViolated) as again:
        for line in program[:-1]:
            exec(line, namespace)  # noqa: S102 - the program Hypothesis printed
    assert again.value.violation == error.violation


def test_steps_aimed_at_a_role_print_the_role() -> None:
    machine = machine_for(DEFAULT_FACTORY)()
    machine.elect_first(1, settle=True)
    machine.crash(role="leader")
    assert machine._shown is not None
    assert machine._shown.text().startswith('state.crash(role="leader")')
    assert not machine.sim.nodes[1].alive
    machine.isolate(role="follower", node=2)
    assert machine._shown.text().startswith('state.isolate(role="follower", node=2)')


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


# ------------------------------------------------- stories in a step or two

# The zoo's options: one entry per message on three servers, lossy crashes on.
ZOO_THREE = zoo.stateful_options(3)
ZOO_FIVE = zoo.stateful_options(5)


def _story(spec: str, options, faults: tuple[str, ...] = FAULTS) -> RaftMachine:
    machine = machine_for(spec, options)()
    machine.choose_faults(list(faults))
    machine.elect_first(1, settle=True)
    return machine


def _acknowledged_then_rebooted(spec: str, options, power_cut: bool) -> RaftMachine:
    """Node 2 acknowledges an entry the leader then commits, and reboots."""
    machine = _story(spec, options)
    machine.client(1, commands=1)
    machine.deliver_link(src=1, dst=2, rounds=2)
    assert machine.sim.nodes[1].commit_index == 2
    machine.reboot(node=2, power_cut=power_cut)
    return machine


def test_a_power_cut_reboot_loses_what_was_acknowledged_before_its_sync() -> None:
    """Raft Figure 2: persistent state is updated on stable storage before
    responding. A server that replies first forgets, in a power cut, what
    it answered in (its term, the entry the leader counted); raftcore, which
    syncs first, keeps them."""
    spec = mutants.factory_spec("reply_before_sync")
    with pytest.raises(InvariantViolated) as caught:
        _acknowledged_then_rebooted(spec, ZOO_THREE, power_cut=True)
    assert caught.value.violation.invariant in ("TermMonotonic", "CommittedNeverLost")
    # A process crash keeps what was written; a run without lossy crashes
    # has no power cut to give (the step prints power_cut=False).
    _acknowledged_then_rebooted(spec, ZOO_THREE, power_cut=False)
    machine = _acknowledged_then_rebooted(spec, MACHINE_OPTIONS, power_cut=True)
    assert machine._shown is not None
    assert machine._shown.text().startswith("state.reboot(node=2, power_cut=False)")
    machine = _acknowledged_then_rebooted(DEFAULT_FACTORY, ZOO_THREE, power_cut=True)
    assert machine.sim.nodes[2].last_index == 2


def test_a_rival_campaigns_in_the_same_term_and_the_voters_split() -> None:
    """Raft §5.2: two candidates of one term; each voter grants one of them
    (here the leader, heard from lately, grants neither: a split vote), so
    at most one wins, even when every vote reply arrives twice."""
    machine = _story(DEFAULT_FACTORY, ZOO_FIVE)
    machine.timeout(2, then="rival")
    views = machine.sim.nodes
    term = views[2].term
    assert views[3].term == term > 1
    assert {views[4].voted_for, views[5].voted_for} == {2, 3}
    assert len([n for n, v in views.items() if v.role is Role.LEADER and v.term == term]) <= 1


def test_a_rival_election_with_copied_replies_elects_two_leaders_who_count_replies() -> None:
    """ktoso/akka-raft#45: a candidate that counts replies, not voters,
    wins with two real votes and a copy, beside the rival that won."""
    spec = mutants.factory_spec("duplicate_votes_counted")
    machine = _story(spec, ZOO_FIVE, faults=("client", "duplicate"))
    with pytest.raises(InvariantViolated) as caught:
        machine.timeout(2, then="rival")
    assert caught.value.violation.invariant == "ElectionSafety"
    no_copies = _story(spec, ZOO_FIVE, faults=("client",))
    no_copies.timeout(2, then="rival")


def test_three_failovers_tell_the_figure_8_story() -> None:
    """Raft Figure 8 in three steps: a leader's entry stays its own, the next
    leader's too; the first comes back, gets its old entry (not its no-op)
    to one follower and crashes; the second comes back and wins. A leader
    that counts replicas for an old term's entry (§5.4.2) has committed what
    the new leader lacks; raftcore has not."""
    spec = mutants.factory_spec("fig8_commit_old_term")
    with pytest.raises(InvariantViolated) as caught:
        _story(spec, ZOO_THREE).failover([0, 0, 4])
    assert caught.value.violation.invariant == "LeaderCompleteness"
    machine = _story(DEFAULT_FACTORY, ZOO_THREE)
    machine.failover([0, 0, 4])
    assert machine.sim.leader() is not None
    assert machine._shown is not None
    assert machine._shown.text().startswith("state.failover(reach=[0, 0, 4])  # 1 down, 2 leader")
