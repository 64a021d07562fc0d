"""Every verdict names its cause: for each safety mutant of the zoo, the
shrunk and the unshrunk traces' causes name the decisive events its
docstring describes (Figure 8: the old-term commit, then the election that
lost it), with the rule that let them through.

The shrunk traces are those `virtraft zoo --out DIR --no-stateful` wrote
(10,000 replays at most, so the same on any machine), kept under
tests/data/causes/. The unshrunk ones are recomputed: the zoo's first
failing seed under its profile (HUNT_PROFILES below).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.sim.test_refusals import MODULE, OPTIONS, SEED
from virtraft.check.invariants import INVARIANTS
from virtraft.cli.parser import build_parser, sim_options
from virtraft.report.cause import (
    CAUSES,
    Cause,
    Decisive,
    explain_run,
    explain_trace,
    up_to_date,
    watched,
)
from virtraft.run.factory import load_factory
from virtraft.run.seed import RunResult, run_seed
from virtraft.sim.events import ChangeMembership, ClientRequest, Crash, Deliver, Restart, Tick
from virtraft.sim.options import SimOptions
from virtraft.trace.format import read_trace
from virtraft.zoo.mutants import MUTANTS, factory_spec

DATA = Path(__file__).parent / "data" / "causes"

# The zoo's hunting command lines when these seeds were found (before swarm
# profiles made the default command line catch every mutant): the unshrunk
# traces are these seeds' runs under them.
_HUNT = (
    "--no-swarm --no-prevote --election-timeout-ms 100 --request-timeout-ms 20 --no-liveness "
    "--drop 0.1 --dup 0.1 --client-rate 0.15 --member-rate 0.02 --delay-max-ms 100"
)
HUNT_PROFILES = {
    "elections": f"--servers 5 {_HUNT} --partition-rate 0.01 --crash-rate 0.005 "
    "--snapshot-rate 0.01 --max-entries-per-msg 4",
    "replication": f"--servers 3 {_HUNT} --partition-rate 0.02 --crash-rate 0.01 "
    "--snapshot-rate 0.02 --max-entries-per-msg 1",
    "default": "",  # swarm on: the default `virtraft fuzz` command line
}


def profile_run(seed: int, profile: str, name: str) -> RunResult:
    args = build_parser().parse_args(["fuzz", *HUNT_PROFILES[profile].split()])
    return run_seed(seed, sim_options(args), factory=factory_spec(name), swarm=args.swarm)


# The zoo's first finding per safety mutant: (seed, profile).
FIRST_FINDING: dict[str, tuple[int, str]] = {
    "grant_vote_twice": (0, "elections"),
    "forget_vote_on_leader_contact": (0, "elections"),
    "vote_not_persisted": (0, "elections"),
    "candidate_vote_not_recorded": (0, "elections"),
    "stale_vote_response_counted": (31, "replication"),
    "no_step_down_on_higher_term_vote_response": (0, "elections"),
    "duplicate_votes_counted": (0, "elections"),
    "up_to_date_by_length_only": (5, "replication"),
    "fig8_commit_old_term": (9, "replication"),
    "prev_log_term_not_checked": (0, "replication"),
    "truncate_on_stale_append_entries": (0, "replication"),
    "follower_commit_beyond_verified": (80, "replication"),
    "commit_index_goes_back": (0, "replication"),
    "snapshot_lowers_term": (0, "replication"),
    "snapshot_install_loses_entries": (80, "replication"),
    "two_membership_changes_at_once": (71, "elections"),
    "reply_before_sync": (9, "default"),
}


def _rules(cause: Cause) -> str:
    return " | ".join(d.rule for d in cause.decisive)


def _kind(cause: Cause, kind: str) -> list[Decisive]:
    return [d for d in cause.decisive if d.kind == kind]


def _event(trace, step: int):
    return trace.events[step - 1]


# What each mutant's docstring says happened, checked on its cause. Each
# takes the cause and the trace, and asserts.
def _double_vote(cause: Cause, trace) -> None:
    """Two votes of one node in one term: the second is decisive."""
    votes = [d for d in cause.decisive if d.kind == "vote" and d.votes]
    assert len(votes) == 2
    assert votes[0].node == votes[1].node
    assert votes[0].votes[0].term == votes[1].votes[0].term
    assert votes[0].votes[0].candidate != votes[1].votes[0].candidate
    assert cause.steps[-1] == cause.step


def _grant_vote_twice(cause: Cause, trace) -> None:
    """Figure 2, RequestVote rule 2: no check of votedFor."""
    _double_vote(cause, trace)
    assert "RequestVote rule 2" in _rules(cause)


def _forget_vote_on_leader_contact(cause: Cause, trace) -> None:
    """The vote is forgotten on the first message from the term's leader."""
    _double_vote(cause, trace)
    (forgot,) = [d for d in cause.decisive if "forgot its vote" in d.what]
    event = _event(trace, forgot.step)
    assert isinstance(event, Deliver) and event.msg == "AppendEntries"
    assert forgot.node == event.dst


