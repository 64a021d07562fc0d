"""What a leader knows of each member: its vote, how far its log goes, and
how to send it more.

Flow control follows etcd's tracker/progress.go. A member is in one of three
states, entered only through the `become_*` methods:

- PROBE: the leader does not know where the member's log agrees with its
  own; it sends one request at a time and moves back on each rejection.
- REPLICATE: the logs agree up to match_index; requests are pipelined, up
  to a window of max_inflight_msgs, each remembered by its last index until
  an acknowledgment covers it.
- SNAPSHOT: a probe found that the member needs entries the leader has
  compacted; the leader sends its snapshot instead, chunk by chunk.

An acknowledgment that says something new moves a probing member (or one
that was sent the snapshot) to REPLICATE. A rejection, or a full window that
made no progress for a whole heartbeat interval, moves it back to PROBE.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ProgressState(enum.Enum):
    PROBE = "probe"
    REPLICATE = "replicate"
    SNAPSHOT = "snapshot"


# The states as module globals, for the comparisons made on every message:
# on Python 3.11 `ProgressState.PROBE` is found through EnumType.__getattr__,
# at several times the cost of a global.
PROBE = ProgressState.PROBE
REPLICATE = ProgressState.REPLICATE
SNAPSHOT = ProgressState.SNAPSHOT


@dataclass(slots=True)
class Progress:
    node_id: int
    voting: bool
    # Invariant (leader only): match_index < next_index.
    next_index: int = 1
    match_index: int = 0
    state: ProgressState = PROBE
    # Last index of each request in flight, oldest first. Invariant: only
    # REPLICATE adds to it, and entering REPLICATE empties it. In PROBE and
    # SNAPSHOT it keeps the requests pipelined before a rejection until an
    # acknowledgment covers them: they may still arrive.
    inflight: list[int] = field(default_factory=list)
    # Heard from since the last check-quorum round.
    recent_active: bool = False
    # node_has_sufficient_logs fires once per non-voting member.
    sufficient_logs_reported: bool = False
    # The snapshot being sent (its last index) and its next byte. Invariant:
    # in SNAPSHOT, snapshot_index is the leader's snapshot.
    snapshot_index: int = 0
    snapshot_offset: int = 0
    # match_index at the last heartbeat: no progress for a whole interval with
    # a full window means the requests were lost.
    match_at_heartbeat: int = 0

    # ------------------------------------------------------------ transitions

    def reset(self, next_index: int) -> None:
        """A new leader knows nothing of the member yet (Raft Figure 2:
        nextIndex is the leader's last index + 1, matchIndex 0): it probes."""
        self.match_index = 0
        self.match_at_heartbeat = 0
        self.recent_active = False
        self.snapshot_offset = 0
        self.become_probe()
        self.next_index = next_index

    def become_probe(self) -> None:
        """Forget the pipeline: resend from just after the last known match."""
        self.state = PROBE
        self.inflight.clear()
        self.next_index = self.match_index + 1

    def become_replicate(self) -> None:
        """The logs agree up to match_index: start a fresh pipeline from
        there. What was sent before the probe has, on an ordered link,
        already been answered."""
        self.state = REPLICATE
        self.inflight = []
        self.next_index = self.match_index + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        """A probe needs compacted entries: send the snapshot through
        snapshot_index instead."""
        self.state = SNAPSHOT
        self.aim_snapshot(snapshot_index)

    # ---------------------------------------------------------------- events

    def aim_snapshot(self, snapshot_index: int) -> None:
        """Send the snapshot through snapshot_index: from its first byte,
        unless that snapshot is the one already under way."""
        if self.snapshot_index != snapshot_index:
            self.snapshot_index = snapshot_index
            self.snapshot_offset = 0

    def maybe_update(self, match_index: int) -> bool:
        """Record an acknowledged index; False when it says nothing new."""
        if match_index <= self.match_index:
            self.next_index = max(self.next_index, self.match_index + 1)
            return False
        self.match_index = match_index
        if self.state is not REPLICATE:
            self.become_replicate()
            return True
        self.next_index = max(self.next_index, match_index + 1)
        if self.inflight:
            self.inflight = [last for last in self.inflight if last > match_index]
        return True

    def sent(self, last_index: int) -> None:
        """A request carrying entries through last_index went out."""
        if self.state is REPLICATE:
            self.inflight.append(last_index)
            self.next_index = last_index + 1

    def window_full(self, limit: int) -> bool:
        return len(self.inflight) >= limit

    def is_stale_rejection(self, rejected_index: int) -> bool:
        """Only the answer to the current probe, or a rejection beyond what is
        matched while pipelining, says something new (etcd's maybeDecrTo);
        any other is an old answer overtaken by events."""
        if self.state is not REPLICATE:
            return rejected_index != self.next_index - 1
        return rejected_index <= self.match_index

    def back_off(self, rejected_index: int, hint_index: int) -> None:
        """A rejection of prev_log_index `rejected_index` says the logs may agree
        only up to hint_index: probe again. The next probe goes no further than
        the rejected one: a hint is the follower's, and may lie beyond the
        leader's log when the rejection answers a request of an earlier term."""
        # Unlike become_probe, the requests already sent stay counted in the
        # window until an acknowledgment covers them: they may still arrive,
        # and forgetting them would let every rejection start another window.
        self.state = PROBE
        self.next_index = max(self.match_index + 1, min(hint_index + 1, rejected_index))
