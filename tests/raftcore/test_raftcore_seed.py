"""raftcore behaves as the seed library does, in the scenarios of the seed's
own tests (willemt/raft, tests/test_server.c); each test names the one it
follows. The divergences that remain on purpose are listed, with their
reasons, in docs/seed_divergences.md."""

from __future__ import annotations

import pytest
from raftcore_cluster import Cluster, entry_at, log_entries, log_terms

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InvalidMessage,
    RaftServer,
)

MEMBERS3 = ((1, True), (2, True), (3, True))


class DiskFull(Exception):
    """What a host's log_offer or log_pop raises when it cannot store."""


def refuse_at(cluster: Cluster, node: int, callback: str, index: int) -> None:
    """Make node's durable `callback` (log_offer or log_pop) fail for `index`."""
    recorder = cluster.recorders[node]
    stored = getattr(type(recorder), callback)

    def failing(entry: Entry, at: int) -> object:
        if at == index:
            raise DiskFull(f"{callback} refused index {at}")
        return stored(recorder, entry, at)

    setattr(recorder, callback, failing)


def durable_terms(cluster: Cluster, node: int) -> list[int]:
    return [entry.term for entry in cluster.recorders[node].durable_entries()]


def observable(server: RaftServer) -> tuple:
    return (
        server.role,
        server.current_term,
        server.voted_for,
        server.get_current_leader(),
        server.commit_index,
        server.last_applied,
        log_entries(server),
    )


# ------------------------------------------------ (a) durable callbacks first


def test_a_refused_log_offer_leaves_the_entry_out_of_memory() -> None:
    """TestRaft_follower_recv_appendentries_partial_failures: the in-memory
    log grows only once log_offer has stored the entry. Before, memory grew
    first: the next heartbeat was acknowledged with match_index 3 and entry
    3 was applied, though the host never stored it."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=1, terms=(1, 1))
    refuse_at(cluster, 2, "log_offer", 3)
    with pytest.raises(DiskFull):
        follower.recv_appendentries(1, AppendEntries(1, 1, 2, 1, (entry_at(3, 1),), 0))
    assert log_terms(follower) == durable_terms(cluster, 2) == [1, 1]
    heartbeat = follower.recv_appendentries(1, AppendEntries(1, 1, 3, 1, (), 3))
    assert not heartbeat.success
    assert follower.commit_index == 0
    assert cluster.recorders[2].applied == []


def test_a_refused_log_pop_keeps_the_entry_in_memory() -> None:
    """TestRaft_follower_recv_appendentries_partial_failures: truncation
    drops an entry from memory only once log_pop has removed it from disk;
    a retry then finds both logs as they were, and completes."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=1, terms=(1, 1))
    msg = AppendEntries(2, 1, 1, 1, (entry_at(2, 2), entry_at(3, 2)), 0)
    refuse_at(cluster, 2, "log_pop", 2)
    with pytest.raises(DiskFull):
        follower.recv_appendentries(1, msg)
    assert log_terms(follower) == durable_terms(cluster, 2) == [1, 1]
    del cluster.recorders[2].log_pop  # popping works again; offering index 3 fails
    refuse_at(cluster, 2, "log_offer", 3)
    with pytest.raises(DiskFull):
        follower.recv_appendentries(1, msg)
    assert log_terms(follower) == durable_terms(cluster, 2) == [1, 2]
    del cluster.recorders[2].log_offer  # the disk recovers
    assert follower.recv_appendentries(1, msg) == AppendEntriesResponse(2, True, match_index=3)
    assert log_terms(follower) == durable_terms(cluster, 2) == [1, 2, 2]


def test_a_refused_log_offer_at_the_leader_appends_nothing() -> None:
    """raft_recv_entry returns log_offer's error: the leader's log is as it
    was, and no follower is sent the entry."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    last = leader.last_log_index
    refuse_at(cluster, 1, "log_offer", last + 1)
    with pytest.raises(DiskFull):
        cluster.submit(1, "x")
    assert leader.last_log_index == last
    assert cluster.queue == []


# --------------------------------------- (c) a refused AppendEntries changes nothing


def test_an_appendentries_conflicting_with_a_committed_entry_changes_nothing() -> None:
    """TestRaft_follower_recv_appendentries_does_not_deleted_commited_entries:
    a request that would truncate a committed entry is refused before
    anything changes: not the log, not the leader, and not the term. Before,
    the server took the request's term first."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=2, terms=(1, 1, 2))
    follower.recv_appendentries(1, AppendEntries(2, 1, 3, 2, (), 3))
    assert follower.commit_index == 3
    before = observable(follower)
    events = len(cluster.recorders[2].events)
    bad = AppendEntries(5, 3, 1, 1, (entry_at(2, 5),), 3)
    with pytest.raises(InvalidMessage, match="committed"):
        follower.recv_appendentries(3, bad)
    assert observable(follower) == before
    assert len(cluster.recorders[2].events) == events
