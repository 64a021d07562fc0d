"""The Raft safety invariants, one class each, named as in the design.

Each has an `observe(step, node)` method and the change bits it watches
(`watches`); the checker calls it only for a node whose change is one of
those. Each is written against the model (`virtraft.check.model`), never
against a node.
"""

from __future__ import annotations

from typing import ClassVar

from raftcore import quorum
from virtraft.check.model import (
    ALIVE,
    APPLIED,
    CANDIDATE,
    COMMIT_BACK,
    LEADER,
    LOG,
    LOG_REMOVED,
    ROLE,
    TERM,
    VOTE,
    Entry,
    IndexRecords,
    NodeState,
    Violation,
    World,
    entry_json,
    entry_text,
    prune,
)


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
        if node.role != LEADER:
            return None
        term = node.term
        first = self._leader_of.setdefault(term, node.node_id)
        if first == node.node_id:
            return None
        return Violation(
            self.name,
            step,
            (first, node.node_id),
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
            self.name,
            step,
            (nid, latest[1], vote),
            f"node {nid} voted for node {latest[1]} and then for node {vote} in term {term}",
            {"node": nid, "term": term, "first_vote": latest[1], "second_vote": vote},
        )


class VoteForSelf(Invariant):
    """Raft Figure 2, Rules for Servers, Candidates: "On conversion to
    candidate ... increment currentTerm, vote for self". A candidate or a
    leader has voted for itself in its current term. VoteOnce sees only the
    votes a node records: a candidate that counts its own vote without
    recording it can grant it again to another candidate of the same term.

    Pre-candidates are not bound: a pre-vote (dissertation §9.6) changes
    neither the term nor the vote. Crashed nodes are not bound: a view may
    report the vote only while the node runs, and a node restarts as follower."""

    name = "VoteForSelf"
    watches = ROLE | TERM | VOTE | ALIVE

    def observe(self, step: int, node: NodeState) -> Violation | None:
        role = node.role
        if role != CANDIDATE and role != LEADER:
            return None
        nid = node.node_id
        vote = node.voted_for
        if vote == nid or not node.alive:
            return None
        whom = "nobody" if vote is None else f"node {vote}"
        return Violation(
            self.name,
            step,
            (nid,) if vote is None else (nid, vote),
            f"node {nid} is {role} of term {node.term} but voted for {whom} in that term",
            {"node": nid, "term": node.term, "role": str(role), "voted_for": vote},
        )


