"""Input hygiene: a message from an unknown node, a negative index or a
malformed field is refused with a RaftError that says what is wrong, and the
server is left exactly as it was (DESIGN.md: never an AttributeError)."""

from __future__ import annotations

import random

import pytest
from raftcore_cluster import ELECTION_MS, Cluster, entry_at, make_config

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Config,
    Entry,
    EntryResponse,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    InvalidMessage,
    InvalidOperation,
    RaftError,
    RaftServer,
    RequestVote,
    RequestVoteResponse,
)
from raftcore.server import entries_of

MEMBERS3 = ((1, True), (2, True), (3, True))


def state_of(cluster: Cluster, node: int) -> tuple:
    """Everything observable about a server, and everything its callbacks saw."""
    server = cluster.servers[node]
    progress = tuple(
        (m.node_id, m.voting, m.next_index, m.match_index, m.recent_active, m.snapshot_offset)
        for m in (server.member_progress(n) for n, _ in server.members())
    )
    recorder = cluster.recorders[node]
    return (
        server.role,
        server.current_term,
        server.voted_for,
        server.get_current_leader(),
        server.commit_index,
        server.last_applied,
        server.last_log_index,
        server.last_log_term,
        server.snapshot_last_index,
        server.snapshot_last_term,
        server.members(),
        progress,
        tuple(entries_of(server)),
        len(recorder.events),
        len(cluster.queue),
    )


