"""Leader election: timeouts, vote granting, terms, pre-vote, stickiness and
check-quorum (Raft §5.2, §5.4.1; dissertation §4.2.3, §6.2, §9.6)."""

from __future__ import annotations

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, make_config

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
)

MEMBERS3 = ((1, True), (2, True), (3, True))


def first_timeout_ms(seed: int) -> int:
    """Milliseconds, 1 ms at a time, until a fresh follower starts an election."""
    cluster = Cluster((1, 2, 3), seed=seed)
    server = cluster.servers[1]
    for elapsed in range(1, 3 * ELECTION_MS):
        server.periodic(1)
        if server.role is not Role.FOLLOWER:
            return elapsed
    raise AssertionError("no election within 3T")


def test_election_timeout_is_random_in_t_to_2t() -> None:
    """Raft §5.2: each server picks its election timeout at random from
    [T, 2T), so that split votes are rare."""
    timeouts = [first_timeout_ms(seed) for seed in range(40)]
    assert all(ELECTION_MS <= t < 2 * ELECTION_MS for t in timeouts)
    assert len(set(timeouts)) > 10  # really drawn from the rng, not fixed


def test_same_seed_same_timeout() -> None:
    """Randomness comes only from the injected random.Random."""
    assert first_timeout_ms(5) == first_timeout_ms(5)


def test_timer_is_reset_after_each_election() -> None:
    """Raft §5.2: a candidate that neither wins nor loses times out again and
    starts a new election in a new term."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    server = cluster.servers[1]
    cluster.tick(1, 2 * ELECTION_MS)
    assert server.role is Role.CANDIDATE and server.current_term == 1
    cluster.drop_all()  # a split vote: nobody answers
    cluster.tick(1, ELECTION_MS - 1)
    assert server.current_term == 1
    cluster.tick(1, ELECTION_MS + 1)
    assert server.role is Role.CANDIDATE and server.current_term == 2


def test_candidate_persists_term_and_own_vote_before_asking() -> None:
    """Raft Figure 2: a candidate increments its term and votes for itself,
    durably, before any RequestVote leaves."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.tick(1, 2 * ELECTION_MS)
    events = cluster.recorders[1].events
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "persist_term" and events[0][1] == (1, 1)
    assert kinds[1:] == ["send", "send"]
    sent = [(to, msg) for to, msg in cluster.recorders[1].sent]
    assert sent == [(2, RequestVote(1, 1, 0, 0)), (3, RequestVote(1, 1, 0, 0))]


def test_vote_is_persisted_before_the_response_is_returned() -> None:
    """Raft Figure 2: a server updates its durable currentTerm and votedFor
    before responding. The host sends the response only once the call
    returns, so by then both must be on disk, term first."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    voter = cluster.servers[2]
    recorder = cluster.recorders[2]
    response = voter.recv_requestvote(1, RequestVote(1, 1, 0, 0))
    assert response == RequestVoteResponse(1, True)
    assert (recorder.term, recorder.vote) == (1, 1)
    assert recorder.events == [("persist_term", (1, None)), ("persist_vote", 1)]
    assert voter.voted_for == 1
    # A refusal in a newer term still persists the term before answering.
    cluster.tick(2, ELECTION_MS)  # out of any lease
    refused = voter.recv_requestvote(3, RequestVote(2, 3, 0, 0))
    assert refused == RequestVoteResponse(2, True)
    voter2 = cluster.restore(3, term=1, terms=(1, 1))
    refused = voter2.recv_requestvote(1, RequestVote(4, 1, 0, 0))
    assert refused == RequestVoteResponse(4, False)
    assert (cluster.recorders[3].term, cluster.recorders[3].vote) == (4, None)


def test_one_vote_per_term() -> None:
    """Raft §5.2: at most one vote per term, first come first served; the
    same candidate asking again gets the same answer."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    voter = cluster.servers[2]
    assert voter.recv_requestvote(1, RequestVote(1, 1, 0, 0)).vote_granted
    assert not voter.recv_requestvote(3, RequestVote(1, 3, 0, 0)).vote_granted
    assert voter.recv_requestvote(1, RequestVote(1, 1, 0, 0)).vote_granted  # duplicate
    assert cluster.recorders[2].vote == 1
    # A new term is a new vote.
    cluster.tick(2, ELECTION_MS)  # out of any lease
    assert voter.recv_requestvote(3, RequestVote(2, 3, 0, 0)).vote_granted
    assert (cluster.recorders[2].term, cluster.recorders[2].vote) == (2, 3)


