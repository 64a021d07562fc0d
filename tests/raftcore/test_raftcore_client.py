"""The client API: recv_entry / recv_entries, entry_committed, redirects
(Raft §8, and the seed library's raft_recv_entry /
raft_msg_entry_response_committed)."""

from __future__ import annotations

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, entry_at, log_terms, make_config

from raftcore import (
    AppendEntries,
    Entry,
    EntryResponse,
    EntryState,
    NotLeader,
    RequestVote,
    RequestVoteResponse,
    Shutdown,
    Snapshot,
)


def test_recv_entry_stamps_the_leader_term_and_answers_where_it_went() -> None:
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    response = leader.recv_entry(Entry(term=99, id=42, data="x"))
    assert response == EntryResponse(id=42, term=1, index=2)
    assert leader.get_entry(2) == Entry(term=1, id=42, data="x")
    assert cluster.recorders[1].durable_log[-1] == (2, Entry(1, 42, data="x"))


def test_recv_entries_answers_each_entry_in_order() -> None:
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    responses = leader.recv_entries([Entry(0, 7), Entry(0, 8), Entry(0, 9)])
    assert [(r.id, r.term, r.index) for r in responses] == [(7, 1, 2), (8, 1, 3), (9, 1, 4)]
    assert leader.recv_entries([]) == []


def test_entry_committed_pending_then_committed() -> None:
    """Raft §5.3: an entry is committed once the leader has replicated it on
    a majority; before that it is pending."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    response = cluster.submit(1, "x")
    assert leader.entry_committed(response) is EntryState.PENDING
    cluster.deliver_all()
    assert leader.entry_committed(response) is EntryState.COMMITTED
    # A follower that has it and learned the commit index says the same.
    cluster.heartbeat(1)
    assert cluster.servers[2].entry_committed(response) is EntryState.COMMITTED


def deposed_leader_cluster() -> tuple[Cluster, EntryResponse]:
    """Node 1 led term 1, took an entry at index 2 it never replicated, and
    node 2 then led term 2 and wrote two entries of its own over index 2."""
    config = make_config(prevote=False)
    cluster = Cluster((1, 2, 3), config=config)
    cluster.elect(1)
    cluster.heartbeat(1)
    response = cluster.submit(1, "doomed")
    assert response.index == 2
    cluster.drop_all()
    cluster.crash(1)
    for node in (2, 3):
        cluster.tick(node, ELECTION_MS)  # node 1's lease runs out
    cluster.tick(2, 2 * ELECTION_MS)
    cluster.deliver_all()
    assert cluster.servers[2].is_leader
    cluster.submit(2, "winner")
    cluster.deliver_all()
    cluster.restart(1)
    return cluster, response


def test_entry_committed_lost_when_another_leader_overwrote_it() -> None:
    """Raft §5.3: a new leader may overwrite a deposed leader's uncommitted
    entry; the client then learns it was lost."""
    cluster, response = deposed_leader_cluster()
    old = cluster.servers[1]
    assert old.entry_committed(response) is EntryState.PENDING  # not heard otherwise yet
    cluster.heartbeat(2)
    assert log_terms(old) == [1, 2, 2]
    assert old.entry_committed(response) is EntryState.LOST
    assert cluster.servers[2].entry_committed(response) is EntryState.LOST


def test_entry_committed_lost_after_its_index_was_compacted() -> None:
    """Regression: after the overwriting entries were compacted into a
    snapshot, the old response is still LOST (it used to say COMMITTED
    whenever its term was not newer than the snapshot's)."""
    cluster, response = deposed_leader_cluster()
    cluster.heartbeat(2)
    cluster.heartbeat(2)
    old = cluster.servers[1]
    assert old.commit_index == 3
    old.begin_snapshot()
    old.end_snapshot(b"state")
    assert old.snapshot_last_index == 3 and old.snapshot_last_term == 2
    assert old.entry_committed(response) is EntryState.LOST
    ok = EntryResponse(0, 1, 1)  # node 1's no-op of term 1, compacted too
    assert old.entry_committed(ok) is EntryState.COMMITTED


def test_entry_committed_under_a_received_snapshot_is_pending_unless_provably_lost() -> None:
    """A server restarted from a snapshot does not know the terms inside it:
    it cannot vouch for an entry there, but one newer than the snapshot's
    last term cannot be in it."""
    cluster = Cluster((1, 2, 3))
    snapshot = Snapshot(10, 3, ((1, True), (2, True), (3, True)), b"")
    server = cluster.restore(1, term=3, snapshot=snapshot)
    assert server.entry_committed(EntryResponse(0, 3, 10)) is EntryState.COMMITTED
    assert server.entry_committed(EntryResponse(0, 2, 10)) is EntryState.LOST
    assert server.entry_committed(EntryResponse(0, 2, 5)) is EntryState.PENDING
    assert server.entry_committed(EntryResponse(0, 4, 5)) is EntryState.LOST
    assert server.entry_committed(EntryResponse(0, 3, 11)) is EntryState.PENDING


def test_entry_committed_pending_when_truncated_below_its_index() -> None:
    """An entry truncated away (its index now beyond the log) is not known to
    be lost: a later leader might still hold it."""
    cluster = Cluster((1, 2, 3))
    server = cluster.restore(2, term=2, terms=(1, 1, 1))
    server.recv_appendentries(1, AppendEntries(2, 1, 1, 1, (entry_at(2, 2),), 0))
    assert log_terms(server) == [1, 2]
    assert server.entry_committed(EntryResponse(0, 1, 3)) is EntryState.PENDING
    assert server.entry_committed(EntryResponse(0, 1, 2)) is EntryState.LOST


def test_not_leader_carries_the_known_leader() -> None:
    """Raft §8: a server that is not the leader redirects the client to the
    leader it knows of, or says none is known."""
    cluster = Cluster((1, 2, 3))
    with pytest.raises(NotLeader) as info:
        cluster.submit(2, "x")
    assert info.value.leader_id is None
    assert "no leader is known" in str(info.value)
    cluster.elect(1)
    with pytest.raises(NotLeader) as info:
        cluster.submit(2, "x")
    assert info.value.leader_id == 1
    assert "try node 1" in str(info.value)
    assert cluster.servers[2].get_current_leader() == 1


def test_candidate_knows_no_leader() -> None:
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.tick(2, 3 * ELECTION_MS)
    cluster.deliver_where(lambda m: not isinstance(m[2], RequestVote | RequestVoteResponse))
    with pytest.raises(NotLeader) as info:
        cluster.submit(2, "x")
    assert info.value.leader_id is None


def test_removed_server_refuses_with_shutdown() -> None:
    """A server that is no longer a member takes no more requests."""
    cluster = Cluster((1, 2, 3))
    server = cluster.servers[2]
    server.remove_node(2)
    with pytest.raises(Shutdown):
        server.recv_entry(Entry(0, 1))
