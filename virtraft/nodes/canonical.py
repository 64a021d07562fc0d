"""canonical/raft, the C library behind dqlite, behind the door.

`factory` (`--node-factory virtraft.nodes.canonical:factory`) runs one
`struct raft` per simulated server, from the installed library (Debian's
`libraft-dev`, see `canonical_build`). The library does no I/O of its own:
it asks a `struct raft_io` for the disk, the network, the clock and random
numbers, and a `struct raft_fsm` for the state machine. Ours are written
for the simulator:

- `time` is the node's virtual clock (the sum of its ticks); `random` is
  the node's own seeded `random.Random`; the library's tick callback fires
  on every simulated tick. Same seed, same trace.
- `send` copies the `raft_message` into a frozen dataclass and puts it on
  the simulated network at once; the send's completion callback fires when
  the library call that sent it returns.
- `set_term` and `set_vote` are synchronous and durable at once, as the
  library demands. `append`, `truncate`, `snapshot_put` and `snapshot_get`
  are queued, in order, and each completes as its own simulator event
  (`pending_io` / `complete_io`): a write is durable only from its
  completion, so a crash in between loses it, and the scheduler reorders
  completions against messages. `restart()` rebuilds a fresh `struct raft`
  whose `load` reads the durable state alone.
- The fsm is the key-value store: a command entry holds its command id (8
  bytes, so the checker reads (term, id) straight from the library's log),
  the value and the key; its snapshot is the store as JSON.
- Founders call `raft_bootstrap` with every founder a voter (entry 1, term
  1); a joiner starts empty and learns the configuration from the leader.
  Membership is `raft_add` (a spare), `raft_assign` (voter: the library
  runs its catch-up rounds first; standby for a demotion) and
  `raft_remove`.
- Snapshots are the library's own: it snapshots once `threshold` entries
  are applied beyond the last one and keeps `trailing` entries behind it.
  `take_snapshot()` lowers the threshold to 1, so the next applied entry
  takes a snapshot, and the threshold goes back when it is stored. A
  leader resends a snapshot after 30 election timeouts (the library's
  ratio), not after its fixed 30 s.
- Diagnosis doors: `clamped_acks` and `corrected` are this adapter with
  the shipped findings corrected where messages cross the door, so that a
  campaign through them tells a known failure from a new one;
  `prevote_own_term` does the same for the pre-vote answer's term.
- A fatal signal inside the library is `NativeFault` through the door (a
  finding); the library converting itself to RAFT_UNAVAILABLE after an
  error (it found a leader contradicting its committed entries, or a
  write failed) is `LibraryStopped`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import (
    Capabilities,
    Membership,
    MembershipChange,
    MessageRole,
    NodeOptions,
    Redirect,
    Refused,
    Role,
    Scalars,
    Send,
    SubmitResult,
    Submitted,
)
from virtraft.nodes import canonical_build, native
from virtraft.nodes.native import RUNNING, NativeFault, NativeNode

__all__ = [
    "CanonicalNode",
    "LibraryStopped",
    "NativeFault",
    "clamped_acks",
    "corrected",
    "factory",
    "prevote_own_term",
    "sync_io",
]

# raft.h's numbers.
COMMAND, BARRIER, CHANGE = 1, 2, 3
STANDBY, VOTER, SPARE = 0, 1, 2
UNAVAILABLE, FOLLOWER, CANDIDATE, LEADER = 0, 1, 2, 3
CANCELED = 13
ENTRY_KINDS = {COMMAND: "command", BARRIER: "barrier", CHANGE: "configuration"}
_ROLE = {FOLLOWER: Role.FOLLOWER, CANDIDATE: Role.CANDIDATE, LEADER: Role.LEADER}

# The library's snapshot settings: its default threshold (1024 entries), and
# few trailing entries, so that lagging servers do need a snapshot.
SNAPSHOT_THRESHOLD = 1024
SNAPSHOT_TRAILING = 8
# A leader waits this many election timeouts for a sent snapshot before it
# tries again: the library's ratio (30 s to its default election timeout
# of 1 s), so that it holds when swarm divides the timeouts by ten; left at
# 30 s, one lost InstallSnapshot outlasted the liveness phase.
INSTALL_SNAPSHOT_TIMEOUTS = 30
MAX_SERVERS = 64
_COMMAND = struct.Struct("<Qq")  # command id, value; the key follows


class LibraryStopped(Exception):
    """The library converted itself to RAFT_UNAVAILABLE: an error inside it
    that it will not recover from (e.g. an AppendEntries contradicting a
    committed entry: "should never happen")."""


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Entry:
    """A log entry as it travels and as the disk keeps it."""

    term: int
    type: int
    data: bytes


@dataclass(frozen=True, slots=True)
class RequestVote:
    term: int
    candidate_id: int
    last_log_index: int
    last_log_term: int
    disrupt_leader: bool
    pre_vote: bool


@dataclass(frozen=True, slots=True)
class RequestVoteResult:
    term: int
    vote_granted: bool
    pre_vote: int  # raft_tribool: 0 unknown, 1 true, 2 false


@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: int
    prev_log_index: int
    prev_log_term: int
    leader_commit: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class AppendEntriesResult:
    term: int
    rejected: int
    last_log_index: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    term: int
    last_index: int
    last_term: int
    conf: tuple[tuple[int, int], ...]  # (server id, role)
    conf_index: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TimeoutNow:
    term: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stored snapshot: the state machine and the configuration at `index`."""

    index: int
    term: int
    conf: tuple[tuple[int, int], ...]
    conf_index: int
    data: bytes


