"""Log compaction and InstallSnapshot (Raft §7; dissertation §5.1-§5.3;
the seed library's begin/end_snapshot and begin/end_load_snapshot)."""

from __future__ import annotations

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, entry_at, log_entries, log_terms, make_config

from raftcore import (
    AppendEntries,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    InvalidOperation,
    MembershipEvent,
    Snapshot,
    SnapshotInProgress,
)

MEMBERS3 = ((1, True), (2, True), (3, True))
DATA = b"0123456789"  # ten bytes: chunks at offsets 0, 4 and 8 when chunks are 4 bytes


def leader_with_entries(count: int = 6, **options) -> Cluster:
    cluster = Cluster((1, 2, 3), config=make_config(**options))
    cluster.elect(1)
    for i in range(count):
        cluster.submit(1, f"v{i}")
    cluster.deliver_all()
    cluster.heartbeat(1)
    return cluster


def test_snapshot_compacts_the_log_through_log_poll() -> None:
    """Dissertation §5.1: a snapshot of the applied state replaces the log
    prefix; the entries it covers are polled (eldest first) after the
    snapshot is stored."""
    cluster = leader_with_entries(6)
    leader = cluster.servers[1]
    assert leader.last_applied == 7
    cluster.recorders[1].events.clear()
    assert leader.begin_snapshot() == 7
    assert leader.snapshot_in_progress
    snapshot = leader.end_snapshot(b"state")
    assert snapshot == Snapshot(7, 1, MEMBERS3, b"state")
    events = cluster.recorders[1].events
    assert events[0] == ("persist_snapshot", 7)
    assert events[1:] == [("log_poll", i) for i in range(1, 8)]
    assert not leader.snapshot_in_progress
    assert (leader.snapshot_last_index, leader.snapshot_last_term) == (7, 1)
    assert leader.last_log_index == 7 and leader.last_log_term == 1
    assert leader.get_entry(7) is None and leader.term_at(7) == 1
    assert leader.term_at(3) is None
    assert cluster.recorders[1].durable_log == []
    # Life goes on after compaction.
    response = cluster.submit(1, "after")
    cluster.deliver_all()
    assert response.index == 8 and leader.commit_index == 8


def test_entries_after_the_snapshot_index_are_kept() -> None:
    """A snapshot covers what was applied when it began; later entries stay."""
    cluster = leader_with_entries(2)
    leader = cluster.servers[1]
    index = leader.begin_snapshot()
    cluster.submit(1, "during")
    cluster.deliver_all()
    assert leader.last_applied == index + 1
    snapshot = leader.end_snapshot(b"s")
    assert snapshot.last_index == index
    assert log_terms(leader) == [1]
    assert leader.get_entry(index + 1).data == "during"


def test_snapshot_api_misuse() -> None:
    cluster = leader_with_entries(1)
    leader = cluster.servers[1]
    with pytest.raises(InvalidOperation, match="without begin_snapshot"):
        leader.end_snapshot(b"")
    leader.begin_snapshot()
    with pytest.raises(SnapshotInProgress):
        leader.begin_snapshot()
    with pytest.raises(InvalidOperation, match="bytes"):
        leader.end_snapshot("text")  # type: ignore[arg-type]
    leader.end_snapshot(b"")
    with pytest.raises(InvalidOperation, match="nothing applied"):
        leader.begin_snapshot()
    fresh = Cluster((1, 2, 3)).servers[2]
    with pytest.raises(InvalidOperation, match="nothing applied"):
        fresh.begin_snapshot()


def lagging_follower_cluster(chunk: int = 4) -> Cluster:
    """Node 3 was down while the leader committed entries and compacted
    them into a ten-byte snapshot."""
    config = make_config(snapshot_chunk_bytes=chunk)
    cluster = Cluster((1, 2, 3), config=config)
    cluster.elect(1)
    cluster.crash(3)
    for i in range(5):
        cluster.submit(1, f"v{i}")
    cluster.deliver_all()
    cluster.heartbeat(1)
    leader = cluster.servers[1]
    leader.begin_snapshot()
    leader.end_snapshot(DATA)
    cluster.submit(1, "after the snapshot")
    cluster.deliver_all()
    cluster.restart(3)
    return cluster


