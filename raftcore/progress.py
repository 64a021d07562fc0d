"""What a leader knows of each member: its vote, and how far its log goes."""

from __future__ import annotations

from dataclasses import dataclass


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

    def maybe_update(self, match_index: int) -> bool:
        """Record an acknowledged index; False when it says nothing new."""
        if match_index <= self.match_index:
            self.next_index = max(self.next_index, self.match_index + 1)
            return False
        self.match_index = match_index
        self.next_index = max(self.next_index, match_index + 1)
        return True

    def back_off(self, hint_index: int) -> None:
        """A rejection says the logs may agree only up to hint_index."""
        self.next_index = max(self.match_index + 1, hint_index + 1)
