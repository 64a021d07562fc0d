"""Linearizable reads without writing to the log (Raft dissertation §6.4).

A read is linearizable if it sees every write that completed before it was
asked. The leader knows those writes are committed, but it may no longer be
the leader: a newer one may have committed more. ReadIndex proves it still
leads without touching the log:

1. the read index is the commit index, once the leader has committed an
   entry of its own term (before that, its commit index may lag the last
   leader's);
2. the leader starts a heartbeat round; once a majority of voters answered
   the round, no other leader existed when the read was asked;
3. the read is served once the state machine applied up to the read index.

With a lease (§6.4.1), step 2 is skipped while a round that a majority
answered is less than an election timeout (minus a drift margin) old: no
voter of that majority will vote for another leader before then.

This module keeps the leader's bookkeeping; the rules that use it are
methods of RaftServer named for them (`read_index`, `_serve_reads`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PendingRead:
    request_id: int
    round: int  # the heartbeat round a majority must answer; 0: the lease covers it
    index: int | None  # the read index; None until this term committed an entry
    # A follower's read (its request id is the follower's): the leader sends
    # it the index instead of serving it, and the follower applies that far.
    reply_to: int | None = None


@dataclass(slots=True)
class Reads:
    """One leader term's reads in waiting and its heartbeat rounds."""

    pending: list[PendingRead] = field(default_factory=list)
    # The current heartbeat round; 0 until a read (or the lease) needs one,
    # so that a leader serving no reads sends what it always sent.
    round: int = 0
    sent_ms: dict[int, int] = field(default_factory=dict)  # round -> the leader's clock
    acked: dict[int, int] = field(default_factory=dict)  # member -> newest round it answered
    confirmed: int = 0  # the newest round a majority answered
    lease_until_ms: int = 0

    def start_round(self, now_ms: int) -> int:
        self.round += 1
        self.sent_ms[self.round] = now_ms
        return self.round

    def confirm(self, round_: int, lease_ms: int | None) -> None:
        """A majority answered `round_`; with a lease, it runs from when the
        round was sent (not answered: the answers may be late)."""
        if round_ <= self.confirmed:
            return
        self.confirmed = round_
        if lease_ms is not None and round_ in self.sent_ms:
            self.lease_until_ms = self.sent_ms[round_] + lease_ms
        for old in [r for r in self.sent_ms if r < round_]:
            del self.sent_ms[old]
