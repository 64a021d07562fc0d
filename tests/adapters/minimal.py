"""A node with only what the door requires: raftcore behind the abstract
methods of `virtraft.adapter.NodeAdapter`, and nothing optional.

No capabilities (membership, snapshots), no message facts, no scalars, no
caught-up list: every part of the harness must work with it, or say what it
lacks.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from raftcore import (
    Callbacks,
    Config,
    Entry,
    EntryResponse,
    EntryState,
    EntryType,
    NotLeader,
    RaftError,
    RaftServer,
)
from virtraft.adapter import (
    Membership,
    MembershipChange,
    NodeAdapter,
    NodeOptions,
    Redirect,
    Refused,
    Role,
    Send,
    SubmitResult,
    Submitted,
)


class _Durable(Callbacks):
    """Term, vote and log as the server persisted them; messages to `send`."""

    def __init__(self, send: Send, applied: list[tuple[int, int, int]]) -> None:
        self.send = send
        self.applied = applied
        self.term = 0
        self.voted_for: int | None = None
        self.entries: dict[int, Entry] = {}

    def send_requestvote(self, node_id, msg):  # type: ignore[no-untyped-def]
        self.send(node_id, msg)

    send_appendentries = send_installsnapshot = send_requestvote

    def applylog(self, entry: Entry, index: int) -> None:
        self.applied.append((index, entry.term, entry.id))

    def persist_vote(self, voted_for: int | None) -> None:
        self.voted_for = voted_for

    def persist_term(self, term: int, voted_for: int | None) -> None:
        self.term, self.voted_for = term, voted_for

    def log_offer(self, entry: Entry, index: int) -> None:
        self.entries[index] = entry

    def log_pop(self, entry: Entry, index: int) -> None:
        del self.entries[index]

    log_poll = log_pop


_RECEIVERS = {
    "RequestVote": "recv_requestvote",
    "AppendEntries": "recv_appendentries",
    "InstallSnapshot": "recv_installsnapshot",
    "RequestVoteResponse": "recv_requestvote_response",
    "AppendEntriesResponse": "recv_appendentries_response",
    "InstallSnapshotResponse": "recv_installsnapshot_response",
}


class MinimalNode(NodeAdapter):
    refusals = (RaftError,)
    server_class: type[RaftServer] = RaftServer

    def __init__(
        self,
        node_id: int,
        members: Membership,
        send: Send,
        rng: random.Random,
        options: NodeOptions,
    ) -> None:
        self.node_id = node_id
        self._members = tuple(members)
        self._rng = rng
        self._config = Config(
            election_timeout_ms=options.election_timeout_ms,
            request_timeout_ms=options.request_timeout_ms,
        )
        self._applied: list[tuple[int, int, int]] = []
        self._disk = _Durable(send, self._applied)
        self._server: RaftServer | None = None
        self.restart()

    # view
    @property
    def alive(self) -> bool:
        return self._server is not None

    @property
    def role(self) -> Role:
        return Role(self._server.role.value) if self._server else Role.FOLLOWER

    @property
    def term(self) -> int:
        return self._server.current_term if self._server else self._disk.term

    @property
    def voted_for(self) -> int | None:
        return self._server.voted_for if self._server else self._disk.voted_for

    @property
    def commit_index(self) -> int:
        return self._server.commit_index if self._server else 0

    @property
    def last_index(self) -> int:
        return max(self._disk.entries, default=0)

    @property
    def snapshot_index(self) -> int:
        return 0

    @property
    def snapshot_term(self) -> int:
        return 0

    def entry(self, index: int) -> tuple[int, int] | None:
        entry = self._disk.entries.get(index)
        return (entry.term, entry.id) if entry else None

    @property
    def recent_applied(self) -> Sequence[tuple[int, int, int]]:
        return self._applied

    @property
    def members(self) -> Membership:
        return self._server.members() if self._server else self._members

    # actions
    def begin_step(self) -> None:
        self._applied.clear()

    def deliver(self, src: int, message: object) -> None:
        if self._server is None:
            return
        reply = getattr(self._server, _RECEIVERS[type(message).__name__])(src, message)
        if reply is not None:
            self._disk.send(src, reply)

    def tick(self, msec: int) -> None:
        if self._server is not None:
            self._server.periodic(msec)

    def submit(self, command_id: int, data: object) -> SubmitResult:
        if self._server is None:
            return Refused("down")
        try:
            response = self._server.recv_entry(Entry(0, command_id, EntryType.NORMAL, data))
        except NotLeader as exc:
            return Redirect(exc.leader_id)
        except RaftError as exc:
            return Refused(str(exc))
        return Submitted(response.index, response.term)

    def change_membership(self, change: MembershipChange, node: int) -> SubmitResult:
        return Refused("this node does not change membership")

    def take_snapshot(self) -> bool:
        return False

    def crash(self) -> None:
        self._server = None
        self._applied.clear()

    def restart(self) -> None:
        disk = self._disk
        self._server = self.server_class.restore(
            self.node_id,
            disk,
            config=self._config,
            rng=self._rng,
            members=self._members,
            term=disk.term,
            voted_for=disk.voted_for,
            entries=[disk.entries[i] for i in sorted(disk.entries)],
            snapshot=None,
        )

    def is_committed(self, submitted: Submitted) -> bool | None:
        if self._server is None:
            return None
        state = self._server.entry_committed(EntryResponse(0, submitted.term, submitted.index))
        return None if state is EntryState.PENDING else state is EntryState.COMMITTED


def factory(
    node_id: int, members: Membership, send: Send, rng: random.Random, options: NodeOptions
) -> MinimalNode:
    return MinimalNode(node_id, members, send, rng, options)


class _VotesForAnyone(RaftServer):
    """Grants every vote request of its term (Raft §5.2 and §5.4.1 dropped)."""

    def _may_grant_vote(self, msg) -> bool:  # type: ignore[no-untyped-def]
        return msg.term == self.current_term


class PromiscuousNode(MinimalNode):
    server_class = _VotesForAnyone


def promiscuous_factory(
    node_id: int, members: Membership, send: Send, rng: random.Random, options: NodeOptions
) -> PromiscuousNode:
    return PromiscuousNode(node_id, members, send, rng, options)