def _entries_text(entries: tuple[Entry, ...]) -> str:
    # A configuration's or a barrier's bytes are not digested: the library
    # pads them with memory it never writes.
    last = entries[-1] if entries else None
    if last is None:
        return "0, -1, -1, -1"
    return f"{len(entries)}, {last.term}, {last.type}, {command_id(last)}"


# ------------------------------------------------ messages across the C line


def _read_entries(ffi: Any, a: Any) -> dict[str, Any]:
    entries = tuple(
        Entry(e.term, e.type, bytes(ffi.buffer(e.buf.base, e.buf.len)))
        for e in (a.entries[i] for i in range(a.n_entries))
    )
    return {"entries": entries}


def _write_entries(ffi: Any, lib: Any, a: Any, message: AppendEntries) -> None:
    entries = message.entries
    a.n_entries = len(entries)
    a.entries = (
        lib.vr_make_entries(
            len(entries),
            [e.term for e in entries],
            [e.type for e in entries],
            [len(e.data) for e in entries],
            b"".join(e.data for e in entries),
        )
        if entries
        else ffi.NULL
    )


def _read_snapshot(ffi: Any, s: Any) -> dict[str, Any]:
    conf = tuple((s.conf.servers[i].id, s.conf.servers[i].role) for i in range(s.conf.n))
    return {"conf": conf, "data": bytes(ffi.buffer(s.data.base, s.data.len))}


def _write_snapshot(ffi: Any, lib: Any, s: Any, message: InstallSnapshot) -> None:
    ids = [server for server, _role in message.conf]
    roles = [role for _server, role in message.conf]
    lib.vr_make_configuration(ffi.addressof(s, "conf"), len(ids), ids, roles)
    s.data.base = lib.vr_copy(message.data, len(message.data))
    s.data.len = len(message.data)


@dataclass(frozen=True, slots=True)
class _Wire:
    """How one message type crosses the C line, both ways: its `RAFT_IO_*`
    type, its member of `struct raft_message`, the fields copied as they are
    ((name, read as a bool)), and a reader and a writer for the others."""

    cls: type
    kind: str
    member: str
    scalars: tuple[tuple[str, bool], ...]
    read: Callable[[Any, Any], dict[str, Any]] | None
    write: Callable[[Any, Any, Any, Any], None] | None

    def from_c(self, ffi: Any, body: Any) -> object:
        values = {
            name: bool(getattr(body, name)) if is_bool else getattr(body, name)
            for name, is_bool in self.scalars
        }
        if self.read is not None:
            values.update(self.read(ffi, body))
        return self.cls(**values)

    def to_c(self, ffi: Any, lib: Any, body: Any, message: object) -> None:
        for name, _is_bool in self.scalars:
            setattr(body, name, getattr(message, name))
        if self.write is not None:
            self.write(ffi, lib, body, message)


def _wire(
    cls: type,
    kind: str,
    member: str,
    special: tuple[str, ...] = (),
    read: Callable[[Any, Any], dict[str, Any]] | None = None,
    write: Callable[[Any, Any, Any, Any], None] | None = None,
) -> _Wire:
    """Every field but the `special` ones is a scalar copied as it is."""
    scalars = tuple(
        (f.name, f.type == "bool") for f in dataclasses.fields(cls) if f.name not in special
    )
    return _Wire(cls, kind, member, scalars, read, write)


_WIRES = (
    _wire(
        AppendEntries,
        "RAFT_IO_APPEND_ENTRIES",
        "append_entries",
        ("entries",),
        _read_entries,
        _write_entries,
    ),
    _wire(AppendEntriesResult, "RAFT_IO_APPEND_ENTRIES_RESULT", "append_entries_result"),
    _wire(RequestVote, "RAFT_IO_REQUEST_VOTE", "request_vote"),
    _wire(RequestVoteResult, "RAFT_IO_REQUEST_VOTE_RESULT", "request_vote_result"),
    _wire(
        InstallSnapshot,
        "RAFT_IO_INSTALL_SNAPSHOT",
        "install_snapshot",
        ("conf", "data"),
        _read_snapshot,
        _write_snapshot,
    ),
    _wire(TimeoutNow, "RAFT_IO_TIMEOUT_NOW", "timeout_now"),
)
_WIRE_OF: dict[type, _Wire] = {w.cls: w for w in _WIRES}


