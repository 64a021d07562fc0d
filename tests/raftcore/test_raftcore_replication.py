"""Log replication: AppendEntries and its responses (Raft §5.3, §5.4)."""

from __future__ import annotations

import random

import pytest
from raftcore_cluster import (
    ELECTION_MS,
    REQUEST_MS,
    Cluster,
    entry_at,
    log_entries,
    log_of_terms,
    log_terms,
    make_config,
)

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InvalidMessage,
    RequestVote,
    RequestVoteResponse,
    Role,
)


def votes_only(envelope) -> bool:
    return isinstance(envelope[2], RequestVote | RequestVoteResponse)


def test_batches_hold_at_most_max_entries_per_msg() -> None:
    """Entries go in batches of max_entries_per_msg; a lagging follower is
    caught up with one message per batch, each sent as the previous is
    acknowledged."""
    cluster = Cluster((1, 2, 3), config=make_config(max_entries_per_msg=3, prevote=False))
    cluster.restore(1, term=1, terms=[1] * 10)
    cluster.restore(3, term=1, terms=[1] * 10)
    cluster.restore(2, term=1)
    cluster.elect(1)
    sent = [
        (m.prev_log_index, len(m.entries))
        for to, m in cluster.recorders[1].sent
        if to == 2 and isinstance(m, AppendEntries)
    ]
    # The no-op at index 11 is rejected (node 2's log is empty); from the
    # hint on, the eleven entries go exactly once, three at a time.
    assert sent == [(10, 1), (0, 3), (3, 3), (6, 3), (9, 2)]
    assert log_entries(cluster.servers[2]) == log_entries(cluster.servers[1])


def test_recv_entries_sends_one_message_per_follower() -> None:
    """A batch of client entries leaves in one AppendEntries per follower."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.recorders[1].sent.clear()
    responses = leader.recv_entries([Entry(0, i, data=i) for i in range(1, 6)])
    assert [r.index for r in responses] == [2, 3, 4, 5, 6]
    assert all(r.term == 1 for r in responses)
    sent = cluster.recorders[1].sent
    assert [(to, len(m.entries)) for to, m in sent] == [(2, 5), (3, 5)]
    cluster.deliver_all()
    assert leader.commit_index == 6


def test_short_follower_log_hint_jumps_to_its_end() -> None:
    """Raft §5.3: a follower missing entries answers with the end of its log,
    so the leader's next probe lands right after it."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.restore(1, term=1, terms=[1] * 20)
    cluster.restore(3, term=1, terms=[1] * 20)
    follower = cluster.restore(2, term=1, terms=[1] * 4)
    replies = []
    original = follower.recv_appendentries

    def spy(node_id, msg):
        reply = original(node_id, msg)
        replies.append((msg.prev_log_index, reply))
        return reply

    follower.recv_appendentries = spy  # type: ignore[method-assign]
    cluster.elect(1)
    rejected = [(prev, r.hint_index) for prev, r in replies if not r.success]
    assert rejected == [(20, 4)]
    assert replies[1][0] == 4  # the next probe starts right after index 4
    assert log_terms(follower) == [1] * 20 + [2]


def test_existing_matching_entries_are_not_truncated() -> None:
    """Raft §5.3: delete entries only when an existing entry conflicts (same
    index, different term). A stale, shorter AppendEntries must not drop the
    entries that follow the ones it carries."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=2, terms=(1, 1, 2, 2, 2))
    stale = AppendEntries(2, 1, 1, 1, (entry_at(2, 1), entry_at(3, 2)), 0)
    response = follower.recv_appendentries(1, stale)
    assert response == AppendEntriesResponse(2, True, match_index=3)
    assert log_terms(follower) == [1, 1, 2, 2, 2]
    assert not [e for e in cluster.recorders[2].events if e[0] in ("log_pop", "log_offer")]


def test_conflicting_entries_are_truncated_and_replaced() -> None:
    """Raft §5.3: at the first conflict the follower deletes that entry and
    all that follow it, then appends the leader's."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=3, terms=(1, 1, 2, 2, 2))
    msg = AppendEntries(3, 1, 2, 1, (entry_at(3, 2), entry_at(4, 3)), 0)
    response = follower.recv_appendentries(1, msg)
    assert response == AppendEntriesResponse(3, True, match_index=4)
    assert log_terms(follower) == [1, 1, 2, 3]
    recorder = cluster.recorders[2]
    pops = [index for kind, index in recorder.events if kind == "log_pop"]
    assert pops == [5, 4]  # youngest first
    assert [i for i, _ in recorder.durable_log] == [1, 2, 3, 4]


