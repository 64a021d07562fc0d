"""Scheduler events: one step of a simulation each, named after what happens.

Events are plain data. The scheduler draws them from the seed, the simulator
applies them, and a trace stores them as JSON, so a replay applies the same
events without touching the random number generator. A message is named by
its link and a digest of its content, never by a counter, so a trace with
events removed (shrinking) still finds the messages it means.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from virtraft.adapter import MembershipChange


class EventError(ValueError):
    """A trace line is not an event this version understands."""


@dataclass(frozen=True, slots=True)
class _MessageEvent:
    """Something happens to one in-flight message, named by link and content."""

    kind: ClassVar[str]
    src: int
    dst: int
    msg: str  # message type name
    key: int  # digest of the message's content
    ref: object | None = field(default=None, compare=False)  # envelope id, not stored


_M = TypeVar("_M", bound=_MessageEvent)


_new = object.__new__
_SET_FIELDS = tuple(
    _MessageEvent.__dict__[name].__set__ for name in ("src", "dst", "msg", "key", "ref")
)


def message_event(cls: type[_M], src: int, dst: int, msg: str, key: int, ref: object | None) -> _M:
    """`cls(src, dst, msg, key, ref)` for a Deliver, Drop or Duplicate, at half
    the cost: a frozen dataclass's __init__ sets each field through
    object.__setattr__, and the scheduler makes one of these on every other
    step. The very same object (fields, equality, hash)."""
    event = _new(cls)
    set_src, set_dst, set_msg, set_key, set_ref = _SET_FIELDS
    set_src(event, src)
    set_dst(event, dst)
    set_msg(event, msg)
    set_key(event, key)
    set_ref(event, ref)
    return event


@dataclass(frozen=True, slots=True)
class Deliver(_MessageEvent):
    """The network hands one in-flight message to its destination."""

    kind: ClassVar[str] = "deliver"


@dataclass(frozen=True, slots=True)
class Drop(_MessageEvent):
    """The network loses one in-flight message."""

    kind: ClassVar[str] = "drop"


@dataclass(frozen=True, slots=True)
class Duplicate(_MessageEvent):
    """The network copies one in-flight message; both copies stay in flight."""

    kind: ClassVar[str] = "duplicate"


@dataclass(frozen=True, slots=True)
class Tick:
    """The clock moves `ms` forward; `node` learns of all time it has missed."""

    kind: ClassVar[str] = "tick"
    node: int
    ms: int


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A client sends command `command` (set `key` to `value`) to `node`,
    following redirects."""

    kind: ClassVar[str] = "client"
    node: int
    command: int
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class ClientInvoke:
    """Client `client` invokes one operation on `key` (a read, a write of
    `value`, or a compare-and-set from `expected` to `value`) and sends it to
    the node it believes leads; what follows (redirects, timeouts, retries,
    the answer) is the client model's (virtraft.sim.clients)."""

    kind: ClassVar[str] = "invoke"
    client: int
    op: str  # "read", "write" or "cas"
    key: str
    value: int | None = None
    expected: int | None = None


@dataclass(frozen=True, slots=True)
class Crash:
    """A server crashes: volatile state gone, durable state kept. With `keep`
    it is a power cut: the writes it had not synced are lost, all but the
    first `keep` share of them (None: a process crash, nothing written is lost)."""

    kind: ClassVar[str] = "crash"
    node: int
    keep: float | None = None


@dataclass(frozen=True, slots=True)
class Restart:
    """A crashed server comes back from its durable state."""

    kind: ClassVar[str] = "restart"
    node: int


