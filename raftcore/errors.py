"""One exception hierarchy for everything raftcore refuses to do."""

from __future__ import annotations


class RaftError(Exception):
    """Base class: every refusal by a RaftServer is one of these."""


class NotLeader(RaftError):
    """A client request reached a server that is not the leader."""

    def __init__(self, leader_id: int | None) -> None:
        self.leader_id = leader_id
        where = f"try node {leader_id}" if leader_id is not None else "no leader is known"
        super().__init__(f"not the leader; {where}")


class OneVotingChangeOnly(RaftError):
    """A membership change was offered while another one is still uncommitted."""


class SnapshotInProgress(RaftError):
    """begin_snapshot was called twice, or the log was compacted mid-snapshot."""


class NeedsSnapshot(RaftError):
    """The entries asked for were compacted away; only a snapshot has them."""


class Shutdown(RaftError):
    """The server was removed from the cluster and takes no more requests."""


class InvalidMessage(RaftError):
    """A message is malformed or comes from a node this server does not know."""


class InvalidOperation(RaftError):
    """An API call that the server's current state does not allow."""
