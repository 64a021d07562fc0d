"""willemt/raft, the C library, behind the door.

`factory` (`--node-factory virtraft.nodes.willemt:factory`) runs one
`raft_server_t` per simulated server, compiled from the checkout that
`VIRTRAFT_WILLEMT_SRC` names (see `willemt_build`). What the adapter does,
and why:

- Messages are copied out of the C structs into frozen dataclasses when
  the library sends them, and back into C structs on delivery, so the
  network holds plain Python data and traces name messages by content.
- Durable state (term, vote, log, snapshot) is written only by the
  library's persistence and log callbacks (and the snapshot by us, since
  the library leaves storing and sending snapshots to its user); restart
  builds a fresh server from it alone, as the library's README describes.
- Membership goes through the library's entry types. Founders know the
  configuration before any election: their logs begin with one committed
  ADD_NODE entry per founder (term 1: the library refuses to load a
  snapshot of term 0), so a joiner, which boots knowing only itself,
  learns it from the log. A learner is promoted with ADD_NODE once the
  leader's `node_has_sufficient_logs` fires (`caught_up`). Requests the
  library would assert on (promote a voter, demote a non-voter) are
  refused here. A server that applies its own REMOVE_NODE shuts down, as
  the README says, and stays down (`retired`).
- Snapshots: `take_snapshot` calls `raft_begin_snapshot` and captures the
  state machine; the snapshot is written and `raft_end_snapshot` called at
  the server's next tick, as a real server would finish it in the
  background. The library has no InstallSnapshot RPC: `InstallSnapshot`
  is ours, and the receiver calls `raft_begin_load_snapshot`, re-adds the
  members the snapshot names and calls `raft_end_load_snapshot`, then
  answers with an AppendEntries response, as the README asks.
- A failed `assert()` or a fatal signal inside the library is raised as
  `NativeFault` through the door: a finding with its trace, not a dead
  process. `RAFT_ERR_SHUTDOWN` from a receive (the library found the
  leader contradicting what it had committed) is raised as
  `LibraryShutdown`.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Sequence
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
from virtraft.nodes import native, willemt_build
from virtraft.nodes.native import RUNNING, NativeFault, NativeNode

__all__ = ["LibraryShutdown", "NativeFault", "WillemtNode", "atomic_snapshots", "factory"]

# Entry types, as raft.h numbers them (raft_logtype_e).
NORMAL, ADD_NONVOTING_NODE, ADD_NODE, DEMOTE_NODE, REMOVE_NODE = 0, 1, 2, 3, 4
ENTRY_KINDS = {
    NORMAL: "normal",
    ADD_NONVOTING_NODE: "add_nonvoting",
    ADD_NODE: "add_node",
    DEMOTE_NODE: "demote",
    REMOVE_NODE: "remove",
}
BOOTSTRAP_TERM = 1

_ENTRY_TYPE = {
    MembershipChange.ADD_NONVOTING: ADD_NONVOTING_NODE,
    MembershipChange.PROMOTE: ADD_NODE,
    MembershipChange.DEMOTE: DEMOTE_NODE,
    MembershipChange.REMOVE: REMOVE_NODE,
}
_ROLE = {1: Role.FOLLOWER, 2: Role.CANDIDATE, 3: Role.LEADER}


class LibraryShutdown(Exception):
    """A receive returned RAFT_ERR_SHUTDOWN: the library found the leader's
    log contradicting entries it had committed ("should never happen")."""


# ---------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Entry:
    """A log entry as it travels and as the disk keeps it. `payload` is the
    client's (key, value) for a normal entry, the node id for a change."""

    term: int
    id: int
    type: int
    payload: Any


@dataclass(frozen=True, slots=True)
class RequestVote:
    term: int
    candidate_id: int
    last_log_idx: int
    last_log_term: int


@dataclass(frozen=True, slots=True)
class RequestVoteResponse:
    term: int
    vote_granted: int  # 1 granted, 0 not, -1 the voter does not know the candidate


@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: int
    prev_log_idx: int
    prev_log_term: int
    leader_commit: int
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class AppendEntriesResponse:
    term: int
    success: int
    current_idx: int
    first_idx: int


