"""Correct raftcore under swarm faults: the checker must stay silent.

A false alarm costs a user hours, so 200 seeds of a healthy 5-server
cluster must raise no violation and pass the liveness phase.
"""

from virtraft.fuzz import CampaignSpec, run_campaign
from virtraft.options import SimOptions
from virtraft.runner import DEFAULT_FACTORY


def test_two_hundred_healthy_seeds_raise_nothing():
    spec = CampaignSpec(SimOptions(servers=5, steps=1500), DEFAULT_FACTORY, True, None)
    results = run_campaign(range(200), spec, workers=2)
    assert len(results) == 200
    failed = [(r.seed, r.invariant or r.liveness_reason) for r in results if r.failed]
    assert failed == []
