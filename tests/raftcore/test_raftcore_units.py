"""The small parts on their own: Log, replication Progress, Callbacks defaults,
message types, and a few server paths the scenarios do not reach."""

from __future__ import annotations

import pytest
from raftcore_cluster import Cluster, entry_at, log_terms, make_config

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Callbacks,
    Config,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    InvalidMessage,
    MembershipEvent,
    RequestVote,
    Role,
    Snapshot,
    membership,
)
from raftcore.log import Log
from raftcore.membership import Configurations
from raftcore.progress import Progress, ProgressState
from raftcore.server import entries_of

MEMBERS3 = ((1, True), (2, True), (3, True))


def test_log_indexes_terms_and_compaction() -> None:
    log = Log()
    assert (log.last_index, log.last_term, log.term_at(0), log.get(1)) == (0, 0, 0, None)
    for index, term in enumerate((1, 1, 2, 3, 3), start=1):
        assert log.append(entry_at(index, term)) == index
    assert (log.last_index, log.last_term) == (5, 3)
    assert [e.term for e in log.slice(2, 2)] == [1, 2]
    assert [e.term for e in log.entries_after(3)] == [3, 3]
    assert log.term_at(6) is None and log.get(0) is None
    assert log.compact(3) == [entry_at(1, 1), entry_at(2, 1), entry_at(3, 2)]
    assert (log.base_index, log.base_term, log.last_index) == (3, 2, 5)
    assert log.term_at(3) == 2 and log.term_at(2) is None and log.get(3) is None
    assert [log.compacted_term(i) for i in range(0, 6)] == [None, 1, 1, 2, None, None]
    assert [e.term for e in log.entries_after(0)] == [3, 3]
    assert log.pop() == entry_at(5, 3)
    # A snapshot from elsewhere: terms under it that this log never held are unknown.
    log.reset(9, 4)
    assert (log.base_index, log.base_term, log.last_index, log.last_term) == (9, 4, 9, 4)
    assert [log.compacted_term(i) for i in (1, 3, 4, 8, 9)] == [1, 2, None, None, 4]
    log.reset(10, 4)
    assert log.compacted_term(10) == 4 and log.compacted_term(9) == 4


def test_progress() -> None:
    member = Progress(2, True, next_index=5)
    assert member.maybe_update(4)
    assert (member.match_index, member.next_index) == (4, 5)
    assert not member.maybe_update(3)
    assert (member.match_index, member.next_index) == (4, 5)
    member.next_index = 9
    # A rejection of prev 8 hinting 2: never below match + 1.
    member.back_off(8, 2)
    assert member.next_index == 5
    # A hint beyond the rejected index (a follower's longer log) is capped.
    member.next_index = 9
    member.back_off(7, 30)
    assert member.next_index == 7


def test_progress_states() -> None:
    """etcd's tracker/progress.go: PROBE finds where the logs agree, REPLICATE
    pipelines, SNAPSHOT sends compacted entries as a snapshot."""
    PROBE, REPLICATE, SNAPSHOT = ProgressState
    member = Progress(2, True, next_index=5)
    assert member.state is PROBE
    member.sent(6)  # a probe is not pipelined
    assert (member.inflight, member.next_index) == ([], 5)
    assert member.maybe_update(4) and member.state is REPLICATE
    member.sent(6)
    member.sent(8)
    assert (member.inflight, member.next_index) == ([6, 8], 9)
    assert member.window_full(2) and not member.window_full(3)
    assert member.maybe_update(6) and member.inflight == [8]
    # A rejection beyond the match probes again; the window stays counted.
    assert not member.is_stale_rejection(8)
    member.back_off(8, 7)
    assert (member.state, member.next_index, member.inflight) == (PROBE, 8, [8])
    assert member.is_stale_rejection(6) and not member.is_stale_rejection(7)
    member.become_snapshot(20)
    member.snapshot_offset = 10
    member.become_snapshot(20)  # the same snapshot: the transfer goes on
    assert (member.state, member.snapshot_index, member.snapshot_offset) == (SNAPSHOT, 20, 10)
    member.become_snapshot(30)  # a newer snapshot starts from its first byte
    assert (member.snapshot_index, member.snapshot_offset) == (30, 0)
    assert member.maybe_update(30)
    assert (member.state, member.next_index, member.inflight) == (REPLICATE, 31, [])
    member.sent(33)
    member.become_probe()  # a stalled window: its requests are taken as lost
    assert (member.state, member.next_index, member.inflight) == (PROBE, 31, [])
    member.recent_active = True
    member.reset(40)  # a new leader's term
    assert (member.state, member.match_index, member.next_index) == (PROBE, 0, 40)
    assert not member.recent_active and member.snapshot_offset == 0