def test_leader_sends_snapshot_in_chunks_to_a_follower_that_needs_compacted_entries() -> None:
    """Raft §7: a follower missing compacted entries gets InstallSnapshot, in
    chunks at increasing offsets, the last one marked done; then ordinary
    AppendEntries bring it up to date."""
    cluster = lagging_follower_cluster()
    leader = cluster.servers[1]
    for _ in range(4):
        cluster.heartbeat(1)
    chunks = [m for to, m in cluster.recorders[1].sent if isinstance(m, InstallSnapshot)]
    assert [(m.offset, m.data, m.done) for m in chunks[:3]] == [
        (0, b"0123", False),
        (4, b"4567", False),
        (8, b"89", True),
    ]
    assert all(m.last_index == 6 and m.last_term == 1 for m in chunks)
    assert all(m.members == MEMBERS3 for m in chunks)
    follower = cluster.servers[3]
    recorder = cluster.recorders[3]
    assert recorder.loaded == [Snapshot(6, 1, MEMBERS3, DATA)]
    assert follower.snapshot_last_index == 6
    assert log_entries(follower) == log_entries(leader)
    assert follower.commit_index == leader.commit_index == 7
    # The state machine restarted from the snapshot, then applied index 7.
    assert [i for i, _ in recorder.applied] == [7]
    assert leader.member_progress(3).match_index == 7


def test_out_of_order_and_duplicate_chunks() -> None:
    """A chunk that is not the next expected one is not taken; the answer
    names the offset the follower needs, and the transfer resumes there."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.servers[3]

    def chunk(offset: int, done: bool = False) -> InstallSnapshot:
        data = DATA[offset : offset + 4]
        return InstallSnapshot(2, 1, 6, 1, MEMBERS3, offset, data, done)

    assert follower.recv_installsnapshot(1, chunk(4)) == InstallSnapshotResponse(2, 6, 0)
    assert follower.recv_installsnapshot(1, chunk(0)) == InstallSnapshotResponse(2, 6, 4)
    assert follower.recv_installsnapshot(1, chunk(8, True)) == InstallSnapshotResponse(2, 6, 4)
    assert follower.recv_installsnapshot(1, chunk(4)) == InstallSnapshotResponse(2, 6, 8)
    assert follower.recv_installsnapshot(1, chunk(4)) == InstallSnapshotResponse(2, 6, 8)
    assert cluster.recorders[3].loaded == []
    done = follower.recv_installsnapshot(1, chunk(8, True))
    assert done == InstallSnapshotResponse(2, 6, 10, done=True)
    assert cluster.recorders[3].loaded == [Snapshot(6, 1, MEMBERS3, DATA)]
    # A late duplicate of any chunk: the follower already has it all.
    assert follower.recv_installsnapshot(1, chunk(0)).done
    assert cluster.recorders[3].loaded == [Snapshot(6, 1, MEMBERS3, DATA)]
    assert follower.current_term == 2 and follower.get_current_leader() == 1


def test_chunk_of_another_snapshot_restarts_the_transfer() -> None:
    cluster = Cluster((1, 2, 3))
    follower = cluster.servers[3]
    follower.recv_installsnapshot(1, InstallSnapshot(2, 1, 6, 1, MEMBERS3, 0, b"0123", False))
    other = InstallSnapshot(2, 1, 9, 2, MEMBERS3, 4, b"xxxx", False)
    assert follower.recv_installsnapshot(1, other) == InstallSnapshotResponse(2, 9, 0)


def test_late_answer_about_a_finished_transfer_is_ignored() -> None:
    cluster = lagging_follower_cluster()
    leader = cluster.servers[1]
    for _ in range(3):
        cluster.heartbeat(1)
    assert cluster.recorders[3].loaded
    cluster.recorders[1].sent.clear()
    leader.recv_installsnapshot_response(3, InstallSnapshotResponse(1, 6, 4))
    assert cluster.recorders[1].sent == []


def test_lost_chunk_is_resent_and_the_leader_resumes_where_asked() -> None:
    """A lost chunk is sent again on the next heartbeat; the leader's next
    chunk always starts at the offset the follower's answer names."""
    cluster = lagging_follower_cluster()
    leader = cluster.servers[1]

    def lose_second_chunk(envelope) -> bool:
        return not (isinstance(envelope[2], InstallSnapshot) and envelope[2].offset == 4)

    cluster.tick(1, 20)
    cluster.deliver_all(allow=lose_second_chunk)
    sent = [m for to, m in cluster.recorders[1].sent if isinstance(m, InstallSnapshot)]
    assert [m.offset for m in sent] == [0, 4]
    assert cluster.recorders[3].loaded == []
    assert leader.member_progress(3).snapshot_offset == 4
    # The follower says it needs offset 8 (say, after a restarted transfer).
    leader.recv_installsnapshot_response(3, InstallSnapshotResponse(1, 6, 8))
    assert [m.offset for _, _, m in cluster.take(InstallSnapshot)] == [8]
    cluster.heartbeat(1)  # resends from 8: the follower answers it needs 4
    cluster.heartbeat(1)
    assert cluster.recorders[3].loaded == [Snapshot(6, 1, MEMBERS3, DATA)]