@dataclass(frozen=True, slots=True)
class Partition:
    """Links go down (messages on them lost) or are held (kept, not delivered).
    `shape` says what the partition looks like, for people. `groups` is the
    shape itself, not its links (a split of 90 servers is two groups, not
    4,050 links): two servers named in `groups` that share no group cannot
    reach each other either way; a server named in none is not cut by it."""

    kind: ClassVar[str] = "partition"
    shape: str
    down: tuple[tuple[int, int], ...]
    held: tuple[tuple[int, int], ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()

    def cut_links(self) -> tuple[tuple[int, int], ...]:
        """Every link this partition takes down: `down`, then those between
        servers of `groups` that share no group, in (src, dst) order."""
        if not self.groups:
            return self.down
        member_of: dict[int, set[int]] = {}
        for number, group in enumerate(self.groups):
            for node in group:
                member_of.setdefault(node, set()).add(number)
        named = sorted(member_of)
        between = [
            (a, b) for a in named for b in named if a != b and not member_of[a] & member_of[b]
        ]
        down = set(self.down)
        return self.down + tuple(link for link in between if link not in down)


@dataclass(frozen=True, slots=True)
class Heal:
    """Every link comes back up; held messages are released. With `flush`,
    the network heals for good: every message still in flight is lost and
    delays shrink to `liveness_delay_ms_max` (a clean start for liveness)."""

    kind: ClassVar[str] = "heal"
    flush: bool = False


@dataclass(frozen=True, slots=True)
class ChangeMembership:
    """The leader `via` is asked to make a membership change about `node`."""

    kind: ClassVar[str] = "member"
    via: int
    change: MembershipChange
    node: int


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """A server compacts its log through what it has applied."""

    kind: ClassVar[str] = "snapshot"
    node: int


@dataclass(frozen=True, slots=True)
class CompleteIO:
    """The `k`-th I/O request `node` may complete now (a disk write, a read)
    completes, and the node hears of it."""

    kind: ClassVar[str] = "io"
    node: int
    k: int


Event = (
    Deliver
    | Drop
    | Duplicate
    | Tick
    | ClientRequest
    | ClientInvoke
    | Crash
    | Restart
    | Partition
    | Heal
    | ChangeMembership
    | TakeSnapshot
    | CompleteIO
)

EVENT_TYPES: dict[str, type] = {
    cls.kind: cls
    for cls in (
        Deliver,
        Drop,
        Duplicate,
        Tick,
        ClientRequest,
        ClientInvoke,
        Crash,
        Restart,
        Partition,
        Heal,
        ChangeMembership,
        TakeSnapshot,
        CompleteIO,
    )
}
CLIENT_OPS = ("read", "write", "cas")

MESSAGE_EVENTS = (Deliver, Drop, Duplicate)


def _field_names(cls: type) -> tuple[str, ...]:
    """The stored fields of an event class (not the in-memory `ref`)."""
    return tuple(f.name for f in fields(cls) if f.name != "ref")


_FIELDS = {cls: _field_names(cls) for cls in EVENT_TYPES.values()}


def event_to_json(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"e": event.kind}
    for name in _FIELDS[type(event)]:
        value = getattr(event, name)
        if value is None and name == "keep":
            continue  # a process crash reads as it always did
        if isinstance(value, tuple):
            if name == "groups" and not value:
                continue  # links only, as every partition was written before groups
            value = [list(link) for link in value]
        elif isinstance(value, MembershipChange):
            value = value.value
        out[name] = value
    return out


def json_type(value: Any) -> str:
    """What a JSON value is, in JSON's words, for error messages."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    for kind, name in (
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "a list"),
        (dict, "an object"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def event_from_json(data: Any) -> Event:
    """Parse one trace event; raise EventError saying what is wrong."""
    if not isinstance(data, dict) or "e" not in data:
        raise EventError(f"not an event object: {data!r:.80}")
    if not isinstance(data["e"], str):
        raise EventError(f'the event\'s kind "e" must be a string, got {json_type(data["e"])}')
    cls = EVENT_TYPES.get(data["e"])
    if cls is None:
        raise EventError(f"unknown event {data['e']!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    kwargs: dict[str, Any] = {}
    for name in _FIELDS[cls]:
        if name not in data:
            if name in ("held", "flush", "keep", "groups") or (
                cls.kind == "invoke" and name in ("value", "expected")
            ):
                continue
            raise EventError(f"{cls.kind} event is missing field {name!r}")
        kwargs[name] = _field_from_json(cls.kind, name, data[name])
    return cls(**kwargs)


def _field_from_json(kind: str, name: str, value: Any) -> Any:
    if name == "groups":
        if not isinstance(value, list) or not all(
            isinstance(group, list) and group and all(type(x) is int for x in group)
            for group in value
        ):
            raise EventError(f"{kind}.groups must be a list of non-empty lists of node ids")
        return tuple(tuple(group) for group in value)
    if name in ("down", "held"):
        if not isinstance(value, list) or not all(
            isinstance(link, list) and len(link) == 2 and all(type(x) is int for x in link)
            for link in value
        ):
            raise EventError(f"{kind}.{name} must be a list of [src, dst] pairs")
        return tuple((a, b) for a, b in value)
    if name == "change":
        try:
            return MembershipChange(value)
        except ValueError:
            raise EventError(f"{kind}.change {value!r} is not a membership change") from None
    if name == "op" and value not in CLIENT_OPS:
        raise EventError(f"{kind}.op must be one of {', '.join(CLIENT_OPS)}, got {value!r}")
    if name in ("value", "expected") and kind == "invoke" and value is None:
        return None
    if name in ("msg", "shape", "key", "op"):
        if name == "key" and kind not in ("client", "invoke"):
            if type(value) is not int:
                raise EventError(f"{kind}.key must be an integer digest")
            return value
        if not isinstance(value, str):
            raise EventError(f"{kind}.{name} must be a string")
        return value
    if name == "keep":
        if type(value) not in (int, float) or not 0.0 <= value <= 1.0:
            raise EventError(f"{kind}.keep must be a share in [0, 1], got {value!r}")
        return float(value)
    if name == "flush":
        if not isinstance(value, bool):
            raise EventError(f"{kind}.{name} must be true or false")
        return value
    if type(value) is not int or value < 0:
        raise EventError(f"{kind}.{name} must be a whole number >= 0, got {value!r}")
    return value


def acting_nodes(event: Event | None) -> tuple[int, ...]:
    """The node an event acts on (a delivery's receiver, a tick's or a
    crash's node, a membership change's leader): who a failure is blamed on."""
    return tuple(getattr(event, name) for name in ("dst", "node", "via") if hasattr(event, name))


def strip_refs(events: Sequence[Event]) -> list[Event]:
    """Events as a trace file holds them: no links to a past run's envelopes."""
    return [
        dataclasses.replace(e, ref=None)
        if isinstance(e, MESSAGE_EVENTS) and e.ref is not None
        else e
        for e in events
    ]