def test_configurations_follow_the_log() -> None:
    """Dissertation §4.1: a configuration is in force from its entry on,
    committed or not, and a truncated entry takes its configuration along."""
    configs = Configurations()
    configs.base = ((1, True), (2, True))
    add = Entry(1, 0, EntryType.ADD_NONVOTING_NODE, node=3)
    promote = Entry(1, 0, EntryType.ADD_NODE, node=3)
    assert configs.append(4, add) == ((1, True), (2, True), (3, False))
    assert configs.append(6, promote) == ((1, True), (2, True), (3, True))
    assert configs.at(3) == configs.base and configs.at(5) == ((1, True), (2, True), (3, False))
    assert configs.is_committed(6) and not configs.is_committed(5)
    assert membership.may_campaign(3, configs, 5)
    assert not configs.maybe_truncate_from(7)
    assert configs.maybe_truncate_from(6)
    assert configs.latest() == ((1, True), (2, True), (3, False))
    assert not membership.may_campaign(3, configs, 5)
    configs.compact(5, configs.at(5))
    assert (configs.base, configs.changes) == (((1, True), (2, True), (3, False)), [])
    demote = Entry(1, 0, EntryType.DEMOTE_NODE, node=2)
    remove = Entry(1, 0, EntryType.REMOVE_NODE, node=2)
    assert membership.apply_change(configs.base, demote) == ((1, True), (2, False), (3, False))
    assert membership.apply_change(configs.base, remove) == ((1, True), (3, False))


