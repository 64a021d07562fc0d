"""Clients in the simulator: sessions, the recorded history, replay.

The history is derived from the trace's events alone, so a replay must
rebuild it exactly; the state machine applies a retried command once
(dissertation §6.3); correct raftcore under faults gives no linearizability
violation (no false alarm).
"""

from __future__ import annotations

import random

from virtraft.adapter import Command, NodeOptions, Submitted
from virtraft.nodes.raftcore import RaftcoreNode
from virtraft.run.factory import load_factory
from virtraft.run.seed import run_seed
from virtraft.sim.events import ClientInvoke, event_from_json, event_to_json
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.replay import replay_events
from virtraft.zoo.mutants import RetriedWriteAppliedTwice

FAULTY = SimOptions(
    servers=5,
    steps=3000,
    clients=3,
    drop_probability=0.1,
    partition_rate=0.02,
    crash_rate=0.005,
    liveness=False,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20),
)


def _single(node_class: type[RaftcoreNode] = RaftcoreNode) -> RaftcoreNode:
    node = node_class(1, ((1, True),), lambda dst, msg: None, random.Random(1), NodeOptions())
    for _ in range(30):
        node.tick(100)  # a cluster of one elects itself
    return node


def test_a_retried_command_is_applied_once_and_answered_from_the_session() -> None:
    node = _single()
    first = Command(7, 1, "cas", "x", 5, None)
    assert isinstance(node.submit(10, first), Submitted)
    assert isinstance(node.submit(11, first), Submitted)  # the retry: same client, same seq
    node.submit(12, Command(8, 1, "write", "x", 6))
    assert isinstance(node.submit(13, first), Submitted)  # a late retry after another write
    answers = {a.request: a.output for a in node.answers()}
    assert answers == {10: True, 11: True, 12: None, 13: True}
    assert node.kv == {"x": 6}


def test_without_sessions_the_retry_takes_effect_again() -> None:
    node = _single(RetriedWriteAppliedTwice)
    first = Command(7, 1, "cas", "x", 5, None)
    node.submit(10, first)
    node.submit(11, first)
    assert {a.request: a.output for a in node.answers()} == {10: True, 11: False}


def test_a_read_is_answered_with_the_applied_value() -> None:
    node = _single()
    node.submit(1, Command(1, 1, "write", "k", 3))
    assert isinstance(node.read(2, "k"), Submitted)
    assert {a.request: (a.ok, a.output) for a in node.answers()} == {1: (True, None), 2: (True, 3)}


def test_an_invoke_event_round_trips_through_json() -> None:
    for event in (ClientInvoke(1, "read", "k0"), ClientInvoke(2, "cas", "k1", 4, None)):
        assert event_from_json(event_to_json(event)) == event


def test_replay_rebuilds_the_same_history_from_the_events_alone() -> None:
    result = run_seed(3, FAULTY)
    assert result.sim.clients is not None
    recorded = result.sim.clients.history(result.sim)
    statuses = {r.operation.status for r in recorded}
    assert {"ok", "fail"} <= statuses  # faults made some operations fail
    sim = Simulation(FAULTY, 3, load_factory("virtraft.nodes.raftcore:default_factory"))
    violation, diverged, _ = replay_events(sim, result.events)
    assert violation is None and diverged is None
    assert sim.clients is not None
    assert sim.clients.history(sim) == recorded


def test_correct_raftcore_gives_no_false_alarm_under_faults() -> None:
    for seed in range(12):
        result = run_seed(seed, FAULTY, swarm=seed % 2 == 1, keep=frozenset())
        assert result.linearizability is not None
        assert result.linearizability.verdict != "violation", (seed, result.linearizability.reason)
        assert result.verdict()["linearizability"]["verdict"] == result.linearizability.verdict


def test_without_clients_no_history_and_no_verdict() -> None:
    result = run_seed(1, FAULTY.replace(clients=0, steps=300))
    assert result.linearizability is None
    assert "linearizability" not in result.verdict()


def test_followers_forward_reads_and_stay_linearizable() -> None:
    """`--forward-reads`: a follower asked to read gets a read index from the
    leader (ReadIndexRequest and its response cross the network) and serves
    the read itself; the history stays linearizable."""
    from virtraft.cli.parser import build_parser, sim_options
    from virtraft.sim.events import Deliver

    args = build_parser().parse_args(["fuzz", "--clients", "3", "--forward-reads"])
    forwarded = 0
    for seed in range(5):
        result = run_seed(seed, sim_options(args), swarm=args.swarm)
        assert result.violation is None
        assert result.linearizability is not None
        assert result.linearizability.verdict == "ok"
        forwarded += sum(
            1 for e in result.sim.events if isinstance(e, Deliver) and "ReadIndex" in e.msg
        )
    assert forwarded > 0
