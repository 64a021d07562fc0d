"""An in-test Raft cluster: recording callbacks and one message queue.

`Recorder` is a `Callbacks` that keeps, per server, what a real host would
keep on disk (term, vote, log, snapshot) and what it applied, and checks the
contract of every callback as it is called (a vote is never changed within
a term, log_offer appends at the end, log_pop removes the youngest entry,
log_poll the eldest). `Cluster` wires servers through a list of messages in
flight; tests deliver, drop, duplicate and reorder them by hand or with a
seeded `random.Random`. Responses travel back through the same queue, so
they can be lost or reordered too. Nothing here reads the clock.

The module is named raftcore_cluster (not cluster) so that it cannot clash
with a helper of the same name elsewhere under tests/.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Callbacks,
    Config,
    Entry,
    EntryResponse,
    InstallSnapshot,
    InstallSnapshotResponse,
    MembershipEvent,
    Message,
    RaftServer,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    RequestVoteResponse,
    Role,
    Snapshot,
    TimeoutNow,
)

ELECTION_MS = 100
REQUEST_MS = 20

Membership = tuple[tuple[int, bool], ...]
Envelope = tuple[int, int, Message]  # (source, destination, message)

HANDLERS: dict[type, str] = {
    RequestVote: "recv_requestvote",
    RequestVoteResponse: "recv_requestvote_response",
    AppendEntries: "recv_appendentries",
    AppendEntriesResponse: "recv_appendentries_response",
    InstallSnapshot: "recv_installsnapshot",
    InstallSnapshotResponse: "recv_installsnapshot_response",
    TimeoutNow: "step",
    ReadIndexRequest: "step",
    ReadIndexResponse: "step",
}


def make_config(**overrides: object) -> Config:
    """Test options: short timeouts (T = 100 ms, heartbeat 20 ms)."""
    options: dict[str, object] = {
        "election_timeout_ms": ELECTION_MS,
        "request_timeout_ms": REQUEST_MS,
    }
    options.update(overrides)
    return Config(**options)  # type: ignore[arg-type]


def entry_at(index: int, term: int) -> Entry:
    """The one entry a test log holds at (index, term); equal on every server,
    as Raft's Log Matching property requires of entries with equal index and term."""
    return Entry(term=term, id=index * 1000 + term, data=f"{index}@{term}")


def log_of_terms(terms: Sequence[int], first: int = 1) -> list[Entry]:
    """Entries from index `first` with the given terms (the paper's figures)."""
    return [entry_at(first + offset, term) for offset, term in enumerate(terms)]


def log_terms(server: RaftServer) -> list[int]:
    """Terms of every entry the server holds after its snapshot."""
    return [
        server.term_at(index)  # type: ignore[misc]
        for index in range(server.snapshot_last_index + 1, server.last_log_index + 1)
    ]


def log_entries(server: RaftServer) -> list[Entry]:
    return [
        server.get_entry(index)  # type: ignore[misc]
        for index in range(server.snapshot_last_index + 1, server.last_log_index + 1)
    ]


