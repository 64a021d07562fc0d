"""The liveness core phase, the progress monitor, slow against stuck, and
shrinking a liveness failure (issue 13, items 1-3)."""

from __future__ import annotations

import pytest

from virtraft.adapter import NodeOptions
from virtraft.check.checker import Checker
from virtraft.run.factory import load_factory
from virtraft.run.liveness import STANDING_FAULTS, Plan, bound_ms, rejudge
from virtraft.run.seed import continue_with_liveness, run_seed
from virtraft.run.shrink import shrink_liveness
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation

FACTORIES = "tests.sim.factories"
MUTANTS = "virtraft.zoo.mutants"


def rejudged(result):
    """The liveness verdict `virtraft replay` derives from the run's events."""
    sim = Simulation(result.options, result.seed, load_factory(result.factory), checker=Checker())
    liveness, violation, diverged, why = rejudge(sim, result.events, result.liveness.to_json())
    assert violation is None and diverged is None, why
    return liveness


@pytest.mark.parametrize("seed", [0, 1])
def test_a_slow_but_correct_cluster_is_slow_not_stuck(seed):
    result = run_seed(seed, SimOptions(servers=3, steps=0), factory=f"{FACTORIES}:slow_elections")
    liveness = result.liveness
    assert liveness.verdict == "slow", liveness
    assert not result.failed and result.slow
    assert liveness.took_ms is not None and liveness.took_ms > bound_ms(result.options)
    assert rejudged(result).verdict == "slow"


def test_a_cluster_that_never_elects_is_stuck():
    result = run_seed(0, SimOptions(servers=3, steps=0), factory=f"{FACTORIES}:never_elects")
    assert result.failed and result.liveness.name == "LeaderElected"
    assert "candidate" in (result.liveness.blocked or "") or result.liveness.blocked
    again = rejudged(result)
    assert (again.verdict, again.name) == ("failed", "LeaderElected")


def _after_safety_phase(seed: int) -> Simulation:
    options = SimOptions(steps=1500, crash_rate=0.002, partition_rate=0.005, liveness=False)
    result = run_seed(seed, options)
    assert result.violation is None
    return result.sim


@pytest.mark.parametrize("fault", STANDING_FAULTS)
@pytest.mark.parametrize("leader_out", [False, True])
def test_a_standing_fault_outside_the_core_does_not_fail_a_correct_cluster(fault, leader_out):
    sim = _after_safety_phase(3)
    leader = sim.leader()
    outside = [4, 5]
    if leader_out and leader is not None:
        outside = sorted({leader.node_id, 5 if leader.node_id != 5 else 4})
    core = tuple(n for n in sim.node_ids if n not in outside)
    plan = Plan("core", core, tuple((n, fault) for n in outside))
    liveness, violation = continue_with_liveness(sim, 3, plan=plan)
    assert violation is None
    assert liveness.verdict in ("ok", "slow"), liveness
    assert liveness.phase is not None and liveness.phase["plan"]["core"] == list(core)


def test_the_drawn_core_is_a_majority_and_leaves_the_old_leader_out_sometimes():
    outs = 0
    for seed in range(12):
        result = run_seed(seed, SimOptions(steps=800))
        assert not result.failed, (seed, result.liveness)
        plan = result.liveness.phase["plan"]
        if plan["shape"] == "core":
            assert len(plan["core"]) >= 3
            outs += any(f in STANDING_FAULTS for _n, f in plan["faults"])
    assert outs > 0


# Fast timers, short ticks and delays, no losses: the progress monitor applies.
MONITORED = SimOptions(
    steps=20_000,
    tick_ms_max=5,
    delay_ms_max=5,
    node=NodeOptions(election_timeout_ms=40, request_timeout_ms=10),
)


def test_the_progress_monitor_names_a_stable_majority_that_never_elects():
    # Its election never ends: ElectionEnds (5 election timeouts, stuck at 50)
    # comes before LeaderElected (10 after the stable window, stuck at 100).
    result = run_seed(0, MONITORED, factory=f"{MUTANTS}:vote_only_for_longer_logs")
    liveness = result.liveness
    assert liveness.verdict == "failed" and liveness.name == "ElectionEnds", liveness
    assert liveness.phase is None  # found during the faults, before the phase
    assert liveness.monitored and result.sim.step < MONITORED.steps
    assert liveness.witness is not None and len(liveness.witness["nodes"]) >= 3
    again = rejudged(result)
    assert (again.verdict, again.name) == ("failed", "ElectionEnds")


@pytest.mark.parametrize("seed", range(3))
def test_the_progress_monitor_is_silent_on_correct_raftcore(seed):
    result = run_seed(seed, MONITORED)
    assert result.liveness.monitored
    assert not result.failed, result.liveness


def test_a_liveness_failure_shrinks_to_a_shorter_trace_with_the_same_verdict():
    options = SimOptions(servers=3, steps=400, liveness_bound_elections=5, liveness_stuck_factor=2)
    spec = f"{MUTANTS}:vote_only_for_longer_logs"
    result = run_seed(0, options, factory=spec)
    assert result.liveness.name == "LeaderElected"
    outcome = shrink_liveness(
        0, options, spec, result.events, result.liveness.to_json(), max_replays=20
    )
    assert outcome.after < outcome.before
    assert outcome.verdict["liveness"]["name"] == "LeaderElected"
    sim = Simulation(outcome.options, 0, load_factory(spec), checker=Checker())
    liveness, violation, diverged, _why = rejudge(sim, outcome.events, outcome.verdict["liveness"])
    assert violation is None and diverged is None
    assert (liveness.verdict, liveness.name) == ("failed", "LeaderElected")
