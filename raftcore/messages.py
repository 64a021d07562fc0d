"""Log entries and the messages servers exchange: plain, frozen data.

Every message is a noun with the fields of the Raft paper's Figure 2, plus
the hints a practical implementation adds (a conflict hint on a rejected
AppendEntries, chunk offsets on InstallSnapshot). A server validates each
message once, where it enters (`RaftServer.step`, with the checks in
`raftcore.validation`); the rest of the code relies on that.
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

_T = TypeVar("_T")


def quick_init(cls: type[_T]) -> type[_T]:
    """Give a frozen, slotted dataclass an __init__ that sets each field
    through its slot, where the generated one goes through
    object.__setattr__ (the frozen class's own __setattr__ refuses): about
    0.25us less per object, and a server makes one or more per message.

    Nothing else changes: the same parameters, defaults and annotations,
    and the same class (its fields, equality, hash, repr and immutability
    are dataclass's). Only plain fields with plain defaults are taken.
    """
    params = []
    body = []
    namespace: dict[str, Any] = {}
    for each in fields(cls):
        assert each.init and each.default_factory is MISSING, (cls, each.name)
        name = each.name
        namespace[f"_set_{name}"] = cls.__dict__[name].__set__
        if each.default is MISSING:
            params.append(name)
        else:
            namespace[f"_default_{name}"] = each.default
            params.append(f"{name}=_default_{name}")
        body.append(f"    _set_{name}(self, {name})")
    assert not hasattr(cls, "__post_init__"), cls
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # as dataclass writes its own __init__
    init = namespace["__init__"]
    generated = cls.__init__
    init.__qualname__ = generated.__qualname__
    init.__annotations__ = generated.__annotations__
    cls.__init__ = init  # type: ignore[misc]
    return cls


class EntryType(enum.IntEnum):
    """The seed's raft_logtype_e, number for number, and a no-op."""

    NORMAL = 0
    ADD_NONVOTING_NODE = 1
    ADD_NODE = 2
    DEMOTE_NODE = 3
    REMOVE_NODE = 4
    # The seed has no no-op entry; this is the first number after its own
    # types, and below the users' (FIRST_USER_TYPE).
    NOOP = 5

    @property
    def is_membership_change(self) -> bool:
        return EntryType.ADD_NONVOTING_NODE <= self <= EntryType.REMOVE_NODE


FIRST_USER_TYPE = 100
"""Entry types from here up are the user's (the seed's RAFT_LOGTYPE_NUM): a
plain int, passed through the log untouched, like NORMAL."""


def is_entry_type(value: object) -> bool:
    """An EntryType, or a user type: an int from FIRST_USER_TYPE up."""
    return isinstance(value, EntryType) or (type(value) is int and value >= FIRST_USER_TYPE)


@quick_init
@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry. `id` is the client's unique id for it; `node` names the
    node a membership change is about; `type` is an EntryType or a user type
    (an int from FIRST_USER_TYPE up)."""

    term: int
    id: int
    type: EntryType | int = EntryType.NORMAL
    data: Any = None
    node: int | None = None


@quick_init
@dataclass(frozen=True, slots=True)
class Snapshot:
    """A compacted prefix of the log: its last index and term, the membership
    in force at that index (node id, is voting), and the state machine bytes."""

    last_index: int
    last_term: int
    members: tuple[tuple[int, bool], ...]
    data: bytes = b""


@quick_init
@dataclass(frozen=True, slots=True)
class RequestVote:
    """A (pre-)candidate asks for a vote; with prevote=True, `term` is the term
    the candidate would stand in, and nobody's term changes."""

    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int
    prevote: bool = False
    # Dissertation §3.10: the leader asked for this election (TimeoutNow), so
    # voters answer it though they heard from that leader within the timeout.
    transfer: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: int
    vote_granted: bool
    prevote: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: int
    leader_id: int
    prev_log_index: int
    prev_log_term: int
    entries: tuple[Entry, ...]
    leader_commit: int
    # Dissertation §6.4: the leader's heartbeat round, echoed back, so that a
    # majority's answers confirm it was still leader when the round began.
    read_round: int = 0


@quick_init
@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    """On success `match_index` is the last index the request verified. On a
    rejection `rejected_index` is the request's prev_log_index and
    `hint_index` the last index the follower may share with the leader."""

    term: int
    success: bool
    match_index: int = 0
    rejected_index: int = 0
    hint_index: int = 0
    read_round: int = 0  # the request's, echoed


@quick_init
@dataclass(frozen=True, slots=True)
class TimeoutNow:
    """Dissertation §3.10: the leader hands over; the receiver, as up to date
    as the leader, starts an election at once."""

    term: int
    leader_id: int


@quick_init
@dataclass(frozen=True, slots=True)
class ReadIndexRequest:
    """Dissertation §6.4: a follower asks the leader for a read index."""

    term: int
    request_id: int


@quick_init
@dataclass(frozen=True, slots=True)
class ReadIndexResponse:
    """The leader's read index for a follower's read (`ok`), once it proved it
    still led; not ok when it stopped leading first."""

    term: int
    request_id: int
    index: int
    ok: bool


@quick_init
@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    term: int
    leader_id: int
    last_index: int
    last_term: int
    members: tuple[tuple[int, bool], ...]
    offset: int
    data: bytes
    done: bool


@quick_init
@dataclass(frozen=True, slots=True)
class InstallSnapshotResponse:
    """`next_offset` is the byte the follower expects next; on `done` the
    follower holds the whole snapshot through `last_index`."""

    term: int
    last_index: int
    next_offset: int
    done: bool = False


@quick_init
@dataclass(frozen=True, slots=True)
class EntryResponse:
    """What recv_entry hands back: where the entry went, to ask later whether
    it was committed."""

    id: int
    term: int
    index: int


class EntryState(enum.IntEnum):
    LOST = -1
    PENDING = 0
    COMMITTED = 1


Message = (
    RequestVote
    | RequestVoteResponse
    | AppendEntries
    | AppendEntriesResponse
    | InstallSnapshot
    | InstallSnapshotResponse
    | TimeoutNow
    | ReadIndexRequest
    | ReadIndexResponse
)