def test_stale_term_requestvote_refused() -> None:
    """Raft §5.1: a request with a stale term is rejected, with the newer term."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.restore(2, term=5)
    response = cluster.servers[2].recv_requestvote(1, RequestVote(4, 1, 0, 0))
    assert response == RequestVoteResponse(5, False)
    assert cluster.servers[2].voted_for is None


# (voter log terms, snapshot (index, term) or None, candidate last index, last term, granted)
UP_TO_DATE_CASES = [
    ((1, 1, 2), None, 1, 3, True),  # higher last term wins though shorter
    ((1, 1, 2), None, 3, 2, True),  # same last term, same length
    ((1, 1, 2), None, 5, 2, True),  # same last term, longer
    ((1, 1, 2), None, 2, 2, False),  # same last term, shorter
    ((1, 1, 2), None, 10, 1, False),  # lower last term loses though longer
    ((), None, 0, 0, True),  # two empty logs
    ((1,), None, 0, 0, False),  # an empty log is behind any entry
    # Compacted voter: snapshot through index 5, term 3, and nothing after it:
    # its last term is the snapshot's.
    ((), (5, 3), 5, 3, True),
    ((), (5, 3), 4, 3, False),
    ((), (5, 3), 2, 4, True),
    ((), (5, 3), 9, 2, False),
    ((4,), (5, 3), 6, 3, False),  # entry 6 of term 4 after the snapshot
    ((4,), (5, 3), 6, 4, True),
]


@pytest.mark.parametrize(("terms", "snap", "last_index", "last_term", "granted"), UP_TO_DATE_CASES)
def test_vote_only_for_an_up_to_date_log(terms, snap, last_index, last_term, granted) -> None:
    """Raft §5.4.1: grant only if the candidate's log is at least as up to
    date: compare last terms first, then lengths; a compacted log's last
    term is its snapshot's."""
    config = make_config(prevote=False)
    cluster = Cluster((1, 2, 3), config=config)
    snapshot = None
    if snap is not None:
        snapshot = Snapshot(snap[0], snap[1], MEMBERS3, b"")
    voter = cluster.restore(2, term=5, terms=terms, snapshot=snapshot)
    response = voter.recv_requestvote(1, RequestVote(6, 1, last_index, last_term))
    assert response.vote_granted is granted
    assert response.term == 6  # the term is adopted either way
    assert voter.voted_for == (1 if granted else None)
    # The pre-vote applies the same rule, without changing anyone's term.
    voter2 = cluster.restore(3, term=5, terms=terms, snapshot=snapshot)
    pre = voter2.recv_requestvote(1, RequestVote(6, 1, last_index, last_term, prevote=True))
    assert pre.vote_granted is granted
    assert voter2.current_term == 5


def leader_of_term_2() -> Cluster:
    config = make_config(prevote=False)
    cluster = Cluster((1, 2, 3), config=config)
    cluster.restore(1, term=1, terms=(1,))
    cluster.restore(2, term=1, terms=(1,))
    cluster.restore(3, term=1, terms=(1,))
    cluster.elect(1)
    assert cluster.servers[1].current_term == 2
    return cluster


HIGHER_TERM_MESSAGES = [
    pytest.param(2, AppendEntries(3, 2, 0, 0, (), 0), id="AppendEntries"),
    pytest.param(2, AppendEntriesResponse(3, False, 0, 1, 1), id="AppendEntriesResponse"),
    pytest.param(2, RequestVoteResponse(3, False), id="RequestVoteResponse"),
    pytest.param(2, RequestVoteResponse(3, False, prevote=True), id="PreVoteResponse"),
    pytest.param(2, InstallSnapshot(3, 2, 1, 1, MEMBERS3, 0, b"abc", False), id="InstallSnapshot"),
    pytest.param(2, InstallSnapshotResponse(3, 1, 0), id="InstallSnapshotResponse"),
]