def test_committed_entries_are_never_truncated() -> None:
    """Raft §5.4 (Leader Completeness): an AppendEntries that conflicts with a
    committed entry comes from a broken leader; it is refused, not obeyed."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=2, terms=(1, 1, 2))
    follower.recv_appendentries(1, AppendEntries(2, 1, 3, 2, (), 3))
    assert follower.commit_index == 3
    bad = AppendEntries(2, 1, 1, 1, (entry_at(2, 2),), 3)
    with pytest.raises(InvalidMessage, match="committed"):
        follower.recv_appendentries(1, bad)
    assert log_terms(follower) == [1, 1, 2]
    assert follower.commit_index == 3


def test_follower_commit_is_min_of_leader_commit_and_last_verified_index() -> None:
    """Raft Figure 2: commitIndex = min(leaderCommit, index of last new entry).
    Entries after the ones this request verified may still be stale."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=3, terms=(1, 1, 2, 2, 2))
    # A heartbeat that verifies only index 2: entries 3..5 might conflict.
    follower.recv_appendentries(1, AppendEntries(3, 1, 2, 1, (), 5))
    assert follower.commit_index == 2
    # Verifying through 4, but the leader has committed only 3.
    follower.recv_appendentries(1, AppendEntries(3, 1, 2, 1, (entry_at(3, 2), entry_at(4, 2)), 3))
    assert follower.commit_index == 3
    assert [i for i, _ in cluster.recorders[2].applied] == [1, 2, 3]
    # A stale request with a lower leader_commit never lowers it.
    follower.recv_appendentries(1, AppendEntries(3, 1, 0, 0, (), 1))
    assert follower.commit_index == 3


def test_rejection_carries_follower_term_and_hint() -> None:
    """Raft §5.3: a follower whose log lacks prev_log_index rejects."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=3, terms=(1, 1))
    response = follower.recv_appendentries(1, AppendEntries(3, 1, 5, 3, (), 0))
    assert response == AppendEntriesResponse(3, False, rejected_index=5, hint_index=2)
    response = follower.recv_appendentries(1, AppendEntries(2, 1, 1, 1, (), 0))
    assert response.term == 3 and not response.success  # stale term


def test_appendentries_from_a_leader_outside_the_configuration_is_accepted() -> None:
    """Dissertation §4.1: a server accepts AppendEntries from a leader that is
    not in its (possibly outdated) configuration."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.servers[2]
    response = follower.recv_appendentries(9, AppendEntries(1, 9, 0, 0, (entry_at(1, 1),), 1))
    assert response.success
    assert follower.get_current_leader() == 9
    assert follower.commit_index == 1


def test_reordered_and_duplicated_appendentries_are_harmless() -> None:
    """Raft §5.3: requests are idempotent; in any order and any number of
    copies they leave the follower with the leader's log."""
    cluster = Cluster((1, 2, 3), config=make_config(max_entries_per_msg=2))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    for i in range(9):
        cluster.submit(1, f"v{i}")
    to_2 = cluster.take(AppendEntries, dst=2)
    assert len(to_2) >= 5
    cluster.deliver_all()  # node 3 keeps up: the leader commits
    rng = random.Random(3)
    for _ in range(3):
        shuffled = to_2 * 2
        rng.shuffle(shuffled)
        cluster.queue.extend(shuffled)
        cluster.deliver_all()
    cluster.heartbeat(1)
    assert log_entries(cluster.servers[2]) == log_entries(leader)
    assert cluster.servers[2].commit_index == leader.commit_index == 10
    pops = [e for e in cluster.recorders[2].events if e[0] == "log_pop"]
    assert pops == []


