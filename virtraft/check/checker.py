"""Raft safety invariants, checked after every simulator event.

Each invariant is one small class named as in the design (`ElectionSafety`,
`LogMatching`, ...) with an `observe(step, node)` method; `Checker` composes
the selected ones and calls an invariant only for a node whose change (term,
vote, role, log, commit, applied) is one the invariant watches.

Why incremental: the simulator aims at ~50k events/s over long runs, so the
work per event must not grow with the log or the run. The checker keeps a
shadow of every node's log (index -> (term, id)) and re-reads only touched
nodes, comparing a view from `last_index` backwards until the shadow agrees:
amortised O(entries appended). Entries at or below a node's snapshot index
are compacted (treated as committed, never re-read), and per-index records
are pruned below the snapshot index of every member of the configuration.

What that buys and costs: the backward scan stops at the first index where
the shadow agrees, so a node that rewrites an entry below an unchanged last
entry is not seen rewriting it. In Raft that cannot happen without breaking
LogMatching first (a changed entry below means a changed entry on top), so
only a node corrupting its own log in the middle goes unnoticed. Applied
entries are all checked, so a restart that replays a long log costs what
the replay cost the node.

Use from the simulator:

    checker = Checker()                # or Checker(["LogMatching", ...])
    checker.node_restarted(node_id)    # before observe() of the restart step
    found = checker.observe(step, views, touched)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from virtraft.adapter import NodeView, Role

__all__ = ["INVARIANTS", "Checker", "Committed", "Invariant", "NodeState", "Violation"]

Entry = tuple[int, int]
"""(term, entry id), as `NodeView.entry` returns it."""

_LEADER = Role.LEADER
_FOLLOWER = Role.FOLLOWER

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
_ALL_CHANGES = 1023


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken safety invariant: enough to print, shrink and report it."""

    invariant: str
    step: int
    nodes: tuple[int, ...]
    message: str
    witness: dict[str, Any]  # JSON-serialisable: the conflicting facts


def _entry_text(term: int, entry_id: int | None) -> str:
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
    return (view.alive, view.role, view.term, view.voted_for, view.commit_index,
            view.last_index, view.snapshot_index)


def _entry_json(entry: Entry | None) -> dict[str, int] | None:
    if entry is None:
        return None
    return {"term": entry[0], "id": entry[1]}


class NodeState:
    """The checker's memory of one node. `prev_*` hold the values from before
    the current event, so an invariant compares without re-reading the view;
    the log fields describe this event's log change and are valid only when
    `mask & LOG`."""

    __slots__ = (
        "node_id", "mask", "alive", "prev_alive", "role", "prev_role", "term", "prev_term",
        "voted_for", "commit_index", "prev_commit", "restarted", "last_index", "last_term",
        "snapshot_index", "snapshot_term", "shadow", "first_new", "removed_index",
        "removed_entry", "log_low", "applied", "read",
    )

    def __init__(self, node_id: int) -> None:
        self.node_id = node_id
        self.read: Callable[[NodeView], Scalars] = read_scalars  # see read_scalars
        self.mask = 0
        self.alive = False
        self.prev_alive = False
        self.role: str = _FOLLOWER
        self.prev_role: str = _FOLLOWER
        self.term = 0
        self.prev_term = 0
        self.voted_for: int | None = None
        self.commit_index = 0
        self.prev_commit = 0
        self.restarted = False  # node_restarted() since the last observation
        self.last_index = 0
        self.last_term = 0  # term of the entry at last_index (-1 if the view hid it)
        self.snapshot_index = 0
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
        """A node holds it if its log has it at `index` or its snapshot covers it."""
        if node.snapshot_index >= self.index:
            return True
        entry = node.shadow.get(self.index)
        return (
            entry is not None
            and entry[0] == self.term
            and (self.entry_id is None or entry[1] == self.entry_id)
        )

    def text(self) -> str:
        return _entry_text(self.term, self.entry_id)

    def json(self) -> dict[str, Any]:
        return {"index": self.index, "term": self.term, "id": self.entry_id,
                "reported_by": self.node, "reported_at_step": self.step}


class World:
    """Facts several invariants share, maintained by `Checker`."""

    __slots__ = ("nodes", "committed", "commit_moved", "voters", "member_ids",
                 "config_node", "config_moved", "watermark")

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


