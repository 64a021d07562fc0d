"""The one door between the simulator and a Raft implementation.

Everything the simulator, the checker, the scenarios, the shrinker and the
report may ask of a node is declared here, and nothing else asks a node
anything. A node is a `NodeAdapter` subclass: the abstract methods are
required, everything else is an optional capability with a default that
says "this implementation does not offer it". `raftcore` is the default
implementation (`virtraft.nodes.raftcore`); `--node-factory module:callable`
points the simulator at another one, and the bug zoo uses the same door.

A node factory is called as

    factory(node_id, members, send, rng, options) -> NodeAdapter

where `members` is the configuration the node boots with (node id, is
voting), `send(dst, message)` puts a message on the network, `rng` is the
node's own seeded `random.Random`, and `options` a `NodeOptions`. A factory
may carry a `messages` attribute, a `Messages` that tells the harness what a
message of this implementation is (see `messages_of`).

Blame: an exception raised inside a call through the door (a node method or
the factory) is the server's, a finding with its trace; one raised anywhere
else is the harness's own bug.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

Membership = tuple[tuple[int, bool], ...]
Send = Callable[[int, object], None]
Scalars = tuple[bool, "Role", int, int | None, int, int, int]


class Role(enum.StrEnum):
    FOLLOWER = "follower"
    PRECANDIDATE = "precandidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


class MembershipChange(enum.StrEnum):
    ADD_NONVOTING = "add_nonvoting"
    PROMOTE = "promote"
    DEMOTE = "demote"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class NodeOptions:
    """Raft options every implementation is asked to honour, in virtual ms."""

    election_timeout_ms: int = 1000
    request_timeout_ms: int = 200
    prevote: bool = True
    check_quorum: bool = True
    noop_on_election: bool = True
    max_entries_per_msg: int = 64
    # Dissertation §6.4.1: answer reads from a lease instead of a heartbeat
    # round, for an election timeout less `lease_drift_ms` after a round.
    lease_read: bool = False
    lease_drift_ms: int = 100
    # Dissertation §6.4: a follower asked to read gets a read index from the
    # leader and serves the read itself, instead of redirecting the client.
    forward_reads: bool = False

    def heartbeat_beats_election(self) -> bool:
        """A leader's heartbeat must come before a follower's election
        timeout, or a healthy leader is deposed (Raft §5.6)."""
        return self.request_timeout_ms < self.election_timeout_ms


NODE_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(NodeOptions))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What an implementation offers beyond the required calls. The
    scheduler draws no event an implementation cannot take, and a scenario
    that needs a missing capability says so and is skipped."""

    # change_membership() adds, promotes, demotes and removes servers.
    membership: bool = False
    # take_snapshot() compacts the log, and lagging servers catch up by a
    # snapshot transfer.
    snapshots: bool = False
    # The NodeOptions fields the implementation honours; the others are ignored.
    options: frozenset[str] = frozenset()
    # Disk writes complete later, each as its own event (`pending_io()`,
    # `complete_io()`): the scheduler may reorder completions against
    # messages and crash a node between a write and its completion.
    async_io: bool = False
    # lose_unsynced() models a power cut: the node's disk buffers writes until
    # the server syncs, and a lossy crash loses what was not synced.
    lossy_disk: bool = False
    # The node's state machine is a key-value store that takes `Command`s
    # (writes and compare-and-set under client sessions) through submit(),
    # serves read(), and reports what it told clients through answers().
    # Without it, clients only write, through submit() with (key, value).
    clients: bool = False
    # A server may be numbered 0, so swarm testing may start the ids there
    # (`if node_id:` where `is not None` was meant); some libraries keep id 0
    # for "nobody" and refuse it.
    zero_node_id: bool = False


@dataclass(frozen=True, slots=True)
class Command:
    """A client's write or compare-and-set, under its session: the state
    machine applies (client, seq) at most once (dissertation §6.3)."""

    client: int
    seq: int
    op: str  # "write" or "cas"
    key: str
    value: int
    expected: int | None = None  # a cas swaps only when the key holds this


@dataclass(frozen=True, slots=True)
class Answer:
    """What a node told a client about request `request`: `ok` False means the
    request certainly took no effect (a read that will never be served)."""

    request: int
    ok: bool
    output: int | bool | None = None  # a read's value; a cas: whether it swapped


@dataclass(frozen=True, slots=True)
class Submitted:
    """The node took the command as leader and put it at `index`."""

    index: int
    term: int