_KEY_TEXT: dict[type, Callable[[Any], str]] = {
    RequestVote: lambda m: (
        f"(1, {m.term}, {m.candidate_id}, {m.last_log_index}, {m.last_log_term}, "
        f"{int(m.disrupt_leader)}, {int(m.pre_vote)})"
    ),
    RequestVoteResult: lambda m: f"(2, {m.term}, {int(m.vote_granted)}, {m.pre_vote})",
    AppendEntries: lambda m: (
        f"(3, {m.term}, {m.prev_log_index}, {m.prev_log_term}, {m.leader_commit}, "
        f"{_entries_text(m.entries)})"
    ),
    AppendEntriesResult: lambda m: f"(4, {m.term}, {m.rejected}, {m.last_log_index})",
    InstallSnapshot: lambda m: (
        f"(5, {m.term}, {m.last_index}, {m.last_term}, {m.conf}, {m.conf_index}, "
        f"{zlib.crc32(m.data)})"
    ),
    TimeoutNow: lambda m: f"(6, {m.term}, {m.last_log_index}, {m.last_log_term})",
}
_ROLES = {
    RequestVote: MessageRole.VOTE,
    RequestVoteResult: MessageRole.VOTE_RESPONSE,
    AppendEntries: MessageRole.APPEND,
    AppendEntriesResult: MessageRole.APPEND_RESPONSE,
    InstallSnapshot: MessageRole.SNAPSHOT,
}


class CanonicalMessages(native.TableMessages):
    """canonical/raft's messages, as the harness sees them."""

    key_text = _KEY_TEXT
    roles = _ROLES

    def is_prevote(self, message: object) -> bool:
        if isinstance(message, RequestVote):
            return message.pre_vote
        return isinstance(message, RequestVoteResult) and message.pre_vote == 1

    def entries_carried(self, message: object) -> int:
        return len(message.entries) if isinstance(message, AppendEntries) else 0

    def completes_snapshot(self, message: object) -> bool:
        return isinstance(message, InstallSnapshot)


MESSAGES = CanonicalMessages()


def command_id(entry: Entry) -> int:
    """The id the checker reads: a command's first 8 bytes, 0 for others."""
    if entry.type != COMMAND or len(entry.data) < 8:
        return 0
    return int.from_bytes(entry.data[:8], "little")


# -------------------------------------------------------------------- disk


class Disk:
    """What survives a crash: written when a request completes (term and
    vote at once, as the library demands)."""

    __slots__ = ("term", "vote", "entries", "snapshot", "writes")

    def __init__(self) -> None:
        self.term = 0
        self.vote = 0
        self.entries: dict[int, Entry] = {}
        self.snapshot: Snapshot | None = None
        self.writes = 0

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.index if self.snapshot is not None else 0

    @property
    def last_index(self) -> int:
        return max(self.entries, default=self.snapshot_index)


@dataclass(frozen=True, slots=True)
class Append:
    req: Any
    first: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Truncate:
    index: int


@dataclass(frozen=True, slots=True)
class PutSnapshot:
    req: Any
    trailing: int
    snapshot: Snapshot
    ours: bool  # taken here (not installed from a leader)


@dataclass(frozen=True, slots=True)
class GetSnapshot:
    req: Any


DiskRequest = Append | Truncate | PutSnapshot | GetSnapshot


# ------------------------------------------------------------ the library

_ADDRESSES: dict[int, Any] = {}  # server id -> its address as a C string, kept alive


@functools.cache
def _library() -> Any:
    """The compiled module, loaded once per process, its callbacks wired."""
    module = canonical_build.load()
    _register_callbacks(module.ffi, module.lib)
    return module


