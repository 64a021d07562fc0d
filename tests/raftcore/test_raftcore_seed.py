"""raftcore behaves as the seed library does, in the scenarios of the seed's
own tests (willemt/raft, tests/test_server.c); each test names the one it
follows. The divergences that remain on purpose are listed, with their
reasons, in docs/seed_divergences.md."""

from __future__ import annotations

import dataclasses

import pytest
from raftcore_cluster import Cluster, entry_at, log_entries, log_terms, make_config

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    InvalidMessage,
    InvalidOperation,
    OneVotingChangeOnly,
    RaftServer,
    RequestVote,
    Role,
    Snapshot,
    SnapshotInProgress,
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


def test_a_term_or_vote_is_taken_only_once_persisted() -> None:
    """raft_set_current_term and raft_vote_for_nodeid call persist_term and
    persist_vote first, and take nothing the host could not store."""
    cluster = Cluster((1, 2, 3), config=make_config(prevote=False))
    server = cluster.servers[2]
    recorder = cluster.recorders[2]

    def refuse(*args: object) -> None:
        raise DiskFull("cannot persist")

    recorder.persist_term = refuse  # type: ignore[method-assign]
    with pytest.raises(DiskFull):
        server.recv_appendentries(1, AppendEntries(3, 1, 0, 0, (), 0))
    with pytest.raises(DiskFull):
        server.periodic(3 * cluster.config.election_timeout_ms)  # a candidacy
    assert (server.current_term, server.voted_for, server.role) == (0, None, Role.FOLLOWER)
    assert server.get_current_leader() is None
    del recorder.persist_term
    recorder.persist_vote = refuse  # type: ignore[method-assign]
    with pytest.raises(DiskFull):
        server.recv_requestvote(3, RequestVote(1, 3, 0, 0))
    assert (server.current_term, server.voted_for) == (1, None)


# ----------------------------------- (b) sufficient logs, once a change commits


def test_sufficient_logs_is_reported_again_once_the_pending_change_commits() -> None:
    """TestRaft_leader_recv_appendentries_response_set_has_sufficient_logs_after_voting_committed:
    a member that catches up while another change is pending is reported
    once that change commits, so the host's promotion can succeed. Before,
    the report came while ADD_NODE(3) was uncommitted, the callback's
    promotion of node 2 got OneVotingChangeOnly, and no report came again:
    node 2 stayed non-voting."""
    members = ((1, True), (2, False), (3, False))
    cluster = Cluster((1, 2, 3), members=members)
    leader = cluster.servers[1]
    refused: list[int] = []

    def promote(node_id: int) -> None:
        try:
            leader.recv_entry(Entry(0, 7000 + node_id, EntryType.ADD_NODE, node=node_id))
        except OneVotingChangeOnly:
            refused.append(node_id)

    cluster.recorders[1].node_has_sufficient_logs = promote  # type: ignore[method-assign]
    cluster.tick(1, 2 * cluster.config.election_timeout_ms)
    assert leader.is_leader and leader.commit_index == 1  # the sole voter, and its no-op

    # Node 3 catches up and is promoted; its acknowledgment of ADD_NODE(3) is held back.
    def about_3(m: tuple) -> bool:
        late_ack = isinstance(m[2], AppendEntriesResponse) and m[2].match_index >= 2
        return 3 in (m[0], m[1]) and not late_ack

    cluster.deliver_where(about_3)
    assert leader.voting_members() == (1, 3)
    held = cluster.take(AppendEntriesResponse, src=3)
    assert held and leader.commit_index == 1
    # Node 2 catches up while ADD_NODE(3) is uncommitted.
    cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    assert cluster.servers[2].last_log_index == leader.last_log_index == 2
    # ADD_NODE(3) commits; node 2's next acknowledgment brings the report.
    cluster.queue.extend(held)
    cluster.deliver_all()
    assert leader.commit_index == 2
    for _ in range(3):
        cluster.heartbeat(1)
    assert refused == []
    assert leader.voting_members() == (1, 2, 3)


def test_a_sufficient_logs_callback_that_raises_is_asked_again() -> None:
    """The seed marks a member reported only when node_has_sufficient_logs
    returns 0; here, when it returns without raising."""
    cluster = Cluster((1, 2, 3), members=((1, True), (2, True), (3, False)))
    calls: list[int] = []

    def busy_once(node_id: int) -> None:
        calls.append(node_id)
        if len(calls) == 1:
            raise DiskFull("the host is busy")

    cluster.recorders[1].node_has_sufficient_logs = busy_once  # type: ignore[method-assign]
    cluster.tick(1, 2 * cluster.config.election_timeout_ms)
    raised = 0
    for _ in range(4):
        try:
            cluster.deliver_all()
        except DiskFull:
            raised += 1
        cluster.tick(1, cluster.config.request_timeout_ms)
    cluster.deliver_all()
    assert cluster.servers[1].is_leader
    assert (raised, calls) == (1, [3, 3])


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


# ----------------------------------------------------------- (d) entry types