def test_step_is_the_one_door_for_messages() -> None:
    """`step` takes every message type; the seed's recv_* names are the same
    door, each for its own type."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.servers[2]
    msg = AppendEntries(1, 1, 0, 0, (entry_at(1, 1),), 0)
    assert follower.step(1, msg) == AppendEntriesResponse(1, True, match_index=1)
    assert follower.current_term == 1 and follower.get_current_leader() == 1
    assert follower.recv_appendentries(1, msg) == AppendEntriesResponse(1, True, match_index=1)
    with pytest.raises(InvalidMessage, match="not a raftcore message"):
        follower.step(1, Entry(1, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match="expected RequestVote"):
        follower.recv_requestvote(1, msg)  # type: ignore[arg-type]


def test_a_response_from_a_newer_term_only_deposes() -> None:
    """Raft Figure 2: a response with a newer term makes a leader a follower
    in that term, and says nothing else."""
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.drop_all()
    leader.recv_appendentries_response(2, AppendEntriesResponse(5, True, match_index=99))
    assert (leader.role, leader.current_term, leader.voted_for) == (Role.FOLLOWER, 5, None)
    assert cluster.queue == []


def test_required_callbacks_raise_and_optional_ones_do_nothing() -> None:
    callbacks = Callbacks()
    entry = Entry(1, 1)
    required = [
        lambda: callbacks.send_requestvote(2, RequestVote(1, 1, 0, 0)),
        lambda: callbacks.send_appendentries(2, AppendEntries(1, 1, 0, 0, (), 0)),
        lambda: callbacks.send_installsnapshot(
            2, InstallSnapshot(1, 1, 1, 1, MEMBERS3, 0, b"", True)
        ),
        lambda: callbacks.applylog(entry, 1),
        lambda: callbacks.persist_vote(1),
        lambda: callbacks.persist_term(1, None),
        lambda: callbacks.log_offer(entry, 1),
        lambda: callbacks.log_pop(entry, 1),
    ]
    for call in required:
        with pytest.raises(NotImplementedError):
            call()
    snapshot = Snapshot(1, 1, MEMBERS3)
    callbacks.log_poll(entry, 1)
    callbacks.persist_snapshot(snapshot)
    callbacks.load_snapshot(snapshot)
    callbacks.node_has_sufficient_logs(2)
    callbacks.notify_membership_event(2, MembershipEvent.ADDED)
    callbacks.log("hello")


def test_entry_types() -> None:
    assert not EntryType.NORMAL.is_membership_change
    assert not EntryType.NOOP.is_membership_change
    assert all(
        kind.is_membership_change
        for kind in (
            EntryType.ADD_NONVOTING_NODE,
            EntryType.ADD_NODE,
            EntryType.DEMOTE_NODE,
            EntryType.REMOVE_NODE,
        )
    )


def test_config_defaults_are_valid_and_inflight_window_checked() -> None:
    config = Config()
    assert config.request_timeout_ms < config.election_timeout_ms
    with pytest.raises(ValueError, match="max_inflight_msgs"):
        Config(max_inflight_msgs=0)


def test_appendentries_below_the_snapshot_skips_compacted_entries() -> None:
    """Raft §7: entries a follower has compacted are committed and match the
    leader's; a request starting below the snapshot only adds what follows."""
    cluster = Cluster((1, 2, 3))
    follower = cluster.restore(2, term=2, snapshot=Snapshot(4, 1, MEMBERS3))
    entries = tuple(entry_at(i, 1) for i in (3, 4)) + (entry_at(5, 2),)
    response = follower.recv_appendentries(1, AppendEntries(2, 1, 2, 1, entries, 5))
    assert response == AppendEntriesResponse(2, True, match_index=5)
    assert follower.snapshot_last_index == 4
    assert log_terms(follower) == [2]
    assert follower.commit_index == 5
    assert list(entries_of(follower)) == [(5, entry_at(5, 2))]


def test_response_claiming_to_come_from_the_leader_itself_is_ignored() -> None:
    cluster = Cluster((1, 2, 3))
    leader = cluster.elect(1)
    cluster.submit(1, "x")
    cluster.drop_all()
    leader.recv_appendentries_response(1, AppendEntriesResponse(1, True, match_index=2))
    assert leader.commit_index == 1


def test_answer_about_a_superseded_snapshot_is_ignored() -> None:
    """A transfer answer about an older snapshot than the leader now has
    sends nothing; the next heartbeat starts the new snapshot at offset 0."""
    cluster = Cluster((1, 2, 3), config=make_config(snapshot_chunk_bytes=2))
    leader = cluster.elect(1)
    cluster.crash(3)
    cluster.submit(1, "a")
    cluster.deliver_all()
    cluster.heartbeat(1)
    leader.begin_snapshot()
    old = leader.end_snapshot(b"abcdef")
    cluster.restart(3)
    for _ in range(2):  # the probe is rejected; the transfer starts
        cluster.tick(1, 20)
        cluster.deliver_all(allow=lambda m: not isinstance(m[2], InstallSnapshot))
    assert leader.member_progress(3).next_index <= old.last_index
    cluster.submit(1, "b")
    cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    cluster.tick(1, 20)
    cluster.deliver_all(allow=lambda m: 3 not in (m[0], m[1]))
    assert cluster.recorders[3].loaded == []
    leader.begin_snapshot()
    new = leader.end_snapshot(b"ABCDEFGH")
    assert new.last_index > old.last_index
    cluster.drop_all()
    leader.recv_installsnapshot_response(3, InstallSnapshotResponse(1, old.last_index, 2))
    assert cluster.queue == []
    cluster.heartbeat(1)
    cluster.heartbeat(1)
    assert cluster.recorders[3].loaded[-1] == new