@dataclass(frozen=True, slots=True)
class InstallSnapshot:
    """The adapter's own transfer: the whole snapshot in one message."""

    term: int
    last_idx: int
    last_term: int
    members: tuple[tuple[int, bool], ...]
    state: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a snapshot holds: the state machine and the configuration at
    `last_idx` (the library asks its user to keep the membership in it)."""

    last_idx: int
    last_term: int
    members: tuple[tuple[int, bool], ...]
    state: tuple[tuple[str, Any], ...]


def _append_entries_text(m: AppendEntries) -> str:
    last = m.entries[-1] if m.entries else None
    return (
        f"(3, {m.term!r}, {m.prev_log_idx!r}, {m.prev_log_term!r}, {m.leader_commit!r}, "
        f"{len(m.entries)!r}, {last.term if last else -1!r}, {last.id if last else -1!r})"
    )


_KEY_TEXT: dict[type, Callable[[Any], str]] = {
    RequestVote: lambda m: (
        f"(1, {m.term!r}, {m.candidate_id!r}, {m.last_log_idx!r}, {m.last_log_term!r})"
    ),
    RequestVoteResponse: lambda m: f"(2, {m.term!r}, {m.vote_granted!r})",
    AppendEntries: _append_entries_text,
    AppendEntriesResponse: lambda m: (
        f"(4, {m.term!r}, {m.success!r}, {m.current_idx!r}, {m.first_idx!r})"
    ),
    InstallSnapshot: lambda m: (
        f"(5, {m.term!r}, {m.last_idx!r}, {m.last_term!r}, {m.members!r}, {len(m.state)!r})"
    ),
}
_ROLES = {
    RequestVote: MessageRole.VOTE,
    RequestVoteResponse: MessageRole.VOTE_RESPONSE,
    AppendEntries: MessageRole.APPEND,
    AppendEntriesResponse: MessageRole.APPEND_RESPONSE,
    InstallSnapshot: MessageRole.SNAPSHOT,
}


class WillemtMessages(native.TableMessages):
    """willemt/raft's messages, as the harness sees them."""

    key_text = _KEY_TEXT
    roles = _ROLES

    def is_prevote(self, message: object) -> bool:
        return False  # the library has no pre-vote

    def entries_carried(self, message: object) -> int:
        return len(message.entries) if isinstance(message, AppendEntries) else 0

    def completes_snapshot(self, message: object) -> bool:
        return isinstance(message, InstallSnapshot)


MESSAGES = WillemtMessages()


# -------------------------------------------------------------------- disk


class Disk:
    """What survives a crash: written only from the library's callbacks
    (and the snapshot, which the library leaves to its user)."""

    __slots__ = ("term", "vote", "entries", "snapshot", "writes")

    def __init__(self) -> None:
        self.term = 0
        self.vote: int | None = None
        self.entries: dict[int, Entry] = {}
        self.snapshot: Snapshot | None = None
        self.writes = 0

    @property
    def snapshot_index(self) -> int:
        return self.snapshot.last_idx if self.snapshot is not None else 0

    @property
    def last_index(self) -> int:
        return max(self.entries, default=self.snapshot_index)


# ------------------------------------------------------------ the library


@functools.cache
def _library() -> Any:
    """The compiled module, loaded once per process, its callbacks wired."""
    module = willemt_build.load()
    _register_callbacks(module.ffi, module.lib)
    return module


