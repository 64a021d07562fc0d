"""What the checker remembers: one `NodeState` per node (a shadow of its log
and the values it had before the event), the cluster-wide `World` the
invariants share (committed entries, leaders per term), the change bits an
event sets, and the `Violation` a broken invariant reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import NodeView, Role

Entry = tuple[int, int]
"""(term, entry id), as `NodeView.entry` returns it."""

LEADER = Role.LEADER
CANDIDATE = Role.CANDIDATE
FOLLOWER = Role.FOLLOWER

# What changed on one node during one event, as bits of `NodeState.mask`.
TERM = 1
VOTE = 2
ROLE = 4
LOG = 8  # an entry appended, overwritten or removed, or the snapshot moved
COMMIT = 16
APPLIED = 32
ALIVE = 64
NEW = 128  # first time the checker sees this node
# Narrower bits, so that an invariant that only a rare change can break is
# not called for the common one (every append is a LOG change).
LOG_REMOVED = 256  # with LOG: an entry was overwritten or removed
COMMIT_BACK = 512  # with COMMIT: the commit index went down
ALL_CHANGES = 1023


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken safety invariant: enough to print, shrink and report it."""

    invariant: str
    step: int
    nodes: tuple[int, ...]
    message: str
    witness: dict[str, Any]  # JSON-serialisable: the conflicting facts


def entry_text(term: int, entry_id: int | None) -> str:
    if entry_id is None:
        return f"(term {term})"
    return f"(term {term}, id {entry_id})"


Scalars = tuple[bool, str, int, int | None, int, int, int]
"""(alive, role, term, voted_for, commit_index, last_index, snapshot_index)."""


def read_scalars(view: NodeView) -> Scalars:
    """What the checker reads of every touched node after every event, one
    property at a time. A view whose class has a `scalars()` method returning
    the same tuple is read with that instead, in one call (the raftcore node
    does: the reads are most of the checker's cost per event)."""
    return (
        view.alive,
        view.role,
        view.term,
        view.voted_for,
        view.commit_index,
        view.last_index,
        view.snapshot_index,
    )


def entry_json(entry: Entry | None) -> dict[str, int] | None:
    if entry is None:
        return None
    return {"term": entry[0], "id": entry[1]}


class NodeState:
    """The checker's memory of one node. `prev_*` hold the values from before
    the current event, so an invariant compares without re-reading the view;
    the log fields describe this event's log change and are valid only when
    `mask & LOG`."""

    __slots__ = (
        "node_id",
        "mask",
        "alive",
        "prev_alive",
        "role",
        "prev_role",
        "term",
        "prev_term",
        "voted_for",
        "commit_index",
        "prev_commit",
        "restarted",
        "last_index",
        "last_term",
        "snapshot_index",
        "snapshot_term",
        "shadow",
        "first_new",
        "removed_index",
        "removed_entry",
        "log_low",
        "applied",
        "read",
    )

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.read: Callable[[NodeView], Scalars] = read_scalars  # see read_scalars
        self.mask = 0
        self.alive = False
        self.prev_alive = False
        self.role: str = FOLLOWER
        self.prev_role: str = FOLLOWER
        self.term = 0
        self.prev_term = 0
        self.voted_for: int | None = None
        self.commit_index = 0
        self.prev_commit = 0
        self.restarted = False  # node_restarted() since the last observation
        self.last_index = 0
        self.last_term = 0  # term of the entry at last_index (-1 if the view hid it)
        self.snapshot_index = 0
        # Invariant: snapshot_term is the view's term at snapshot_index as of the
        # last read (0 without a snapshot): read afresh every time, since it can
        # change while snapshot_index stays.
        self.snapshot_term = 0
        # Invariant: shadow holds exactly the indices (snapshot_index, last_index].
        self.shadow: dict[int, Entry] = {}
        self.first_new = 1  # entries first_new..last_index are new or overwritten
        self.removed_index = 0  # lowest index whose entry was overwritten or removed
        self.removed_entry: Entry | None = None  # what was there before
        self.log_low = 1  # lowest index whose content changed (incl. snapshot moves)
        self.applied: Sequence[tuple[int, int, int]] = ()

    def term_at(self, index: int) -> int:
        """Term of the entry at `index` >= snapshot_index (0 at index 0); -1 if unknown."""
        if index > self.snapshot_index:
            entry = self.shadow.get(index)
            return entry[0] if entry is not None else -1
        return self.snapshot_term if index == self.snapshot_index else -1


@dataclass(frozen=True, slots=True)
class Committed:
    """The highest committed entry seen so far, as its first reporter held it."""

    index: int
    term: int
    entry_id: int | None  # None when the reporter held it only in its snapshot
    in_term: int  # reporter's term then: an upper bound on the term that committed it
    node: int
    step: int

    def held_by(self, node: NodeState) -> bool:
        """A node holds it if its log has it at `index` or its snapshot covers
        it: ends beyond it, or at it with its term (the one term known there)."""
        snap = node.snapshot_index
        if snap >= self.index:
            return snap > self.index or node.snapshot_term == self.term
        entry = node.shadow.get(self.index)
        return (
            entry is not None
            and entry[0] == self.term
            and (self.entry_id is None or entry[1] == self.entry_id)
        )

    def text(self) -> str:
        return entry_text(self.term, self.entry_id)

    def json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "term": self.term,
            "id": self.entry_id,
            "reported_by": self.node,
            "reported_at_step": self.step,
        }


class World:
    """Facts several invariants share, maintained by `Checker`."""

    __slots__ = (
        "nodes",
        "committed",
        "commit_moved",
        "voters",
        "member_ids",
        "config_node",
        "config_moved",
        "watermark",
    )

    def __init__(self) -> None:
        self.nodes: dict[int, NodeState] = {}
        self.committed: Committed | None = None
        self.commit_moved = False  # `committed` changed during this step
        # The configuration last read from the node with the most up-to-date
        # log, while it was alive.
        self.voters: tuple[int, ...] = ()
        self.member_ids: frozenset[int] = frozenset()
        self.config_node: int | None = None
        self.config_moved = False  # `voters` changed during this step
        # Every member's snapshot covers indices <= watermark: records there are pruned.
        self.watermark = 0


def prune(records: dict[int, Any], old: int, new: int) -> dict[int, Any]:
    """Drop per-index records in (old, new]: each index is dropped once, so the
    cost is amortised O(1) per record; rebuild instead when that is cheaper."""
    if new - old > len(records):
        return {index: record for index, record in records.items() if index > new}
    for index in range(old + 1, new + 1):
        records.pop(index, None)
    return records
