"""What a leader knows of each member: its vote, and how far its log goes."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Member:
    node_id: int
    voting: bool
    # Invariant (leader only): match_index < next_index.
    next_index: int = 1
    match_index: int = 0
    # Heard from since the last check-quorum round.
    recent_active: bool = False
    # node_has_sufficient_logs fires once per non-voting member.
    sufficient_logs_reported: bool = False
    # Next byte of the snapshot being sent, and which snapshot it is.
    snapshot_offset: int = 0
    snapshot_index: int = 0
    # Flow control (etcd's Progress): while probing, one request at a time
    # finds where the logs agree; once replicating, requests are pipelined,
    # each remembered by its last index until an acknowledgment covers it.
    probing: bool = True
    inflight: list[int] = field(default_factory=list)
    # match_index at the last heartbeat: no progress for a whole interval with
    # a full window means the requests were lost.
    match_at_heartbeat: int = 0

    def maybe_update(self, match_index: int) -> bool:
        """Record an acknowledged index; False when it says nothing new."""
        if match_index <= self.match_index:
            self.next_index = max(self.next_index, self.match_index + 1)
            return False
        self.match_index = match_index
        if self.probing:
            # The probe found where the logs agree: start a fresh pipeline from
            # there. What was sent before the probe has, on an ordered link,
            # already been answered.
            self.probing = False
            self.inflight = []
            self.next_index = match_index + 1
            return True
        self.next_index = max(self.next_index, match_index + 1)
        if self.inflight:
            self.inflight = [last for last in self.inflight if last > match_index]
        return True

    def sent(self, last_index: int) -> None:
        """A request carrying entries through last_index went out."""
        if not self.probing:
            self.inflight.append(last_index)
            self.next_index = last_index + 1

    def window_full(self, limit: int) -> bool:
        return len(self.inflight) >= limit

    def become_probe(self) -> None:
        """Forget the pipeline: resend from just after the last known match."""
        self.probing = True
        self.inflight.clear()
        self.next_index = self.match_index + 1

    def is_stale_rejection(self, rejected_index: int) -> bool:
        """Only the answer to the current probe, or a rejection beyond what is
        matched while pipelining, says something new (etcd's maybeDecrTo);
        any other is an old answer overtaken by events."""
        if self.probing:
            return rejected_index != self.next_index - 1
        return rejected_index <= self.match_index

    def back_off(self, rejected_index: int, hint_index: int) -> None:
        """A rejection of prev_log_index `rejected_index` says the logs may agree
        only up to hint_index. The next probe goes no further than the rejected
        one: a hint is the follower's, and may lie beyond the leader's log when
        the rejection answers a request of an earlier term."""
        # The requests already sent stay counted in the window until an
        # acknowledgment covers them: they may still arrive, and forgetting
        # them would let every rejection start another full window.
        self.probing = True
        self.next_index = max(self.match_index + 1, min(hint_index + 1, rejected_index))
