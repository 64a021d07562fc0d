"""The default node: a raftcore RaftServer behind the NodeAdapter protocol.

`factory(server_class)` makes a node factory for any RaftServer subclass,
which is how the bug zoo's mutants enter the simulator.
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable, Sequence
from typing import Any

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
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Snapshot,
    TimeoutNow,
)
from raftcore import Role as ServerRole
from raftcore.sessions import Sessions
from virtraft.adapter import (
    NODE_OPTION_NAMES,
    Answer,
    Capabilities,
    Command,
    Membership,
    MembershipChange,
    MessageRole,
    Messages,
    NodeAdapter,
    NodeFactory,
    NodeOptions,
    Redirect,
    Refused,
    Role,
    Scalars,
    Send,
    SubmitResult,
    Submitted,
)
from virtraft.nodes.disk import Disk

# The checker reads every touched node's role after every event: a dict
# lookup by value (hashing an Enum member runs Python code; `_value_` does not).
_ROLE = {role.value: Role(role.value) for role in ServerRole}

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
        # Every message goes straight to the simulator, and a sync to the disk:
        # the callbacks are the simulator's own functions, not methods that
        # call them (one call per message fewer).
        send = self.send = node._send
        self.send_requestvote = send  # type: ignore[method-assign]
        self.send_appendentries = send  # type: ignore[method-assign]
        self.send_installsnapshot = send  # type: ignore[method-assign]
        self.send_timeoutnow = send  # type: ignore[method-assign]
        self.send_readindex = send  # type: ignore[method-assign]
        self.sync = node.disk.sync  # type: ignore[method-assign]

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

    def read_ready(self, request_id: int, index: int) -> None:
        self.node.serve_read(request_id)

    def read_failed(self, request_id: int) -> None:
        self.node.fail_read(request_id)


_RECEIVERS = {
    RequestVote: ("recv_requestvote", True),
    AppendEntries: ("recv_appendentries", True),
    InstallSnapshot: ("recv_installsnapshot", True),
    RequestVoteResponse: ("recv_requestvote_response", False),
    AppendEntriesResponse: ("recv_appendentries_response", False),
    InstallSnapshotResponse: ("recv_installsnapshot_response", False),
    # Their handlers send what they answer through the callbacks.
    TimeoutNow: ("step", False),
    ReadIndexRequest: ("step", False),
    ReadIndexResponse: ("step", False),
}


class RaftcoreNode(NodeAdapter):
    """One simulated server running raftcore; its state machine is a small
    key-value store with client sessions (writes and compare-and-set applied
    at most once per client and sequence number) and linearizable reads."""

    capabilities = Capabilities(
        membership=True,
        snapshots=True,
        options=NODE_OPTION_NAMES,
        lossy_disk=True,
        clients=True,
        zero_node_id=True,
    )
    refusals = (RaftError,)
    # Plain fields, not properties: read for every touched node after every event.
    alive = False
    recent_applied: list[tuple[int, int, int]] = []

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
            lease_read=options.lease_read,
            # A margin as long as the election timeout leaves the shortest
            # lease (swarm may draw timers below the margin given).
            lease_drift_ms=min(options.lease_drift_ms, options.election_timeout_ms - 1),
            forward_reads=options.forward_reads,
        )
        self.disk = Disk()
        self.caught_up: list[int] = []
        self.recent_applied: list[tuple[int, int, int]] = []
        self.kv: dict[str, int] = {}
        self.sessions = Sessions()
        # Requests this node took and has not answered: commands by entry id,
        # reads by request id (-> the key read). Volatile: a crash forgets them.
        self._commands: set[int] = set()
        self._reading: dict[int, str] = {}
        self._answers: list[Answer] = []
        self.server: RaftServer | None = None
        # Invariant: alive == (server is not None). A field, not a property:
        # it is read for every touched node after every event.
        self.alive = False
        self._boot()

    # --------------------------------------------------------------- plumbing

    def send(self, dst: int, message: object) -> None:
        self._send(dst, message)

    def apply(self, entry: Entry, index: int) -> None:
        data = entry.data
        if entry.type is EntryType.NORMAL and data is not None:
            if isinstance(data, Command):
                output = self._apply_once(data)
                if entry.id in self._commands:
                    self._commands.discard(entry.id)
                    self._answers.append(Answer(entry.id, True, output))
            else:
                key, value = data
                self.kv[key] = value
        self.recent_applied.append((index, entry.term, entry.id))

    def _apply_once(self, command: Command) -> bool | None:
        """Dissertation §6.3: a retried command (same client, same sequence
        number) is answered from the session, not applied again."""
        return self.sessions.apply(command.client, command.seq, lambda: self._execute(command))[1]

    def _execute(self, command: Command) -> bool | None:
        """The key-value store's one step: a write, or a compare-and-set that
        swaps only when the key holds the expected value (None: never written)."""
        if command.op == "cas":
            if self.kv.get(command.key) != command.expected:
                return False
            self.kv[command.key] = command.value
            return True
        self.kv[command.key] = command.value
        return None

    def serve_read(self, request_id: int) -> None:
        """The server says the read is safe: everything up to its read index
        is applied, so the store as it is now answers it (§6.4 step 3)."""
        key = self._reading.pop(request_id, None)
        if key is not None:
            self._answers.append(Answer(request_id, True, self.kv.get(key)))

    def fail_read(self, request_id: int) -> None:
        if self._reading.pop(request_id, None) is not None:
            self._answers.append(Answer(request_id, False))

    def _state(self) -> bytes:
        """The store for a snapshot, with the sessions once there are any (a
        snapshot without them would let a retry apply twice after it)."""
        if not self.sessions.last:
            return json.dumps(self.kv, sort_keys=True).encode()
        sessions = sorted([c, seq, out] for c, (seq, out) in self.sessions.last.items())
        return json.dumps({"kv": self.kv, "sessions": sessions}, sort_keys=True).encode()

    def load_state(self, data: bytes) -> None:
        state = json.loads(data.decode()) if data else {}
        self.sessions = Sessions()
        if "sessions" in state and isinstance(state.get("kv"), dict):
            self.sessions.last = {c: (seq, out) for c, seq, out in state["sessions"]}
            state = state["kv"]
        self.kv = state

    def _boot(self) -> None:
        callbacks = _SimCallbacks(self)
        disk = self.disk
        self.kv = {}
        self.sessions = Sessions()
        self.server = self._server_class.restore(
            self.node_id,
            callbacks,
            config=self.config,
            rng=self._rng,
            members=self._bootstrap,
            term=disk.term,
            voted_for=disk.voted_for,
            entries=disk.log(),
            snapshot=disk.snapshot,
        )
        # Each message type's handler on this server, bound once per boot, not
        # looked up by name per message.
        server = self.server
        self._receivers = {
            cls: (getattr(server, name), replies) for cls, (name, replies) in _RECEIVERS.items()
        }
        self.alive = True

    # ----------------------------------------------------------------- actions

    def begin_step(self) -> None:
        if self.recent_applied:
            self.recent_applied = []

    def deliver(self, src: int, message: object) -> None:
        server = self.server
        if server is None:
            return
        receive, replies = self._receivers[type(message)]
        reply = receive(src, message)
        if replies and reply is not None:
            self._send(src, reply)

    def tick(self, msec: int) -> None:
        if self.server is not None:
            self.server.periodic(msec)

    def submit(self, command_id: int, data: object) -> SubmitResult:
        if not isinstance(data, Command):
            return self._offer(Entry(0, command_id, EntryType.NORMAL, data))
        self._commands.add(command_id)  # before: a cluster of one applies at once
        result = self._offer(Entry(0, command_id, EntryType.NORMAL, data))
        if not isinstance(result, Submitted):
            self._commands.discard(command_id)
        return result

    def read(self, request_id: int, key: str) -> SubmitResult:
        server = self.server
        if server is None:
            return Refused("crashed")
        self._reading[request_id] = key  # before: a lease may serve it at once
        try:
            server.read_index(request_id)
        except NotLeader as exc:
            del self._reading[request_id]
            return Redirect(exc.leader_id)
        except RaftError as exc:
            del self._reading[request_id]
            return Refused(str(exc))
        return Submitted(0, server.current_term)

    def answers(self) -> list[Answer]:
        answers, self._answers = self._answers, []
        return answers

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
        server.end_snapshot(self._state())
        return True

    def lose_unsynced(self, keep: float) -> None:
        self.disk.lose_unsynced(keep)

    def crash(self) -> None:
        # A process crash: what the server wrote reaches the disk, synced or not.
        self.disk.sync()
        self.server = None
        self.alive = False
        self.recent_applied = []
        self.caught_up = []
        self.kv = {}
        self.sessions = Sessions()
        self._commands = set()
        self._reading = {}
        self._answers = []

    def restart(self) -> None:
        self._boot()

    # ------------------------------------------------------------------- view

    def scalars(self) -> Scalars:
        """The same values as the properties, in one call."""
        server = self.server
        if server is None:
            disk = self.disk
            return (
                False,
                Role.FOLLOWER,
                disk.term,
                disk.voted_for,
                0,
                disk.last_index,
                disk.snapshot_index,
            )
        return (
            True,
            _ROLE[server.role._value_],
            server.current_term,
            server.voted_for,
            server.commit_index,
            server.last_log_index,
            server.snapshot_last_index,
        )

    @property
    def role(self) -> Role:
        server = self.server
        return _ROLE[server.role._value_] if server is not None else Role.FOLLOWER

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
    def last_applied(self) -> int:  # type: ignore[override]
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

    def _entry(self, index: int) -> Entry | None:
        if self.server is not None:
            return self.server.get_entry(index)
        return self.disk.entries.get(index) if index > self.disk.snapshot_index else None

    def entry(self, index: int) -> tuple[int, int] | None:
        # The checker reads a touched node's last entry after every event.
        server = self.server
        entry = server.get_entry(index) if server is not None else self._entry(index)
        return (entry.term, entry.id) if entry is not None else None

    def entry_kind(self, index: int) -> str:
        entry = self._entry(index)
        if entry is None:
            return ""
        name = entry.type.name.lower()
        return f"{name} {entry.node}" if entry.node is not None else name

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


# The identifying fields of each message, as the text repr() gives the tuple
# (kind number, fields...): traces store the digest of this text, so it must
# not change. Formatted directly because repr() of a tuple costs about twice
# as much, and a key is computed for every message sent.
def _request_vote_text(m: RequestVote) -> str:
    text = (
        f"(1, {m.term!r}, {m.candidate_id!r}, {m.last_log_index!r}, "
        f"{m.last_log_term!r}, {m.prevote!r}"
    )
    # Fields added later are named only when set, so older traces' digests hold.
    return text + (", True)" if m.transfer else ")")


def _request_vote_response_text(m: RequestVoteResponse) -> str:
    return f"(2, {m.term!r}, {m.vote_granted!r}, {m.prevote!r})"


def _append_entries_text(m: AppendEntries) -> str:
    last_term, last_id = (m.entries[-1].term, m.entries[-1].id) if m.entries else (-1, -1)
    text = (
        f"(3, {m.term!r}, {m.leader_id!r}, {m.prev_log_index!r}, {m.prev_log_term!r}, "
        f"{len(m.entries)!r}, {m.leader_commit!r}, {last_term!r}, {last_id!r}"
    )
    return text + (f", {m.read_round!r})" if m.read_round else ")")


def _append_entries_response_text(m: AppendEntriesResponse) -> str:
    text = (
        f"(4, {m.term!r}, {m.success!r}, {m.match_index!r}, {m.rejected_index!r}, {m.hint_index!r}"
    )
    return text + (f", {m.read_round!r})" if m.read_round else ")")


def _install_snapshot_text(m: InstallSnapshot) -> str:
    return (
        f"(5, {m.term!r}, {m.leader_id!r}, {m.last_index!r}, {m.last_term!r}, "
        f"{m.offset!r}, {len(m.data)!r}, {m.done!r})"
    )


def _install_snapshot_response_text(m: InstallSnapshotResponse) -> str:
    return f"(6, {m.term!r}, {m.last_index!r}, {m.next_offset!r}, {m.done!r})"


_KEY_TEXT: dict[type, Callable[[Any], str]] = {
    RequestVote: _request_vote_text,
    RequestVoteResponse: _request_vote_response_text,
    AppendEntries: _append_entries_text,
    AppendEntriesResponse: _append_entries_response_text,
    InstallSnapshot: _install_snapshot_text,
    InstallSnapshotResponse: _install_snapshot_response_text,
}


def message_key(message: object) -> int:
    """A content digest of a raftcore message from its identifying fields. Two
    AppendEntries of one leader and term that agree on these carry the same
    entries, so the digest names a message as well as its full text would."""
    text = _KEY_TEXT.get(type(message))
    if text is None:
        return zlib.crc32(repr(message).encode())
    return zlib.crc32(text(message).encode())


_ROLES = {
    RequestVote: MessageRole.VOTE,
    RequestVoteResponse: MessageRole.VOTE_RESPONSE,
    AppendEntries: MessageRole.APPEND,
    AppendEntriesResponse: MessageRole.APPEND_RESPONSE,
    InstallSnapshot: MessageRole.SNAPSHOT,
    InstallSnapshotResponse: MessageRole.SNAPSHOT_RESPONSE,
}


class RaftcoreMessages(Messages):
    """raftcore's messages as the harness sees them."""

    key = staticmethod(message_key)  # type: ignore[assignment]

    def role(self, message: object) -> MessageRole:
        return _ROLES.get(type(message), MessageRole.OTHER)

    def is_prevote(self, message: object) -> bool:
        return isinstance(message, RequestVote | RequestVoteResponse) and message.prevote

    def entries_carried(self, message: object) -> int:
        return len(message.entries) if isinstance(message, AppendEntries) else 0

    def completes_snapshot(self, message: object) -> bool:
        return isinstance(message, InstallSnapshot) and message.done

    def text(self, message: object) -> str:
        """One line a person reads: what the message says, in Raft's words."""
        write = _TEXT.get(type(message))
        return write(message) if write is not None else super().text(message)