class Invariant:
    """One named safety property. `observe` runs for a node whose change mask
    meets `watches`; `end_step` after all touched nodes, in a step where some
    node changed or a shared fact moved (a step that changed nothing cannot
    break anything: most ticks change nothing); `prune` when the
    watermark rises from `old` to `new`, to forget per-index records at or
    below it: every member has compacted them, so no node can contradict them."""

    name: ClassVar[str]
    watches: ClassVar[int]

    def __init__(self, world: World) -> None:
        self.world = world

    def observe(self, step: int, node: NodeState) -> Violation | None:
        raise NotImplementedError

    def end_step(self, step: int) -> Violation | None:
        return None

    def prune(self, old: int, new: int) -> None:
        return None

    def records(self) -> int:
        """How many per-index records it holds (for tests and benchmarks)."""
        return 0


class ElectionSafety(Invariant):
    """Raft §5.2: at most one leader per term, over the whole history."""

    name = "ElectionSafety"
    watches = ROLE | TERM

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._leader_of: dict[int, int] = {}  # term -> first leader seen

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.role != _LEADER:
            return None
        term = node.term
        first = self._leader_of.setdefault(term, node.node_id)
        if first == node.node_id:
            return None
        return Violation(
            self.name, step, (first, node.node_id),
            f"nodes {first} and {node.node_id} both led term {term}",
            {"term": term, "leaders": [first, node.node_id]},
        )


class VoteOnce(Invariant):
    """Raft §5.2: one vote per term, durable across restarts (a vote going
    A -> None -> B in one term is the "vote not persisted" bug)."""

    name = "VoteOnce"
    watches = TERM | VOTE

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._latest: dict[int, tuple[int, int | None]] = {}  # node -> (term, vote)

    def observe(self, step: int, node: NodeState) -> Violation | None:
        term = node.term
        vote = node.voted_for
        nid = node.node_id
        latest = self._latest.get(nid)
        if latest is None or term > latest[0]:
            self._latest[nid] = (term, vote)
            return None
        # A lower term is TermMonotonic's finding; forgetting a vote is only
        # a finding once a different vote follows.
        if term < latest[0] or vote is None or vote == latest[1]:
            return None
        self._latest[nid] = (term, vote)
        if latest[1] is None:
            return None
        return Violation(
            self.name, step, (nid, latest[1], vote),
            f"node {nid} voted for node {latest[1]} and then for node {vote} in term {term}",
            {"node": nid, "term": term, "first_vote": latest[1], "second_vote": vote},
        )


class TermMonotonic(Invariant):
    """A node's term never decreases: it is durable, so not across restarts either."""

    name = "TermMonotonic"
    watches = TERM

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.term >= node.prev_term:
            return None
        return Violation(
            self.name, step, (node.node_id,),
            f"node {node.node_id}'s term went from {node.prev_term} down to {node.term}",
            {"node": node.node_id, "before": node.prev_term, "after": node.term,
             "alive": node.alive},
        )


class CommitMonotonic(Invariant):
    """A node's commit index never decreases within one incarnation (it is
    volatile: a crash or restart legitimately resets it)."""

    name = "CommitMonotonic"
    watches = COMMIT_BACK

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.commit_index >= node.prev_commit:
            return None
        if not (node.alive and node.prev_alive) or node.restarted:
            return None
        return Violation(
            self.name, step, (node.node_id,),
            f"node {node.node_id}'s commit index went from {node.prev_commit} down to "
            f"{node.commit_index} without a restart",
            {"node": node.node_id, "before": node.prev_commit, "after": node.commit_index},
        )


class LeaderAppendOnly(Invariant):
    """Raft §5.3: a leader never overwrites or deletes entries of its own log
    while it stays leader of the same term (compaction is not deletion)."""

    name = "LeaderAppendOnly"
    watches = LOG_REMOVED

    def observe(self, step: int, node: NodeState) -> Violation | None:
        index = node.removed_index
        if not index or node.role != _LEADER or node.prev_role != _LEADER:
            return None
        if node.term != node.prev_term:
            return None
        old = node.removed_entry
        assert old is not None
        new = node.shadow.get(index)
        nid = node.node_id
        if new is None:
            what = f"removed its entry {_entry_text(*old)} at index {index}"
        else:
            what = (f"overwrote its entry {_entry_text(*old)} at index {index} "
                    f"with {_entry_text(*new)}")
        return Violation(
            self.name, step, (nid,),
            f"leader {nid} of term {node.term} {what}",
            {"node": nid, "term": node.term, "index": index, "before": _entry_json(old),
             "after": _entry_json(new), "last_index": node.last_index},
        )