def _vote_not_persisted(cause: Cause, trace) -> None:
    """Vote A, crash and restart, vote B: the vote never reached the disk."""
    _double_vote(cause, trace)
    (forgot,) = [d for d in cause.decisive if "forgot its vote" in d.what]
    assert isinstance(_event(trace, forgot.step), Crash | Restart)
    assert "persistent" in forgot.rule


def _candidate_vote_not_recorded(cause: Cause, trace) -> None:
    """A candidate of a term whose vote is not its own."""
    (d,) = cause.decisive
    assert isinstance(_event(trace, d.step), Tick)
    assert "vote for self" in d.rule and "nobody" in d.what


def _stale_or_duplicate(words: str) -> Callable[[Cause, object], None]:
    """A leader elected without a majority of recorded votes: it counted a
    response that no vote of its term backs (a stale one, or a copy)."""

    def check(cause: Cause, trace) -> None:
        elections = _kind(cause, "election")
        assert elections
        counted = [d for d in elections if "no majority" in d.rule]
        assert counted, _rules(cause)
        assert any(words in d.rule for d in counted), _rules(cause)
        for d in counted:
            assert "became leader" in d.what

    return check


def _no_step_down(cause: Cause, trace) -> None:
    """It took the higher term from a vote response and kept its role."""
    stayed = [d for d in cause.decisive if "stayed" in d.what]
    assert stayed
    event = _event(trace, stayed[0].step)
    assert isinstance(event, Deliver) and event.msg == "RequestVoteResponse"
    assert "convert to follower" in stayed[0].rule


def _up_to_date_by_length(cause: Cause, trace) -> None:
    """A voter holding the committed entry granted a shorter-term log."""
    (election,) = _kind(cause, "election")
    bad = [v for v in election.votes if not v.up_to_date]
    assert bad and all(v.held for v in bad)
    for vote in bad:  # as long a log or longer, of staler entries
        assert vote.candidate_last[0] < vote.voter_last[0]
        assert vote.candidate_last[1] >= vote.voter_last[1]
    assert "§5.4.1" in election.rule
    (commit,) = _kind(cause, "commit")
    assert commit.step < election.step


def _fig8(cause: Cause, trace) -> None:
    """Figure 8: the commit of an old term's entry by counting replicas, then
    the election of a leader without it."""
    (commit,) = _kind(cause, "commit")
    (election,) = _kind(cause, "election")
    assert commit.step < election.step == cause.step
    assert "§5.4.2" in commit.rule
    # The election was fair: every vote was allowed by §5.4.1.
    assert election.votes and all(v.up_to_date for v in election.votes)


def _prev_log_term(cause: Cause, trace) -> None:
    """An AppendEntries accepted though the entry at prevLogIndex had another term."""
    assert "AppendEntries rule 2" in _rules(cause)
    (d,) = [d for d in cause.decisive if "rule 2" in d.rule]
    _delivered(trace, d.step, "AppendEntries")


def _delivered(trace, step: int, msg: str) -> None:
    event = _event(trace, step)
    assert isinstance(event, Deliver) and event.msg == msg, event


def _lost_on(cause: Cause, trace, msg: str, rule: str) -> None:
    """A holder lost the entry on delivering a `msg`, against `rule`."""
    losses = _kind(cause, "lose")
    assert losses
    for loss in losses:
        _delivered(trace, loss.step, msg)
        assert rule in loss.rule
    assert _kind(cause, "commit")


def _truncate_on_stale(cause: Cause, trace) -> None:
    """A delayed or duplicated AppendEntries took back an acknowledged entry."""
    _lost_on(cause, trace, "AppendEntries", "AppendEntries rule 3")


def _follower_commit_beyond(cause: Cause, trace) -> None:
    """A follower committed and applied an entry its leader did not hold."""
    applies = [d for d in _kind(cause, "apply") if "rule" in d.rule]
    assert applies, _rules(cause)
    _delivered(trace, applies[0].step, "AppendEntries")


def _commit_goes_back(cause: Cause, trace) -> None:
    """A delayed AppendEntries with an older leaderCommit."""
    (d,) = cause.decisive
    _delivered(trace, d.step, "AppendEntries")
    assert "in flight" in d.what and "never goes back" in d.rule


def _snapshot_lowers_term(cause: Cause, trace) -> None:
    """The term taken from the snapshot's lastIncludedTerm."""
    (d,) = cause.decisive
    _delivered(trace, d.step, "InstallSnapshot")
    assert "Figure 13" in d.rule


def _snapshot_install_loses(cause: Cause, trace) -> None:
    """An acknowledged entry after the snapshot's last index, discarded on install."""
    _lost_on(cause, trace, "InstallSnapshot", "§7")


def _reply_before_sync(cause: Cause, trace) -> None:
    """The term it answered in was never synced: a power cut takes it back."""
    (d,) = cause.decisive
    event = _event(trace, d.step)
    assert isinstance(event, Crash) and event.keep is not None  # a lossy crash
    assert "persistent" in d.rule