@pytest.mark.parametrize(("src", "msg"), HIGHER_TERM_MESSAGES)
def test_leader_steps_down_on_higher_term(src, msg) -> None:
    """Raft §5.1: a server that sees a higher term in any request or response
    adopts it (durably, with no vote) and becomes a follower."""
    cluster = leader_of_term_2()
    leader = cluster.servers[1]
    handler = {
        AppendEntries: leader.recv_appendentries,
        AppendEntriesResponse: leader.recv_appendentries_response,
        RequestVoteResponse: leader.recv_requestvote_response,
        InstallSnapshot: leader.recv_installsnapshot,
        InstallSnapshotResponse: leader.recv_installsnapshot_response,
    }[type(msg)]
    handler(src, msg)
    assert leader.role is Role.FOLLOWER
    assert leader.current_term == 3
    assert (cluster.recorders[1].term, cluster.recorders[1].vote) == (3, None)
    expected_leader = 2 if isinstance(msg, AppendEntries | InstallSnapshot) else None
    assert leader.get_current_leader() == expected_leader


@pytest.mark.parametrize("role", [Role.FOLLOWER, Role.CANDIDATE])
def test_requestvote_with_higher_term_updates_term(role) -> None:
    """Raft §5.1: a follower or candidate out of any leader's lease adopts a
    higher term from a RequestVote (and a candidate becomes a follower)."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    server = cluster.servers[2]
    if role is Role.CANDIDATE:
        cluster.tick(2, 2 * ELECTION_MS)
        cluster.drop_all()
    assert server.role is role
    response = server.recv_requestvote(1, RequestVote(7, 1, 0, 0))
    assert response == RequestVoteResponse(7, True)
    assert server.role is Role.FOLLOWER
    assert (cluster.recorders[2].term, cluster.recorders[2].vote) == (7, 1)


def test_candidate_steps_down_on_appendentries_of_its_term() -> None:
    """Raft §5.2: a candidate that hears from a leader of its own term
    recognises it and returns to follower."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.tick(2, 2 * ELECTION_MS)
    cluster.drop_all()
    candidate = cluster.servers[2]
    assert candidate.role is Role.CANDIDATE and candidate.current_term == 1
    response = candidate.recv_appendentries(3, AppendEntries(1, 3, 0, 0, (), 0))
    assert response.success
    assert candidate.role is Role.FOLLOWER
    assert candidate.get_current_leader() == 3
    assert candidate.current_term == 1


def test_stale_term_responses_are_ignored() -> None:
    """Raft §5.1: responses from an older term change nothing."""
    cluster = leader_of_term_2()
    leader = cluster.servers[1]
    cluster.submit(1, "x")  # index 3, not delivered
    cluster.drop_all()
    before = (leader.member_progress(2).match_index, leader.commit_index)
    leader.recv_appendentries_response(2, AppendEntriesResponse(1, True, match_index=3))
    leader.recv_requestvote_response(2, RequestVoteResponse(1, True))
    leader.recv_installsnapshot_response(2, InstallSnapshotResponse(1, 3, 0, done=True))
    assert (leader.member_progress(2).match_index, leader.commit_index) == before
    assert leader.is_leader and leader.current_term == 2
    assert cluster.queue == []