def _register_callbacks(ffi: Any, lib: Any) -> None:
    def extern(name: str, error: int = 18) -> Callable[[Callable], Callable]:
        return ffi.def_extern(name=name, onerror=RUNNING.callback_failed, error=error)

    def node_of(handle: Any) -> CanonicalNode:
        return ffi.from_handle(handle)

    @extern("vr_py_load")
    def load(handle, term, vote, snapshot, start, entries, n) -> int:  # noqa: ANN001
        return node_of(handle)._load(term, vote, snapshot, start, entries, n)

    @extern("vr_py_bootstrap")
    def bootstrap(handle: Any, conf: Any) -> int:
        return node_of(handle)._bootstrap(conf)

    @extern("vr_py_set_term")
    def set_term(handle: Any, term: int) -> int:
        disk = node_of(handle).disk
        disk.term = term
        disk.vote = 0
        disk.writes += 1
        return 0

    @extern("vr_py_set_vote")
    def set_vote(handle: Any, vote: int) -> int:
        disk = node_of(handle).disk
        disk.vote = vote
        disk.writes += 1
        return 0

    @extern("vr_py_send")
    def send(handle: Any, req: Any, message: Any) -> int:
        node_of(handle)._send_message(req, message)
        return 0

    @extern("vr_py_append")
    def append(handle: Any, req: Any, entries: Any, n: int) -> int:
        node_of(handle)._request_append(req, entries, n)
        return 0

    @extern("vr_py_truncate")
    def truncate(handle: Any, index: int) -> int:
        node = node_of(handle)
        node._queue.append(Truncate(index))
        node._tail = min(node._tail, index - 1)
        return 0

    @extern("vr_py_snapshot_put")
    def snapshot_put(handle: Any, trailing: int, req: Any, snapshot: Any) -> int:
        node_of(handle)._request_put(trailing, req, snapshot)
        return 0

    @extern("vr_py_snapshot_get")
    def snapshot_get(handle: Any, req: Any) -> int:
        node_of(handle)._queue.append(GetSnapshot(req))
        return 0

    @extern("vr_py_random", error=0)
    def rand(handle: Any, low: int, high: int) -> int:
        # uv's backend: min + rand() % (max - min), in [min, max).
        rng = node_of(handle)._rng
        return low + rng.randrange(high - low) if high > low else low

    @extern("vr_py_fsm_apply")
    def fsm_apply(handle: Any, buf: Any) -> int:
        node_of(handle)._fsm_apply(bytes(ffi.buffer(buf.base, buf.len)))
        return 0

    @extern("vr_py_fsm_snapshot")
    def fsm_snapshot(handle: Any, bufs: Any, n: Any) -> int:
        node = node_of(handle)
        data = node._fsm_encode()
        out = ffi.cast("struct raft_buffer *", lib.raft_malloc(ffi.sizeof("struct raft_buffer")))
        out.base = lib.vr_copy(data, len(data))
        out.len = len(data)
        bufs[0] = out
        n[0] = 1
        return 0

    @extern("vr_py_fsm_restore")
    def fsm_restore(handle: Any, buf: Any) -> int:
        node = node_of(handle)
        node._fsm_decode(bytes(ffi.buffer(buf.base, buf.len)))
        lib.raft_free(buf.base)  # the restore owns the buffer
        return 0


def _address(ffi: Any, server: int) -> Any:
    address = _ADDRESSES.get(server)
    if address is None:
        address = _ADDRESSES[server] = ffi.new("char[]", str(server).encode())
    return address


# -------------------------------------------------------------------- node