class LogMatching(Invariant):
    """Raft §5.3: two logs with an entry of the same index and term hold the
    same entry there and agree on everything before it. Checked per new entry
    against one global record per (index, term): (id, term at index-1, node);
    by induction on the index, agreeing on the previous term covers the prefix."""

    name = "LogMatching"
    watches = LOG

    def __init__(self, world: World) -> None:
        super().__init__(world)
        # index -> (term, id, previous term, node): the first entry seen there.
        self._first: dict[int, tuple[int, int, int, int]] = {}
        # index -> further records with other terms (uncommitted, overwritten ones).
        self._others: dict[int, list[tuple[int, int, int, int]]] = {}

    def observe(self, step: int, node: NodeState) -> Violation | None:
        last = node.last_index
        lo = max(node.first_new, self.world.watermark + 1)
        if lo > last:
            return None
        shadow = node.shadow
        nid = node.node_id
        prev_term = node.term_at(lo - 1)
        first = self._first
        for index in range(lo, last + 1):
            entry = shadow.get(index)
            if entry is None:  # the view could not say; nothing to compare
                return None
            term, entry_id = entry
            record = first.get(index)
            if record is None:
                first[index] = (term, entry_id, prev_term, nid)
            elif record[0] != term:
                record = self._other(index, term, entry_id, prev_term, nid)
            if record is not None and (record[1] != entry_id or record[2] != prev_term):
                return self._violation(step, node, index, entry, prev_term, record)
            prev_term = term
        return None

    def _other(
        self, index: int, term: int, entry_id: int, prev_term: int, nid: int
    ) -> tuple[int, int, int, int] | None:
        """The record of (index, term) besides the first one, made if absent."""
        records = self._others.setdefault(index, [])
        for record in records:
            if record[0] == term:
                return record
        records.append((term, entry_id, prev_term, nid))
        return None

    def _violation(
        self, step: int, node: NodeState, index: int, entry: Entry, prev_term: int,
        record: tuple[int, int, int, int],
    ) -> Violation:
        nid = node.node_id
        other = record[3]
        if record[1] != entry[1]:
            message = (f"node {nid} holds {_entry_text(*entry)} at index {index} but node "
                       f"{other} holds {_entry_text(record[0], record[1])} there")
        else:
            message = (f"nodes {nid} and {other} both hold {_entry_text(*entry)} at index "
                       f"{index} but disagree before it (term {prev_term} vs term "
                       f"{record[2]} at index {index - 1})")
        return Violation(
            self.name, step, (nid, other), message,
            {"index": index,
             "entry": {"node": nid, "term": entry[0], "id": entry[1], "prev_term": prev_term},
             "other": {"node": other, "term": record[0], "id": record[1],
                       "prev_term": record[2]}},
        )

    def prune(self, old: int, new: int) -> None:
        self._first = _prune(self._first, old, new)
        self._others = _prune(self._others, old, new)

    def records(self) -> int:
        return len(self._first) + len(self._others)


class LeaderCompleteness(Invariant):
    """Raft §5.4: a leader of a term above the one that committed an entry
    holds that entry. Checked for the highest committed index only: by
    LogMatching, holding it covers every committed entry before it."""

    name = "LeaderCompleteness"
    watches = ROLE | TERM

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.role != _LEADER:
            return None
        if node.prev_role == _LEADER and node.prev_term == node.term:
            return None  # not newly elected
        committed = self.world.committed
        # A leader of a term at or below the committing term may lack it
        # legitimately (its votes were granted before that commit).
        if committed is None or node.term <= committed.in_term or committed.held_by(node):
            return None
        nid = node.node_id
        held = node.shadow.get(committed.index)
        if held is not None:
            has = f"it holds {_entry_text(*held)} there"
        else:
            has = f"its log ends at index {node.last_index}"
        return Violation(
            self.name, step, (nid, committed.node),
            f"node {nid} became leader of term {node.term} without the committed entry "
            f"{committed.text()} at index {committed.index} ({has})",
            {"leader": nid, "term": node.term, "committed": committed.json(),
             "held": _entry_json(held), "last_index": node.last_index,
             "snapshot_index": node.snapshot_index},
        )