def test_stale_installsnapshot_is_refused_with_the_newer_term() -> None:
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(3, term=5)
    response = follower.recv_installsnapshot(
        1, InstallSnapshot(4, 1, 6, 1, MEMBERS3, 0, DATA, True)
    )
    assert response == InstallSnapshotResponse(5, 6, 0)
    assert cluster.recorders[3].loaded == []
    assert follower.get_current_leader() is None


def test_loading_a_snapshot_never_lowers_the_term_nor_clears_the_vote() -> None:
    """Raft Figure 13: installing a snapshot replaces state-machine state and
    log, not currentTerm or votedFor."""
    cluster = Cluster((1, 2, 3))
    server = cluster.restore(2, term=5, voted_for=3, terms=(1, 1))
    cluster.recorders[2].events.clear()
    server.begin_load_snapshot(Snapshot(4, 3, MEMBERS3, b"old"))
    server.end_load_snapshot()
    assert server.current_term == 5 and server.voted_for == 3
    assert (cluster.recorders[2].term, cluster.recorders[2].vote) == (5, 3)
    kinds = [kind for kind, _ in cluster.recorders[2].events]
    assert "persist_term" not in kinds and "persist_vote" not in kinds
    assert server.commit_index == server.last_applied == 4
    # After restart it still cannot vote for anyone else in term 5.
    cluster.crash(2)
    restarted = cluster.restart(2)
    assert restarted.voted_for == 3 and restarted.current_term == 5
    assert restarted.snapshot_last_index == 4


def test_loading_a_snapshot_that_matches_the_log_keeps_what_follows() -> None:
    """Dissertation Figure 5.3 (step 6): if the log holds the snapshot's last
    entry, the entries after it are kept."""
    cluster = Cluster((1, 2, 3))
    add4 = Entry(1, 50, EntryType.ADD_NONVOTING_NODE, node=4)
    server = cluster.restore(2, term=1, terms=(1, 1, 1))
    server.recv_appendentries(1, AppendEntries(1, 1, 3, 1, (add4, entry_at(5, 1)), 0))
    assert server.members() == (*MEMBERS3, (4, False))
    server.begin_load_snapshot(Snapshot(2, 1, MEMBERS3, b""))
    server.end_load_snapshot()
    assert server.snapshot_last_index == 2
    assert log_terms(server) == [1, 1, 1]
    assert server.get_entry(4) == add4
    assert server.members() == (*MEMBERS3, (4, False))  # replayed after the snapshot's
    polls = [i for kind, i in cluster.recorders[2].events if kind == "log_poll"]
    assert polls == [1, 2]


def test_loading_a_snapshot_that_contradicts_the_log_discards_it() -> None:
    """Dissertation Figure 5.3 (step 7): otherwise the whole log goes."""
    cluster = Cluster((1, 2, 3))
    server = cluster.restore(2, term=2, terms=(1, 1, 1, 1))
    server.begin_load_snapshot(Snapshot(3, 2, MEMBERS3, b""))
    server.end_load_snapshot()
    assert server.last_log_index == 3 and server.last_log_term == 2
    assert log_terms(server) == []
    pops = [i for kind, i in cluster.recorders[2].events if kind == "log_pop"]
    assert pops == [4, 3, 2, 1]
    assert cluster.recorders[2].durable_log == []


