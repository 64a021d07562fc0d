"""Options of a RaftServer, with their units last in their names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Config:
    # Base election timeout T; each election waits a random time in [T, 2T).
    election_timeout_ms: int = 1000
    # Interval between heartbeats (AppendEntries) from a leader.
    request_timeout_ms: int = 200
    # Raft dissertation §9.6: ask for votes without bumping the term first.
    prevote: bool = True
    # Raft dissertation §6.2: a leader that cannot reach a majority steps down.
    check_quorum: bool = True
    # Raft dissertation §6.4: a new leader appends a no-op so it can commit quickly.
    noop_on_election: bool = True
    # Most entries carried by one AppendEntries message.
    max_entries_per_msg: int = 64
    # Most AppendEntries with entries in flight to one follower (pipelining).
    max_inflight_msgs: int = 8
    # Largest chunk of snapshot data in one InstallSnapshot message.
    snapshot_chunk_bytes: int = 4096
    # Raft dissertation §6.4.1: a leader answers reads from its lease, without
    # a heartbeat round, for an election timeout less `lease_drift_ms` after
    # a round a majority answered. Safe only while clocks drift less than that.
    lease_read: bool = False
    lease_drift_ms: int = 100
    # Dissertation §6.4: a follower asked to read forwards the request to the
    # leader for a read index, and answers once it applied that far. Off, it
    # refuses with NotLeader and the client asks the leader.
    forward_reads: bool = False

    def __post_init__(self) -> None:
        if self.election_timeout_ms <= 0:
            raise ValueError(f"election_timeout_ms must be > 0, got {self.election_timeout_ms}")
        if self.request_timeout_ms <= 0:
            raise ValueError(f"request_timeout_ms must be > 0, got {self.request_timeout_ms}")
        if self.request_timeout_ms >= self.election_timeout_ms:
            raise ValueError("request_timeout_ms must be smaller than election_timeout_ms")
        if self.max_entries_per_msg < 1:
            raise ValueError(f"max_entries_per_msg must be >= 1, got {self.max_entries_per_msg}")
        if self.max_inflight_msgs < 1:
            raise ValueError(f"max_inflight_msgs must be >= 1, got {self.max_inflight_msgs}")
        if self.lease_read and not 0 <= self.lease_drift_ms < self.election_timeout_ms:
            raise ValueError("lease_drift_ms must be >= 0 and smaller than election_timeout_ms")
        if self.snapshot_chunk_bytes < 1:
            raise ValueError(f"snapshot_chunk_bytes must be >= 1, got {self.snapshot_chunk_bytes}")