class CanonicalNode(NativeNode):
    """One simulated server running canonical/raft; its state machine is a
    small key-value store."""

    capabilities = Capabilities(
        membership=True,
        snapshots=True,
        options=frozenset({"election_timeout_ms", "request_timeout_ms", "prevote"}),
        async_io=True,
    )
    # Complete disk requests as events (True), or when the call that made
    # them returns (False).
    asynchronous = True
    # Answer a successful AppendEntries with at most the last index it
    # covered (True), or with the library's own last stored index (False,
    # the library as it is; see docs/findings.md, the heartbeat's stale
    # suffix): a diagnosis, not a fix of the library.
    clamp_acks = False
    # Cut from an AppendEntries the entries this server's snapshot covers
    # (True), or hand it over whole (False, the library as it is; see
    # docs/findings.md, an AppendEntries that starts inside the snapshot).
    trim_appends = False
    # Answer a refused pre-vote with this server's term when it is higher
    # than the request's (True, Raft's rule for every reply), or always with
    # the request's (False, the library as it is; see docs/findings.md, a
    # pre-vote answer carries the request's term).
    own_prevote_term = False

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> None:
        if node_id < 1:
            # raft_id 0 is the library's "nobody" (no vote, no leader): a
            # server numbered 0 would vote for itself and record no vote.
            raise ValueError(f"canonical/raft server ids start at 1, got {node_id}")
        super().__init__(_library(), node_id, send, rng, options)
        # The library's message types by number, for what it sends.
        self._wire_by_kind = {getattr(self._lib, w.kind): w for w in _WIRES}
        self._scalars = self._ffi.new("unsigned long long[8]")
        self._ids = self._ffi.new("raft_id[]", MAX_SERVERS)
        self._roles = self._ffi.new("int[]", MAX_SERVERS)
        self._out_term = self._ffi.new("raft_term *")
        self._out_id = self._ffi.new("unsigned long long *")
        self._out_type = self._ffi.new("unsigned short *")
        self._c: Any = self._ffi.NULL
        self._now = 0
        self.disk = Disk()
        self.alive = False
        self.recent_applied = []
        self.kv: dict[str, Any] = {}
        self._queue: list[DiskRequest] = []
        self._sent: list[Any] = []
        self._tail = 0  # last index of the log once every queued request is done
        self._covers: int | None = None  # last index the answer being made covers
        self._snapshot_asked = False
        self._submitted: dict[int, tuple[int, int]] = {}  # index -> (term, id) applied here
        self._last_members: Membership = tuple(sorted(members))
        founders = tuple(sorted(n for n, voting in members if voting))
        self._boot(founders if (node_id, True) in members else ())

    # ------------------------------------------------------------- plumbing

    def _call(self, fn: Callable[..., int], *args: Any) -> int:
        """One call into the library, then the send completions it left; a
        fault or a callback's error is raised here."""
        self._enter()
        self._c.now = self._now
        rc = self._done(fn(*args))
        self._settle()
        return rc

    def _settle(self) -> None:
        """Fire the send completions a call left (and, with a synchronous
        disk, complete its disk requests too)."""
        fire = self._lib.vr_fire_send
        while self._sent or (not self.asynchronous and self._queue and self.alive):
            if self._sent:
                self._done(fire(self._sent.pop(0), 0))
            else:
                self._complete(0)

    def _drop_server(self) -> None:
        self._c = self._ffi.NULL
        self.alive = False

    def _boot(self, founders: tuple[int, ...]) -> None:
        """Start a server: founders bootstrap the configuration on their first
        boot; everyone starts from what `load` reads off the disk."""
        lib = self._lib
        o = self._options
        c = lib.vr_node_new(
            self._handle,
            self.node_id,
            o.election_timeout_ms,
            o.request_timeout_ms,
            o.prevote,
            SNAPSHOT_THRESHOLD,
            SNAPSHOT_TRAILING,
            INSTALL_SNAPSHOT_TIMEOUTS * o.election_timeout_ms,
        )
        if c == self._ffi.NULL:
            raise NativeFault("raft_init() failed")
        self._c = c
        self.alive = True
        self._snapshot_asked = False
        if founders and self.disk.term == 0 and not self.disk.entries:
            ids = self._ffi.new("raft_id[]", founders)
            rc = self._call(lib.vr_bootstrap, c, len(founders), ids)
            if rc != 0:
                raise LibraryStopped(f"raft_bootstrap returned {rc}")
        rc = self._call(lib.vr_start, c)
        if rc != 0:
            raise LibraryStopped(f"raft_start returned {rc}: {self._strerror(rc)}")

    def _strerror(self, rc: int) -> str:
        return self._ffi.string(self._lib.raft_strerror(rc)).decode(errors="replace")

    def _stopped(self) -> None:
        """The library made itself unavailable after an error: a finding."""
        if self.alive and self._c != self._ffi.NULL:
            out = self._scalars
            self._lib.vr_scalars(self._c, out)
            if out[0] == UNAVAILABLE:
                self._stop()
                raise LibraryStopped("the library converted itself to RAFT_UNAVAILABLE")

    # ------------------------------------------------------------ callbacks

    def _load(self, term: Any, vote: Any, snapshot: Any, start: Any, entries: Any, n: Any) -> int:
        ffi = self._ffi
        lib = self._lib
        disk = self.disk
        term[0] = disk.term
        vote[0] = disk.vote
        s = disk.snapshot
        if s is None:
            snapshot[0] = ffi.NULL
        else:
            ids = [server for server, _role in s.conf]
            roles = [role for _server, role in s.conf]
            snapshot[0] = lib.vr_make_snapshot(
                s.index, s.term, s.conf_index, len(ids), ids, roles, s.data, len(s.data)
            )
        indices = sorted(disk.entries)
        first = indices[0] if indices else disk.snapshot_index + 1
        if indices and indices != list(range(first, first + len(indices))):
            raise AssertionError(f"the disk's log has holes: {indices}")
        start[0] = first
        self._tail = indices[-1] if indices else disk.snapshot_index
        log = [disk.entries[i] for i in indices]
        n[0] = len(log)
        if log:
            entries[0] = lib.vr_make_entries(
                len(log),
                [e.term for e in log],
                [e.type for e in log],
                [len(e.data) for e in log],
                b"".join(e.data for e in log),
            )
        else:
            entries[0] = ffi.NULL
        return 0

    def _bootstrap(self, conf: Any) -> int:
        disk = self.disk
        if disk.term != 0 or disk.entries or disk.snapshot is not None:
            return 10  # RAFT_CANTBOOTSTRAP
        buf = self._ffi.new("struct raft_buffer *")
        rc = self._lib.vr_encode_configuration(conf, buf)
        if rc != 0:
            return rc
        data = bytes(self._ffi.buffer(buf.base, buf.len))
        self._lib.raft_free(buf.base)
        disk.term = 1
        disk.vote = 0
        disk.entries = {1: Entry(1, CHANGE, data)}
        disk.writes += 1
        return 0

    def _send_message(self, req: Any, m: Any) -> None:
        wire = self._wire_by_kind.get(m.type)
        if wire is None:
            raise AssertionError(f"the library sent a message of unknown type {m.type}")
        message = wire.from_c(self._ffi, getattr(m, wire.member))
        if self.clamp_acks and isinstance(message, AppendEntriesResult) and not message.rejected:
            message = self._clamped(message)
        if self.own_prevote_term and isinstance(message, RequestVoteResult):
            message = self._own_term(message)
        self._sent.append(req)
        self._send(m.server_id, message)

    def _clamped(self, result: AppendEntriesResult) -> AppendEntriesResult:
        """A success proves the follower matches the leader up to the last
        index of the request it answers (prev_log_index + its entries), not
        up to the end of its own log, which may hold an old leader's suffix."""
        if self._covers is None or result.last_log_index <= self._covers:
            return result
        return dataclasses.replace(result, last_log_index=self._covers)

    def _own_term(self, result: RequestVoteResult) -> RequestVoteResult:
        """A refused pre-vote answered with this server's higher term, so
        that the candidate learns it (the library answers with the request's)."""
        if result.pre_vote != 1 or result.vote_granted or result.term >= self.term:
            return result
        return dataclasses.replace(result, term=self.term)

    def _trimmed(self, message: AppendEntries) -> AppendEntries:
        """The entries this server's snapshot already covers cut off: they
        are committed here, so they match the leader's (Raft's Log Matching)."""
        snapshot_index = self.snapshot_index
        if not message.entries or message.prev_log_index >= snapshot_index:
            return message
        cut = min(snapshot_index - message.prev_log_index, len(message.entries))
        return dataclasses.replace(
            message,
            prev_log_index=message.prev_log_index + cut,
            prev_log_term=message.entries[cut - 1].term,
            entries=message.entries[cut:],
        )

    def _request_append(self, req: Any, entries: Any, n: int) -> None:
        ffi = self._ffi
        copied = tuple(
            Entry(e.term, e.type, bytes(ffi.buffer(e.buf.base, e.buf.len)))
            for e in (entries[i] for i in range(n))
        )
        first = self._tail + 1
        # The library's log must hold what it asks us to write, where we write it.
        held = copied and self._lib.vr_entry(
            self._c, first, self._out_term, self._out_id, self._out_type
        )
        if held and self._out_term[0] != copied[0].term:
            raise AssertionError(
                f"append of term {copied[0].term} lands at index {first}, "
                f"where the library holds term {self._out_term[0]}"
            )
        self._tail += n
        self._queue.append(Append(req, first, copied))

    def _request_put(self, trailing: int, req: Any, s: Any) -> None:
        ffi = self._ffi
        conf = tuple(
            (s.configuration.servers[i].id, s.configuration.servers[i].role)
            for i in range(s.configuration.n)
        )
        data = b"".join(bytes(ffi.buffer(s.bufs[i].base, s.bufs[i].len)) for i in range(s.n_bufs))
        snapshot = Snapshot(s.index, s.term, conf, s.configuration_index, data)
        ours = self._snapshot_asked and trailing != 0
        if ours:  # the snapshot take_snapshot() asked for: back to the library's threshold
            self._snapshot_asked = False
            self._lib.vr_set_snapshot_threshold(self._c, SNAPSHOT_THRESHOLD)
        if trailing == 0:
            self._tail = s.index
        self._queue.append(PutSnapshot(req, trailing, snapshot, ours))

    def _fsm_apply(self, data: bytes) -> None:
        command, value = _COMMAND.unpack_from(data)
        key = data[_COMMAND.size :].decode()
        self.kv[key] = value
        lib = self._lib
        index = lib.vr_last_applied(self._c) + 1
        found = lib.vr_entry(self._c, index, self._out_term, self._out_id, self._out_type)
        if not found or self._out_id[0] != command:
            raise AssertionError(f"applying command {command}: index {index} holds another")
        term = self._out_term[0]
        self.recent_applied.append((index, term, command))
        self._submitted[index] = (term, command)

    def _fsm_encode(self) -> bytes:
        return json.dumps(sorted(self.kv.items()), separators=(",", ":")).encode()

    def _fsm_decode(self, data: bytes) -> None:
        self.kv = dict(json.loads(data.decode())) if data else {}

    # -------------------------------------------------------- disk requests

    def pending_io(self) -> int:
        return 1 if self.alive and self._queue else 0

    def complete_io(self, k: int) -> None:
        if not self.alive or not self._queue:
            return
        RUNNING.node = self
        self._c.now = self._now
        self._complete(k)
        self._settle()
        self._stopped()

    def _complete(self, k: int) -> None:
        """The oldest disk request completes (k is always 0: the disk keeps
        its requests in order, as the library's own backend does)."""
        request = self._queue.pop(k)
        disk = self.disk
        lib = self._lib
        if isinstance(request, Append):
            for i, entry in enumerate(request.entries):
                disk.entries[request.first + i] = entry
            disk.writes += 1
            self._covers = request.first + len(request.entries) - 1
            try:
                self._done(lib.vr_fire_append(request.req, 0))
            finally:
                self._covers = None
        elif isinstance(request, Truncate):
            for index in [i for i in disk.entries if i >= request.index]:
                del disk.entries[index]
            disk.writes += 1
        elif isinstance(request, PutSnapshot):
            snapshot = request.snapshot
            disk.snapshot = snapshot
            if request.trailing == 0:
                disk.entries = {}
            elif snapshot.index > request.trailing:
                for index in [i for i in disk.entries if i <= snapshot.index - request.trailing]:
                    del disk.entries[index]
            disk.writes += 1
            self._done(lib.vr_fire_put(request.req, 0))
        else:
            s = disk.snapshot
            if s is None:
                self._done(lib.vr_fire_get(request.req, self._ffi.NULL, 19))  # RAFT_NOTFOUND
                return
            ids = [server for server, _role in s.conf]
            roles = [role for _server, role in s.conf]
            c_snapshot = lib.vr_make_snapshot(
                s.index, s.term, s.conf_index, len(ids), ids, roles, s.data, len(s.data)
            )
            self._done(lib.vr_fire_get(request.req, c_snapshot, 0))

    # ---------------------------------------------------------------- actions

    def begin_step(self) -> None:
        if self.recent_applied:
            self.recent_applied = []

    def deliver(self, src: int, message: object) -> None:
        if not self.alive:
            return
        ffi = self._ffi
        lib = self._lib
        m = ffi.new("struct raft_message *")
        m.server_id = src
        m.server_address = _address(ffi, src)
        wire = _WIRE_OF.get(type(message))
        if wire is None:
            raise TypeError(f"not a canonical/raft message: {type(message).__name__}")
        if self.trim_appends and isinstance(message, AppendEntries):
            message = self._trimmed(message)
        m.type = getattr(lib, wire.kind)
        wire.to_c(ffi, lib, getattr(m, wire.member), message)
        if isinstance(message, AppendEntries):
            self._covers = message.prev_log_index + len(message.entries)
        try:
            self._call(lib.vr_recv, self._c, m)
        finally:
            self._covers = None
        self._stopped()

    def tick(self, msec: int) -> None:
        if not self.alive:
            return
        self._now += msec
        self._call(self._lib.vr_tick, self._c)
        self._stopped()

    def submit(self, command_id: int, data: object) -> SubmitResult:
        if not self.alive:
            return Refused("down")
        if self._state() != LEADER:
            return self._redirect()
        key, value = data  # type: ignore[misc]
        payload = _COMMAND.pack(command_id, value) + str(key).encode()
        index = self._ffi.new("raft_index *")
        rc = self._call(self._lib.vr_apply, self._c, payload, len(payload), index)
        self._stopped()
        if rc == 7:  # RAFT_NOTLEADER (a leadership transfer is running)
            return self._redirect()
        if rc != 0:
            return Refused(f"raft_apply: {self._strerror(rc)}")
        return Submitted(index[0], self.term)

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        if not self.alive:
            return Refused("down")
        if self._state() != LEADER:
            return self._redirect()
        lib = self._lib
        c = self._c
        if change is MembershipChange.ADD_NONVOTING:
            rc = self._call(lib.vr_add, c, node)
        elif change is MembershipChange.PROMOTE:
            rc = self._call(lib.vr_assign, c, node, VOTER)
        elif change is MembershipChange.DEMOTE:
            rc = self._call(lib.vr_assign, c, node, STANDBY)
        else:
            rc = self._call(lib.vr_remove, c, node)
        self._stopped()
        if rc == 7:
            return self._redirect()
        if rc != 0:
            return Refused(f"{change.value}: {self._strerror(rc)}")
        return Submitted(self.last_index, self.term)

    def _redirect(self) -> Redirect:
        leader = self._lib.vr_leader(self._c)
        return Redirect(leader or None)

    def _state(self) -> int:
        out = self._scalars
        self._lib.vr_scalars(self._c, out)
        return out[0]

    def is_committed(self, submitted: Submitted) -> bool | None:
        if not self.alive:
            return None
        index = submitted.index
        if index > self.commit_index:
            return None
        held = self._submitted.get(index)
        if held is None:
            held = self.entry(index)
        if held is None:
            return None
        return held[0] == submitted.term

    def take_snapshot(self) -> bool:
        if not self.alive or self._snapshot_asked:
            return False
        self._snapshot_asked = True
        self._lib.vr_set_snapshot_threshold(self._c, 1)
        return True

    def crash(self) -> None:
        self._stop()

    def restart(self) -> None:
        if self._fault is not None:
            return  # broken for good
        self._boot(())

    def _stop(self) -> None:
        """Power loss: the server is dropped as it stands, with no raft_close
        and no callbacks (what is still queued was never written). Its
        memory is leaked on purpose: closing runs code a lost machine never
        runs (see docs/findings.md on closing with appends in flight)."""
        if not self.alive:
            return
        self._last_members = self.members
        self.alive = False
        self._c = self._ffi.NULL
        self._sent = []
        self._queue = []
        self.recent_applied = []
        self.kv = {}
        self._submitted = {}
        self._snapshot_asked = False

    # ------------------------------------------------------------------- view

    def scalars(self) -> Scalars:
        """The same values as the properties, in one call."""
        if not self.alive:
            disk = self.disk
            return (
                False,
                Role.FOLLOWER,
                disk.term,
                disk.vote or None,
                0,
                disk.last_index,
                disk.snapshot_index,
            )
        out = self._scalars
        self._lib.vr_scalars(self._c, out)
        role = Role.PRECANDIDATE if out[7] else _ROLE.get(out[0], Role.FOLLOWER)
        return (True, role, out[1], out[2] or None, out[3], out[4], out[5])

    @property
    def role(self) -> Role:
        return self.scalars()[1]

    @property
    def term(self) -> int:
        return self.scalars()[2]

    @property
    def voted_for(self) -> int | None:
        return self.scalars()[3]

    @property
    def commit_index(self) -> int:
        return self.scalars()[4]

    @property
    def last_index(self) -> int:
        return self.scalars()[5]

    @property
    def snapshot_index(self) -> int:
        return self.scalars()[6]

    @property
    def snapshot_term(self) -> int:
        if not self.alive:
            snapshot = self.disk.snapshot
            return snapshot.term if snapshot is not None else 0
        out = self._scalars
        self._lib.vr_scalars(self._c, out)
        return out[6]

    @property
    def last_applied(self) -> int:  # type: ignore[override]
        return self._lib.vr_last_applied(self._c) if self.alive else 0

    def entry(self, index: int) -> tuple[int, int] | None:
        if not self.alive:
            if index <= self.disk.snapshot_index:
                return None
            entry = self.disk.entries.get(index)
            return (entry.term, command_id(entry)) if entry is not None else None
        if index <= self.snapshot_index:
            return None
        if not self._lib.vr_entry(self._c, index, self._out_term, self._out_id, self._out_type):
            return None
        return (self._out_term[0], self._out_id[0])

    def entry_kind(self, index: int) -> str:
        if not self.alive or not self._lib.vr_entry(
            self._c, index, self._out_term, self._out_id, self._out_type
        ):
            return ""
        return ENTRY_KINDS.get(self._out_type[0], str(self._out_type[0]))

    @property
    def members(self) -> Membership:
        if not self.alive:
            return self._last_members
        n = self._lib.vr_members(self._c, MAX_SERVERS, self._ids, self._roles)
        return tuple(sorted((self._ids[i], self._roles[i] == VOTER) for i in range(n)))

    def leader_hint(self) -> int | None:
        if not self.alive:
            return None
        return self._lib.vr_leader(self._c) or None

    def describe(self) -> dict[str, object]:
        """Extra facts for reports."""
        return {
            "kv_keys": len(self.kv),
            "disk_writes": self.disk.writes,
            "pending_io": len(self._queue),
            "fault": self._fault,
        }


