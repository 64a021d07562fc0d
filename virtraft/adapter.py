"""The one door between the simulator and a Raft implementation.

The simulator drives any implementation through `NodeAdapter`; the checker
reads it through `NodeView` and never changes it. `raftcore` is the default
implementation (`virtraft.nodes.raftcore`); `--node-factory module:callable`
points the simulator at another one, and the bug zoo uses the same door.

A node factory is called as

    factory(node_id, members, send, rng, options) -> NodeAdapter

where `members` is the configuration the node boots with (node id, is
voting), `send(dst, message)` puts a message on the network, `rng` is the
node's own seeded `random.Random`, and `options` a `NodeOptions`.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Membership = tuple[tuple[int, bool], ...]
Send = Callable[[int, object], None]


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


# Optional, for speed: a view may also offer
#
#     def scalars(self) -> tuple[bool, Role, int, int | None, int, int, int]
#
# returning (alive, role, term, voted_for, commit_index, last_index,
# snapshot_index) in one call; the checker uses it when present
# (`virtraft.check.checker.read_scalars` is the fallback that reads the properties).


@runtime_checkable
class NodeAdapter(NodeView, Protocol):
    """What the simulator may do to a node. While crashed, a node's view
    reports its durable state: term, vote, log and snapshot."""

    def begin_step(self) -> None:
        """Forget `recent_applied`; the simulator calls this before each event."""
    def deliver(self, src: int, message: object) -> None:
        """Hand over a message. A refusal (bad message) may raise any
        exception listed in `refusals`; anything else is a finding."""
    def tick(self, msec: int) -> None: ...
    def submit(self, command_id: int, data: object) -> SubmitResult: ...
    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult: ...
    def take_snapshot(self) -> bool:
        """Compact the log through what is applied; False if there is nothing to do."""
    def crash(self) -> None:
        """Lose all volatile state; the node stays down until restart()."""
    def restart(self) -> None:
        """Come back from durable state only."""
    def is_committed(self, submitted: Submitted) -> bool | None:
        """True once committed, False if lost (overwritten), None if pending."""

    refusals: tuple[type[BaseException], ...]


NodeFactory = Callable[[int, Membership, Send, random.Random, NodeOptions], NodeAdapter]


class FactoryError(ValueError):
    """A node factory cannot be loaded, or cannot build a node."""


def message_kind(message: object) -> str:
    """A short name for a message, for traces and reports."""
    return type(message).__name__