def test_entry_types_keep_the_seed_numbers() -> None:
    """raft.h's raft_logtype_e: NORMAL 0 .. REMOVE_NODE 4, user types from
    RAFT_LOGTYPE_NUM (100). The seed has no no-op entry: raftcore's has a
    number of its own, clear of both."""
    from raftcore.messages import FIRST_USER_TYPE

    assert [
        int(t)
        for t in (
            EntryType.NORMAL,
            EntryType.ADD_NONVOTING_NODE,
            EntryType.ADD_NODE,
            EntryType.DEMOTE_NODE,
            EntryType.REMOVE_NODE,
        )
    ] == [0, 1, 2, 3, 4]
    assert FIRST_USER_TYPE == 100
    assert EntryType.NOOP not in range(5) and EntryType.NOOP < FIRST_USER_TYPE
    assert len({int(t) for t in EntryType}) == len(EntryType)


def test_user_entry_types_pass_through_the_log() -> None:
    """The seed: "users can piggyback the entry mechanism by specifying log
    types that are higher than RAFT_LOGTYPE_NUM". Such an entry is
    replicated, committed and applied like a normal one, type and data as
    given."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    user = Entry(0, 77, 100 + 7, data={"op": "custom"})  # type: ignore[arg-type]
    response = cluster.servers[1].recv_entry(user)
    for _ in range(2):
        cluster.heartbeat(1)
    for node in (1, 2, 3):
        applied = dict(cluster.recorders[node].applied)[response.index]
        assert (applied.type, applied.data, applied.id) == (107, {"op": "custom"}, 77)
    with pytest.raises(InvalidOperation):
        cluster.servers[1].recv_entry(Entry(0, 78, 99))  # type: ignore[arg-type]


# ------------------------------------------- (e) cancel_snapshot; log_offer's entry


def test_cancel_snapshot_restores_the_state_before_begin_snapshot() -> None:
    """raft_cancel_snapshot: a snapshot begun can be given up; the server is
    as it was before raft_begin_snapshot, and may begin again."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.submit(1, "x")
    cluster.heartbeat(1)
    with pytest.raises(InvalidOperation):
        leader.cancel_snapshot()
    before = (observable(leader), leader.snapshot_last_index, leader.snapshot)
    leader.begin_snapshot()
    assert leader.snapshot_in_progress
    leader.cancel_snapshot()
    assert not leader.snapshot_in_progress
    assert (observable(leader), leader.snapshot_last_index, leader.snapshot) == before
    with pytest.raises(InvalidOperation):
        leader.end_snapshot(b"state")
    # Loading a snapshot is allowed again, and so is taking one.
    index = leader.begin_snapshot()
    assert leader.end_snapshot(b"state").last_index == index


@dataclasses.dataclass(frozen=True)
class Stored:
    """What a host keeps in memory for an entry's data: where it put it."""

    value: object


def test_log_offer_may_replace_the_entry_kept_in_memory() -> None:
    """TestRaft_server_append_entry_user_can_set_data_buf: the callback may
    set the entry's data; the entry in memory, the one applied and sent on,
    is the one the callback returned."""
    cluster = Cluster((1, 2, 3))

    def keep_a_handle(node: int) -> None:
        recorder = cluster.recorders[node]
        store = type(recorder).log_offer

        def offer(entry: Entry, index: int) -> Entry:
            store(recorder, entry, index)
            if isinstance(entry.data, Stored):
                return entry
            return dataclasses.replace(entry, data=Stored(entry.data))

        recorder.log_offer = offer  # type: ignore[method-assign]

    for node in (1, 2, 3):
        keep_a_handle(node)
    leader = cluster.elect(1)
    response = cluster.submit(1, "x")
    assert leader.get_entry(response.index).data == Stored("x")
    sent = [m for _, m in cluster.recorders[1].sent if isinstance(m, AppendEntries) and m.entries]
    assert sent[-1].entries[-1].data == Stored("x")
    cluster.heartbeat(1)
    cluster.heartbeat(1)
    for node in (1, 2, 3):
        assert cluster.servers[node].get_entry(response.index).data == Stored("x")
        assert dict(cluster.recorders[node].applied)[response.index].data == Stored("x")
    assert cluster.recorders[1].durable_log[-1][1].data == "x"  # the host got what was offered


def test_log_offer_may_not_change_what_the_entry_is() -> None:
    """Only the data is the host's to set: a replacement with another term,
    type or id would break the log's agreement with the leader's."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.servers[2]
    recorder = cluster.recorders[2]
    recorder.log_offer = lambda entry, index: dataclasses.replace(entry, term=9)  # type: ignore
    with pytest.raises(InvalidOperation, match="log_offer"):
        follower.recv_appendentries(1, AppendEntries(1, 1, 0, 0, (entry_at(1, 1),), 0))
    assert follower.last_log_index == 0


def test_snapshot_is_refused_while_begun_and_allowed_after_cancel() -> None:
    """raft_begin_load_snapshot while a snapshot is being taken would break
    the snapshot; once it is cancelled, a leader's snapshot loads."""
    cluster = Cluster((1, 2, 3), config=make_config())
    follower = cluster.restore(2, term=1, terms=(1, 1))
    follower.recv_appendentries(1, AppendEntries(1, 1, 2, 1, (), 2))
    follower.begin_snapshot()
    snapshot = Snapshot(5, 1, MEMBERS3, b"")
    with pytest.raises(SnapshotInProgress):
        follower.begin_load_snapshot(snapshot)
    follower.cancel_snapshot()
    follower.begin_load_snapshot(snapshot)
    follower.end_load_snapshot()
    assert follower.snapshot_last_index == 5