def _entry_text(index: int, entry: Entry) -> str:
    kind = "" if entry.type == EntryType.NORMAL else f" {EntryType(entry.type).name.lower()}"
    node = f" node {entry.node}" if entry.node is not None else ""
    return f"{index}:(t{entry.term} #{entry.id}{kind}{node})"


def _append_entries_words(m: AppendEntries) -> str:
    first = m.prev_log_index + 1
    shown = ", ".join(_entry_text(first + i, e) for i, e in enumerate(m.entries[:3]))
    if len(m.entries) > 3:
        shown += f", … {len(m.entries) - 3} more to {m.prev_log_index + len(m.entries)}"
    what = f"entries {shown}" if m.entries else "no entries (heartbeat)"
    read = f", read round {m.read_round}" if m.read_round else ""
    return (
        f"AppendEntries term {m.term} from leader {m.leader_id}: after index "
        f"{m.prev_log_index} (term {m.prev_log_term}), {what}; commit {m.leader_commit}{read}"
    )


def _append_entries_response_words(m: AppendEntriesResponse) -> str:
    if m.success:
        return f"AppendEntries accepted, term {m.term}: matches up to index {m.match_index}"
    return (
        f"AppendEntries rejected, term {m.term}: no match at index {m.rejected_index}; "
        f"may share up to index {m.hint_index}"
    )


