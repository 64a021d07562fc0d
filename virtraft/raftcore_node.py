"""The default node: a raftcore RaftServer behind the NodeAdapter protocol.

`factory(server_class)` makes a node factory for any RaftServer subclass,
which is how the bug zoo's mutants enter the simulator.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Callbacks,
    Config,
    Entry,
    EntryResponse,
    EntryState,
    EntryType,
    InstallSnapshot,
    InstallSnapshotResponse,
    NotLeader,
    RaftError,
    RaftServer,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
)
from virtraft.adapter import (
    Membership,
    MembershipChange,
    NodeFactory,
    NodeOptions,
    Redirect,
    Refused,
    Role,
    Send,
    SubmitResult,
    Submitted,
)
from virtraft.disk import Disk

_ENTRY_TYPE = {
    MembershipChange.ADD_NONVOTING: EntryType.ADD_NONVOTING_NODE,
    MembershipChange.PROMOTE: EntryType.ADD_NODE,
    MembershipChange.DEMOTE: EntryType.DEMOTE_NODE,
    MembershipChange.REMOVE: EntryType.REMOVE_NODE,
}


class _SimCallbacks(Callbacks):
    """Wires a server to the simulated network, disk and state machine."""

    def __init__(self, node: RaftcoreNode) -> None:
        self.node = node
        self.disk = node.disk
        self.send = node.send

    def send_requestvote(self, node_id: int, msg: RequestVote) -> None:
        self.send(node_id, msg)

    def send_appendentries(self, node_id: int, msg: AppendEntries) -> None:
        self.send(node_id, msg)

    def send_installsnapshot(self, node_id: int, msg: InstallSnapshot) -> None:
        self.send(node_id, msg)

    def applylog(self, entry: Entry, index: int) -> None:
        self.node.apply(entry, index)

    def persist_vote(self, voted_for: int | None) -> None:
        self.disk.store_vote(voted_for)

    def persist_term(self, term: int, voted_for: int | None) -> None:
        self.disk.store_term(term, voted_for)

    def log_offer(self, entry: Entry, index: int) -> None:
        self.disk.append(entry, index)

    def log_pop(self, entry: Entry, index: int) -> None:
        self.disk.pop(index)

    def log_poll(self, entry: Entry, index: int) -> None:
        self.disk.poll(index)

    def persist_snapshot(self, snapshot: Snapshot) -> None:
        self.disk.store_snapshot(snapshot)

    def load_snapshot(self, snapshot: Snapshot) -> None:
        self.disk.store_snapshot(snapshot)
        self.node.load_state(snapshot.data)

    def node_has_sufficient_logs(self, node_id: int) -> None:
        self.node.caught_up.append(node_id)


_RECEIVERS = {
    RequestVote: ("recv_requestvote", True),
    AppendEntries: ("recv_appendentries", True),
    InstallSnapshot: ("recv_installsnapshot", True),
    RequestVoteResponse: ("recv_requestvote_response", False),
    AppendEntriesResponse: ("recv_appendentries_response", False),
    InstallSnapshotResponse: ("recv_installsnapshot_response", False),
}


class RaftcoreNode:
    """One simulated server running raftcore; its state machine is a small
    key-value store."""

    refusals: tuple[type[BaseException], ...] = (RaftError,)

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
        server_class: type[RaftServer] = RaftServer,
    ) -> None:
        self.node_id = node_id
        self._bootstrap = tuple(sorted(members))
        self._send = send
        self._rng = rng
        self._server_class = server_class
        self.config = Config(
            election_timeout_ms=options.election_timeout_ms,
            request_timeout_ms=options.request_timeout_ms,
            prevote=options.prevote,
            check_quorum=options.check_quorum,
            noop_on_election=options.noop_on_election,
            max_entries_per_msg=options.max_entries_per_msg,
        )
        self.disk = Disk()
        self.caught_up: list[int] = []
        self.recent_applied: list[tuple[int, int, int]] = []
        self.kv: dict[str, int] = {}
        self.server: RaftServer | None = None
        self._boot()

    # --------------------------------------------------------------- plumbing

    def send(self, dst: int, message: object) -> None:
        self._send(dst, message)

    def apply(self, entry: Entry, index: int) -> None:
        if entry.type is EntryType.NORMAL and entry.data is not None:
            key, value = entry.data
            self.kv[key] = value
        self.recent_applied.append((index, entry.term, entry.id))

    def load_state(self, data: bytes) -> None:
        self.kv = json.loads(data.decode()) if data else {}

    def _boot(self) -> None:
        callbacks = _SimCallbacks(self)
        disk = self.disk
        self.kv = {}
        self.server = self._server_class.restore(
            self.node_id, callbacks, config=self.config, rng=self._rng,
            members=self._bootstrap, term=disk.term, voted_for=disk.voted_for,
            entries=disk.log(), snapshot=disk.snapshot,
        )

    # ----------------------------------------------------------------- actions

    def begin_step(self) -> None:
        if self.recent_applied:
            self.recent_applied = []

    def deliver(self, src: int, message: object) -> None:
        server = self.server
        if server is None:
            return
        name, replies = _RECEIVERS[type(message)]
        reply = getattr(server, name)(src, message)
        if replies and reply is not None:
            self._send(src, reply)

    def tick(self, msec: int) -> None:
        if self.server is not None:
            self.server.periodic(msec)

    def submit(self, command_id: int, data: object) -> SubmitResult:
        return self._offer(Entry(0, command_id, EntryType.NORMAL, data))

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        return self._offer(Entry(0, 0, _ENTRY_TYPE[change], None, node))

    def _offer(self, entry: Entry) -> SubmitResult:
        if self.server is None:
            return Refused("crashed")
        try:
            response = self.server.recv_entry(entry)
        except NotLeader as exc:
            return Redirect(exc.leader_id)
        except RaftError as exc:
            return Refused(str(exc))
        return Submitted(response.index, response.term)

    def is_committed(self, submitted: Submitted) -> bool | None:
        if self.server is None:
            return None
        state = self.server.entry_committed(EntryResponse(0, submitted.term, submitted.index))
        if state is EntryState.PENDING:
            return None
        return state is EntryState.COMMITTED

    def take_snapshot(self) -> bool:
        server = self.server
        if server is None or server.snapshot_in_progress:
            return False
        if server.last_applied <= server.snapshot_last_index:
            return False
        server.begin_snapshot()
        server.end_snapshot(json.dumps(self.kv, sort_keys=True).encode())
        return True

    def crash(self) -> None:
        self.server = None
        self.recent_applied = []
        self.caught_up = []
        self.kv = {}

    def restart(self) -> None:
        self._boot()

    # ------------------------------------------------------------------- view

    @property
    def alive(self) -> bool:
        return self.server is not None

    @property
    def role(self) -> Role:
        server = self.server
        return Role(server.role.value) if server is not None else Role.FOLLOWER

    @property
    def term(self) -> int:
        return self.server.current_term if self.server is not None else self.disk.term

    @property
    def voted_for(self) -> int | None:
        return self.server.voted_for if self.server is not None else self.disk.voted_for

    @property
    def commit_index(self) -> int:
        return self.server.commit_index if self.server is not None else 0

    @property
    def last_applied(self) -> int:
        return self.server.last_applied if self.server is not None else 0

    @property
    def last_index(self) -> int:
        return self.server.last_log_index if self.server is not None else self.disk.last_index

    @property
    def snapshot_index(self) -> int:
        if self.server is not None:
            return self.server.snapshot_last_index
        return self.disk.snapshot_index

    @property
    def snapshot_term(self) -> int:
        if self.server is not None:
            return self.server.snapshot_last_term
        return self.disk.snapshot_term

    def entry(self, index: int) -> tuple[int, int] | None:
        if self.server is not None:
            entry = self.server.get_entry(index)
        else:
            entry = self.disk.entries.get(index) if index > self.disk.snapshot_index else None
        return (entry.term, entry.id) if entry is not None else None

    @property
    def members(self) -> Membership:
        if self.server is not None:
            return self.server.members()
        return self._bootstrap

    def leader_hint(self) -> int | None:
        return self.server.get_current_leader() if self.server is not None else None

    def describe(self) -> dict[str, object]:
        """Extra facts for reports."""
        return {"kv_keys": len(self.kv), "disk_writes": self.disk.writes}


def _entries_key(msg: AppendEntries) -> tuple[int, ...]:
    last = msg.entries[-1] if msg.entries else None
    return (3, msg.term, msg.leader_id, msg.prev_log_index, msg.prev_log_term,
            len(msg.entries), msg.leader_commit, last.term if last else -1, last.id if last else -1)


_KEY_FIELDS = {
    RequestVote: lambda m: (1, m.term, m.candidate_id, m.last_log_index, m.last_log_term,
                            m.prevote),
    RequestVoteResponse: lambda m: (2, m.term, m.vote_granted, m.prevote),
    AppendEntries: _entries_key,
    AppendEntriesResponse: lambda m: (4, m.term, m.success, m.match_index, m.rejected_index,
                                      m.hint_index),
    InstallSnapshot: lambda m: (5, m.term, m.leader_id, m.last_index, m.last_term, m.offset,
                                len(m.data), m.done),
    InstallSnapshotResponse: lambda m: (6, m.term, m.last_index, m.next_offset, m.done),
}


def message_key(message: object) -> int:
    """A content digest of a raftcore message from its identifying fields. Two
    AppendEntries of one leader and term that agree on these carry the same
    entries, so the digest names a message as well as its full text would."""
    fields = _KEY_FIELDS.get(type(message))
    if fields is None:
        return zlib.crc32(repr(message).encode())
    return zlib.crc32(repr(fields(message)).encode())


def factory(server_class: type[RaftServer] = RaftServer) -> NodeFactory:
    """A node factory running `server_class` (RaftServer or a mutant of it)."""

    def make(
        node_id: int, members: Sequence[tuple[int, bool]], send: Send, rng: random.Random,
        options: NodeOptions,
    ) -> RaftcoreNode:
        return RaftcoreNode(node_id, tuple(members), send, rng, options, server_class)

    make.__name__ = f"raftcore_{server_class.__name__}"
    make.message_key = message_key  # type: ignore[attr-defined]
    return make


default_factory = factory()