def test_duplicated_and_reordered_responses_are_harmless() -> None:
    """Old or repeated AppendEntries responses never move match_index back
    nor next_index past the leader's log."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    for i in range(4):
        cluster.submit(1, f"v{i}")
    cluster.deliver_all()
    progress = leader.member_progress(2)
    assert (progress.match_index, progress.next_index) == (5, 6)
    commit = leader.commit_index
    leader.recv_appendentries_response(2, AppendEntriesResponse(1, True, match_index=2))
    leader.recv_appendentries_response(2, AppendEntriesResponse(1, True, match_index=5))
    leader.recv_appendentries_response(
        2, AppendEntriesResponse(1, False, rejected_index=3, hint_index=1)
    )
    assert (progress.match_index, progress.next_index) == (5, 6)
    assert leader.commit_index == commit
    assert cluster.queue == []


def test_lost_appendentries_is_recovered_by_rejection() -> None:
    """Optimistic pipelining: the leader advances next_index as it sends; when
    a message is lost, the follower's rejection of the next one rewinds it."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.submit(1, "a")
    cluster.take(AppendEntries, dst=2)  # lost
    cluster.deliver_all()
    cluster.submit(1, "b")
    cluster.deliver_all()
    assert log_terms(cluster.servers[2]) == [1, 1, 1]
    assert leader.member_progress(2).match_index == 3


def test_stale_rejection_is_ignored_once_the_leader_probed_lower() -> None:
    """A rejection answering a request the leader has already probed below
    (a duplicate, or an answer to an earlier heartbeat) sends nothing: the
    answer to the lower probe is on its way."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    cluster.restore(1, term=1, terms=[1] * 6)
    cluster.restore(3, term=1, terms=[1] * 6)
    follower = cluster.restore(2, term=1, terms=[1] * 2)
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_where(votes_only)
    leader = cluster.servers[1]
    leader.periodic(REQUEST_MS)  # a heartbeat behind the no-op
    to_2 = cluster.take(AppendEntries, dst=2)
    assert len(to_2) == 2
    replies = [follower.recv_appendentries(1, m) for _, _, m in to_2]
    assert all(not r.success and r.hint_index == 2 for r in replies)
    cluster.drop_all()
    leader.recv_appendentries_response(2, replies[0])
    probe = cluster.take(AppendEntries, dst=2)
    assert [m.prev_log_index for _, _, m in probe] == [2]
    leader.recv_appendentries_response(2, replies[1])
    leader.recv_appendentries_response(2, replies[0])
    assert cluster.take(AppendEntries, dst=2) == []
    cluster.queue.extend(probe)
    cluster.deliver_all()
    assert log_entries(follower) == log_entries(leader)


def test_rejection_from_an_earlier_term_cannot_push_next_index_past_the_log() -> None:
    """Regression: a follower that rejects a request of an earlier term answers
    with its current term, which may be the leader's new term, and with the
    end of its own (longer) log as hint. The leader must not probe beyond its
    own log (it used to crash on an assertion)."""
    config = make_config(prevote=False)
    cluster = Cluster((1, 2, 3), config=config)
    cluster.restore(1, term=1, terms=(1, 1))
    cluster.restore(2, term=1, terms=[1] * 10)
    cluster.restore(3, term=1, terms=(1, 1))
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_where(votes_only)
    assert cluster.servers[1].current_term == 2
    held = cluster.take(AppendEntries, src=1, dst=2)  # term 2, prev_log_index 2
    cluster.drop_all()
    cluster.crash(1)
    cluster.restart(1)
    cluster.tick(1, 2 * ELECTION_MS)
    cluster.deliver_where(votes_only)
    leader = cluster.servers[1]
    assert leader.is_leader and leader.current_term == 3
    assert cluster.servers[2].current_term == 3
    cluster.queue[:0] = held  # the old request arrives first
    cluster.deliver_all()
    cluster.heartbeat(1)
    assert leader.member_progress(2).next_index <= leader.last_log_index + 1
    assert log_entries(cluster.servers[2]) == log_entries(leader)
    assert log_terms(leader) == [1, 1, 2, 3]


def test_heartbeat_carries_commit_to_followers() -> None:
    """Raft §5.3: followers learn the commit index from later AppendEntries
    (heartbeats included) and apply in log order."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.submit(1, "x")
    cluster.deliver_all()
    assert cluster.servers[1].commit_index == 2
    assert cluster.servers[2].commit_index == 1
    cluster.heartbeat(1)
    for node in (2, 3):
        assert cluster.servers[node].commit_index == 2
        assert [e.data for _, e in cluster.recorders[node].applied] == [None, "x"]