@dataclass(frozen=True, slots=True)
class Redirect:
    """The node is not the leader; `leader` is who it believes leads (or None)."""

    leader: int | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The node refused the request for a reason that is not a redirect."""

    reason: str


SubmitResult = Submitted | Redirect | Refused


@runtime_checkable
class NodeView(Protocol):
    """What the checker may read. Cheap to call: O(1) per attribute."""

    node_id: int

    @property
    def alive(self) -> bool: ...
    @property
    def role(self) -> Role: ...
    @property
    def term(self) -> int: ...
    @property
    def voted_for(self) -> int | None: ...
    @property
    def commit_index(self) -> int: ...
    @property
    def last_index(self) -> int: ...
    @property
    def snapshot_index(self) -> int:
        """Last index covered by the node's snapshot (0 without one)."""

    @property
    def snapshot_term(self) -> int: ...
    def entry(self, index: int) -> tuple[int, int] | None:
        """(term, entry id) at index; None when compacted or absent. Entry ids
        are unique per client command; (term, id) identifies any entry."""

    @property
    def recent_applied(self) -> Sequence[tuple[int, int, int]]:
        """(index, term, entry id) applied since the simulator's last
        `begin_step()`, in order. A snapshot load applies nothing here."""

    @property
    def members(self) -> Membership:
        """The configuration this node believes in: (node id, is voting)."""

    def scalars(self) -> Scalars:
        """(alive, role, term, voted_for, commit_index, last_index, snapshot_index)."""


class NodeAdapter(abc.ABC):
    """What the simulator may do to a node and read from it. While crashed,
    a node's view reports its durable state: term, vote, log and snapshot.

    Subclass it: the abstract members are required; the rest are optional
    capabilities whose defaults declare them absent."""

    node_id: int

    # ------------------------------------------------------------ capabilities

    capabilities: ClassVar[Capabilities] = Capabilities()
    # Exceptions deliver() may raise to refuse a bad message: counted as
    # refused, not a finding. Anything else raised through the door is one.
    refusals: ClassVar[tuple[type[BaseException], ...]] = ()
    # The learners the leader found caught up (its `node_has_sufficient_logs`);
    # None when the implementation does not say, and then every learner counts.
    caught_up: Sequence[int] | None = None
    # The highest applied index, for the run summary; None when not offered.
    last_applied: int | None = None
    # The node shut itself down for good (some libraries ask their user to,
    # once a server applies its own removal): it reports alive=False and its
    # durable state, and the scheduler never restarts it.
    retired: bool = False

    def entry_kind(self, index: int) -> str:
        """What the entry at `index` is for, in a word or two ("normal",
        "add_node 4"), for reports; '' when the implementation does not say."""
        return ""

    def leader_hint(self) -> int | None:
        """Who this node believes leads, for reports; None when unknown."""
        return None

    def read(self, request_id: int, key: str) -> SubmitResult:
        """Start a linearizable read of `key`; its Answer comes later through
        answers(). Only called when `capabilities.clients` is set."""
        return Refused("reads are not offered")

    def answers(self) -> Sequence[Answer]:
        """Answers to requests this node took (submit() of a Command, read()),
        given once each, since the last call. Only called when
        `capabilities.clients` is set."""
        return ()

    def pending_io(self) -> int:
        """How many I/O requests may complete now (`capabilities.async_io`);
        0 while down. The scheduler picks one for `complete_io`."""
        return 0

    def complete_io(self, k: int) -> None:
        """Complete the k-th of the `pending_io()` requests: what it wrote is
        durable from now on, and the implementation hears of it."""
        raise NotImplementedError("this implementation completes its I/O at once")

    def lose_unsynced(self, keep: float) -> None:
        """Just before a crash that is a power cut: the writes the server has
        not synced are lost, all but the first `keep` share of them (0 loses
        them all). Only called when `capabilities.lossy_disk` is set."""
        raise NotImplementedError("this node's disk does not model lost writes")

    def scalars(self) -> Scalars:
        """(alive, role, term, voted_for, commit_index, last_index,
        snapshot_index) in one call, for speed: the checker reads them for
        every touched node after every event. Override it when reading the
        properties one by one is slow."""
        return (
            self.alive,
            self.role,
            self.term,
            self.voted_for,
            self.commit_index,
            self.last_index,
            self.snapshot_index,
        )

    # ---------------------------------------------------------- required: view

    @property
    @abc.abstractmethod
    def alive(self) -> bool: ...
    @property
    @abc.abstractmethod
    def role(self) -> Role: ...
    @property
    @abc.abstractmethod
    def term(self) -> int: ...
    @property
    @abc.abstractmethod
    def voted_for(self) -> int | None: ...
    @property
    @abc.abstractmethod
    def commit_index(self) -> int: ...
    @property
    @abc.abstractmethod
    def last_index(self) -> int: ...
    @property
    @abc.abstractmethod
    def snapshot_index(self) -> int:
        """Last index covered by the node's snapshot (0 without one)."""

    @property
    @abc.abstractmethod
    def snapshot_term(self) -> int: ...
    @abc.abstractmethod
    def entry(self, index: int) -> tuple[int, int] | None:
        """(term, entry id) at index; None when compacted or absent. Entry ids
        are unique per client command; (term, id) identifies any entry."""

    @property
    @abc.abstractmethod
    def recent_applied(self) -> Sequence[tuple[int, int, int]]:
        """(index, term, entry id) applied since the simulator's last
        `begin_step()`, in order. A snapshot load applies nothing here."""

    @property
    @abc.abstractmethod
    def members(self) -> Membership:
        """The configuration this node believes in: (node id, is voting)."""

    # ------------------------------------------------------- required: actions

    @abc.abstractmethod
    def begin_step(self) -> None:
        """Forget `recent_applied`; the simulator calls this before each event."""

    @abc.abstractmethod
    def deliver(self, src: int, message: object) -> None:
        """Hand over a message. A refusal (bad message) may raise any
        exception listed in `refusals`; anything else is a finding."""

    @abc.abstractmethod
    def tick(self, msec: int) -> None: ...
    @abc.abstractmethod
    def submit(self, command_id: int, data: object) -> SubmitResult: ...
    @abc.abstractmethod
    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        """Only called when `capabilities.membership` is set."""

    @abc.abstractmethod
    def take_snapshot(self) -> bool:
        """Compact the log through what is applied; False if there is nothing
        to do. Only called when `capabilities.snapshots` is set."""

    @abc.abstractmethod
    def crash(self) -> None:
        """Lose all volatile state; the node stays down until restart()."""

    @abc.abstractmethod
    def restart(self) -> None:
        """Come back from durable state only."""

    @abc.abstractmethod
    def is_committed(self, submitted: Submitted) -> bool | None:
        """True once committed, False if lost (overwritten), None if pending."""