def _request_vote_words(m: RequestVote) -> str:
    kind = "pre-vote" if m.prevote else "vote"
    transfer = " (leadership transfer)" if m.transfer else ""
    return (
        f"RequestVote ({kind}) term {m.term} from {m.candidate_id}{transfer}: its log ends "
        f"at index {m.last_log_index}, term {m.last_log_term}"
    )


def _request_vote_response_words(m: RequestVoteResponse) -> str:
    kind = "pre-vote" if m.prevote else "vote"
    return f"{kind} {'granted' if m.vote_granted else 'refused'}, term {m.term}"


def _install_snapshot_words(m: InstallSnapshot) -> str:
    end = m.offset + len(m.data)
    return (
        f"InstallSnapshot term {m.term} from leader {m.leader_id}: through index "
        f"{m.last_index} (term {m.last_term}), bytes {m.offset}-{end}"
        + (", last chunk" if m.done else "")
    )


def _install_snapshot_response_words(m: InstallSnapshotResponse) -> str:
    done = ", installed" if m.done else f", next byte {m.next_offset}"
    return f"InstallSnapshot answered, term {m.term}: through index {m.last_index}{done}"


_TEXT: dict[type, Callable[[Any], str]] = {
    RequestVote: _request_vote_words,
    RequestVoteResponse: _request_vote_response_words,
    AppendEntries: _append_entries_words,
    AppendEntriesResponse: _append_entries_response_words,
    InstallSnapshot: _install_snapshot_words,
    InstallSnapshotResponse: _install_snapshot_response_words,
    TimeoutNow: lambda m: f"TimeoutNow term {m.term} from leader {m.leader_id}: campaign now",
}


MESSAGES = RaftcoreMessages()


def factory(
    server_class: type[RaftServer] = RaftServer, node_class: type[RaftcoreNode] | None = None
) -> NodeFactory:
    """A node factory running `server_class` (RaftServer or a mutant of it),
    in `node_class` (RaftcoreNode, or a mutant of its state machine)."""
    node_type = RaftcoreNode if node_class is None else node_class

    def make(
        node_id: int,
        members: Sequence[tuple[int, bool]],
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> RaftcoreNode:
        return node_type(node_id, tuple(members), send, rng, options, server_class)

    make.__name__ = f"raftcore_{(server_class if node_class is None else node_class).__name__}"
    make.messages = MESSAGES  # type: ignore[attr-defined]
    make.capabilities = node_type.capabilities  # type: ignore[attr-defined]
    return make


default_factory = factory()