def _two_changes_at_once(cause: Cause, trace) -> None:
    """The leader accepted a second change before the first one committed:
    its configurations differ by two voters."""
    changes = _kind(cause, "config")
    assert len(changes) >= 2
    assert "§4.1" in _rules(cause)
    (commit,) = _kind(cause, "commit")
    mine = [d for d in changes if d.node == commit.node and d.step <= commit.step]
    assert len(mine) >= 2  # two changes by the committing leader
    for d in mine:
        assert isinstance(_event(trace, d.step), ChangeMembership)


EXPECTED: dict[str, Callable[[Cause, object], None]] = {
    "grant_vote_twice": _grant_vote_twice,
    "forget_vote_on_leader_contact": _forget_vote_on_leader_contact,
    "vote_not_persisted": _vote_not_persisted,
    "candidate_vote_not_recorded": _candidate_vote_not_recorded,
    "stale_vote_response_counted": _stale_or_duplicate("in its term"),
    "no_step_down_on_higher_term_vote_response": _no_step_down,
    "duplicate_votes_counted": _stale_or_duplicate("twice"),
    "up_to_date_by_length_only": _up_to_date_by_length,
    "fig8_commit_old_term": _fig8,
    "prev_log_term_not_checked": _prev_log_term,
    "truncate_on_stale_append_entries": _truncate_on_stale,
    "follower_commit_beyond_verified": _follower_commit_beyond,
    "commit_index_goes_back": _commit_goes_back,
    "snapshot_lowers_term": _snapshot_lowers_term,
    "snapshot_install_loses_entries": _snapshot_install_loses,
    "two_membership_changes_at_once": _two_changes_at_once,
    "reply_before_sync": _reply_before_sync,
}


def _check(name: str, cause: Cause | None, trace) -> None:
    assert cause is not None
    assert cause.invariant in MUTANTS[name].expected_invariant
    assert cause.decisive and cause.steps[-1] <= cause.step
    json.dumps(cause.to_json())  # plain data
    EXPECTED[name](cause, trace)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_shrunk_trace_names_the_decisive_events(name: str) -> None:
    trace = read_trace(DATA / f"{name}.shrunk.jsonl")
    explained = explain_trace(trace, load_factory(factory_spec(name)))
    _check(name, explained.cause, trace)


@pytest.mark.parametrize("name", sorted(FIRST_FINDING))
def test_the_unshrunk_trace_names_the_decisive_events(name: str) -> None:
    seed, profile = FIRST_FINDING[name]
    result = profile_run(seed, profile, name)
    assert result.violation is not None
    explained = explain_run(result)
    _check(name, explained.cause, explained.trace)


def test_every_safety_mutant_is_covered() -> None:
    safety = {name for name, cls in MUTANTS.items() if cls.kind == "safety"}
    assert set(EXPECTED) == set(FIRST_FINDING) == safety


def test_every_invariant_has_a_cause() -> None:
    assert set(CAUSES) == {*INVARIANTS, "NodeException"}


def test_fig8_unshrunk_the_commit_is_far_before_the_violation() -> None:
    """The issue's case: the lost commit happened hundreds of steps before
    the step where the violation was seen."""
    seed, profile = FIRST_FINDING["fig8_commit_old_term"]
    result = profile_run(seed, profile, "fig8_commit_old_term")
    cause = explain_run(result).cause
    assert cause is not None
    (commit,) = _kind(cause, "commit")
    assert cause.step - commit.step > 100
    holders = set(commit.nodes)
    got = [d for d in _kind(cause, "append") if d.node in holders]
    assert {d.node for d in got} == holders  # when each acknowledgement's entry arrived
    assert all(d.step <= commit.step for d in got)
    assert isinstance(_event(explain_run(result).trace, got[0].step), ClientRequest | Deliver)


def test_up_to_date_is_the_papers_rule() -> None:
    """§5.4.1: the later last term wins; equal last terms, the longer log."""
    assert up_to_date((3, 1), (2, 9))
    assert not up_to_date((2, 9), (3, 1))
    assert up_to_date((2, 5), (2, 5))
    assert not up_to_date((2, 4), (2, 5))


def test_watched_follows_the_indexes_the_violation_names() -> None:
    assert watched(None) == ()
    assert watched({"invariant": "VoteOnce", "witness": {}}) == ()
    assert watched({"invariant": "LogMatching", "witness": {"index": 7}}) == (6, 7)
    committed = {"committed": {"index": 4}}
    assert watched({"invariant": "CommittedNeverLost", "witness": committed}) == (4,)
    assert watched({"invariant": "StateMachineSafety", "witness": {"index": "x"}}) == ()


def test_a_healthy_trace_has_no_cause() -> None:
    result = run_seed(3, SimOptions(servers=3, steps=300, liveness=False), swarm=False)
    assert result.violation is None
    assert explain_run(result).cause is None


def test_a_node_exception_names_the_event_and_where_it_raised() -> None:
    """The server raised through the door: the cause is the event it was
    handling, and the place in the server's code."""
    result = run_seed(SEED, OPTIONS, factory=f"{MODULE}:term_then_refusal")
    cause = explain_run(result).cause
    assert cause is not None and cause.invariant == "NodeException"
    (d,) = cause.decisive
    assert d.step == result.violation.step
    assert "deliver RequestVoteResponse" in d.what
    assert "recv_requestvote_response" in d.rule