NodeFactory = Callable[[int, Membership, Send, random.Random, NodeOptions], NodeAdapter]


class FactoryError(ValueError):
    """A node factory cannot be loaded, or cannot build a node."""


class ServerFailure(Exception):
    """An exception escaped a call through the door: the server's failure,
    a finding. `cause` is what the server raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


# ---------------------------------------------------------------- messages


class MessageRole(enum.StrEnum):
    """What a message is for in Raft, whatever the implementation calls it."""

    VOTE = "vote"
    VOTE_RESPONSE = "vote_response"
    APPEND = "append"
    APPEND_RESPONSE = "append_response"
    SNAPSHOT = "snapshot"
    SNAPSHOT_RESPONSE = "snapshot_response"
    OTHER = "other"


class Messages:
    """What the harness may ask of a message, with defaults that work for
    any message object. An implementation overrides what it can say better:
    a cheap, stable `key`, the Raft role of each type, and so on."""

    def key(self, message: object) -> int:
        """A digest of the message's content, stable across runs and
        processes: traces name a message by it."""
        return zlib.crc32(repr(message).encode())

    def content_key(self, message: object) -> int | None:
        """For a `key` that also covers what a door notes beside the library's
        message: the digest of the message alone, as a door that notes
        nothing records it. A replay falls back to it when no message in
        flight has the recorded key (a trace recorded through another door of
        the same library). None: `key` is the content's digest."""
        return None

    def kind(self, message: object) -> str:
        """A short name for the message's type, for traces and reports."""
        return type(message).__name__

    def role(self, message: object) -> MessageRole:
        return MessageRole.OTHER

    def is_prevote(self, message: object) -> bool:
        return False

    def entries_carried(self, message: object) -> int:
        return 0

    def completes_snapshot(self, message: object) -> bool:
        """True for the message that hands over a snapshot's last chunk."""
        return False

    def text(self, message: object) -> str:
        """The message in one line for people: its fields, with bytes and long
        sequences counted rather than printed."""
        if not dataclasses.is_dataclass(message) or isinstance(message, type):
            return repr(message)
        parts = []
        for f in dataclasses.fields(message):
            value = getattr(message, f.name)
            if isinstance(value, bytes | bytearray):
                shown = f"<{len(value)} bytes>"
            elif isinstance(value, tuple | list) and len(value) > 2:
                shown = f"<{len(value)} items, last {value[-1]!r}>"
            else:
                shown = repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(message).__name__}({', '.join(parts)})"


DEFAULT_MESSAGES = Messages()


def messages_of(factory: NodeFactory) -> Messages:
    """The factory's `Messages`, or the defaults."""
    messages = getattr(factory, "messages", None)
    return messages if isinstance(messages, Messages) else DEFAULT_MESSAGES


def capabilities_of(factory: NodeFactory) -> Capabilities | None:
    """What the factory's nodes offer, when the factory says so before it
    builds one (a `capabilities` attribute); None when only a node can tell."""
    capabilities = getattr(factory, "capabilities", None)
    return capabilities if isinstance(capabilities, Capabilities) else None


def build_node(
    factory: NodeFactory,
    node_id: int,
    members: Membership,
    send: Send,
    rng: random.Random,
    options: NodeOptions,
) -> NodeAdapter:
    """Call the factory through the door: what it raises is the server's."""
    try:
        node = factory(node_id, members, send, rng, options)
    except Exception as exc:
        raise ServerFailure(exc) from exc
    if not isinstance(node, NodeAdapter):
        what = "None" if node is None else f"an object of type {type(node).__name__}"
        raise FactoryError(
            f"node factory {factory_name(factory)} returned {what} for node {node_id}, "
            "not a node (a virtraft.adapter.NodeAdapter)"
        )
    return node


def factory_name(factory: NodeFactory) -> str:
    return getattr(factory, "__name__", None) or repr(factory)