def test_stale_vote_is_not_counted_by_a_later_candidate() -> None:
    """Raft §5.2: a vote granted in term 1 does not count in term 2."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.drop_all()
    cluster.tick(1, 2 * ELECTION_MS)  # term 2
    cluster.drop_all()
    candidate = cluster.servers[1]
    assert candidate.current_term == 2
    candidate.recv_requestvote_response(2, RequestVoteResponse(1, True))
    assert candidate.role is Role.CANDIDATE
    candidate.recv_requestvote_response(2, RequestVoteResponse(2, True))
    assert candidate.is_leader


def test_duplicated_votes_are_not_double_counted() -> None:
    """Raft §5.2: a candidate wins with votes from a majority of servers;
    the same vote delivered twice is one vote."""
    cluster = Cluster(range(1, 6), config=make_config(prevote=False))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.drop_all()
    candidate = cluster.servers[1]
    vote = RequestVoteResponse(1, True)
    candidate.recv_requestvote_response(2, vote)
    candidate.recv_requestvote_response(2, vote)
    candidate.recv_requestvote_response(2, vote)
    assert candidate.role is Role.CANDIDATE  # 2 of 5
    candidate.recv_requestvote_response(3, RequestVoteResponse(1, False))
    assert candidate.role is Role.CANDIDATE
    candidate.recv_requestvote_response(4, vote)
    assert candidate.is_leader  # 3 of 5


def test_duplicated_prevotes_are_not_double_counted() -> None:
    """Dissertation §9.6: pre-votes are counted like votes, once per voter."""
    cluster = Cluster(range(1, 6))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.drop_all()
    server = cluster.servers[1]
    assert server.role is Role.PRECANDIDATE
    grant = RequestVoteResponse(1, True, prevote=True)
    server.recv_requestvote_response(2, grant)
    server.recv_requestvote_response(2, grant)
    assert server.role is Role.PRECANDIDATE and server.current_term == 0
    server.recv_requestvote_response(3, grant)
    assert server.role is Role.CANDIDATE and server.current_term == 1


def test_leader_stickiness() -> None:
    """Dissertation §4.2.3: a server that heard from a leader within the
    minimum election timeout neither grants a vote nor updates its term."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.elect(1)
    follower = cluster.servers[2]
    cluster.tick(2, ELECTION_MS - 1)
    response = follower.recv_requestvote(3, RequestVote(5, 3, 10, 5))
    assert response == RequestVoteResponse(1, False)
    assert follower.current_term == 1 and cluster.recorders[2].term == 1
    # The leader itself keeps its lease while it leads.
    assert cluster.servers[1].recv_requestvote(3, RequestVote(5, 3, 10, 5)) == (
        RequestVoteResponse(1, False)
    )
    assert cluster.servers[1].is_leader
    # Once a whole minimum timeout passes without the leader, the vote is granted.
    cluster.tick(2, 1)
    response = follower.recv_requestvote(3, RequestVote(5, 3, 10, 5))
    assert response == RequestVoteResponse(5, True)


def test_prevote_does_not_bump_terms() -> None:
    """Dissertation §9.6: a pre-candidate asks with the term it would stand
    in; neither it nor its voters change term until it wins the pre-vote."""
    cluster = Cluster((1, 2, 3))
    cluster.tick(1, 2 * ELECTION_MS)
    server = cluster.servers[1]
    assert server.role is Role.PRECANDIDATE
    assert server.current_term == 0 and cluster.recorders[1].term == 0
    requests = [msg for _, _, msg in cluster.queue]
    assert requests == [RequestVote(1, 1, 0, 0, prevote=True)] * 2
    cluster.deliver_where(lambda m: isinstance(m[2], RequestVote) and m[2].prevote)
    assert cluster.servers[2].current_term == 0
    assert cluster.servers[2].voted_for is None
    assert cluster.recorders[2].events == []  # nothing persisted by a pre-vote
    cluster.deliver_all()
    assert server.is_leader and server.current_term == 1