class Recorder(Callbacks):
    """Records everything a server asks of its host, and checks each callback."""

    def __init__(
        self,
        node_id: int,
        outbox: Callable[[int, int, Message], None] | None = None,
        on_apply: Callable[[int, int, Entry], None] | None = None,
    ) -> None:
        self.node_id = node_id
        self.outbox = outbox
        self.on_apply = on_apply
        # Durable state, as a host would keep it on disk.
        self.term = 0
        self.vote: int | None = None
        self.durable_log: list[tuple[int, Entry]] = []
        self.log_base = 0
        self.snapshot: Snapshot | None = None
        # Observations (volatile).
        self.state_index = 0  # last index reflected in the state machine
        self.applied: list[tuple[int, Entry]] = []
        self.loaded: list[Snapshot] = []
        self.events: list[tuple[str, object]] = []
        self.sent: list[tuple[int, Message]] = []
        self.membership_events: list[tuple[int, MembershipEvent]] = []
        self.sufficient_logs: list[int] = []
        self.debug: list[str] = []
        self.reads_ready: list[tuple[int, int]] = []  # (request id, read index)
        self.reads_failed: list[int] = []

    # -- the durable view of this recorder, for a restart
    def durable_entries(self) -> list[Entry]:
        return [entry for _, entry in self.durable_log]

    def durable_last_index(self) -> int:
        return self.durable_log[-1][0] if self.durable_log else self.log_base

    # -- sending
    def _send(self, node_id: int, msg: Message) -> None:
        self.sent.append((node_id, msg))
        self.events.append(("send", msg))
        if self.outbox is not None:
            self.outbox(self.node_id, node_id, msg)

    def send_requestvote(self, node_id: int, msg: RequestVote) -> None:
        self._send(node_id, msg)

    def send_timeoutnow(self, node_id: int, msg: TimeoutNow) -> None:
        self._send(node_id, msg)

    def send_readindex(self, node_id: int, msg: ReadIndexRequest | ReadIndexResponse) -> None:
        self._send(node_id, msg)

    def read_ready(self, request_id: int, index: int) -> None:
        assert index <= self.state_index, "a read is ready before its index is applied"
        self.reads_ready.append((request_id, index))

    def read_failed(self, request_id: int) -> None:
        self.reads_failed.append(request_id)

    def send_appendentries(self, node_id: int, msg: AppendEntries) -> None:
        self._send(node_id, msg)

    def send_installsnapshot(self, node_id: int, msg: InstallSnapshot) -> None:
        self._send(node_id, msg)

    # -- state machine
    def applylog(self, entry: Entry, index: int) -> None:
        assert index == self.state_index + 1, (index, self.state_index)
        self.state_index = index
        self.applied.append((index, entry))
        self.events.append(("applylog", index))
        if self.on_apply is not None:
            self.on_apply(self.node_id, index, entry)

    # -- durable term and vote
    def persist_term(self, term: int, voted_for: int | None) -> None:
        assert term > self.term, f"term must grow: {self.term} -> {term}"
        self.term, self.vote = term, voted_for
        self.events.append(("persist_term", (term, voted_for)))

    def persist_vote(self, voted_for: int | None) -> None:
        assert self.vote in (None, voted_for), f"second vote in term {self.term}"
        self.vote = voted_for
        self.events.append(("persist_vote", voted_for))

    # -- durable log
    def log_offer(self, entry: Entry, index: int) -> None:
        assert index == self.durable_last_index() + 1, (index, self.durable_last_index())
        self.durable_log.append((index, entry))
        self.events.append(("log_offer", index))

    def log_pop(self, entry: Entry, index: int) -> None:
        youngest = self.durable_log[-1] if self.durable_log else None
        assert youngest == (index, entry), f"log_pop({index}) is not the youngest"
        self.durable_log.pop()
        self.events.append(("log_pop", index))

    def log_poll(self, entry: Entry, index: int) -> None:
        eldest = self.durable_log[0] if self.durable_log else None
        assert eldest == (index, entry), f"log_poll({index}) is not the eldest"
        self.durable_log.pop(0)
        self.log_base = max(self.log_base, index)
        self.events.append(("log_poll", index))

    # -- snapshots
    def persist_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.events.append(("persist_snapshot", snapshot.last_index))

    def load_snapshot(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.log_base = max(self.log_base, snapshot.last_index)
        self.state_index = snapshot.last_index
        self.loaded.append(snapshot)
        self.events.append(("load_snapshot", snapshot.last_index))

    # -- notifications
    def node_has_sufficient_logs(self, node_id: int) -> None:
        self.sufficient_logs.append(node_id)

    def notify_membership_event(self, node_id: int, event: MembershipEvent) -> None:
        self.membership_events.append((node_id, event))

    def log(self, message: str) -> None:
        self.debug.append(message)


class Cluster:
    """Servers wired through one list of messages in flight.

    `members` is the bootstrap configuration every server starts with. After
    each delivery the cluster checks Election Safety (one leader per term,
    over the whole run) and State Machine Safety (one entry per applied index).
    """

    def __init__(
        self,
        ids: Iterable[int] = (1, 2, 3),
        *,
        config: Config | None = None,
        members: Membership | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config if config is not None else make_config()
        ids = tuple(ids)
        self.members: Membership = (
            members if members is not None else tuple((node, True) for node in ids)
        )
        self.seed = seed
        self.queue: list[Envelope] = []
        self.down: set[int] = set()
        self.recorders: dict[int, Recorder] = {}
        self.servers: dict[int, RaftServer] = {}
        self.leaders: dict[int, int] = {}  # term -> leader id, over the whole run
        self.applied: dict[int, Entry] = {}  # index -> entry, over every server
        self.boot_members: dict[int, Membership] = {}  # each server's bootstrap configuration
        for node in ids:
            self.boot(node)

    # ------------------------------------------------------------- servers
    def _rng(self, node: int) -> random.Random:
        return random.Random(self.seed * 1000 + node)

    def _recorder(self, node: int) -> Recorder:
        return Recorder(node, self._send, self._check_apply)

    def boot(self, node: int, members: Membership | None = None) -> RaftServer:
        """Start a fresh server with the bootstrap configuration."""
        recorder = self._recorder(node)
        server = RaftServer(node, recorder, config=self.config, rng=self._rng(node))
        members = members if members is not None else self.members
        self.boot_members[node] = members
        for member, voting in members:
            if voting:
                server.add_node(member, is_self=member == node)
            else:
                server.add_non_voting_node(member, is_self=member == node)
        self.recorders[node] = recorder
        self.servers[node] = server
        self.down.discard(node)
        return server

    def restore(
        self,
        node: int,
        *,
        term: int,
        terms: Sequence[int] = (),
        voted_for: int | None = None,
        snapshot: Snapshot | None = None,
        members: Membership | None = None,
    ) -> RaftServer:
        """Start a server from given durable state: a log with the given terms
        (after the snapshot, if any), as `RaftServer.restore` does after a crash."""
        recorder = self._recorder(node)
        first = snapshot.last_index + 1 if snapshot is not None else 1
        entries = log_of_terms(terms, first)
        recorder.term, recorder.vote = term, voted_for
        recorder.durable_log = [(first + offset, entry) for offset, entry in enumerate(entries)]
        recorder.log_base = first - 1
        recorder.snapshot = snapshot
        return self._restore_from(node, recorder, members)

    def crash(self, node: int) -> None:
        """The server stops; messages to and from it are lost."""
        self.down.add(node)
        self.queue = [m for m in self.queue if node not in (m[0], m[1])]

    def restart(self, node: int, members: Membership | None = None) -> RaftServer:
        """Bring a crashed server back from its durable state only."""
        old = self.recorders[node]
        recorder = self._recorder(node)
        recorder.term, recorder.vote = old.term, old.vote
        recorder.durable_log, recorder.log_base = list(old.durable_log), old.log_base
        recorder.snapshot = old.snapshot
        return self._restore_from(node, recorder, members)

    def _restore_from(
        self, node: int, recorder: Recorder, members: Membership | None
    ) -> RaftServer:
        snapshot = recorder.snapshot
        base = snapshot.last_index if snapshot is not None else 0
        if members is None:
            members = self.boot_members.get(node, self.members)
        self.boot_members[node] = members
        assert not recorder.durable_log or recorder.durable_log[0][0] == base + 1
        server = RaftServer.restore(
            node,
            recorder,
            config=self.config,
            rng=self._rng(node),
            members=members,
            term=recorder.term,
            voted_for=recorder.vote,
            entries=recorder.durable_entries(),
            snapshot=snapshot,
        )
        self.recorders[node] = recorder
        self.servers[node] = server
        self.down.discard(node)
        return server

    # ------------------------------------------------------------ network
    def _send(self, src: int, dst: int, msg: Message) -> None:
        if src in self.down or dst in self.down:
            return
        self.queue.append((src, dst, msg))

    def deliver(self, position: int = 0) -> Envelope:
        """Hand the message at `position` to its destination; a reply joins the queue."""
        src, dst, msg = envelope = self.queue.pop(position)
        if dst in self.down or dst not in self.servers:
            return envelope
        reply = getattr(self.servers[dst], HANDLERS[type(msg)])(src, msg)
        if reply is not None:
            self._send(dst, src, reply)
        self.check()
        return envelope

    def deliver_all(
        self,
        *,
        allow: Callable[[Envelope], bool] | None = None,
        max_steps: int = 100_000,
    ) -> int:
        """Deliver in order until the queue is empty; messages `allow` refuses
        are dropped. Returns how many were delivered."""
        delivered = 0
        for _ in range(max_steps):
            if not self.queue:
                return delivered
            if allow is not None and not allow(self.queue[0]):
                self.queue.pop(0)
                continue
            self.deliver(0)
            delivered += 1
        raise AssertionError(f"queue not empty after {max_steps} steps")

    def deliver_where(self, wanted: Callable[[Envelope], bool], max_steps: int = 10_000) -> int:
        """Deliver the messages `wanted` selects (replies included, if selected)
        and leave every other message queued, in order."""
        for delivered in range(max_steps):
            position = next((i for i, m in enumerate(self.queue) if wanted(m)), None)
            if position is None:
                return delivered
            self.deliver(position)
        raise AssertionError(f"still delivering after {max_steps} steps")

    def drop_all(self) -> None:
        self.queue.clear()

    def take(self, kind: type, src: int | None = None, dst: int | None = None) -> list[Envelope]:
        """Remove and return the queued messages of a kind (optionally src/dst)."""
        taken = [
            m
            for m in self.queue
            if isinstance(m[2], kind) and src in (None, m[0]) and dst in (None, m[1])
        ]
        self.queue = [m for m in self.queue if m not in taken]
        return taken

    # --------------------------------------------------------------- time
    def tick(self, node: int, msec: int) -> None:
        self.servers[node].periodic(msec)
        self.check()

    def heartbeat(self, node: int) -> None:
        """Let a leader's heartbeat interval pass and deliver everything."""
        self.tick(node, self.config.request_timeout_ms)
        self.deliver_all()

    def elect(self, node: int) -> RaftServer:
        """Time out `node` (it is the first to) and deliver until it leads."""
        server = self.servers[node]
        self.tick(node, 2 * self.config.election_timeout_ms)
        self.deliver_all()
        assert server.is_leader, f"node {node} did not win: {server.role}"
        return server

    # ------------------------------------------------------------ clients
    def submit(self, node: int, data: object, entry_id: int | None = None) -> EntryResponse:
        server = self.servers[node]
        if entry_id is None:
            entry_id = 10**9 + server.last_log_index + 1
        return server.recv_entry(Entry(term=0, id=entry_id, data=data))

    # ---------------------------------------------------------- checkers
    def _check_apply(self, node: int, index: int, entry: Entry) -> None:
        """State Machine Safety: every server applies the same entry at an index."""
        known = self.applied.setdefault(index, entry)
        assert known == entry, f"node {node} applied {entry} at {index}, another {known}"

    def check(self) -> None:
        """Election Safety (Raft §5.2): at most one leader per term, ever."""
        for node, server in self.servers.items():
            if server.role is Role.LEADER and node not in self.down:
                leader = self.leaders.setdefault(server.current_term, node)
                assert leader == node, (
                    f"two leaders in term {server.current_term}: {leader} and {node}"
                )

    def leader(self) -> RaftServer | None:
        """The live leader with the highest term, if any."""
        live = [s for n, s in self.servers.items() if s.is_leader and n not in self.down]
        return max(live, key=lambda s: s.current_term, default=None)