def test_leader_appends_noop_on_election() -> None:
    """Dissertation §6.4: a new leader appends a no-op of its term, which
    commits everything before it."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    for node in (1, 2, 3):
        cluster.restore(node, term=1, terms=(1, 1))
    leader = cluster.elect(1)
    assert log_terms(leader) == [1, 1, 2]
    assert leader.commit_index == 3
    assert leader.get_entry(3).type.name == "NOOP"


def test_without_noop_old_entries_wait_for_a_new_one() -> None:
    """Raft §5.4.2: without the no-op the old entries stay uncommitted until
    an entry of the leader's term is replicated."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False, noop_on_election=False))
    for node in (1, 2, 3):
        cluster.restore(node, term=1, terms=(1, 1))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    assert leader.commit_index == 0
    cluster.submit(1, "x")
    cluster.deliver_all()
    assert leader.commit_index == 3


def test_non_voter_entries_do_not_count_towards_commit() -> None:
    """Only voting members' match indexes form the commit majority."""
    members = ((1, True), (2, True), (3, True), (4, False), (5, False))
    cluster = Cluster(range(1, 6), members=members)
    leader = cluster.elect(1)
    cluster.submit(1, "x")
    cluster.deliver_all(allow=lambda m: 2 not in (m[0], m[1]) and 3 not in (m[0], m[1]))
    assert cluster.servers[4].last_log_index == 2
    assert leader.commit_index == 1
    cluster.heartbeat(1)
    assert leader.commit_index == 2


def test_follower_role_does_not_send_appendentries() -> None:
    """Only a leader sends AppendEntries; a follower's heartbeat timer is idle."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.recorders[2].sent.clear()
    cluster.tick(2, REQUEST_MS * 3)
    assert cluster.recorders[2].sent == []
    assert cluster.servers[2].role is Role.FOLLOWER


def test_log_of_terms_helper() -> None:
    """The harness's logs carry one distinct entry per (index, term)."""
    assert log_of_terms((1, 2), first=3) == [entry_at(3, 1), entry_at(4, 2)]


def test_rejection_beyond_the_leader_log_is_from_an_earlier_term() -> None:
    """In its own term a leader's log only grows, so a rejection of a
    prev_log_index beyond it answers a request of an earlier term (sent when
    this server's log was longer): it must not move next_index past the log."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    progress = leader.member_progress(2)
    before = (progress.next_index, progress.match_index)
    last = leader.last_log_index
    leader.recv_appendentries_response(
        2, AppendEntriesResponse(1, False, rejected_index=last + 5, hint_index=last + 9)
    )
    assert (progress.next_index, progress.match_index) == before
    assert cluster.queue == []
    cluster.heartbeat(1)
    assert log_entries(cluster.servers[2]) == log_entries(leader)
