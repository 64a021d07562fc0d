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
The shadows and the invariants' per-index records are `IndexRecords`: plain
lists per field over a dense range of indices, about 8 bytes a field where a
dict of tuples cost about 100 bytes a record, since a run without snapshots
keeps them all.

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
    checker.last_read(node_id)         # the node's scalars as of the last observe()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from virtraft.adapter import NodeView
from virtraft.check.invariants import (
    BY_NAME,
    INVARIANTS,
    Invariant,
)
from virtraft.check.model import (
    ALIVE,
    ALL_CHANGES,
    APPLIED,
    COMMIT,
    COMMIT_BACK,
    FOLLOWER,
    LOG,
    LOG_REMOVED,
    NEW,
    ROLE,
    TERM,
    VOTE,
    Committed,
    Entry,
    NodeState,
    Scalars,
    Violation,
    World,
    read_scalars,
)

__all__ = [
    "INVARIANTS",
    "Checker",
    "Committed",
    "Invariant",
    "NodeState",
    "Violation",
    "read_scalars",
]

_Observer = Callable[[int, NodeState], Violation | None]


def _selected(invariants: Iterable[str] | None) -> tuple[str, ...]:
    """Names in INVARIANTS order; a single string is taken as one name."""
    if invariants is None:
        return INVARIANTS
    wanted = {invariants} if isinstance(invariants, str) else set(invariants)
    unknown = sorted(name for name in wanted if name not in BY_NAME)
    if unknown:
        raise ValueError(
            f"unknown invariant {', '.join(map(repr, unknown))}; known: {', '.join(INVARIANTS)}"
        )
    return tuple(name for name in INVARIANTS if name in wanted)


