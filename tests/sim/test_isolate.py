"""A worker process that dies (a native crash) costs no seed: the campaign
reruns each lost seed alone and reports the one that dies as a NodeException
whose trace ends with the event it died in."""

from __future__ import annotations

from virtraft.run.campaign import CampaignSpec, run_campaign
from virtraft.sim.events import Deliver
from virtraft.sim.options import SimOptions
from virtraft.trace.format import read_trace


def test_a_dead_worker_is_a_finding_with_its_trace(tmp_path) -> None:
    spec = CampaignSpec(
        SimOptions(servers=3, steps=1500, liveness=False),
        "tests.adapters.dying:factory",
        False,
        str(tmp_path),
    )
    results = run_campaign(range(3), spec, workers=2)
    assert [r.seed for r in results] == [0, 1, 2]
    for result in results:
        assert result.invariant == "NodeException"
        assert "died of SIGSEGV" in (result.message or "")
        trace = read_trace(result.trace)
        assert len(trace.events) == result.step
        last = trace.events[-1]
        assert isinstance(last, Deliver) and last.dst == 2
        assert trace.verdict["violation"]["invariant"] == "NodeException"