factory = native.node_factory(
    CanonicalNode, "canonical", MESSAGES, "A canonical/raft server (the installed library)."
)


class SyncIONode(CanonicalNode):
    """Completes every disk request when the call that made it returns: no
    crash or message can come between a write and its completion."""

    asynchronous = False
    capabilities = Capabilities(
        membership=True,
        snapshots=True,
        options=CanonicalNode.capabilities.options,
    )


sync_io = native.node_factory(
    SyncIONode,
    "canonical_sync_io",
    MESSAGES,
    "canonical/raft with every disk request completed at once.",
)


class ClampedAckNode(CanonicalNode):
    """The library with one answer corrected: a successful AppendEntries is
    acknowledged up to the last index the request covered. The failures it
    removes are the heartbeat's stale suffix (docs/findings.md)."""

    clamp_acks = True


clamped_acks = native.node_factory(
    ClampedAckNode,
    "canonical_clamped_acks",
    MESSAGES,
    "canonical/raft with a success acknowledged only up to what its request covered.",
)


class CorrectedNode(CanonicalNode):
    """The library with both shipped findings corrected at the door (the
    stale suffix's answer and the AppendEntries that starts inside the
    snapshot): what a campaign finds through it is something else."""

    clamp_acks = True
    trim_appends = True


corrected = native.node_factory(
    CorrectedNode,
    "canonical_corrected",
    MESSAGES,
    "canonical/raft with the shipped findings corrected at the door.",
)


class OwnPrevoteTermNode(CanonicalNode):
    """The library with one answer corrected: a refused pre-vote carries the
    responder's term when it is higher. The failures it removes are the
    pre-vote answer that carries the request's term (docs/findings.md)."""

    own_prevote_term = True


prevote_own_term = native.node_factory(
    OwnPrevoteTermNode,
    "canonical_prevote_own_term",
    MESSAGES,
    "canonical/raft with a refused pre-vote answered with the responder's higher term.",
)