def _register_callbacks(ffi: Any, lib: Any) -> None:
    def extern(name: str, **kwargs: Any) -> Callable[[Callable], Callable]:
        return ffi.def_extern(name=name, onerror=RUNNING.callback_failed, **kwargs)

    def node_of(udata: Any) -> WillemtNode:
        return ffi.from_handle(udata)

    @extern("virtraft_rand")
    def rand() -> int:
        # The library's rand(): the running node's own seeded stream.
        node = RUNNING.node
        return node._rng.getrandbits(31) if node is not None else 0

    @extern("vr_py_send_requestvote")
    def send_requestvote(raft: Any, udata: Any, node: Any, msg: Any) -> int:
        node_of(udata)._send(
            lib.raft_node_get_id(node),
            RequestVote(msg.term, msg.candidate_id, msg.last_log_idx, msg.last_log_term),
        )
        return 0

    @extern("vr_py_send_appendentries")
    def send_appendentries(raft: Any, udata: Any, node: Any, msg: Any) -> int:
        me = node_of(udata)
        me._send(lib.raft_node_get_id(node), me._copy_append_entries(msg))
        return 0

    @extern("vr_py_send_snapshot")
    def send_snapshot(raft: Any, udata: Any, node: Any) -> int:
        node_of(udata)._send_snapshot(lib.raft_node_get_id(node))
        return 0

    @extern("vr_py_applylog")
    def applylog(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        return node_of(udata)._apply(ety, idx)

    @extern("vr_py_persist_vote")
    def persist_vote(raft: Any, udata: Any, vote: int) -> int:
        disk = node_of(udata).disk
        disk.vote = None if vote == -1 else vote
        disk.writes += 1
        return 0

    @extern("vr_py_persist_term")
    def persist_term(raft: Any, udata: Any, term: int, vote: int) -> int:
        disk = node_of(udata).disk
        disk.term = term
        disk.vote = None if vote == -1 else vote
        disk.writes += 1
        return 0

    @extern("vr_py_log_offer")
    def log_offer(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        node_of(udata)._offer(ety, idx)
        return 0

    @extern("vr_py_log_poll")
    def log_poll(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        node_of(udata)._forget(ety, idx, compacted=True)
        return 0

    @extern("vr_py_log_pop")
    def log_pop(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        node_of(udata)._forget(ety, idx, compacted=False)
        return 0

    @extern("vr_py_log_clear")
    def log_clear(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        # Loading a snapshot drops the whole log without popping it.
        node_of(udata)._forget(ety, idx, compacted=False)
        return 0

    @extern("vr_py_log_get_node_id")
    def log_get_node_id(raft: Any, udata: Any, ety: Any, idx: int) -> int:
        return ety.data.len  # a change's node id travels in data.len (data.buf is NULL)

    @extern("vr_py_node_has_sufficient_logs")
    def node_has_sufficient_logs(raft: Any, udata: Any, node: Any) -> int:
        me = node_of(udata)
        learner = lib.raft_node_get_id(node)
        if learner not in me.caught_up:
            me.caught_up.append(learner)
        return 0

    @extern("vr_py_notify_membership_event")
    def notify_membership_event(raft: Any, udata: Any, node: Any, ety: Any, kind: int) -> None:
        node_of(udata)._members = None


# -------------------------------------------------------------------- node


class WillemtNode(NativeNode):
    """One simulated server running willemt/raft; its state machine is a
    small key-value store."""

    capabilities = Capabilities(
        membership=True,
        snapshots=True,
        options=frozenset({"election_timeout_ms", "request_timeout_ms", "max_entries_per_msg"}),
        zero_node_id=True,
    )
    # Finish a snapshot at the next tick, as a server writing it in the
    # background would (commits may move in between); False: at once.
    background_snapshots = True

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> None:
        super().__init__(_library(), node_id, send, rng, options)
        self._max_entries = options.max_entries_per_msg
        self._scalars = self._ffi.new("long[6]")
        self._me: Any = self._ffi.NULL
        self.disk = Disk()
        self.alive = False
        # A server that applied its own removal shuts down for good.
        self.retired = False
        self.recent_applied = []
        self.caught_up: list[int] = []
        self.kv: dict[str, Any] = {}
        self.config: dict[int, bool] = {}  # the applied configuration
        self._members: Membership | None = None  # cache of the library's configuration
        self._last_members: Membership = tuple(sorted(members))
        self._pending: Snapshot | None = None  # begun, written at the next tick
        self._incoming: dict[int, Any] = {}  # entry id -> payload, for the call running
        self._submitted: dict[int, int] = {}  # index -> entry id submitted here
        self._compacted: dict[int, tuple[int, int]] = {}  # of those: compacted (term, id)
        founders = tuple(sorted(n for n, voting in members if voting))
        self._boot(founders if (node_id, True) in members else ())

    # ------------------------------------------------------------- plumbing

    def _drop_server(self) -> None:
        self._me = self._ffi.NULL
        self.alive = False

    def _boot(self, founders: tuple[int, ...]) -> None:
        """Start a server: founders write the bootstrap configuration on their
        first boot; everyone else rebuilds from the disk alone."""
        self._enter()
        lib = self._lib
        options = self._options
        me = lib.vr_new(self._handle, options.election_timeout_ms, options.request_timeout_ms)
        if me == self._ffi.NULL:
            self._done(native.FAULT)
            raise NativeFault("raft_new() failed")
        self._me = me
        self.alive = True
        self._members = None
        self._done(lib.vr_add_node(me, self.node_id, 1, 0))
        disk = self.disk
        # Read before restoring: raft_set_current_term persists (term, no vote).
        term, vote, snapshot = disk.term, disk.vote, disk.snapshot
        if snapshot is not None:
            self._done(lib.vr_begin_load_snapshot(me, snapshot.last_term, snapshot.last_idx))
            self._load_members(snapshot.members)
            self._done(lib.vr_end_load_snapshot(me))
            self.kv = dict(snapshot.state)
            self.config = dict(snapshot.members)
        if founders and not disk.entries and snapshot is None and term == 0:
            self._done(lib.vr_set_current_term(me, BOOTSTRAP_TERM))
            for founder in founders:
                self._append(Entry(BOOTSTRAP_TERM, 0, ADD_NODE, founder))
            self._done(lib.vr_set_commit_idx(me, len(founders)))
            self._done(lib.vr_apply_all(me))
            return
        base = snapshot.last_idx if snapshot is not None else 0
        for index in sorted(i for i in disk.entries if i > base):
            self._append(disk.entries[index])
        if term:
            self._done(lib.vr_set_current_term(me, term))
        if vote is not None:
            self._done(lib.vr_vote_for_nodeid(me, vote))

    def _append(self, entry: Entry) -> None:
        ety = self._c_entry(entry)
        self._incoming = {entry.id: entry.payload} if entry.type == NORMAL else {}
        self._done(self._lib.vr_append_entry(self._me, ety))

    def _c_entry(self, entry: Entry, into: Any = None) -> Any:
        ety = into if into is not None else self._ffi.new("msg_entry_t*")
        ety.term = entry.term
        ety.id = entry.id
        ety.type = entry.type
        ety.data.buf = self._ffi.NULL
        ety.data.len = entry.payload if entry.type != NORMAL else 0
        return ety

    def _load_members(self, members: Sequence[tuple[int, bool]]) -> None:
        """Between begin and end of a snapshot load: the snapshot's configuration."""
        lib = self._lib
        me = self._me
        for member, voting in members:
            if member == self.node_id:
                node = lib.raft_get_node(me, member)
                if bool(lib.raft_node_is_voting(node)) != voting:
                    self._done(lib.vr_set_voting(me, member, int(voting)))
                self._done(lib.vr_set_active(me, member, 1))
            else:
                self._done(lib.vr_add_node(me, member, 0, int(voting)))
        self._members = None

    # ------------------------------------------------------------ callbacks

    def _offer(self, ety: Any, idx: int) -> None:
        kind = ety.type
        payload = self._incoming[ety.id] if kind == NORMAL else ety.data.len
        self.disk.entries[idx] = Entry(ety.term, ety.id, kind, payload)
        self.disk.writes += 1
        if kind != NORMAL:
            self._members = None

    def _forget(self, ety: Any, idx: int, *, compacted: bool) -> None:
        disk = self.disk
        entry = disk.entries.pop(idx, None)
        if entry is None:
            return
        disk.writes += 1
        if compacted and idx in self._submitted:
            self._compacted[idx] = (entry.term, entry.id)
        if entry.type != NORMAL:
            self._members = None

    def _apply(self, ety: Any, idx: int) -> int:
        entry = self.disk.entries.get(idx)
        kind = ety.type
        self.recent_applied.append((idx, ety.term, ety.id))
        if kind == NORMAL:
            if entry is None or entry.id != ety.id:
                raise AssertionError(f"applying index {idx}: the disk holds {entry}")
            key, value = entry.payload
            self.kv[key] = value
            return 0
        member = ety.data.len
        if kind in (ADD_NONVOTING_NODE, DEMOTE_NODE):
            self.config[member] = False
        elif kind == ADD_NODE:
            self.config[member] = True
        elif kind == REMOVE_NODE:
            self.config.pop(member, None)
            if member == self.node_id:
                # The README: shut down once our own removal is applied (the
                # library would otherwise free its own node and go on using it).
                return self._lib.RAFT_ERR_SHUTDOWN
        return 0

    def _copy_append_entries(self, msg: Any) -> AppendEntries:
        n = min(msg.n_entries, self._max_entries)
        entries: tuple[Entry, ...] = ()
        if n:
            disk = self.disk.entries
            first = msg.prev_log_idx + 1
            copied = []
            for i in range(n):
                ety = msg.entries[i]
                entry = disk.get(first + i)
                if entry is None or entry.term != ety.term or entry.id != ety.id:
                    raise AssertionError(f"sending index {first + i}: the disk holds {entry}")
                copied.append(entry)
            entries = tuple(copied)
        return AppendEntries(
            msg.term, msg.prev_log_idx, msg.prev_log_term, msg.leader_commit, entries
        )

    def _send_snapshot(self, dst: int) -> None:
        snapshot = self.disk.snapshot
        if snapshot is None or self._pending is not None:
            return  # still being written: the next heartbeat asks again
        if snapshot.last_idx != self._lib.raft_get_snapshot_last_idx(self._me):
            return
        self._send(
            dst,
            InstallSnapshot(
                self._lib.raft_get_current_term(self._me),
                snapshot.last_idx,
                snapshot.last_term,
                snapshot.members,
                snapshot.state,
            ),
        )

    # ---------------------------------------------------------------- actions

    def begin_step(self) -> None:
        if self.recent_applied:
            self.recent_applied = []

    def deliver(self, src: int, message: object) -> None:
        if not self.alive:
            return
        self._enter()
        handler = _RECEIVE[type(message)]
        handler(self, src, message)

    def _receive_append_entries(self, src: int, m: AppendEntries) -> None:
        ffi = self._ffi
        lib = self._lib
        ae = ffi.new("msg_appendentries_t*")
        ae.term = m.term
        ae.prev_log_idx = m.prev_log_idx
        ae.prev_log_term = m.prev_log_term
        ae.leader_commit = m.leader_commit
        n = len(m.entries)
        array = ffi.new("msg_entry_t[]", n) if n else ffi.NULL
        incoming = {}
        for i, entry in enumerate(m.entries):
            self._c_entry(entry, array[i])
            if entry.type == NORMAL:
                incoming[entry.id] = entry.payload
        ae.n_entries = n
        ae.entries = array
        self._incoming = incoming
        r = ffi.new("msg_appendentries_response_t*")
        rc = self._done(lib.vr_recv_appendentries(self._me, src, ae, r))
        self._send(src, AppendEntriesResponse(r.term, r.success, r.current_idx, r.first_idx))
        if rc == lib.RAFT_ERR_SHUTDOWN:
            raise LibraryShutdown(
                f"raft_recv_appendentries returned RAFT_ERR_SHUTDOWN for an AppendEntries "
                f"(term {m.term}, prev {m.prev_log_idx}/{m.prev_log_term}, "
                f"{n} entries) from node {src}"
            )

    def _receive_append_entries_response(self, src: int, m: AppendEntriesResponse) -> None:
        r = self._ffi.new("msg_appendentries_response_t*")
        r.term = m.term
        r.success = m.success
        r.current_idx = m.current_idx
        r.first_idx = m.first_idx
        self._done(self._lib.vr_recv_appendentries_response(self._me, src, r))

    def _receive_request_vote(self, src: int, m: RequestVote) -> None:
        ffi = self._ffi
        vr = ffi.new("msg_requestvote_t*")
        vr.term = m.term
        vr.candidate_id = m.candidate_id
        vr.last_log_idx = m.last_log_idx
        vr.last_log_term = m.last_log_term
        r = ffi.new("msg_requestvote_response_t*")
        self._done(self._lib.vr_recv_requestvote(self._me, src, vr, r))
        self._send(src, RequestVoteResponse(r.term, r.vote_granted))

    def _receive_request_vote_response(self, src: int, m: RequestVoteResponse) -> None:
        r = self._ffi.new("msg_requestvote_response_t*")
        r.term = m.term
        r.vote_granted = m.vote_granted
        rc = self._done(self._lib.vr_recv_requestvote_response(self._me, src, r))
        if rc == self._lib.RAFT_ERR_SHUTDOWN:
            self._retire()

    def _receive_snapshot(self, src: int, m: InstallSnapshot) -> None:
        """Our transfer: a leader's term rules as for AppendEntries; then the
        library's load sequence, and an AppendEntries response (README)."""
        lib = self._lib
        me = self._me
        term = lib.raft_get_current_term(me)
        if m.term < term:
            self._send(src, AppendEntriesResponse(term, 0, lib.raft_get_current_idx(me), 0))
            return
        if m.term > term:  # as raft_recv_appendentries does for a newer leader
            self._done(lib.vr_set_current_term(me, m.term))
            self._done(lib.vr_become_follower(me))
        rc = self._done(lib.vr_begin_load_snapshot(me, m.last_term, m.last_idx))
        if rc == lib.RAFT_ERR_SNAPSHOT_ALREADY_LOADED:
            self._send(
                src, AppendEntriesResponse(lib.raft_get_current_term(me), 1, m.last_idx, m.last_idx)
            )
            return
        if rc != 0:
            return  # refused (our log reaches past it, or it would undo applied entries)
        snapshot = Snapshot(m.last_idx, m.last_term, m.members, m.state)
        disk = self.disk
        disk.snapshot = snapshot
        for index in [i for i in disk.entries if i <= m.last_idx]:
            del disk.entries[index]
        disk.writes += 1
        self._load_members(m.members)
        self._done(lib.vr_end_load_snapshot(me))
        self.kv = dict(m.state)
        self.config = dict(m.members)
        self._send(
            src, AppendEntriesResponse(lib.raft_get_current_term(me), 1, m.last_idx, m.last_idx)
        )

    def tick(self, msec: int) -> None:
        if not self.alive:
            return
        self._enter()
        if self._pending is not None:
            self._finish_snapshot()
            if not self.alive:
                return
        rc = self._done(self._lib.vr_periodic(self._me, msec))
        if rc == self._lib.RAFT_ERR_SHUTDOWN:
            self._retire()

    def submit(self, command_id: int, data: object) -> SubmitResult:
        return self._offer_entry(Entry(0, command_id, NORMAL, data))

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        if not self.alive:
            return Refused("down")
        lib = self._lib
        if not lib.raft_is_leader(self._me):
            return self._redirect()
        target = lib.raft_get_node(self._me, node)
        known = target != self._ffi.NULL
        if known and not lib.raft_node_is_active(target):
            return Refused(f"node {node} is being removed")
        voting = known and bool(lib.raft_node_is_voting(target))
        # What raft_offer_log would assert on is refused here.
        if change is MembershipChange.ADD_NONVOTING and known:
            return Refused(f"node {node} is already a member")
        if change is MembershipChange.PROMOTE and (not known or voting):
            return Refused(f"node {node} is {'already a voter' if voting else 'not a member'}")
        if change is MembershipChange.DEMOTE and not voting:
            return Refused(f"node {node} is not a voter")
        if change is MembershipChange.REMOVE and not known:
            return Refused(f"node {node} is not a member")
        return self._offer_entry(Entry(0, 0, _ENTRY_TYPE[change], node))

    def _redirect(self) -> Redirect:
        leader = self._lib.raft_get_current_leader(self._me)
        return Redirect(None if leader == -1 else leader)

    def _offer_entry(self, entry: Entry) -> SubmitResult:
        if not self.alive:
            return Refused("down")
        self._enter()
        lib = self._lib
        if not lib.raft_is_leader(self._me):
            return self._redirect()
        ety = self._c_entry(entry)
        self._incoming = {entry.id: entry.payload} if entry.type == NORMAL else {}
        r = self._ffi.new("msg_entry_response_t*")
        rc = self._done(lib.vr_recv_entry(self._me, ety, r))
        if rc == lib.RAFT_ERR_NOT_LEADER:
            return self._redirect()
        if rc == lib.RAFT_ERR_ONE_VOTING_CHANGE_ONLY:
            return Refused("a voting change is in progress")
        if rc == lib.RAFT_ERR_SNAPSHOT_IN_PROGRESS:
            return Refused("a snapshot is in progress")
        if rc != 0:
            return Refused(f"raft_recv_entry returned {rc}")
        if entry.type == NORMAL:
            self._submitted[r.idx] = entry.id
        return Submitted(r.idx, r.term)

    def is_committed(self, submitted: Submitted) -> bool | None:
        if not self.alive:
            return None
        self._enter()
        lib = self._lib
        me = self._me
        r = self._ffi.new("msg_entry_response_t*")
        r.term = submitted.term
        r.idx = submitted.index
        state = self._done(lib.vr_msg_entry_response_committed(me, r))
        if state != 0:
            return state == 1
        index = submitted.index
        if index <= lib.raft_get_snapshot_last_idx(me):
            held = self._compacted.get(index)
            if held is not None:
                return held == (submitted.term, self._submitted.get(index))
            return None
        if index > lib.raft_get_current_idx(me):
            return False  # popped since: lost
        return None

    def take_snapshot(self) -> bool:
        if not self.alive or self._pending is not None:
            return False
        self._enter()
        lib = self._lib
        me = self._me
        if lib.raft_snapshot_is_in_progress(me):
            return False
        if lib.raft_get_commit_idx(me) <= lib.raft_get_snapshot_last_idx(me):
            return False
        rc = self._done(lib.vr_begin_snapshot(me))
        if rc == lib.RAFT_ERR_SHUTDOWN:  # it applied our own removal first
            self._retire()
            return False
        if rc != 0:
            return False
        # raft_begin_snapshot applied everything up to the commit index, so
        # the state machine and the configuration are those at the snapshot.
        self._pending = Snapshot(
            lib.raft_get_snapshot_last_idx(me),
            lib.raft_get_snapshot_last_term(me),
            tuple(sorted(self.config.items())),
            tuple(sorted(self.kv.items())),
        )
        if not self.background_snapshots:
            self._finish_snapshot()
        return True

    def _finish_snapshot(self) -> None:
        """The snapshot begun earlier is written: store it, then let the
        library compact its log (raft_end_snapshot)."""
        snapshot = self._pending
        assert snapshot is not None
        self._pending = None
        self.disk.snapshot = snapshot
        self.disk.writes += 1
        self._done(self._lib.vr_end_snapshot(self._me))

    def crash(self) -> None:
        self._stop()

    def restart(self) -> None:
        if self.retired or self._fault is not None:
            return  # shut down for good
        self._boot(())

    def _retire(self) -> None:
        self._stop()
        self.retired = True

    def _stop(self) -> None:
        if self.alive:
            self._last_members = self.members
            me = self._me
            self._me = self._ffi.NULL
            self.alive = False
            if me != self._ffi.NULL:
                self._done(self._lib.vr_free(me))
        self.recent_applied = []
        self.caught_up = []
        self.kv = {}
        self.config = {}
        self._pending = None
        self._members = None

    # ------------------------------------------------------------------- view

    def scalars(self) -> Scalars:
        """The same values as the properties, in one call."""
        if not self.alive:
            disk = self.disk
            return (
                False,
                Role.FOLLOWER,
                disk.term,
                disk.vote,
                0,
                disk.last_index,
                disk.snapshot_index,
            )
        out = self._scalars
        self._lib.vr_scalars(self._me, out)
        vote = out[2]
        return (True, _ROLE[out[0]], out[1], None if vote == -1 else vote, out[3], out[4], out[5])

    @property
    def role(self) -> Role:
        return _ROLE[self._lib.raft_get_state(self._me)] if self.alive else Role.FOLLOWER

    @property
    def term(self) -> int:
        return self._lib.raft_get_current_term(self._me) if self.alive else self.disk.term

    @property
    def voted_for(self) -> int | None:
        if not self.alive:
            return self.disk.vote
        vote = self._lib.raft_get_voted_for(self._me)
        return None if vote == -1 else vote

    @property
    def commit_index(self) -> int:
        return self._lib.raft_get_commit_idx(self._me) if self.alive else 0

    @property
    def last_applied(self) -> int:  # type: ignore[override]
        return self._lib.raft_get_last_applied_idx(self._me) if self.alive else 0

    @property
    def last_index(self) -> int:
        return self._lib.raft_get_current_idx(self._me) if self.alive else self.disk.last_index

    @property
    def snapshot_index(self) -> int:
        if self.alive:
            return self._lib.raft_get_snapshot_last_idx(self._me)
        return self.disk.snapshot_index

    @property
    def snapshot_term(self) -> int:
        if self.alive:
            return self._lib.raft_get_snapshot_last_term(self._me)
        snapshot = self.disk.snapshot
        return snapshot.last_term if snapshot is not None else 0

    def entry(self, index: int) -> tuple[int, int] | None:
        if not self.alive:
            if index <= self.disk.snapshot_index:
                return None
            entry = self.disk.entries.get(index)
            return (entry.term, entry.id) if entry is not None else None
        ety = self._lib.raft_get_entry_from_idx(self._me, index)
        return None if ety == self._ffi.NULL else (ety.term, ety.id)

    def entry_kind(self, index: int) -> str:
        entry = self.disk.entries.get(index)
        if entry is None:
            return ""
        kind = ENTRY_KINDS.get(entry.type, str(entry.type))
        return kind if entry.type == NORMAL else f"{kind} {entry.payload}"

    @property
    def members(self) -> Membership:
        if not self.alive:
            return self._last_members
        members = self._members
        if members is None:
            lib = self._lib
            me = self._me
            found = []
            for i in range(lib.raft_get_num_nodes(me)):
                node = lib.raft_get_node_from_idx(me, i)
                if lib.raft_node_is_active(node):
                    found.append((lib.raft_node_get_id(node), bool(lib.raft_node_is_voting(node))))
            members = self._members = tuple(sorted(found))
        return members

    def leader_hint(self) -> int | None:
        if not self.alive:
            return None
        leader = self._lib.raft_get_current_leader(self._me)
        return None if leader == -1 else leader

    def describe(self) -> dict[str, object]:
        """Extra facts for reports."""
        return {
            "kv_keys": len(self.kv),
            "disk_writes": self.disk.writes,
            "retired": self.retired,
            "fault": self._fault,
        }


_RECEIVE: dict[type, Callable[[WillemtNode, int, Any], None]] = {
    AppendEntries: WillemtNode._receive_append_entries,
    AppendEntriesResponse: WillemtNode._receive_append_entries_response,
    RequestVote: WillemtNode._receive_request_vote,
    RequestVoteResponse: WillemtNode._receive_request_vote_response,
    InstallSnapshot: WillemtNode._receive_snapshot,
}


# As errors name it: "node factory willemt could not build..."
factory = native.node_factory(
    WillemtNode,
    "willemt",
    MESSAGES,
    "A willemt/raft server (the library built from VIRTRAFT_WILLEMT_SRC).",
)


class AtomicSnapshotNode(WillemtNode):
    """Ends every snapshot in the call that began it: no commit can move in
    between, so campaigns see past raft_end_snapshot's assertion."""

    background_snapshots = False


atomic_snapshots = native.node_factory(
    AtomicSnapshotNode,
    "willemt_atomic_snapshots",
    MESSAGES,
    "willemt/raft with snapshots begun and ended in one call.",
)
