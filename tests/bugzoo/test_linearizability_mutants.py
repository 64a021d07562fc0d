"""The zoo's linearizability mutants: each is caught by the linearizability
verdict on the clients' history (never by an invariant over the logs), on
a zoo profile's command line, and its counterexample shrinks and replays.
Correct raftcore stays silent on the same seeds (no false alarm).
"""

from __future__ import annotations

import pytest

from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.run.seed import LINEARIZABILITY, linearizability_violation, run_seed
from virtraft.run.shrink import shrink_events
from virtraft.zoo import hunt, mutants

# Seed ranges the zoo's profiles catch each mutant in (measured; see the note).
CAUGHT = {
    "read_before_term_commit": range(0, 1),
    "retried_write_applied_twice": range(5, 6),
    "read_without_heartbeat_round": range(6, 7),
    "lease_without_confirmation": range(60, 61),
}


def test_every_linearizability_mutant_is_hunted() -> None:
    kinds = {name for name, cls in mutants.MUTANTS.items() if cls.kind == "linearizability"}
    assert set(CAUGHT) == kinds


@pytest.mark.parametrize("name", sorted(CAUGHT))
def test_mutant_is_caught_by_the_linearizability_verdict(name: str) -> None:
    spec = mutants.factory_spec(name)
    finding, _runs, _s, result = hunt.hunt_seeds(
        spec, CAUGHT[name], hunt.LINEARIZABILITY_PROFILES, float("inf")
    )
    assert finding is not None and finding.verdict == LINEARIZABILITY
    assert result is not None and result.violation is None  # no log invariant saw it


def test_correct_raftcore_is_silent_on_those_seeds() -> None:
    seeds = sorted({s for r in CAUGHT.values() for s in r})
    finding, _runs, _s, _r = hunt.hunt_seeds(
        DEFAULT_FACTORY, seeds, hunt.LINEARIZABILITY_PROFILES, float("inf")
    )
    assert finding is None


def test_a_linearizability_counterexample_shrinks_and_stays_failing() -> None:
    spec = mutants.factory_spec("read_before_term_commit")
    result = run_seed(2, hunt.profile_options("leases"), factory=spec, swarm=hunt._swarm("leases"))
    violation = linearizability_violation(result.sim, result.linearizability)
    assert violation is not None
    outcome = shrink_events(
        2, result.options, spec, result.events, LINEARIZABILITY, max_replays=200
    )
    assert outcome.after < len(result.events) // 5  # 200 replays; 400 reach 102 events
    assert outcome.verdict["linearizability"]["verdict"] == "violation"


def test_the_report_shows_the_history_and_marks_what_has_no_order() -> None:
    """The report's history view: a panel per key, one bar per operation,
    the key without a linear order named, its stuck operation outlined and
    the shortest failing prefix shaded; every bar links to its step."""
    from virtraft.check.linearizability import check_history
    from virtraft.report.html import render_report
    from virtraft.run.factory import load_factory
    from virtraft.trace.format import Trace

    spec = mutants.factory_spec("read_before_term_commit")
    _finding, _runs, _s, result = hunt.hunt_seeds(
        spec, CAUGHT["read_before_term_commit"], hunt.LINEARIZABILITY_PROFILES, float("inf")
    )
    assert result is not None and result.linearizability is not None
    assert result.linearizability.verdict == "violation"
    history = [r.operation for r in result.sim.clients.history(result.sim)]
    failure = check_history(history).failures[0]
    trace = Trace(result.seed, result.options, spec, tuple(result.events), result.verdict(), {})
    page = render_report(trace, factory=load_factory(spec))
    assert "<h2>Client history</h2>" in page
    assert f"key {failure.key}: no linear order" in page
    assert page.count('class="op stuck"') == 1
    assert 'class="prefix"' in page
    keys = {op.key for op in history}
    assert all(f'aria-label="history of key {k}"' in page for k in keys)
    assert page.count('class="op') == len(history)
