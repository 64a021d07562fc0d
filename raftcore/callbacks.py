"""How a RaftServer reaches the world: the user's callbacks.

Subclass `Callbacks` and override what you need. The ones a server cannot
run without raise NotImplementedError, as the seed library requires them.
Every persist_* and log_* callback must be durable before it returns, or,
for storage that buffers writes, once `sync` returns: the server syncs
before anything that depends on its writes leaves it (see `sync`). A log_*
callback that cannot store raises; its exception reaches the caller of the server, and
the in-memory log stays as it was for that entry (it changes only after
the callback succeeded).
"""

from __future__ import annotations

import enum

from raftcore.messages import (
    AppendEntries,
    Entry,
    InstallSnapshot,
    ReadIndexRequest,
    ReadIndexResponse,
    RequestVote,
    Snapshot,
    TimeoutNow,
)


class MembershipEvent(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"


class Callbacks:
    def send_requestvote(self, node_id: int, msg: RequestVote) -> None:
        raise NotImplementedError("send_requestvote is required")

    def send_appendentries(self, node_id: int, msg: AppendEntries) -> None:
        raise NotImplementedError("send_appendentries is required")

    def send_installsnapshot(self, node_id: int, msg: InstallSnapshot) -> None:
        raise NotImplementedError("send_installsnapshot is required to use snapshots")

    def send_timeoutnow(self, node_id: int, msg: TimeoutNow) -> None:
        raise NotImplementedError("send_timeoutnow is required to transfer leadership")

    def send_readindex(self, node_id: int, msg: ReadIndexRequest | ReadIndexResponse) -> None:
        raise NotImplementedError("send_readindex is required to forward reads")

    def read_ready(self, request_id: int, index: int) -> None:
        """A read asked with `read_index` may now be served from the state
        machine: everything up to `index` is applied, and this server was
        leader when the read was asked (dissertation §6.4)."""

    def read_failed(self, request_id: int) -> None:
        """A read asked with `read_index` will never be ready here: this
        server stopped leading. The client asks the new leader."""

    def applylog(self, entry: Entry, index: int) -> None:
        raise NotImplementedError("applylog is required")

    def persist_vote(self, voted_for: int | None) -> None:
        raise NotImplementedError("persist_vote is required")

    def persist_term(self, term: int, voted_for: int | None) -> None:
        """Store the term and the vote together, atomically."""
        raise NotImplementedError("persist_term is required")

    def log_offer(self, entry: Entry, index: int) -> Entry | None:
        """Append entry at index to the durable log. Return None to keep the
        entry in memory as it is, or the entry with other data (a handle to
        where it is stored, say) to keep that instead; the seed's callback
        may set the entry's data buffer the same way."""
        raise NotImplementedError("log_offer is required")

    def log_pop(self, entry: Entry, index: int) -> None:
        """Remove the youngest entry (at index) from the durable log."""
        raise NotImplementedError("log_pop is required")

    def log_poll(self, entry: Entry, index: int) -> None:
        """Remove the eldest entry (at index) from the durable log; compaction
        only. The snapshot covering it is already persisted."""

    def sync(self) -> None:
        """Make every persist_* and log_* write so far durable (fsync). The
        server calls it before a message leaves (a reply, a vote request,
        entries), at the end of every message it takes (a newer term is
        durable before the next one), before it counts its own log toward a
        commit, and when a snapshot is taken. Storage that is durable on
        return, as the seed's contract asks, needs nothing here."""

    def persist_snapshot(self, snapshot: Snapshot) -> None:
        """Store a snapshot this server took; called before the log is polled."""

    def load_snapshot(self, snapshot: Snapshot) -> None:
        """Replace the state machine with a snapshot's (received or restored)
        and store the snapshot durably."""

    def node_has_sufficient_logs(self, node_id: int) -> None:
        """A non-voting member has caught up: it may now be promoted with
        ADD_NODE, from inside this callback too (no other membership change
        is pending when it is called). Raise to be asked again later."""

    def notify_membership_event(self, node_id: int, event: MembershipEvent) -> None:
        """A member was added to or removed from this server's configuration."""

    def log(self, message: str) -> None:
        """Debug output from the server."""
