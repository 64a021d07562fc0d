"""Correct raftcore under swarm faults: the checker must stay silent.

A false alarm costs a user hours, so 200 seeds of a healthy 5-server
cluster must raise no violation and pass the liveness phase.
"""

from virtraft.run.campaign import CampaignSpec, run_campaign
from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.sim.options import SimOptions


def test_two_hundred_healthy_seeds_raise_nothing():
    spec = CampaignSpec(SimOptions(servers=5, steps=1500), DEFAULT_FACTORY, True, None)
    results = run_campaign(range(200), spec, workers=2)
    assert len(results) == 200
    failed = [(r.seed, r.invariant or r.liveness_reason) for r in results if r.failed]
    assert failed == []


def test_swarm_draws_the_raft_settings_that_hide_bugs_too():
    """Swarm mixes Raft settings as well as faults: pre-vote on and off, the
    default and ten times faster timers (heartbeat always below the election
    timeout), and one entry per message only with the fast timers."""
    import random

    from virtraft.sim.options import options_swarm, validate

    base = SimOptions()
    drawn = [options_swarm(random.Random(seed), base) for seed in range(300)]
    for options in drawn:
        validate(options)
        node = options.node
        assert node.election_timeout_ms in (
            base.node.election_timeout_ms,
            base.node.election_timeout_ms // 10,
        )
        if node.max_entries_per_msg == 1:
            assert node.election_timeout_ms < base.node.election_timeout_ms
    nodes = [o.node for o in drawn]
    assert {n.prevote for n in nodes} == {True, False}
    assert len({n.election_timeout_ms for n in nodes}) == 2
    assert {n.max_entries_per_msg for n in nodes} == {1, 4, 16, 64}
