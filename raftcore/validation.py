"""Incoming-message validation: every message is checked once, where it
enters (`RaftServer.step`), and the rest of the server relies on it.

A check looks at the fields (types and ranges, named in the error), at the
sender (a message names its sender, who must be one this server may hear it
from), and at what this server knows to be committed, which no message may
contradict. A refused message raises InvalidMessage and has changed
nothing, the term included.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from raftcore import membership
from raftcore.errors import InvalidMessage
from raftcore.membership import MEMBERSHIP_CHANGES, Membership
from raftcore.messages import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    TimeoutNow,
    is_entry_type,
)


class Receiver(Protocol):
    """What validation reads of the server a message reaches."""

    node_id: int
    current_term: int
    commit_index: int

    @property
    def snapshot_last_index(self) -> int: ...

    def is_member(self, node_id: int) -> bool: ...

    def members_at(self, index: int) -> Membership: ...

    def term_at(self, index: int) -> int | None: ...


Check = Callable[[Receiver, int, Any], None]


# ------------------------------------------------------------------- fields


def check_int(value: object, name: str, minimum: int = 0) -> None:
    if type(value) is not int or value < minimum:  # bool is not an index
        raise InvalidMessage(f"{name} must be an integer >= {minimum}, got {value!r}")


def fields_check(**kinds: type) -> Callable[[Any], None]:
    """A check that the named fields of a message are, in the order named,
    integers >= 0 (kind int, as `check_int` asks) or bools (kind bool, as
    `check_bool` asks), with the same error as those calls would raise.

    Every message is checked, and the two AppendEntries messages are most
    of the traffic: the common case is one expression, written out here
    once per message type (`type(msg.term) is int and msg.term >= 0 and
    ...`), where a call or a loop step per field costs more than its test.
    """
    tests = []
    for name, kind in kinds.items():
        assert name.isidentifier() and kind in (int, bool), (name, kind)
        if kind is int:
            tests.append(f"type(msg.{name}) is int and msg.{name} >= 0")
        else:
            tests.append(f"type(msg.{name}) is bool")
    checks = tuple((name, check_int if kind is int else check_bool) for name, kind in kinds.items())

    def raise_first(msg: Any) -> None:
        for name, check_one in checks:
            check_one(getattr(msg, name), name)  # raises at the first bad field

    namespace = {"raise_first": raise_first}
    source = f"def check(msg):\n    if not ({' and '.join(tests)}):\n        raise_first(msg)\n"
    exec(source, namespace)  # the source is made of the field names above, nothing else
    return namespace["check"]


def check_bool(value: object, name: str) -> None:
    if type(value) is not bool:  # a truthy string is not a yes
        raise InvalidMessage(f"{name} must be a bool, got {value!r}")


def check_entry(entry: object) -> None:
    """An entry is well formed: an Entry, an EntryType or a user type, a
    term, and a node id when it changes the membership."""
    if not isinstance(entry, Entry) or not is_entry_type(entry.type):
        raise InvalidMessage(f"malformed entry {entry!r}")
    term = entry.term
    if type(term) is not int or term < 0:  # check_int's test, inline: once per entry
        check_int(term, "entry term")
    if entry.type in MEMBERSHIP_CHANGES:
        assert isinstance(entry.type, EntryType)
        check_int(entry.node, f"{entry.type.name} node")


def check_members(members: object) -> None:
    """A snapshot's membership: a non-empty tuple of (node id, is voting)."""
    if not isinstance(members, tuple) or not members:
        raise InvalidMessage("snapshot membership must be a non-empty tuple")
    for member in members:
        if not isinstance(member, tuple) or len(member) != 2:
            raise InvalidMessage(f"malformed member {member!r}: expected (node id, is voting)")
        check_int(member[0], "member node id")
        check_bool(member[1], "member is voting")


def expect(msg: object, kind: type) -> None:
    """The message is of the kind the caller hands it over as."""
    if type(msg) is not kind:
        raise InvalidMessage(f"expected {kind.__name__}, got {type(msg).__name__}")


# ------------------------------------------------------------------ senders


def _unknown(receiver: Receiver, node_id: int) -> InvalidMessage:
    return InvalidMessage(f"node {receiver.node_id} does not know node {node_id}")


def check_member_sender(receiver: Receiver, node_id: int) -> None:
    """Answers come from members of the latest configuration only."""
    check_int(node_id, "node_id")
    if not receiver.is_member(node_id):
        raise _unknown(receiver, node_id)


# ----------------------------------------------------------------- messages


_check_requestvote_fields = fields_check(
    term=int, last_log_index=int, last_log_term=int, prevote=bool, transfer=bool
)