class StateMachineSafety(Invariant):
    """Raft §5.4.3: every node applies the same entry at a given index: one
    global history of applied entries, (term, id, node) per index."""

    name = "StateMachineSafety"
    watches = APPLIED

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._history: dict[int, tuple[int, int, int]] = {}

    def observe(self, step: int, node: NodeState) -> Violation | None:
        history = self._history
        watermark = self.world.watermark
        nid = node.node_id
        for index, term, entry_id in node.applied:
            if index <= watermark:
                continue
            first = history.get(index)
            if first is None:
                history[index] = (term, entry_id, nid)
            elif first[0] != term or first[1] != entry_id:
                return Violation(
                    self.name, step, (nid, first[2]),
                    f"node {nid} applied {_entry_text(term, entry_id)} at index {index} but "
                    f"node {first[2]} applied {_entry_text(first[0], first[1])} there",
                    {"index": index,
                     "applied": {"node": nid, "term": term, "id": entry_id},
                     "first_applied": {"node": first[2], "term": first[0], "id": first[1]}},
                )
        return None

    def prune(self, old: int, new: int) -> None:
        self._history = _prune(self._history, old, new)

    def records(self) -> int:
        return len(self._history)


class CommittedNeverLost(Invariant):
    """What a majority acknowledged stays durable: the highest committed entry
    is held (log or snapshot, crashed nodes included) by enough voters of the
    current configuration that every majority contains a holder; otherwise a
    leader without it could be elected. Reported once per committed index
    until it holds again."""

    name = "CommittedNeverLost"
    watches = LOG

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._dirty = False  # a log change at or below the committed index
        self._fired_for = 0  # committed index already reported, 0 if none

    def observe(self, step: int, node: NodeState) -> Violation | None:
        committed = self.world.committed
        if committed is not None and node.log_low <= committed.index:
            self._dirty = True
        return None

    def end_step(self, step: int) -> Violation | None:
        world = self.world
        if not (self._dirty or world.commit_moved or world.config_moved):
            return None
        self._dirty = False
        committed = world.committed
        voters = world.voters
        if committed is None or not voters:
            return None
        nodes = world.nodes
        # Every majority meets the holders iff holders > voters - majority.
        spare = len(voters) - (len(voters) // 2 + 1)
        holders = 0
        for voter in voters:
            node = nodes.get(voter)
            if node is not None and committed.held_by(node):
                holders += 1
                if holders > spare:  # enough: counting the rest changes nothing
                    self._fired_for = 0
                    return None
        if self._fired_for == committed.index:
            return None
        self._fired_for = committed.index
        held = [v for v in voters if v in nodes and committed.held_by(nodes[v])]
        return Violation(
            self.name, step, tuple(voters),
            f"committed entry {committed.text()} at index {committed.index} is held by "
            f"{holders} of {len(voters)} voters {held}, so a majority without it can "
            f"elect a leader",
            {"committed": committed.json(), "voters": list(voters), "holders": held,
             "needed": spare + 1},
        )


def _prune(records: dict[int, Any], old: int, new: int) -> dict[int, Any]:
    """Drop per-index records in (old, new]: each index is dropped once, so the
    cost is amortised O(1) per record; rebuild instead when that is cheaper."""
    if new - old > len(records):
        return {index: record for index, record in records.items() if index > new}
    for index in range(old + 1, new + 1):
        records.pop(index, None)
    return records


_CLASSES: tuple[type[Invariant], ...] = (
    ElectionSafety, VoteOnce, TermMonotonic, CommitMonotonic, LeaderAppendOnly,
    LogMatching, LeaderCompleteness, StateMachineSafety, CommittedNeverLost,
)
INVARIANTS: tuple[str, ...] = tuple(cls.name for cls in _CLASSES)
_BY_NAME: dict[str, type[Invariant]] = {cls.name: cls for cls in _CLASSES}

_Observer = Callable[[int, NodeState], Violation | None]


def _selected(invariants: Iterable[str] | None) -> tuple[str, ...]:
    """Names in INVARIANTS order; a single string is taken as one name."""
    if invariants is None:
        return INVARIANTS
    wanted = {invariants} if isinstance(invariants, str) else set(invariants)
    unknown = sorted(name for name in wanted if name not in _BY_NAME)
    if unknown:
        raise ValueError(
            f"unknown invariant {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(INVARIANTS)}"
        )
    return tuple(name for name in INVARIANTS if name in wanted)


class Checker:
    """Checks the selected invariants after every simulator event."""

    def __init__(self, invariants: Iterable[str] | None = None) -> None:
        self.invariants: tuple[str, ...] = _selected(invariants)
        self._world = world = World()
        self._checks: tuple[Invariant, ...] = tuple(_BY_NAME[n](world) for n in self.invariants)
        # Observers per change mask, so an event that changed nothing costs
        # nothing; filled in as masks occur (a run meets few of the 1024, and
        # every seed of a campaign makes a checker).
        self._dispatch: list[tuple[_Observer, ...] | None] = [None] * (_ALL_CHANGES + 1)
        self._end_hooks = tuple(
            inv.end_step for inv in self._checks if type(inv).end_step is not Invariant.end_step
        )
        self._pruners = tuple(
            inv.prune for inv in self._checks if type(inv).prune is not Invariant.prune
        )
        self._pos: dict[int, int] = {}  # node id -> position in `views`
        self._n_views = -1
        self._unseen: list[int] = []  # ids found in views, not yet observed
        # The configuration source's log key: (last log term, last index).
        self._config_term = -1
        self._config_last = -1
        self._config_raw: object = None  # the members value last read
        self._config_search = False  # the source fell back: search all nodes again
        self._config_read = False  # re-read the source's members
        self._snapshots_moved = False  # recompute the watermark

    # ----------------------------------------------------------------- API

    def observe(
        self, step: int, views: Sequence[NodeView], touched: Sequence[int]
    ) -> list[Violation]:
        """Check the invariants after one event; returns what broke at this step."""
        found: list[Violation] = []
        changed = 0  # the union of the touched nodes' change masks
        if len(views) != self._n_views:
            self._reindex(views)
        pos = self._pos
        for nid in touched:
            p = pos.get(nid)
            if p is None or p >= len(views) or views[p].node_id != nid:
                self._reindex(views)
                p = pos.get(nid)
                if p is None:
                    continue  # not a node the views show
            changed |= self._visit(step, views[p], nid, found)
        if self._unseen:
            nodes = self._world.nodes
            for nid in self._unseen:
                p = pos.get(nid)
                if nid not in nodes and p is not None:
                    changed |= self._visit(step, views[p], nid, found)
            self._unseen.clear()
        if self._config_search or self._config_read:
            self._update_config(views)
        if self._snapshots_moved:
            self._update_watermark()
        world = self._world
        if changed or world.commit_moved or world.config_moved:
            for end_step in self._end_hooks:
                violation = end_step(step)
                if violation is not None:
                    found.append(violation)
        world.commit_moved = False
        world.config_moved = False
        return found

    def node_restarted(self, node_id: int) -> None:
        """The node came back from durable state: its commit index may restart
        lower. Call before observe() of the restart step."""
        node = self._world.nodes.get(node_id)
        if node is not None:
            node.restarted = True

    @property
    def committed(self) -> Committed | None:
        """The highest committed entry seen so far."""
        return self._world.committed

    def records(self) -> dict[str, int]:
        """Per-index records held, per invariant plus the log shadows: bounded
        by what is not yet compacted everywhere (for tests and benchmarks)."""
        counts = {inv.name: inv.records() for inv in self._checks}
        counts["shadows"] = sum(len(n.shadow) for n in self._world.nodes.values())
        return counts

    # ------------------------------------------------------------- reading

    def _reindex(self, views: Sequence[NodeView]) -> None:
        """Map ids to positions; note nodes that appeared or vanished."""
        pos = self._pos
        pos.clear()
        for p, view in enumerate(views):
            pos[view.node_id] = p
        self._n_views = len(views)
        nodes = self._world.nodes
        gone = [nid for nid in nodes if nid not in pos]
        for nid in gone:
            del nodes[nid]
        if gone:
            self._config_search = True
            self._snapshots_moved = True
        self._unseen.extend(nid for nid in pos if nid not in nodes)

    def _visit(self, step: int, view: NodeView, nid: int, found: list[Violation]) -> int:
        """Refresh one touched node and run the invariants its changes concern;
        return its change mask."""
        nodes = self._world.nodes
        node = nodes.get(nid)
        if node is None:
            node = nodes[nid] = NodeState(nid)
            mask = self._first_read(node, view)
        else:
            mask = self._refresh(node, view)
        if mask:
            if mask & COMMIT:
                self._maybe_advance_commit(step, node)
            if mask & (LOG | ALIVE | NEW):
                self._consider_config_source(node)
            checks = self._dispatch[mask]
            if checks is None:
                checks = self._dispatch[mask] = tuple(
                    inv.observe for inv in self._checks if inv.watches & mask
                )
            for check in checks:
                violation = check(step, node)
                if violation is not None:
                    found.append(violation)
        node.restarted = False
        return mask

    def _first_read(self, node: NodeState, view: NodeView) -> int:
        """Read a node seen for the first time; every watched change is new."""
        node.read = type(view).scalars
        node.alive, _role, node.term, node.voted_for, node.commit_index, _, _ = node.read(view)
        node.role = _FOLLOWER  # a node first seen leading has just become leader
        node.mask = mask = self._refresh(node, view) | NEW | TERM | VOTE | ROLE | COMMIT
        return mask

    def _refresh(self, node: NodeState, view: NodeView) -> int:
        """Read the view's scalars into `node`, keeping the values from before
        this event in `prev_*`; return the change mask. This runs for every
        touched node after every event, hence one read of the view and no
        other allocation."""
        mask = 0
        alive, role, term, vote, commit, last, snap = node.read(view)
        prev = node.prev_alive = node.alive
        if alive != prev:
            node.alive = alive
            mask = ALIVE
        prev = node.prev_role = node.role
        if role != prev:
            node.role = role
            mask |= ROLE
        prev = node.prev_term = node.term
        if term != prev:
            node.term = term
            mask |= TERM
        if vote != node.voted_for:
            node.voted_for = vote
            mask |= VOTE
        prev = node.prev_commit = node.commit_index
        if commit != prev:
            node.commit_index = commit
            mask |= COMMIT if commit > prev else COMMIT | COMMIT_BACK
        # Most events leave a node's log alone: the same length, snapshot and
        # last entry mean no change (the scan in _refresh_log would stop there).
        same_log = last == node.last_index and snap == node.snapshot_index and (
            last <= snap or (entry := view.entry(last)) is None or entry == node.shadow.get(last)
        )
        if not same_log and self._refresh_log(node, view, last, snap):
            mask |= LOG | LOG_REMOVED if node.removed_index else LOG
        applied = view.recent_applied
        if applied:
            node.applied = applied
            mask |= APPLIED
        node.mask = mask
        return mask

    def _refresh_log(self, node: NodeState, view: NodeView, last: int, snap: int) -> bool:
        """Bring the shadow up to date with the view's log, which now ends at
        `last` after a snapshot through `snap`: compare from `last` backwards
        until it agrees (amortised O(entries changed)); True if anything changed."""
        old_last = node.last_index
        old_snap = node.snapshot_index
        shadow = node.shadow
        removed_index = 0
        removed_entry: Entry | None = None
        low = last + 1
        if snap != old_snap:
            node.snapshot_index = snap
            node.snapshot_term = view.snapshot_term
            for index in range(old_snap + 1, min(snap, old_last) + 1):
                shadow.pop(index, None)  # compacted, not removed
            low = min(old_snap, snap) + 1
            self._snapshots_moved = True
            # A snapshot that went back (lost on a crash) uncovers entries the
            # shadow never held; the backward scan below may stop above them.
            for index in range(snap + 1, min(old_snap, last) + 1):
                entry = view.entry(index)
                if entry is not None:
                    shadow[index] = entry
        if last < old_last:
            for index in range(max(last, old_snap) + 1, old_last + 1):
                entry = shadow.pop(index, None)
                if entry is not None and not removed_index:
                    removed_index = index
                    removed_entry = entry
        node.last_index = last
        index = last
        read = view.entry
        known = shadow.get
        while index > snap:
            entry = read(index)
            if entry is None:  # the view contradicts last_index; keep what we know
                break
            old = known(index)
            if old == entry:
                break
            if old is not None:
                removed_index = index
                removed_entry = old
            shadow[index] = entry
            index -= 1
        first_new = index + 1
        if first_new > last and not removed_index and snap == old_snap:
            return False
        node.first_new = first_new
        node.removed_index = removed_index
        node.removed_entry = removed_entry
        if first_new < low:
            low = first_new
        if removed_index and removed_index < low:
            low = removed_index
        node.log_low = low
        node.last_term = node.term_at(last)
        return True

    # --------------------------------------------------------- shared facts

    def _maybe_advance_commit(self, step: int, node: NodeState) -> None:
        """Raise the committed record if this node reports a higher commit
        index; the committed entry is what it holds there now."""
        world = self._world
        index = node.commit_index
        current = world.committed
        if current is not None and index <= current.index:
            return
        if index > node.snapshot_index:
            entry = node.shadow.get(index)
            if entry is None:  # commit index beyond its log: nothing to name
                return
            term, entry_id = entry
            committed = Committed(index, term, entry_id, node.term, node.node_id, step)
        elif index == node.snapshot_index:
            committed = Committed(index, node.snapshot_term, None, node.term, node.node_id, step)
        else:  # inside its snapshot: the entry's term is no longer known
            return
        world.committed = committed
        world.commit_moved = True

    def _consider_config_source(self, node: NodeState) -> None:
        """Track the node with the most up-to-date log, by Raft's election order
        (last log term, then last index; ties: lowest id), without scanning:
        only a touched node can overtake the source or fall back.

        Why the log and not the current term: without pre-vote a partitioned
        node keeps raising its term while its log, and so its configuration,
        stays stale; a future leader's log is at least as up to date as a
        majority's. Crashed nodes compete (their log is durable) but their
        members are never read: a crashed view may not know its configuration."""
        world = self._world
        term = node.last_term
        last = node.last_index
        if node.node_id == world.config_node:
            if term < self._config_term or (term == self._config_term and last < self._config_last):
                self._config_search = True
            else:
                self._config_term = term
                self._config_last = last
                self._config_read = True
            return
        if term > self._config_term or (term == self._config_term and (
            last > self._config_last or (
                last == self._config_last
                and (world.config_node is None or node.node_id < world.config_node)))):
            world.config_node = node.node_id
            self._config_term = term
            self._config_last = last
            self._config_read = True

    def _update_config(self, views: Sequence[NodeView]) -> None:
        """Find the configuration source if it fell back, then read its members
        if it is alive (otherwise the last configuration read stays)."""
        world = self._world
        if self._config_search:
            self._config_search = False
            world.config_node = None
            self._config_term = self._config_last = -1
            for node in world.nodes.values():
                self._consider_config_source(node)
            self._config_read = True
        if not self._config_read:
            return
        self._config_read = False
        nid = world.config_node
        if nid is None or not world.nodes[nid].alive:
            return
        p = self._pos.get(nid)
        if p is None or p >= len(views) or views[p].node_id != nid:
            self._reindex(views)
            p = self._pos.get(nid)
            if p is None:
                return
        members = views[p].members
        if members is self._config_raw or members == self._config_raw:
            return
        self._config_raw = members
        voters = tuple(sorted(m for m, voting in members if voting))
        member_ids = frozenset(m for m, _ in members)
        if voters != world.voters:
            world.voters = voters
            world.config_moved = True
        if member_ids != world.member_ids:
            world.member_ids = member_ids
            self._snapshots_moved = True

    def _update_watermark(self) -> None:
        """Raise the watermark to the lowest snapshot index among members (all
        nodes before a configuration is known) and prune below it."""
        self._snapshots_moved = False
        world = self._world
        members = world.member_ids
        lowest: int | None = None
        for node in world.nodes.values():
            if members and node.node_id not in members:
                continue  # a removed node's stale log does not hold memory down
            if lowest is None or node.snapshot_index < lowest:
                lowest = node.snapshot_index
        if lowest is None or lowest <= world.watermark:
            return
        old = world.watermark
        world.watermark = lowest
        for prune in self._pruners:
            prune(old, lowest)