def leader_cluster() -> Cluster:
    """Node 1 leads term 1 with a committed no-op and one pending entry."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(1)
    cluster.tick(1, ELECTION_MS)  # a check-quorum round clears recent_active
    cluster.submit(1, "pending")
    cluster.drop_all()
    assert not cluster.servers[1].member_progress(2).recent_active
    return cluster


E1 = entry_at(1, 1)

# (handler name, sender, message, text the error must mention)
BAD_MESSAGES = [
    # Unknown senders.
    ("recv_requestvote", 9, RequestVote(2, 9, 0, 0), "does not know node 9"),
    ("recv_requestvote_response", 9, RequestVoteResponse(1, True), "does not know node 9"),
    ("recv_appendentries_response", 9, AppendEntriesResponse(1, True, 1), "does not know node 9"),
    ("recv_installsnapshot_response", 9, InstallSnapshotResponse(1, 1, 0), "does not know node 9"),
    # Negative indexes and terms.
    ("recv_requestvote", 2, RequestVote(2, 2, -1, 0), "last_log_index"),
    ("recv_requestvote", 2, RequestVote(-2, 2, 0, 0), "term"),
    ("recv_appendentries", 2, AppendEntries(2, 2, -1, 0, (), 0), "prev_log_index"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 0, 0, (), -5), "leader_commit"),
    ("recv_appendentries_response", 2, AppendEntriesResponse(1, True, -1), "match_index"),
    ("recv_appendentries_response", 2, AppendEntriesResponse(1, False, 0, -1, 0), "rejected"),
    ("recv_appendentries_response", 2, AppendEntriesResponse(1, False, 0, 1, -1), "hint_index"),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 2, 5, 1, MEMBERS3, -1, b"", True), "offset"),
    ("recv_installsnapshot_response", 2, InstallSnapshotResponse(1, 1, -4), "next_offset"),
    ("recv_requestvote_response", 2, RequestVoteResponse(-1, True), "term"),
    # Wrong types.
    ("recv_requestvote", 2, RequestVote("2", 2, 0, 0), "term"),
    ("recv_requestvote", 2, RequestVote(2, 2, 0, True), "last_log_term"),
    ("recv_requestvote", 2, RequestVote(2, 2, 0, 0, prevote="yes"), "prevote"),
    ("recv_requestvote", 2, RequestVote(2, 3, 0, 0), "not the sender"),
    ("recv_requestvote", 2, AppendEntries(2, 2, 0, 0, (), 0), "expected RequestVote"),
    ("recv_requestvote_response", 2, RequestVoteResponse(1, "yes"), "vote_granted"),
    ("recv_requestvote_response", 2, RequestVoteResponse(1, True, prevote=None), "prevote"),
    ("recv_requestvote_response", 2, AppendEntriesResponse(1, True), "RequestVoteResponse"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 0, 0, [E1], 0), "tuple"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 0, 0, ("x",), 0), "malformed entry"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 0, 0, (Entry(1, 1, 0),), 0), "malformed"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 0, 0, (Entry(3, 1),), 0), "entry term"),
    ("recv_appendentries", 2, AppendEntries(2, 2, 1, 2, (Entry(1, 1),), 0), "entry term"),
    (
        "recv_appendentries",
        2,
        AppendEntries(2, 2, 0, 0, (Entry(1, 1, EntryType.ADD_NODE, node=None),), 0),
        "node",
    ),
    (
        "recv_appendentries",
        2,
        AppendEntries(2, 2, 0, 0, (Entry(1, 1, EntryType.REMOVE_NODE, node="4"),), 0),
        "node",
    ),
    ("recv_appendentries", 2, AppendEntries(2, 3, 0, 0, (), 0), "not the sender"),
    ("recv_appendentries", 2, AppendEntries(2.0, 2, 0, 0, (), 0), "term"),
    ("recv_appendentries", 2, RequestVote(2, 2, 0, 0), "expected AppendEntries"),
    ("recv_appendentries_response", 2, AppendEntriesResponse(1, "ok", 1), "success"),
    ("recv_appendentries_response", 2, RequestVoteResponse(1, True), "AppendEntriesResponse"),
    ("recv_appendentries_response", 2, AppendEntriesResponse(1, True, 99), "beyond"),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 2, 5, 1, MEMBERS3, 0, "ab", True), "bytes"),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 2, 5, 1, (), 0, b"", True), "membership"),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 2, 5, 1, ((1,),), 0, b"", True), "member"),
    (
        "recv_installsnapshot",
        2,
        InstallSnapshot(2, 2, 5, 1, (("1", True),), 0, b"", True),
        "member",
    ),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 2, 5, 1, MEMBERS3, 0, b"", "no"), "done"),
    ("recv_installsnapshot", 2, InstallSnapshot(2, 3, 5, 1, MEMBERS3, 0, b"", True), "sender"),
    ("recv_installsnapshot", 2, AppendEntries(2, 2, 0, 0, (), 0), "InstallSnapshot"),
    ("recv_installsnapshot_response", 2, InstallSnapshotResponse(1, 1, 0, done=1), "done"),
    ("recv_installsnapshot_response", 2, AppendEntriesResponse(1, True), "InstallSnapshot"),
    ("recv_installsnapshot_response", 2, InstallSnapshotResponse(1, 99, 0, done=True), "beyond"),
]


@pytest.mark.parametrize(
    ("handler", "src", "msg", "text"),
    BAD_MESSAGES,
    ids=[f"{h}-{t}-{i}" for i, (h, _, _, t) in enumerate(BAD_MESSAGES)],
)
def test_malformed_message_is_refused_and_changes_nothing(handler, src, msg, text) -> None:
    """Validate once where a message enters (STYLE.md §3): the refusal is a
    RaftError naming the problem, and the server's state is untouched."""
    cluster = leader_cluster()
    before = state_of(cluster, 1)
    with pytest.raises(RaftError, match=text):
        getattr(cluster.servers[1], handler)(src, msg)
    assert state_of(cluster, 1) == before


@pytest.mark.parametrize(
    ("handler", "src", "msg", "text"),
    [case for case in BAD_MESSAGES if not case[0].endswith("_response")],
)
def test_malformed_request_to_a_follower_changes_nothing(handler, src, msg, text) -> None:
    """The same refusals at a follower (which would otherwise adopt the term,
    the leader, or the entries)."""
    cluster = Cluster((1, 2, 3))
    cluster.elect(3)
    before = state_of(cluster, 1)
    with pytest.raises(RaftError, match=text):
        getattr(cluster.servers[1], handler)(src, msg)
    assert state_of(cluster, 1) == before