def check_requestvote(receiver: Receiver, node_id: int, msg: RequestVote) -> None:
    """Dissertation §4.1: a server votes for a candidate outside its latest
    configuration, for an uncommitted change may have removed it while it
    is still needed to elect a leader. Only a node in neither the latest
    nor the committed configuration is unknown."""
    check_int(node_id, "node_id")
    if not receiver.is_member(node_id) and not membership.contains(
        receiver.members_at(receiver.commit_index), node_id
    ):
        raise _unknown(receiver, node_id)
    _check_requestvote_fields(msg)
    if msg.candidate_id != node_id:
        raise InvalidMessage(f"candidate_id {msg.candidate_id!r} is not the sender {node_id}")


_check_requestvote_response_fields = fields_check(term=int, vote_granted=bool, prevote=bool)


def check_requestvote_response(receiver: Receiver, node_id: int, msg: RequestVoteResponse) -> None:
    check_member_sender(receiver, node_id)
    _check_requestvote_response_fields(msg)


_check_appendentries_fields = fields_check(
    term=int, prev_log_index=int, prev_log_term=int, leader_commit=int, read_round=int
)


def check_appendentries(receiver: Receiver, node_id: int, msg: AppendEntries) -> None:
    """Raft dissertation §4.1: a server accepts AppendEntries from a leader
    not (yet) in its configuration, so a lagging member can catch up."""
    check_int(node_id, "node_id")
    _check_appendentries_fields(msg)
    if msg.leader_id != node_id:
        raise InvalidMessage(f"leader_id {msg.leader_id!r} is not the sender {node_id}")
    if not isinstance(msg.entries, tuple):
        raise InvalidMessage("entries must be a tuple of Entry")
    last_term = msg.prev_log_term
    for entry in msg.entries:
        check_entry(entry)
        if entry.term < last_term or entry.term > msg.term:
            raise InvalidMessage(f"entry term {entry.term} out of order")
        last_term = entry.term
    if msg.term >= receiver.current_term:
        check_committed_entries_kept(receiver, msg)


def check_committed_entries_kept(receiver: Receiver, msg: AppendEntries) -> None:
    """Raft §5.4 (Leader Completeness): a leader of this term or a newer one
    holds every committed entry, so its request never contradicts one. A
    request that does comes from a broken leader: it is refused before it
    changes anything. (A request of an older term is only answered no.)"""
    if msg.prev_log_index >= receiver.commit_index:
        return  # the common case: nothing committed among the request's entries
    first = max(msg.prev_log_index + 1, receiver.snapshot_last_index + 1)
    last = min(msg.prev_log_index + len(msg.entries), receiver.commit_index)
    for index in range(first, last + 1):
        if receiver.term_at(index) != msg.entries[index - msg.prev_log_index - 1].term:
            raise InvalidMessage(
                f"AppendEntries conflicts with committed entry {index} "
                f"(commit index {receiver.commit_index})"
            )


_check_appendentries_response_fields = fields_check(
    term=int, match_index=int, success=bool, rejected_index=int, hint_index=int, read_round=int
)


def check_appendentries_response(
    receiver: Receiver, node_id: int, msg: AppendEntriesResponse
) -> None:
    check_member_sender(receiver, node_id)
    _check_appendentries_response_fields(msg)


def check_readindex_request(receiver: Receiver, node_id: int, msg: ReadIndexRequest) -> None:
    check_member_sender(receiver, node_id)
    check_int(msg.term, "term")
    check_int(msg.request_id, "request_id")


def check_readindex_response(receiver: Receiver, node_id: int, msg: ReadIndexResponse) -> None:
    check_member_sender(receiver, node_id)
    check_int(msg.term, "term")
    check_int(msg.request_id, "request_id")
    check_int(msg.index, "index")
    check_bool(msg.ok, "ok")


def check_timeoutnow(receiver: Receiver, node_id: int, msg: TimeoutNow) -> None:
    check_member_sender(receiver, node_id)
    check_int(msg.term, "term")
    if msg.leader_id != node_id:
        raise InvalidMessage(f"leader_id {msg.leader_id!r} is not the sender {node_id}")


def check_installsnapshot(receiver: Receiver, node_id: int, msg: InstallSnapshot) -> None:
    """Like AppendEntries, from any leader (§4.1)."""
    check_int(node_id, "node_id")
    check_int(msg.term, "term")
    check_int(msg.last_index, "last_index")
    check_int(msg.last_term, "last_term")
    check_int(msg.offset, "offset")
    if msg.leader_id != node_id:
        raise InvalidMessage(f"leader_id {msg.leader_id!r} is not the sender {node_id}")
    if not isinstance(msg.data, bytes):
        raise InvalidMessage("snapshot data must be bytes")
    check_bool(msg.done, "done")
    check_members(msg.members)


def check_installsnapshot_response(
    receiver: Receiver, node_id: int, msg: InstallSnapshotResponse
) -> None:
    check_member_sender(receiver, node_id)
    check_int(msg.term, "term")
    check_int(msg.last_index, "last_index")
    check_int(msg.next_offset, "next_offset")
    check_bool(msg.done, "done")
