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
        "last_entry",
        "snapshot_index",
        "snapshot_term",
        "shadow",
        "first_new",
        "removed_index",
        "removed_entry",
        "log_low",
        "applied",
        "read",
        "scalars",
    )

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.read: Callable[[NodeView], Scalars] = read_scalars  # see read_scalars
        # The last read that changed a scalar: one equal to it changed none.
        self.scalars: Scalars | None = None
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
        # Invariant: last_entry is shadow.get(last_index), kept apart because
        # every touched node's last entry is compared after every event.
        self.last_entry: Entry | None = None
        self.snapshot_index = 0
        # Invariant: snapshot_term is the view's term at snapshot_index as of the
        # last read (0 without a snapshot): read afresh every time, since it can
        # change while snapshot_index stays.
        self.snapshot_term = 0
        # Invariant: shadow holds exactly the indices (snapshot_index, last_index]
        # (but where the view could not say), each as (term, id).
        self.shadow = IndexRecords(2)
        self.first_new = 1  # entries first_new..last_index are new or overwritten
        self.removed_index = 0  # lowest index whose entry was overwritten or removed
        self.removed_entry: Entry | None = None  # what was there before
        self.log_low = 1  # lowest index whose content changed (incl. snapshot moves)
        self.applied: Sequence[tuple[int, int, int]] = ()

    def term_at(self, index: int) -> int:
        """Term of the entry at `index` >= snapshot_index (0 at index 0); -1 if unknown."""
        if index > self.snapshot_index:
            term = self.shadow.first_value(index)
            return term if term is not None else -1
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


FAR = 1 << 16
"""Holes an `IndexRecords` opens at most to keep a record in its columns."""


class IndexRecords:
    """Records per log index (a tuple of `width` values each), kept column by
    column in plain lists over a dense range of indices: a slot costs 8 bytes
    a value, where a dict of tuples costs about 100 bytes a record (its slot
    and the tuple), and the values are mostly the very ints the node's own
    log holds. The checker keeps a few records for every index of every log
    not yet compacted everywhere, so this is most of its memory.

    Column 0 holds None where no record is (a hole: rare, the indices of one
    log are dense); every other operation is O(1) amortised, except dropping
    a range, which costs the range once. A record so far from the range that
    holes would outweigh it (a node reporting a wild index) is kept aside in
    a dict instead."""

    __slots__ = ("start", "cols", "count", "far")

    def __init__(self, width: int) -> None:
        assert width >= 1
        self.start = 0  # the index of position 0
        self.cols: tuple[list[Any], ...] = tuple([] for _ in range(width))
        self.count = 0  # records held in the columns (holes not counted)
        self.far: dict[int, tuple[Any, ...]] = {}  # records outside them

    def __len__(self) -> int:
        return self.count + len(self.far)

    def get(self, index: int) -> tuple[Any, ...] | None:
        p = index - self.start
        cols = self.cols
        first = cols[0]
        if p < 0 or p >= len(first) or first[p] is None:
            return self.far.get(index) if self.far else None
        if len(cols) == 2:  # a log's (term, id): most reads
            return (first[p], cols[1][p])
        return tuple([col[p] for col in cols])

    def first_value(self, index: int) -> Any:
        """Column 0 at `index` (None where no record is), without a tuple."""
        p = index - self.start
        col = self.cols[0]
        if 0 <= p < len(col) and (value := col[p]) is not None:
            return value
        if self.far and (record := self.far.get(index)) is not None:
            return record[0]
        return None

    def put(self, index: int, record: tuple[Any, ...]) -> None:
        assert record[0] is not None
        cols = self.cols
        first = cols[0]
        p = index - self.start
        if 0 <= p < len(first):  # inside the range: most writes
            if first[p] is None:
                self.count += 1
                if self.far:
                    self.far.pop(index, None)
            if len(cols) == 2:  # a log's (term, id): most writes, no zip
                first[p], cols[1][p] = record
                return
            for col, value in zip(cols, record, strict=True):
                col[p] = value
            return
        if p == len(first) and p and not self.far:  # the next index: appends
            self.count += 1
            if len(cols) == 2:
                term, entry_id = record
                first.append(term)
                cols[1].append(entry_id)
                return
            for col, value in zip(cols, record, strict=True):
                col.append(value)
            return
        self._put_outside(index, record)

    def _put_outside(self, index: int, record: tuple[Any, ...]) -> None:
        """Open the range up to `index` (with holes), or keep it aside."""
        cols = self.cols
        size = len(cols[0])
        if not size:
            self.start = index
        p = index - self.start
        if (p < 0 and -p > FAR) or p - size > FAR:
            self.far[index] = record
            return
        if self.far:
            self.far.pop(index, None)
        if p < 0:  # below the range (a snapshot went back): open it downwards
            for col in cols:
                col[:0] = [None] * -p
            self.start = index
            p = 0
        else:
            for col in cols:
                col.extend([None] * (p - size + 1))
        self.count += 1
        for col, value in zip(cols, record, strict=True):
            col[p] = value

    def keep_above(self, index: int) -> None:
        """Drop every record at or below `index`."""
        if self.far:
            self.far = {i: r for i, r in self.far.items() if i > index}
        cut = min(index - self.start + 1, len(self.cols[0]))
        if cut <= 0:
            return
        first = self.cols[0]
        self.count -= cut - first[:cut].count(None)
        for col in self.cols:
            del col[:cut]
        self.start += cut

    def keep_through(self, index: int) -> None:
        """Drop every record above `index`."""
        if self.far:
            self.far = {i: r for i, r in self.far.items() if i <= index}
        cut = max(index - self.start + 1, 0)
        first = self.cols[0]
        if cut >= len(first):
            return
        self.count -= len(first) - cut - first[cut:].count(None)
        for col in self.cols:
            del col[cut:]

    def lowest_in(self, low: int, high: int) -> tuple[int, tuple[Any, ...]] | None:
        """The lowest index in [low, high] with a record, and the record."""
        found = [(i, r) for i, r in self.far.items() if low <= i <= high]
        first = self.cols[0]
        for p in range(max(low - self.start, 0), min(high - self.start + 1, len(first))):
            if first[p] is not None:
                found.append((self.start + p, tuple([col[p] for col in self.cols])))
                break
        return min(found) if found else None


def prune(records: dict[int, Any], old: int, new: int) -> dict[int, Any]:
    """Drop per-index records in (old, new]: each index is dropped once, so the
    cost is amortised O(1) per record; rebuild instead when that is cheaper."""
    if new - old > len(records):
        return {index: record for index, record in records.items() if index > new}
    for index in range(old + 1, new + 1):
        records.pop(index, None)
    return records