class TermMonotonic(Invariant):
    """A node's term never decreases: it is durable, so not across restarts either."""

    name = "TermMonotonic"
    watches = TERM

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.term >= node.prev_term:
            return None
        return Violation(
            self.name,
            step,
            (node.node_id,),
            f"node {node.node_id}'s term went from {node.prev_term} down to {node.term}",
            {
                "node": node.node_id,
                "before": node.prev_term,
                "after": node.term,
                "alive": node.alive,
            },
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
            self.name,
            step,
            (node.node_id,),
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
        if not index or node.role != LEADER or node.prev_role != LEADER:
            return None
        if node.term != node.prev_term:
            return None
        old = node.removed_entry
        assert old is not None
        new = node.shadow.get(index)
        nid = node.node_id
        if new is None:
            what = f"removed its entry {entry_text(*old)} at index {index}"
        else:
            what = (
                f"overwrote its entry {entry_text(*old)} at index {index} with {entry_text(*new)}"
            )
        return Violation(
            self.name,
            step,
            (nid,),
            f"leader {nid} of term {node.term} {what}",
            {
                "node": nid,
                "term": node.term,
                "index": index,
                "before": entry_json(old),
                "after": entry_json(new),
                "last_index": node.last_index,
            },
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
        self._first = IndexRecords(4)
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
        # Both records' columns are read in place, as shadow.get and first.get
        # would read them, without a call or a tuple per entry.
        terms, ids = shadow.cols
        first_terms, first_ids, first_prevs, _ = first.cols
        for index in range(lo, last + 1):
            p = index - shadow.start
            if 0 <= p < len(terms) and (term := terms[p]) is not None:
                entry_id = ids[p]
            else:
                entry = shadow.get(index) if shadow.far else None
                if entry is None:  # the view could not say; nothing to compare
                    return None
                term, entry_id = entry
            q = index - first.start
            if 0 <= q < len(first_terms) and first_terms[q] == term:
                agrees = first_ids[q] == entry_id and first_prevs[q] == prev_term
            else:
                record = first.get(index)
                if record is None:
                    first.put(index, (term, entry_id, prev_term, nid))
                elif record[0] != term:
                    record = self._other(index, term, entry_id, prev_term, nid)
                agrees = record is None or (record[1] == entry_id and record[2] == prev_term)
            if not agrees:
                record = first.get(index)
                assert record is not None
                if record[0] != term:
                    record = self._other(index, term, entry_id, prev_term, nid)
                    assert record is not None
                return self._violation(step, node, index, (term, entry_id), prev_term, record)
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
        self,
        step: int,
        node: NodeState,
        index: int,
        entry: Entry,
        prev_term: int,
        record: tuple[int, int, int, int],
    ) -> Violation:
        nid = node.node_id
        other = record[3]
        if record[1] != entry[1]:
            message = (
                f"node {nid} holds {entry_text(*entry)} at index {index} but node "
                f"{other} holds {entry_text(record[0], record[1])} there"
            )
        else:
            message = (
                f"nodes {nid} and {other} both hold {entry_text(*entry)} at index "
                f"{index} but disagree before it (term {prev_term} vs term "
                f"{record[2]} at index {index - 1})"
            )
        return Violation(
            self.name,
            step,
            (nid, other),
            message,
            {
                "index": index,
                "entry": {"node": nid, "term": entry[0], "id": entry[1], "prev_term": prev_term},
                "other": {
                    "node": other,
                    "term": record[0],
                    "id": record[1],
                    "prev_term": record[2],
                },
            },
        )

    def prune(self, old: int, new: int) -> None:
        self._first.keep_above(new)
        self._others = prune(self._others, old, new)

    def records(self) -> int:
        return len(self._first) + len(self._others)


class LeaderCompleteness(Invariant):
    """Raft §5.4: a leader of a term above the one that committed an entry
    holds that entry. Checked for the highest committed index only: by
    LogMatching, holding it covers every committed entry before it."""

    name = "LeaderCompleteness"
    watches = ROLE | TERM

    def observe(self, step: int, node: NodeState) -> Violation | None:
        if node.role != LEADER:
            return None
        if node.prev_role == LEADER and node.prev_term == node.term:
            return None  # not newly elected
        committed = self.world.committed
        # A leader of a term at or below the committing term may lack it
        # legitimately (its votes were granted before that commit).
        if committed is None or node.term <= committed.in_term or committed.held_by(node):
            return None
        nid = node.node_id
        held = node.shadow.get(committed.index)
        if held is not None:
            has = f"it holds {entry_text(*held)} there"
        else:
            has = f"its log ends at index {node.last_index}"
        return Violation(
            self.name,
            step,
            (nid, committed.node),
            f"node {nid} became leader of term {node.term} without the committed entry "
            f"{committed.text()} at index {committed.index} ({has})",
            {
                "leader": nid,
                "term": node.term,
                "committed": committed.json(),
                "held": entry_json(held),
                "last_index": node.last_index,
                "snapshot_index": node.snapshot_index,
            },
        )


class StateMachineSafety(Invariant):
    """Raft §5.4.3: every node applies the same entry at a given index: one
    global history of applied entries, (term, id, node) per index."""

    name = "StateMachineSafety"
    watches = APPLIED

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self._history = IndexRecords(3)  # index -> (term, id, node)

    def observe(self, step: int, node: NodeState) -> Violation | None:
        history = self._history
        watermark = self.world.watermark
        nid = node.node_id
        for index, term, entry_id in node.applied:
            if index <= watermark:
                continue
            first = history.get(index)
            if first is None:
                history.put(index, (term, entry_id, nid))
            elif first[0] != term or first[1] != entry_id:
                return Violation(
                    self.name,
                    step,
                    (nid, first[2]),
                    f"node {nid} applied {entry_text(term, entry_id)} at index {index} but "
                    f"node {first[2]} applied {entry_text(first[0], first[1])} there",
                    {
                        "index": index,
                        "applied": {"node": nid, "term": term, "id": entry_id},
                        "first_applied": {"node": first[2], "term": first[0], "id": first[1]},
                    },
                )
        return None

    def prune(self, old: int, new: int) -> None:
        self._history.keep_above(new)

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
        spare = len(voters) - quorum.majority(len(voters))
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
            self.name,
            step,
            tuple(voters),
            f"committed entry {committed.text()} at index {committed.index} is held by "
            f"{holders} of {len(voters)} voters {held}, so a majority without it can "
            f"elect a leader",
            {
                "committed": committed.json(),
                "voters": list(voters),
                "holders": held,
                "needed": spare + 1,
            },
        )


_CLASSES: tuple[type[Invariant], ...] = (
    ElectionSafety,
    VoteOnce,
    VoteForSelf,
    TermMonotonic,
    CommitMonotonic,
    LeaderAppendOnly,
    LogMatching,
    LeaderCompleteness,
    StateMachineSafety,
    CommittedNeverLost,
)
INVARIANTS: tuple[str, ...] = tuple(cls.name for cls in _CLASSES)
BY_NAME: dict[str, type[Invariant]] = {cls.name: cls for cls in _CLASSES}