class Checker:
    """Checks the selected invariants after every simulator event."""

    def __init__(self, invariants: Iterable[str] | None = None) -> None:
        self.invariants: tuple[str, ...] = _selected(invariants)
        self._world = world = World()
        self._checks: tuple[Invariant, ...] = tuple(BY_NAME[n](world) for n in self.invariants)
        # Observers per change mask, so an event that changed nothing costs
        # nothing; filled in as masks occur (a run meets few of the 1024, and
        # every seed of a campaign makes a checker).
        self._dispatch: list[tuple[_Observer, ...] | None] = [None] * (ALL_CHANGES + 1)
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
        self,
        step: int,
        views: Sequence[NodeView],
        touched: Sequence[int],
        reads: Sequence[Scalars] = (),
    ) -> list[Violation]:
        """Check the invariants after one event; returns what broke at this step.
        `reads`, when given, holds each touched node's `scalars()` as read
        after the event (the simulator reads them once, for its statistics
        too); else the checker reads them itself."""
        found: list[Violation] = []
        changed = 0  # the union of the touched nodes' change masks
        if len(views) != self._n_views:
            self._reindex(views)
        pos = self._pos
        for i, nid in enumerate(touched):
            p = pos.get(nid)
            if p is None or p >= len(views) or views[p].node_id != nid:
                self._reindex(views)
                p = pos.get(nid)
                if p is None:
                    continue  # not a node the views show
            changed |= self._visit(step, views[p], nid, found, reads[i] if reads else None)
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

    def last_read(self, node_id: int) -> Scalars | None:
        """What the checker last read of a node, as `scalars()` gives it; None
        for a node it has not seen. Between events that is the node's state
        before the next one: a node changes only in an event that touches it,
        and observe() reads every node an event touched."""
        node = self._world.nodes.get(node_id)
        if node is None:
            return None
        return (
            node.alive,
            node.role,
            node.term,
            node.voted_for,
            node.commit_index,
            node.last_index,
            node.snapshot_index,
        )

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

    def _visit(
        self,
        step: int,
        view: NodeView,
        nid: int,
        found: list[Violation],
        read: Scalars | None = None,
    ) -> int:
        """Refresh one touched node (from `read`, its scalars, when the caller
        has them) and run the invariants its changes concern; return its
        change mask."""
        nodes = self._world.nodes
        node = nodes.get(nid)
        if node is None:
            node = nodes[nid] = NodeState(nid)
            mask = self._first_read(node, view)
        else:
            mask = self._refresh(node, view, read)
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
        node.role = FOLLOWER  # a node first seen leading has just become leader
        node.mask = mask = self._refresh(node, view) | NEW | TERM | VOTE | ROLE | COMMIT
        return mask

    def _refresh(self, node: NodeState, view: NodeView, read: Scalars | None = None) -> int:
        """Read the view's scalars (or take `read`) into `node`, keeping the
        values from before this event in `prev_*`; return the change mask.
        This runs for every touched node after every event, hence one read
        of the view and no other allocation."""
        if read is None:
            read = node.read(view)
        alive, role, term, vote, commit, last, snap = read
        if read == node.scalars:
            # None of the seven moved (most ticks, many deliveries): one
            # comparison, and the values before this event are these.
            mask = 0
            node.prev_alive = alive
            node.prev_role = node.role
            node.prev_term = term
            node.prev_commit = commit
        else:
            node.scalars = read
            mask = self._scalar_mask(node, alive, role, term, vote, commit)
        # The snapshot's term is read afresh, not only when its index moves:
        # it can change alone (a snapshot installed over one of the same
        # index), and LogMatching, the committed record and `held_by` read it.
        snap_term = view.snapshot_term if snap else 0
        # Most events leave a node's log alone: the same length, snapshot and
        # last entry mean no change (the scan in _refresh_log would stop there).
        same_log = (
            last == node.last_index
            and snap == node.snapshot_index
            and snap_term == node.snapshot_term
            and (last <= snap or (entry := view.entry(last)) is None or entry == node.last_entry)
        )
        if not same_log:
            if self._refresh_log(node, view, last, snap, snap_term):
                mask |= LOG | LOG_REMOVED if node.removed_index else LOG
            node.last_entry = node.shadow.get(last)
        applied = view.recent_applied
        if applied:
            node.applied = applied
            mask |= APPLIED
        node.mask = mask
        return mask

    @staticmethod
    def _scalar_mask(
        node: NodeState, alive: bool, role: str, term: int, vote: int | None, commit: int
    ) -> int:
        """Store the scalars that moved, keeping the values from before this
        event in `prev_*`; return their bits of the change mask."""
        mask = 0
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
        return mask

    def _refresh_log(
        self, node: NodeState, view: NodeView, last: int, snap: int, snap_term: int
    ) -> bool:
        """Bring the shadow up to date with the view's log, which now ends at
        `last` after a snapshot through `snap` of term `snap_term`: compare
        from `last` backwards until it agrees (amortised O(entries changed));
        True if anything changed."""
        old_last = node.last_index
        old_snap = node.snapshot_index
        shadow = node.shadow
        removed_index = 0
        removed_entry: Entry | None = None
        low = last + 1
        # Entries from `recheck` on follow a term that changed under them: the
        # snapshot's, when it is not the term that stood at its index before.
        recheck = last + 1
        snapshot_changed = snap != old_snap or snap_term != node.snapshot_term
        if snapshot_changed:
            held = node.term_at(snap)  # what stood at the snapshot's index, -1 if unknown
            if held != -1 and held != snap_term:
                recheck = snap + 1
            if snap == old_snap:  # the same index under another term: replaced there
                low = snap
            node.snapshot_term = snap_term
        if snap != old_snap:
            node.snapshot_index = snap
            if snap > old_snap:
                shadow.keep_above(snap)  # compacted, not removed
            low = min(old_snap, snap) + 1
            self._snapshots_moved = True
            # A snapshot that went back (lost on a crash) uncovers entries the
            # shadow never held; the backward scan below may stop above them.
            for index in range(snap + 1, min(old_snap, last) + 1):
                entry = view.entry(index)
                if entry is not None:
                    shadow.put(index, entry)
        if last < old_last:
            keep = max(last, old_snap)
            lowest = shadow.lowest_in(keep + 1, old_last)
            if lowest is not None:
                removed_index, removed_entry = lowest
            shadow.keep_through(keep)
        node.last_index = last
        index = last
        read = view.entry
        # The shadow's columns are read and written in place where the index
        # is inside them (every index but a new one): shadow.get and
        # shadow.put, without a call per entry.
        terms, ids = shadow.cols
        while index > snap:
            entry = read(index)
            if entry is None:  # the view contradicts last_index; keep what we know
                break
            p = index - shadow.start
            if 0 <= p < len(terms) and (term := terms[p]) is not None:
                if term == entry[0] and ids[p] == entry[1]:
                    break
                removed_index = index
                removed_entry = (term, ids[p])
                terms[p], ids[p] = entry
            else:
                old = shadow.get(index) if shadow.far else None
                if old == entry:
                    break
                if old is not None:
                    removed_index = index
                    removed_entry = old
                shadow.put(index, entry)
            index -= 1
        first_new = index + 1
        if first_new > last and not removed_index and not snapshot_changed:
            return False
        if recheck < first_new:
            first_new = recheck
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
        if term > self._config_term or (
            term == self._config_term
            and (
                last > self._config_last
                or (
                    last == self._config_last
                    and (world.config_node is None or node.node_id < world.config_node)
                )
            )
        ):
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