def test_snapshot_carries_the_membership() -> None:
    """Dissertation §5.1: a snapshot records the configuration as of its last
    index; a server loading it takes that configuration."""
    cluster = Cluster((1, 2, 3), config=make_config(snapshot_chunk_bytes=4))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    leader.recv_entry(Entry(0, 60, EntryType.ADD_NONVOTING_NODE, node=4))
    cluster.heartbeat(1)
    cluster.heartbeat(1)
    leader.begin_snapshot()
    snapshot = leader.end_snapshot(DATA)
    assert snapshot.members == (*MEMBERS3, (4, False))
    # Node 4 joins knowing only the voters; the snapshot teaches it the rest.
    cluster.boot(4, members=((4, False),))
    for _ in range(5):
        cluster.heartbeat(1)
    new = cluster.servers[4]
    assert cluster.recorders[4].loaded[-1].members == snapshot.members
    assert new.members() == snapshot.members
    assert {n for n, e in cluster.recorders[4].membership_events if e is MembershipEvent.ADDED} >= {
        1,
        2,
        3,
    }
    assert cluster.recorders[1].sufficient_logs == [4]


def test_snapshot_of_an_uncommitted_membership_change() -> None:
    """members_at(index) is the configuration once entry `index` is appended."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.heartbeat(1)
    leader.recv_entry(Entry(0, 61, EntryType.REMOVE_NODE, node=3))
    cluster.deliver_all()
    assert leader.members_at(1) == MEMBERS3
    assert leader.members_at(2) == ((1, True), (2, True))
    leader.begin_snapshot()
    assert leader.end_snapshot(b"").members == ((1, True), (2, True))
    assert leader.members() == ((1, True), (2, True))


def test_load_snapshot_api_misuse() -> None:
    cluster = leader_with_entries(2)
    follower = cluster.servers[2]
    with pytest.raises(InvalidOperation, match="not ahead of commit"):
        follower.begin_load_snapshot(Snapshot(1, 1, MEMBERS3, b""))
    with pytest.raises(InvalidOperation, match="without begin_load_snapshot"):
        follower.end_load_snapshot()
    follower.begin_load_snapshot(Snapshot(10, 1, MEMBERS3, b""))
    with pytest.raises(SnapshotInProgress, match="twice"):
        follower.begin_load_snapshot(Snapshot(11, 1, MEMBERS3, b""))
    follower.end_load_snapshot()
    assert follower.snapshot_last_index == 10
    other = cluster.servers[3]
    other.begin_snapshot()
    with pytest.raises(SnapshotInProgress, match="while taking one"):
        other.begin_load_snapshot(Snapshot(20, 1, MEMBERS3, b""))


def test_final_chunk_while_taking_a_snapshot_keeps_the_chunks() -> None:
    """The last chunk arriving while the follower takes its own snapshot is
    refused (SnapshotInProgress), without losing the chunks received; the
    leader's next attempt completes the transfer."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(3, term=1, terms=(1,))
    follower.recv_appendentries(1, AppendEntries(1, 1, 1, 1, (), 1))
    follower.begin_snapshot()
    first = InstallSnapshot(2, 1, 6, 1, MEMBERS3, 0, b"0123", False)
    last = InstallSnapshot(2, 1, 6, 1, MEMBERS3, 4, b"456789", True)
    follower.recv_installsnapshot(1, first)
    with pytest.raises(SnapshotInProgress):
        follower.recv_installsnapshot(1, last)
    follower.end_snapshot(b"mine")
    response = follower.recv_installsnapshot(
        1, InstallSnapshot(2, 1, 6, 1, MEMBERS3, 10, b"", True)
    )
    assert response.done
    assert cluster.recorders[3].loaded == [Snapshot(6, 1, MEMBERS3, DATA)]


def test_restart_from_snapshot_and_log() -> None:
    """A server restarts from its durable snapshot plus the entries after it."""
    cluster = lagging_follower_cluster()
    for _ in range(3):
        cluster.heartbeat(1)
    cluster.crash(1)
    restarted = cluster.restart(1)
    assert restarted.snapshot_last_index == 6
    assert restarted.commit_index == restarted.last_applied == 6
    assert log_terms(restarted) == [1]
    assert cluster.recorders[1].loaded == [Snapshot(6, 1, MEMBERS3, DATA)]
    for node in (2, 3):
        cluster.tick(node, ELECTION_MS)
    cluster.elect(2)
    cluster.heartbeat(2)
    assert restarted.commit_index == cluster.servers[2].commit_index == 8
    assert log_terms(restarted) == [1, 2]
