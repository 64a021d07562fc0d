"""Corners swarm must reach: a cluster of one voter, and what draws it."""

from __future__ import annotations

import random

from virtraft.adapter import NodeOptions
from virtraft.cli.parser import build_parser, sim_options, swarm_keeps
from virtraft.run.seed import run_seed
from virtraft.sim.options import SWARM_PROFILES, SimOptions, options_swarm
from virtraft.sim.simulation import Simulation


def _fewest_voters(seed: int, options: SimOptions, swarm: bool = False) -> int:
    fewest = [options.servers]

    def watch(sim: Simulation) -> None:
        leader = sim.voting_leader()
        if leader is not None:
            fewest[0] = min(fewest[0], sum(1 for _, voting in leader.members if voting))

    result = run_seed(seed, options, swarm=swarm, on_step=watch)
    assert result.violation is None, result.violation
    return fewest[0]


def test_membership_changes_remove_voters_down_to_a_single_one() -> None:
    options = SimOptions(
        servers=3,
        steps=3000,
        member_rate=0.03,
        min_voters=1,
        liveness=False,
        node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20),
    )
    assert min(_fewest_voters(seed, options) for seed in range(5)) == 1
    assert min(_fewest_voters(seed, options.replace(min_voters=3)) for seed in range(5)) == 3


def test_min_voters_is_on_the_command_line_and_kept_under_swarm() -> None:
    args = build_parser().parse_args(["fuzz", "--min-voters", "1"])
    assert sim_options(args).min_voters == 1
    assert "min_voters" in swarm_keeps(["fuzz", "--min-voters", "1"])


def test_swarm_draws_every_profile_a_single_voter_and_lossy_crashes() -> None:
    drawn = [options_swarm(random.Random(seed), SimOptions()) for seed in range(200)]
    assert {o.min_voters for o in drawn} == {1, 2, 3}
    assert {o.servers for o in drawn} == {3, 5}
    assert any(o.lossy_crash_probability > 0 and o.crash_rate > 0 for o in drawn)
    assert any(o.node.max_entries_per_msg == 1 and o.servers == 3 for o in drawn)
    assert len(SWARM_PROFILES) == 4


def test_a_cluster_whose_ids_start_at_0_is_safe_leads_and_replays(tmp_path) -> None:
    """`--first-node-id 0`: server 0 campaigns, leads and crashes like any
    other; every verdict holds; the trace replays to the same verdict."""
    from virtraft.adapter import Role
    from virtraft.run.factory import load_factory
    from virtraft.trace.format import read_trace, write_trace
    from virtraft.trace.replay import replay_events

    argv = ["--first-node-id", "0", "--member-rate", "0.01"]
    args = build_parser().parse_args(["fuzz", *argv])
    options = sim_options(args)
    assert options.first_node_id == 0 and tuple(options.founders) == (0, 1, 2, 3, 4)
    leaders: set[int] = set()

    def watch(sim: Simulation) -> None:
        leaders.update(n for n, v in sim.nodes.items() if v.alive and v.role is Role.LEADER)

    for seed in range(12):
        result = run_seed(
            seed, options, swarm=True, keep=swarm_keeps(["fuzz", *argv]), on_step=watch
        )
        assert result.violation is None, result.violation
        assert result.liveness.verdict != "failed", result.liveness
        path = tmp_path / f"seed-{seed}.jsonl"
        write_trace(str(path), result.trace_lines())
        trace = read_trace(path)
        assert trace.options.first_node_id == 0
        sim = Simulation(trace.options, trace.seed, load_factory(trace.factory))
        violation, diverged, _why = replay_events(sim, trace.events)
        assert diverged is None and violation is None
    assert 0 in leaders


def test_first_node_id_must_be_a_whole_number() -> None:
    from virtraft.cli.commands import main

    assert main(["run", "--first-node-id", "-1"]) == 2


def test_swarm_numbers_servers_from_0_only_for_nodes_that_take_a_server_0() -> None:
    """Swarm starts the ids at 0 on some seeds (and at 2 on others) for
    raftcore; for nodes that refuse id 0 (canonical/raft: its raft_id 0 is
    'nobody') the same seeds number from 1, and every other draw is the same."""
    import dataclasses

    from virtraft.nodes.canonical import CanonicalNode
    from virtraft.nodes.raftcore import RaftcoreNode, factory
    from virtraft.run.seed import resolve_options

    takes_zero = factory()
    refuses_zero = factory()
    refuses_zero.capabilities = dataclasses.replace(  # type: ignore[attr-defined]
        RaftcoreNode.capabilities, zero_node_id=False
    )
    assert RaftcoreNode.capabilities.zero_node_id
    assert not CanonicalNode.capabilities.zero_node_id
    base = SimOptions()
    seeds = range(100)
    taken = [resolve_options(s, base, True, factory=takes_zero) for s in seeds]
    refused = [resolve_options(s, base, True, factory=refuses_zero) for s in seeds]
    assert {o.first_node_id for o in taken} == {0, 1, 2}
    assert {o.first_node_id for o in refused} == {1, 2}
    for a, b in zip(taken, refused, strict=True):
        assert a.replace(first_node_id=b.first_node_id) == b
        assert b.first_node_id == (a.first_node_id or 1)
    # A --first-node-id the user gives is kept for every seed.
    keep = swarm_keeps(["fuzz", "--first-node-id", "5"])
    assert keep == {"first_node_id"}
    kept = base.replace(first_node_id=5)
    assert {resolve_options(s, kept, True, keep, takes_zero).first_node_id for s in seeds} == {5}


def test_swarm_seeds_that_number_from_0_run_clean_on_raftcore() -> None:
    from virtraft.run.factory import load_factory
    from virtraft.run.seed import DEFAULT_FACTORY, resolve_options

    make = load_factory(DEFAULT_FACTORY)
    zero = [
        s
        for s in range(40)
        if resolve_options(s, SimOptions(), True, factory=make).first_node_id == 0
    ]
    assert zero
    for seed in zero[:4]:
        result = run_seed(seed, SimOptions(steps=3000), swarm=True)
        assert result.options.first_node_id == 0
        assert result.violation is None, result.violation
        assert result.liveness.verdict != "failed", result.liveness