def test_partitioned_server_with_prevote_does_not_disrupt_the_leader() -> None:
    """Dissertation §9.6: an isolated server keeps failing its pre-vote, so its
    term stays put, and when it rejoins the leader keeps leading."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    for _ in range(10):
        cluster.tick(3, 2 * ELECTION_MS)
        cluster.take(RequestVote, src=3)  # lost in the partition
    assert cluster.servers[3].current_term == 1
    cluster.tick(3, 2 * ELECTION_MS)
    cluster.deliver_all()  # the partition heals: nobody grants the pre-vote
    assert cluster.servers[1].is_leader and cluster.servers[1].current_term == 1
    assert cluster.servers[3].current_term == 1
    cluster.heartbeat(1)
    assert cluster.servers[3].role is Role.FOLLOWER
    assert cluster.servers[3].get_current_leader() == 1


def test_prevote_rejected_by_a_server_with_a_longer_log() -> None:
    """Dissertation §9.6: the pre-vote applies the up-to-date check (§5.4.1)."""
    cluster = Cluster((1, 2, 3))
    cluster.restore(1, term=2, terms=(1,))
    cluster.restore(2, term=2, terms=(1, 2))
    cluster.restore(3, term=2, terms=(1, 2))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_all()
    assert cluster.servers[1].role is Role.PRECANDIDATE
    assert all(s.current_term == 2 for s in cluster.servers.values())


def test_prevote_reply_with_higher_term_makes_precandidate_follow() -> None:
    """Raft §5.1 applies to pre-vote replies too: a refusal carrying a higher
    term is adopted."""
    cluster = Cluster((1, 2, 3))
    cluster.restore(3, term=4)
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_all()
    server = cluster.servers[1]
    assert server.current_term == 4
    assert server.role is Role.FOLLOWER


def test_check_quorum_steps_a_partitioned_leader_down() -> None:
    """Dissertation §6.2: a leader that hears from no majority within an
    election timeout steps down, so clients can find the real leader."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)  # both followers answered within the first timeout
    for _ in range(2 * ELECTION_MS // 20 - 1):
        cluster.tick(1, 20)
        cluster.drop_all()  # partitioned: heartbeats go nowhere
    assert leader.is_leader  # the first check counted the election's answers
    cluster.tick(1, 20)  # the second check finds nobody
    assert leader.role is Role.FOLLOWER
    assert leader.current_term == 1  # stepping down does not bump the term
    assert leader.get_current_leader() is None


def test_check_quorum_keeps_a_leader_that_hears_from_a_majority() -> None:
    """Dissertation §6.2: one follower answering is enough in a cluster of three."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    for _ in range(5 * ELECTION_MS // 20):
        cluster.tick(1, 20)
        cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    assert leader.is_leader


def test_without_check_quorum_an_isolated_leader_stays() -> None:
    """Check-quorum is an option: off, the isolated leader keeps its role."""
    cluster = Cluster((1, 2, 3), config=make_config(check_quorum=False))
    leader = cluster.elect(1)
    for _ in range(10):
        cluster.tick(1, 50)
        cluster.drop_all()
    assert leader.is_leader


def test_non_voter_never_campaigns() -> None:
    """Dissertation §4.2.1: a non-voting member only replicates."""
    members = ((1, True), (2, True), (3, False))
    cluster = Cluster((1, 2, 3), members=members)
    cluster.tick(3, 10 * ELECTION_MS)
    assert cluster.servers[3].role is Role.FOLLOWER
    assert cluster.queue == []


def test_vote_from_non_voter_does_not_count() -> None:
    """Only voting members' votes make a majority."""
    members = ((1, True), (2, True), (3, True), (4, False), (5, False))
    cluster = Cluster(range(1, 6), members=members, config=make_config(prevote=False))
    cluster.tick(1, 2 * ELECTION_MS)
    assert sorted(dst for _, dst, _ in cluster.queue) == [2, 3]  # voters only
    cluster.drop_all()
    candidate = cluster.servers[1]
    candidate.recv_requestvote_response(4, RequestVoteResponse(1, True))
    candidate.recv_requestvote_response(5, RequestVoteResponse(1, True))
    assert candidate.role is Role.CANDIDATE
    candidate.recv_requestvote_response(3, RequestVoteResponse(1, True))
    assert candidate.is_leader


def test_leader_does_not_vote_for_another_in_its_term() -> None:
    """Raft §5.2: the leader of a term voted for itself in it."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.elect(1)
    response = cluster.servers[1].recv_requestvote(2, RequestVote(1, 2, 5, 1))
    assert response == RequestVoteResponse(1, False)