def test_sender_id_must_be_an_index() -> None:
    cluster = leader_cluster()
    before = state_of(cluster, 1)
    for bad in (-1, "2", None, True):
        with pytest.raises(InvalidMessage, match="node_id"):
            cluster.servers[1].recv_appendentries_response(bad, AppendEntriesResponse(1, True))
    assert state_of(cluster, 1) == before


@pytest.mark.parametrize("bad", [-1, 1.5, "10", None])
def test_periodic_needs_whole_non_negative_msec(bad) -> None:
    cluster = leader_cluster()
    before = state_of(cluster, 1)
    with pytest.raises(InvalidOperation, match="msec"):
        cluster.servers[1].periodic(bad)
    assert state_of(cluster, 1) == before


@pytest.mark.parametrize(
    "entries",
    [
        ["not an entry"],
        [Entry(0, 1, type=7)],
        [Entry(0, 1, EntryType.ADD_NONVOTING_NODE, node=-4)],
        [Entry(0, 1, EntryType.ADD_NONVOTING_NODE, node=None)],
    ],
)
def test_malformed_client_entry_is_refused(entries) -> None:
    """The client API checks its input too: a RaftError, nothing appended."""
    cluster = leader_cluster()
    before = state_of(cluster, 1)
    with pytest.raises(RaftError):
        cluster.servers[1].recv_entries(entries)
    assert state_of(cluster, 1) == before


def test_entry_committed_needs_an_entry_response() -> None:
    cluster = leader_cluster()
    with pytest.raises(RaftError, match="EntryResponse"):
        cluster.servers[1].entry_committed((1, 1, 2))
    with pytest.raises(RaftError, match="index"):
        cluster.servers[1].entry_committed(EntryResponse(1, 1, -2))


def test_constructor_refuses_bad_arguments() -> None:
    with pytest.raises(TypeError, match="random.Random"):
        RaftServer(1, None, rng=random)  # type: ignore[arg-type]
    with pytest.raises(InvalidMessage, match="node_id"):
        RaftServer(-1, None, rng=random.Random(0))  # type: ignore[arg-type]
    server = RaftServer(1, None, rng=random.Random(0))  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation, match="not this server"):
        server.add_node(2, is_self=True)


@pytest.mark.parametrize(
    "options",
    [
        {"election_timeout_ms": 0},
        {"request_timeout_ms": 0},
        {"election_timeout_ms": 100, "request_timeout_ms": 100},
        {"max_entries_per_msg": 0},
        {"snapshot_chunk_bytes": 0},
    ],
)
def test_config_refuses_nonsense(options) -> None:
    with pytest.raises(ValueError):
        Config(**options)


def test_requestvote_from_unknown_node_does_not_bump_term() -> None:
    """A RequestVote from outside the configuration is refused before its
    term is looked at: a removed server cannot disrupt the cluster."""
    cluster = Cluster((1, 2, 3))
    cluster.tick(2, ELECTION_MS * 3)  # out of any lease
    cluster.drop_all()
    before = state_of(cluster, 1)
    with pytest.raises(InvalidMessage):
        cluster.servers[1].recv_requestvote(7, RequestVote(50, 7, 100, 50))
    assert state_of(cluster, 1) == before


def test_errors_name_the_problem() -> None:
    cluster = Cluster((1, 2, 3), config=make_config())
    with pytest.raises(InvalidMessage) as info:
        cluster.servers[1].recv_appendentries(2, AppendEntries(1, 2, 0, 0, (), -1))
    assert "leader_commit must be an integer >= 0, got -1" in str(info.value)
