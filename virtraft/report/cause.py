"""The cause of a verdict: the decisive events, and the rule that let them through.

A violation names the step where the checker saw an invariant broken; the
steps that broke it are usually earlier (in Figure 8 the lost commit is
hundreds of steps before the election that loses it). This module replays a
trace once under observation (the report's recorder, `observe._Recorder`,
with a little more kept) and asks one handler per invariant (`CAUSES`)
which steps decided the outcome: the commit of the lost entry and who held
it, the election that lacked it with every vote and both logs, the message
that truncated a replica, the event that lowered a term.

What is kept is bounded on long traces: per node only the changes of
(alive, role, term, vote, commit, last log (term, index)), and the entries
at the few indexes the violation names. Everything is read through the
door (NodeAdapter views), so the causes hold for any implementation.

The result is plain data (`Cause`, `Decisive`, `Vote`: frozen dataclasses
with `to_json()`), for the terminal, the story and the HTML report alike.
"""

from __future__ import annotations

import bisect
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from raftcore import quorum
from virtraft.adapter import FactoryError, MessageRole, NodeAdapter, NodeFactory, Role
from virtraft.check.checker import Checker, Violation
from virtraft.report.observe import Arrow, Replay, _Recorder, event_text, record, replay_trace
from virtraft.run.factory import factory_for_trace, load_factory
from virtraft.run.seed import RunResult
from virtraft.sim.events import Crash, Restart
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import Trace

LogPos = tuple[int, int]
"""A log's last entry as (term, index): what §5.4.1 compares."""

Entry = tuple[int, int]
"""(term, entry id), as `NodeView.entry` returns it."""

# ------------------------------------------------------------------ the data


@dataclass(frozen=True, slots=True)
class Vote:
    """One granted vote, with both logs as §5.4.1 compares them."""

    voter: int
    candidate: int
    term: int
    step: int
    voter_last: LogPos  # the voter's last (term, index) just before it voted
    candidate_last: LogPos  # the candidate's when it asked (its RequestVote's send step)
    up_to_date: bool  # §5.4.1 allowed the grant: the candidate's log is at least as up to date
    held: bool | None = None  # the voter held the entry the verdict is about (None: no such entry)

    def text(self) -> str:
        verdict = "allowed by §5.4.1" if self.up_to_date else "FORBIDDEN by §5.4.1"
        text = (
            f"node {self.voter} voted at step {self.step}: its log ends "
            f"{pos_text(self.voter_last)}, the candidate's "
            f"{pos_text(self.candidate_last)}: {verdict}"
        )
        if self.held is not None:
            text += "; it held the entry" if self.held else "; it lacked the entry"
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "voter": self.voter,
            "candidate": self.candidate,
            "term": self.term,
            "step": self.step,
            "voter_last": {"term": self.voter_last[0], "index": self.voter_last[1]},
            "candidate_last": {"term": self.candidate_last[0], "index": self.candidate_last[1]},
            "up_to_date": self.up_to_date,
            "held": self.held,
        }


@dataclass(frozen=True, slots=True)
class Decisive:
    """One step that decided the verdict: what happened there, and the rule
    that allowed it (or should have stopped it)."""

    step: int
    node: int | None
    kind: str  # commit election vote append lose apply term event exception
    what: str
    rule: str = ""
    votes: tuple[Vote, ...] = ()
    nodes: tuple[int, ...] = ()  # the nodes that held the entry, for a commit

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "node": self.node,
            "kind": self.kind,
            "what": self.what,
            "rule": self.rule,
            "votes": [v.to_json() for v in self.votes],
            "nodes": list(self.nodes),
        }


@dataclass(frozen=True, slots=True)
class Cause:
    """Why a verdict failed: a summary line and the decisive steps, in order."""

    invariant: str
    step: int  # where the checker saw it broken
    summary: str
    decisive: tuple[Decisive, ...]

    @property
    def steps(self) -> tuple[int, ...]:
        """The decisive steps, each once, in order."""
        return tuple(sorted({d.step for d in self.decisive}))

    def lines(self) -> list[str]:
        """The cause in words, one fact a line, for a terminal or a text file."""
        out = [f"cause: {self.summary}"]
        for d in self.decisive:
            out.append(f"  step {d.step}: {d.what}")
            for vote in d.votes:
                out.append(f"    {vote.text()}")
            if d.rule:
                out.append(f"    rule: {d.rule}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "invariant": self.invariant,
            "step": self.step,
            "summary": self.summary,
            "steps": list(self.steps),
            "decisive": [d.to_json() for d in self.decisive],
        }


def pos_text(pos: LogPos) -> str:
    term, index = pos
    return "empty" if index == 0 else f"(term {term}, index {index})"


def up_to_date(candidate: LogPos, voter: LogPos) -> bool:
    """Raft §5.4.1: the candidate's log is at least as up to date as the
    voter's: the later last term wins; with equal last terms, the longer log."""
    if candidate[0] != voter[0]:
        return candidate[0] > voter[0]
    return candidate[1] >= voter[1]


def entry_words(entry: Entry | None) -> str:
    return "nothing" if entry is None else f"(term {entry[0]}, id {entry[1]})"


# --------------------------------------------------------------- the history


@dataclass(frozen=True, slots=True)
class NodeChange:
    """A node's state after `step`, recorded only when it differs from before."""

    step: int
    alive: bool
    role: str  # a Role value, or "down"
    term: int
    vote: int | None
    commit: int
    last: LogPos
    snapshot_index: int


@dataclass(frozen=True, slots=True)
class Cell:
    """A node's entry at a watched index after `step`, recorded on change."""

    step: int
    entry: Entry | None
    snapshot_index: int
    snapshot_term: int

    def holds(self, index: int, term: int, entry_id: int | None) -> bool:
        """As the checker's `Committed.held_by`: in the log, or under the snapshot."""
        if self.snapshot_index >= index:
            return self.snapshot_index > index or self.snapshot_term == term
        entry = self.entry
        return entry is not None and entry[0] == term and (entry_id is None or entry[1] == entry_id)


class History:
    """What the cause needs of a replay: per node the changes of its state,
    the entries at the watched indexes, what it applied there, and the
    reasons it gave for refusing a message."""

    def __init__(self, watch: tuple[int, ...]) -> None:
        self.watch = watch
        self.changes: dict[int, list[NodeChange]] = {}
        self._steps: dict[int, list[int]] = {}  # node -> the steps of its changes
        self.cells: dict[tuple[int, int], list[Cell]] = {}  # (node, index) -> changes
        self.applied: list[tuple[int, int, int, int, int]] = []  # (step, node, index, term, id)
        self.voters: dict[int, list[tuple[int, tuple[int, ...]]]] = {}  # node -> (step, voters)
        self.refusals: dict[int, tuple[int, str]] = {}  # step -> (node, why)
        self.changed_at: dict[int, list[int]] = {}  # step -> nodes whose state changed

    def read(self, step: int, node_id: int, node: NodeAdapter) -> None:
        alive = node.alive
        last_index = node.last_index
        last_term = _term_at(node, last_index)
        change = NodeChange(
            step,
            alive,
            str(node.role.value) if alive else "down",
            node.term,
            node.voted_for,
            node.commit_index if alive else 0,
            (last_term, last_index),
            node.snapshot_index,
        )
        old = self.changes.get(node_id)
        if old is None:
            self.changes[node_id] = [change]
            self._steps[node_id] = [step]
            self.changed_at.setdefault(step, []).append(node_id)
            self.voters[node_id] = [(step, _voters(node))]
        elif _differs(old[-1], change):
            # A configuration changes with the log (an entry appended, a
            # snapshot) or with the role: read it only on a change.
            voters = _voters(node)
            if voters != self.voters[node_id][-1][1]:
                self.voters[node_id].append((step, voters))
            old.append(change)
            self._steps[node_id].append(step)
            self.changed_at.setdefault(step, []).append(node_id)
        for index in self.watch:
            cell = Cell(step, node.entry(index), node.snapshot_index, node.snapshot_term)
            cells = self.cells.setdefault((node_id, index), [])
            if not cells or _cell_key(cells[-1]) != _cell_key(cell):
                cells.append(cell)
        if self.watch and alive:
            for index, term, entry_id in node.recent_applied:
                if index in self.watch:
                    self.applied.append((step, node_id, index, term, entry_id))

    # ------------------------------------------------------------- queries

    def nodes(self) -> list[int]:
        return sorted(self.changes)

    def at(self, node: int, step: int) -> NodeChange | None:
        """The node's state after `step` (None before it existed)."""
        steps = self._steps.get(node)
        if not steps:
            return None
        i = bisect.bisect_right(steps, step) - 1
        return self.changes[node][i] if i >= 0 else None

    def cell(self, node: int, index: int, step: int) -> Cell | None:
        cells = self.cells.get((node, index))
        if not cells:
            return None
        i = bisect.bisect_right([c.step for c in cells], step) - 1
        return cells[i] if i >= 0 else None

    def last_log(self, node: int, step: int) -> LogPos:
        state = self.at(node, step)
        return state.last if state is not None else (0, 0)

    def voters_of(self, node: int, step: int) -> tuple[int, ...]:
        rows = self.voters.get(node, [])
        i = bisect.bisect_right([s for s, _ in rows], step) - 1
        return rows[i][1] if i >= 0 else ()

    def between(self, node: int, first: int, last: int) -> list[NodeChange]:
        """The node's changes at steps first..last."""
        steps = self._steps.get(node, [])
        lo = bisect.bisect_left(steps, first)
        hi = bisect.bisect_right(steps, last)
        return self.changes[node][lo:hi]


def _term_at(node: NodeAdapter, index: int) -> int:
    if index == 0:
        return 0
    if index == node.snapshot_index:
        return node.snapshot_term
    entry = node.entry(index)
    return entry[0] if entry is not None else -1


def _voters(node: NodeAdapter) -> tuple[int, ...]:
    return tuple(sorted(n for n, voting in node.members if voting))


def _cell_key(cell: Cell) -> tuple[Entry | None, int, int]:
    return cell.entry, cell.snapshot_index, cell.snapshot_term


def _differs(a: NodeChange, b: NodeChange) -> bool:
    return (a.alive, a.role, a.term, a.vote, a.commit, a.last, a.snapshot_index) != (
        b.alive,
        b.role,
        b.term,
        b.vote,
        b.commit,
        b.last,
        b.snapshot_index,
    )


class _CauseRecorder(_Recorder):
    """The report's recorder, keeping a `History` besides, and the reason a
    node gives when it refuses a message (an exception in its `refusals`)."""

    def __init__(self, sim: Simulation, history: History) -> None:
        self.history = history
        self._wrapped: set[int] = set()
        super().__init__(sim)

    def _observe_nodes(self, step: int) -> None:
        super()._observe_nodes(step)
        sim = self.sim
        nodes = sim.nodes
        for node_id in sim.node_ids:
            node = nodes[node_id]
            if node_id not in self._wrapped:
                self._wrap_deliver(node_id, node)
            self.history.read(step, node_id, node)

    def _wrap_deliver(self, node_id: int, node: NodeAdapter) -> None:
        """Hear why a node refuses a message: the exception the door lets it raise."""
        self._wrapped.add(node_id)
        deliver = node.deliver
        refusals = node.refusals
        if not refusals:
            return
        history = self.history
        sim = self.sim

        def heard(src: int, message: object) -> None:
            try:
                deliver(src, message)
            except refusals as exc:
                history.refusals[sim.step] = (node_id, f"{type(exc).__name__}: {exc}")
                raise

        # A slotted node cannot be wrapped: its refusals stay unexplained.
        with contextlib.suppress(AttributeError):
            node.deliver = heard  # type: ignore[method-assign]


# ------------------------------------------------------------- the replay


@dataclass(frozen=True, slots=True)
class Explained:
    """One observed replay of a trace: what the report draws, what the cause
    needs, and the cause itself (None when every invariant held)."""

    trace: Trace
    replay: Replay
    history: History
    cause: Cause | None


def watched(violation: Mapping[str, Any] | None) -> tuple[int, ...]:
    """The log indexes whose entries the cause of `violation` follows."""
    if not violation:
        return ()
    witness = violation.get("witness") or {}
    name = violation.get("invariant")
    index = None
    if name in ("LeaderCompleteness", "CommittedNeverLost"):
        index = (witness.get("committed") or {}).get("index")
    elif name in ("LogMatching", "StateMachineSafety", "LeaderAppendOnly"):
        index = witness.get("index")
    if type(index) is not int or index < 1:
        return ()
    return (index - 1, index) if name == "LogMatching" and index > 1 else (index,)


def explain_trace(trace: Trace, factory: NodeFactory | None = None) -> Explained:
    """Replay `trace` once under observation and name the cause of its verdict.
    The entries to follow come from the trace's recorded violation; when the
    replay ends with another one, it replays again following that one's."""
    recorded = trace.verdict.get("violation") if isinstance(trace.verdict, dict) else None
    explained = _explain(trace, factory, watched(recorded))
    violation = explained.replay.violation
    if violation is not None:
        again = watched({"invariant": violation.invariant, "witness": violation.witness})
        if again != explained.history.watch:
            explained = _explain(trace, factory, again)
    return explained


def _explain(trace: Trace, factory: NodeFactory | None, watch: tuple[int, ...]) -> Explained:
    history = History(watch)
    if factory is None:
        try:
            factory = load_factory(factory_for_trace(trace.factory, None))
        except FactoryError:
            return Explained(trace, replay_trace(trace, factory), history, None)
    try:
        sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    except Exception:  # a user's factory failed to build a node: the replay says why
        return Explained(trace, replay_trace(trace, factory), history, None)
    replay = record(_CauseRecorder(sim, history), trace.events)
    violation = replay.violation
    cause = cause_of(violation, _Context(trace, replay, history)) if violation else None
    return Explained(trace, replay, history, cause)


def cause_of(violation: Violation, ctx: _Context) -> Cause:
    """The handler for the violation's invariant, or the plain verdict."""
    handler = CAUSES.get(violation.invariant)
    if handler is None:
        return Cause(violation.invariant, violation.step, violation.message, ())
    return handler(violation, ctx)


def liveness_cause(explained: Explained, liveness: Mapping[str, Any]) -> Cause | None:
    """What blocked progress, for a failed liveness verdict. A hook for the
    liveness phase to fill (it knows its own bound and who was heard from);
    until then the verdict's reason is the cause, with no decisive steps."""
    if liveness.get("verdict") != "failed":
        return None
    return Cause("liveness", explained.replay.steps, str(liveness.get("reason", "")), ())


# ------------------------------------------------------------ the handlers


class _Context:
    """The replay and its history, with the questions the handlers ask."""

    def __init__(self, trace: Trace, replay: Replay, history: History) -> None:
        self.trace = trace
        self.replay = replay
        self.history = history

    def event_words(self, step: int) -> str:
        if not 1 <= step <= len(self.trace.events):
            return "the start"
        text = event_text(self.trace.events[step - 1], self.replay, step)
        refusal = self.history.refusals.get(step)
        if refusal is not None:
            text += f" (refused: {refusal[1]})"
        return text

    def arrow(self, step: int) -> Arrow | None:
        got = self.replay.at_step.get(step)
        return got if isinstance(got, Arrow) else None

    def role_of(self, kind: str) -> MessageRole:
        return self.replay.roles.get(kind, MessageRole.OTHER)

    def event(self, step: int) -> object:
        return self.trace.events[step - 1] if 1 <= step <= len(self.trace.events) else None

    # ---------------------------------------------------------- elections

    def became_leader(self, node: int, term: int, upto: int) -> int | None:
        """The step at which `node` became leader of `term` (the last time, by `upto`)."""
        found = None
        prev = None
        for change in self.history.between(node, 0, upto):
            leads = change.role == Role.LEADER and change.term == term
            if leads and not (prev is not None and prev.role == Role.LEADER and prev.term == term):
                found = change.step
            prev = change
        return found

    def votes_for(self, candidate: int, term: int, upto: int) -> list[tuple[int, int]]:
        """(voter, step) for every node that recorded a vote for `candidate` in
        `term` by `upto`: the step it first did."""
        votes = []
        for node in self.history.nodes():
            if node == candidate:
                continue
            for change in self.history.between(node, 0, upto):
                if change.term == term and change.vote == candidate:
                    votes.append((node, change.step))
                    break
        return votes

    def vote(self, voter: int, candidate: int, term: int, step: int, focus: Any = None) -> Vote:
        history = self.history
        voter_last = history.last_log(voter, step - 1)
        arrow = self.arrow(step)
        asked = arrow.send_step if arrow is not None and arrow.src == candidate else step - 1
        candidate_last = history.last_log(candidate, asked)
        held = None
        if focus is not None:
            index, entry_term, entry_id = focus
            cell = history.cell(voter, index, step - 1)
            held = cell is not None and cell.holds(index, entry_term, entry_id)
        return Vote(
            voter,
            candidate,
            term,
            step,
            voter_last,
            candidate_last,
            up_to_date(candidate_last, voter_last),
            held,
        )

    def kept_role(self, node: int, step: int) -> Decisive | None:
        """The step's higher term taken by a candidate or leader that kept its
        role (None if it did not happen at `step`)."""
        before = self.history.at(node, step - 1)
        after = self.history.at(node, step)
        if before is None or after is None or before.role != after.role:
            return None
        if after.role not in (Role.LEADER, Role.CANDIDATE) or before.term >= after.term:
            return None
        arrow = self.arrow(step)
        src = f"node {arrow.src}'s {arrow.kind}" if arrow else "this step's event"
        return Decisive(
            step,
            node,
            "term",
            f"node {node}, {after.role} of term {before.term}, took term {after.term} from "
            f"{src} and stayed {after.role}: it never campaigned in term {after.term}",
            "Figure 2, all servers: a request or response with a higher term makes a "
            "server set its term and convert to follower",
        )

    def election(self, leader: int, term: int, upto: int, focus: Any = None) -> Decisive:
        """How `leader` came to lead `term`: its votes, both logs of each, and
        the vote responses it counted that no recorded vote backs."""
        step = self.became_leader(leader, term, upto) or upto
        voters = self.history.voters_of(leader, step) or tuple(self.history.nodes())
        need = quorum.majority(len(voters))
        kept = self.kept_role(leader, step)
        if kept is not None:
            return kept
        votes = tuple(
            self.vote(voter, leader, term, vote_step, focus)
            for voter, vote_step in self.votes_for(leader, term, step)
        )
        backed = [leader, *(v.voter for v in votes)]
        backed_voters = [n for n in backed if n in voters]
        what = (
            f"node {leader} became leader of term {term} with the recorded votes of "
            f"nodes {', '.join(map(str, sorted(backed)))} "
            f"({len(backed_voters)} of {len(voters)} voters; a majority is {need})"
        )
        rules = []
        forbidden = [v for v in votes if not v.up_to_date]
        if forbidden:
            who = ", ".join(str(v.voter) for v in forbidden)
            rules.append(
                f"§5.4.1: a voter grants only a candidate whose log is at least as up to date "
                f"(the later last term, then the longer log); node(s) {who} granted one "
                f"whose log is not"
            )
        if len(backed_voters) < need:
            counted = self._counted(leader, term, step)
            rules.append(
                "§5.2: a candidate wins with the votes of a majority, one per voter per "
                f"term; these recorded votes are no majority, so it counted {counted}"
            )
        return Decisive(step, leader, "election", what, "; ".join(rules), votes)

    def _counted(self, candidate: int, term: int, won: int) -> str:
        """The vote responses the candidate took in its candidacy that no
        recorded vote of that term backs: stale ones, and copies. A response
        counts as a "yes" when its sender had recorded a vote for the
        candidate when it sent it (the door does not say what a response says)."""
        start = 0
        for change in self.history.between(candidate, 0, won):
            if change.role == Role.CANDIDATE and change.term == term:
                start = change.step
                break
        arrows = self.replay.arrows
        lo = bisect.bisect_left([a.step for a in arrows], start)
        seen: dict[int, int] = {}
        odd = []
        for arrow in arrows[lo:]:
            if arrow.step > won:
                break
            if arrow.dst != candidate or self.role_of(arrow.kind) != MessageRole.VOTE_RESPONSE:
                continue
            if arrow.prevote:
                continue
            sender = self.history.at(arrow.src, arrow.send_step)
            if sender is None or sender.vote != candidate:
                continue  # not a "yes": its sender had not voted for the candidate
            if sender.term < term:
                odd.append(
                    f"node {arrow.src}'s response sent at step {arrow.send_step} in its "
                    f"term {sender.term} (delivered at step {arrow.step})"
                )
            elif arrow.src in seen:
                odd.append(
                    f"node {arrow.src}'s response twice (delivered at steps "
                    f"{seen[arrow.src]} and {arrow.step})"
                )
            seen.setdefault(arrow.src, arrow.step)
        return "; ".join(odd) if odd else "votes no voter recorded"

    # ------------------------------------------------------------ entries

    def got(self, node: int, index: int, entry: Entry, upto: int) -> Decisive | None:
        """The step at which `node` last came to hold `entry` at `index` by
        `upto` (whether or not it held it still), and what brought it."""
        cells = self.history.cells.get((node, index), [])
        step = None
        held = False
        for cell in cells:
            if cell.step > upto:
                break
            if cell.entry == entry and not held:
                step = cell.step  # acquired here (it may lose it later)
            held = cell.entry == entry
        if step is None:
            return None
        return Decisive(
            step,
            node,
            "append",
            f"node {node} got {entry_words(entry)} at index {index}: {self.event_words(step)}",
        )

    def holders(self, index: int, term: int, entry_id: int | None, step: int) -> list[int]:
        out = []
        for node in self.history.nodes():
            cell = self.history.cell(node, index, step)
            if cell is not None and cell.holds(index, term, entry_id):
                out.append(node)
        return out

    def config_changes(
        self, node: int, since: int, witness: Mapping[str, Any], step: int
    ) -> list[Decisive]:
        """When the voters at the commit (as `node` saw them) are not the
        voters at `step`: where each of the two configurations began."""
        history = self.history
        before = tuple(history.voters_of(node, since))
        now = tuple(sorted(witness.get("voters") or ()))
        if not now or set(before) == set(now):
            return []
        # The committing node's last changes of configuration, up to the commit.
        changes = [(s, v) for s, v in history.voters.get(node, []) if 0 < s <= since]
        out = [(s, node, tuple(v)) for s, v in changes[-3:]]
        for who in history.nodes():  # the first node to hold the later configuration
            began = self._config_began(who, now, step)
            if began is not None and began > 0:
                out.append((began, who, now))
                break
        differ = len(set(before) ^ set(now))
        rule = ""
        if differ > 1:
            rule = (
                "dissertation §4.1: a configuration changes by one server at a time, the next "
                f"only once the previous one is committed; voters {list(before)} at the "
                f"commit and {list(now)} now differ by {differ} servers, so their "
                "majorities need not meet"
            )
        decisives = [
            Decisive(
                s,
                who,
                "config",
                f"node {who}'s voters became {', '.join(map(str, voters))}: {self.event_words(s)}",
            )
            for s, who, voters in sorted(out)
        ]
        if decisives:
            last = decisives[-1]
            decisives[-1] = Decisive(last.step, last.node, last.kind, last.what, rule)
        return decisives

    def _config_began(self, node: int, voters: tuple[int, ...], step: int) -> int | None:
        """The step from which `node` has had `voters` without a break, by `step`."""
        began = None
        for change_step, seen in self.history.voters.get(node, []):
            if change_step > step:
                break
            began = change_step if tuple(seen) == tuple(voters) else None
        return began

    def held_before(self, index: int, term: int, entry_id: int | None, step: int) -> list[int]:
        """The nodes that held the entry at some step up to `step`."""
        out = []
        for node in self.history.nodes():
            for cell in self.history.cells.get((node, index), []):
                if cell.step > step:
                    break
                if cell.holds(index, term, entry_id):
                    out.append(node)
                    break
        return out

    def losses(
        self, index: int, term: int, entry_id: int | None, first: int, last: int
    ) -> list[Decisive]:
        """Every step in first..last where a node that held the entry stopped holding it."""
        out = []
        for node in self.history.nodes():
            cells = self.history.cells.get((node, index), [])
            held = None
            since = 0
            for cell in cells:
                holds = cell.holds(index, term, entry_id)
                if first <= cell.step <= last and held and not holds:
                    out.append(self.lost(node, index, cell, (term, entry_id), since))
                if holds and not held:
                    since = cell.step
                held = holds
        return sorted(out, key=lambda d: d.step)

    def lost(
        self, node: int, index: int, cell: Cell, entry: tuple[int, int | None], since: int
    ) -> Decisive:
        """How `node` lost the entry it had held since step `since`."""
        step = cell.step
        event = self.event(step)
        arrow = self.arrow(step)
        now = "its log ends below it" if cell.entry is None else f"now {entry_words(cell.entry)}"
        what = (
            f"node {node} lost index {index} (term {entry[0]}, id {entry[1]}) ({now}): "
            f"{self.event_words(step)}"
        )
        rule = ""
        if isinstance(event, Crash | Restart):
            rule = "Figure 2: the log is persistent state, on disk before a server answers"
        elif arrow is not None and self.role_of(arrow.kind) == MessageRole.SNAPSHOT:
            rule = (
                "§7 (dissertation Figure 5.3 step 6): a follower keeps the entries after "
                "a snapshot's last index when its log holds that entry"
            )
        elif arrow is not None and self.role_of(arrow.kind) == MessageRole.APPEND:
            sender = self.history.cell(arrow.src, index, arrow.send_step)
            same = sender is not None and sender.holds(index, entry[0], entry[1])
            rule = "Figure 2, AppendEntries rule 3: a follower deletes entries only from a conflict"
            rule += " (an entry of another term at that index)"
            if same:
                rule += f"; the sender, node {arrow.src}, held this very entry there"
            elif arrow.send_step < since:
                rule += (
                    f"; this request was sent at step {arrow.send_step}, before the node got "
                    f"the entry (step {since}): a stale request"
                )
        return Decisive(step, node, "lose", what, rule)

    def commit(self, committed: Mapping[str, Any]) -> Decisive:
        """The commit of an entry as the checker first saw it: who reported
        it, who held it then, and whether that commit was allowed."""
        index = committed["index"]
        term = committed["term"]
        entry_id = committed.get("id")
        step = committed["reported_at_step"]
        node = committed["reported_by"]
        history = self.history
        state = history.at(node, step)
        holders = self.holders(index, term, entry_id, step)
        earlier = [n for n in self.held_before(index, term, entry_id, step) if n not in holders]
        voters = history.voters_of(node, step) or tuple(history.nodes())
        need = quorum.majority(len(voters))
        role = state.role if state is not None else "?"
        node_term = state.term if state is not None else 0
        what = (
            f"node {node} ({role} of term {node_term}) committed index {index} "
            f"(term {term}, id {entry_id}), held then by nodes {', '.join(map(str, holders))} "
            f"({sum(h in voters for h in holders)} of {len(voters)} voters)"
        )
        if earlier:
            what += f"; nodes {', '.join(map(str, earlier))} had held it before"
        rule = ""
        if role == Role.LEADER and earlier and sum(h in voters for h in holders) < need:
            rule = (
                f"§5.3: an entry is committed once a majority ({need}) holds it; the leader "
                "counted acknowledgements of nodes that no longer held it (their losses are "
                "listed)"
            )
        elif role == Role.LEADER and term < node_term:
            rule = (
                f"§5.4.2 (Figure 8): a leader commits by counting replicas only an entry "
                f"of its own term; this one is of term {term}, the leader's term {node_term}: "
                "a later leader may lack it and overwrite it"
            )
        elif role == Role.LEADER and sum(h in voters for h in holders) < need:
            rule = f"§5.3: an entry is committed once a majority ({need}) holds it; fewer did"
        elif role != Role.LEADER:
            arrow = self.arrow(step)
            if arrow is not None:
                what += f", on {self.event_words(step)}"
                sender = history.cell(arrow.src, index, arrow.send_step)
                if sender is not None and not sender.holds(index, term, entry_id):
                    rule = (
                        f"Figure 2, AppendEntries rule 5: a follower commits only up to the "
                        f"last entry the request verified; the leader, node {arrow.src}, held "
                        f"{entry_words(sender.entry)} at index {index}, not this entry"
                    )
        return Decisive(step, node, "commit", what, rule, nodes=tuple(holders))


# One handler per invariant: (violation, context) -> Cause.
Handler = Callable[[Violation, _Context], Cause]


def _lost_entry(v: Violation, ctx: _Context) -> Cause:
    """LeaderCompleteness and CommittedNeverLost: a committed entry that a
    later leader lacks, or that too few voters still hold."""
    w = v.witness
    committed = w["committed"]
    index, term, entry_id = committed["index"], committed["term"], committed.get("id")
    decisive = [ctx.commit(committed)]
    commit_step = committed["reported_at_step"]
    counted = ctx.held_before(index, term, entry_id, commit_step)
    for holder in counted:
        got = None if entry_id is None else ctx.got(holder, index, (term, entry_id), commit_step)
        if got is not None:
            decisive.append(got)
    # The losses after the commit, and those before it of the nodes whose
    # acknowledgement the commit counted but which no longer held the entry.
    for loss in ctx.losses(index, term, entry_id, 0, v.step):
        if loss.step > commit_step or (loss.node in counted and loss.node not in decisive[0].nodes):
            decisive.append(loss)
    entry = f"index {index} (term {term}, id {entry_id})"
    if v.invariant == "LeaderCompleteness":
        leader = w["leader"]
        election = ctx.election(leader, w["term"], v.step, (index, term, entry_id))
        decisive.append(election)
        summary = (
            f"{entry} was committed at step {commit_step} by node {committed['reported_by']}; "
            f"node {leader} was elected leader of term {w['term']} at step {election.step} "
            "without it"
        )
    else:
        holders = w.get("holders", [])
        decisive.extend(ctx.config_changes(committed["reported_by"], commit_step, w, v.step))
        summary = (
            f"{entry} was committed at step {commit_step} by node {committed['reported_by']}; "
            f"by step {v.step} only nodes {holders or 'none'} of voters {w.get('voters')} hold it"
        )
    why = [d.rule.split(":")[0] for d in decisive if d.rule]
    if why:
        summary += f" ({'; '.join(dict.fromkeys(why))})"
    decisive.sort(key=lambda d: d.step)
    return Cause(v.invariant, v.step, summary, tuple(decisive))


def _election_safety(v: Violation, ctx: _Context) -> Cause:
    term = v.witness["term"]
    first, second = v.witness["leaders"]
    elections = [ctx.election(first, term, v.step), ctx.election(second, term, v.step)]
    both = {x.voter for x in elections[0].votes} & {x.voter for x in elections[1].votes}
    extra = [
        Decisive(
            x.step,
            x.voter,
            "vote",
            f"node {x.voter} voted for node {x.candidate} in term {term}, having voted "
            f"for node {first}: {ctx.event_words(x.step)}",
            "§5.2: each server votes for at most one candidate in a term",
        )
        for x in elections[1].votes
        if x.voter in both
    ]
    decisive = sorted([*elections, *extra], key=lambda d: d.step)
    summary = (
        f"nodes {first} and {second} both became leader of term {term} "
        f"(steps {elections[0].step} and {elections[1].step})"
    )
    why = [d.rule.split(":")[0] for d in decisive if d.rule]
    if why:
        summary += f" ({'; '.join(dict.fromkeys(why))})"
    return Cause(v.invariant, v.step, summary, tuple(decisive))


def _vote_once(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    node, term = w["node"], w["term"]
    decisive: list[Decisive] = []
    vote = None
    for change in ctx.history.between(node, 0, v.step):
        if change.term != term:
            vote = None  # a vote of another term binds nothing in this one
            continue
        if change.vote != vote:
            if change.vote is not None:
                ballot = ctx.vote(node, change.vote, term, change.step)
                decisive.append(
                    Decisive(
                        change.step,
                        node,
                        "vote",
                        f"node {node} voted for {_whom(node, change.vote)} in term {term}: "
                        f"{ctx.event_words(change.step)}",
                        "",
                        (ballot,),
                    )
                )
            elif vote is not None:
                event = ctx.event(change.step)
                rule = "§5.2: a server keeps its vote for the whole term"
                if isinstance(event, Crash | Restart):
                    rule = (
                        "Figure 2: votedFor is persistent state, on disk before the server "
                        "answers; it did not survive the crash"
                    )
                decisive.append(
                    Decisive(
                        change.step,
                        node,
                        "vote",
                        f"node {node} forgot its vote for node {vote} in term {term}: "
                        f"{ctx.event_words(change.step)}",
                        rule,
                    )
                )
            vote = change.vote
    if decisive and decisive[-1].kind == "vote" and not decisive[-1].rule:
        forgot = any(d.rule for d in decisive)
        if not forgot:
            last = decisive[-1]
            decisive[-1] = Decisive(
                last.step,
                last.node,
                last.kind,
                last.what,
                "Figure 2, RequestVote rule 2: grant only if votedFor is null or the "
                f"candidate; it had voted for node {w['first_vote']}",
                last.votes,
            )
    summary = (
        f"node {node} voted for node {w['first_vote']} and then for node {w['second_vote']} "
        f"in term {term}"
    )
    return Cause(v.invariant, v.step, summary, tuple(decisive))


def _vote_for_self(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    node, term = w["node"], w["term"]
    step = v.step
    for change in ctx.history.between(node, 0, v.step):
        if change.term == term and change.role in (Role.CANDIDATE, Role.LEADER):
            step = change.step
            break
    kept = ctx.kept_role(node, step)
    if kept is not None:
        return Cause(v.invariant, v.step, kept.what, (kept,))
    whom = "nobody" if w["voted_for"] is None else f"node {w['voted_for']}"
    what = (
        f"node {node} became {w['role']} of term {term} with its vote for {whom}: "
        f"{ctx.event_words(step)}"
    )
    rule = (
        "Figure 2, Candidates: on conversion to candidate, increment currentTerm and vote "
        "for self (votedFor is persistent state)"
    )
    return Cause(v.invariant, v.step, what, (Decisive(step, node, "term", what, rule),))


def _term_monotonic(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    node = w["node"]
    event = ctx.event(v.step)
    arrow = ctx.arrow(v.step)
    rule = "Figure 2: currentTerm is persistent state and only increases"
    if isinstance(event, Restart):
        rule += "; the restart read an older term from the disk"
    elif arrow is not None and ctx.role_of(arrow.kind) == MessageRole.SNAPSHOT:
        rule += (
            "; Figure 13: an InstallSnapshot's term is the leader's, lastIncludedTerm "
            "only the term of its last entry"
        )
    what = (
        f"node {node}'s term went from {w['before']} down to {w['after']}: "
        f"{ctx.event_words(v.step)}"
    )
    return Cause(v.invariant, v.step, what, (Decisive(v.step, node, "term", what, rule),))


def _commit_monotonic(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    node = w["node"]
    arrow = ctx.arrow(v.step)
    what = (
        f"node {node}'s commit index went from {w['before']} down to {w['after']}: "
        f"{ctx.event_words(v.step)}"
    )
    if arrow is not None:
        what += f" ({v.step - arrow.send_step} steps in flight)"
    rule = (
        "Figure 2, AppendEntries rule 5: commitIndex = min(leaderCommit, index of last new "
        "entry) only if leaderCommit > commitIndex: it never goes back"
    )
    return Cause(v.invariant, v.step, what, (Decisive(v.step, node, "commit", what, rule),))


def _leader_append_only(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    what = f"{v.message}: {ctx.event_words(v.step)}"
    rule = "§5.3, Leader Append-Only: a leader never overwrites or deletes entries in its log"
    decisive = [Decisive(v.step, w["node"], "lose", what, rule)]
    return Cause(v.invariant, v.step, v.message, tuple(decisive))


def _log_matching(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    index = w["index"]
    decisive = []
    for side in (w["other"], w["entry"]):
        got = ctx.got(side["node"], index, (side["term"], side["id"]), v.step)
        if got is None:
            continue
        rule = ""
        arrow = ctx.arrow(got.step)
        if index > 1 and arrow is not None and ctx.role_of(arrow.kind) == MessageRole.APPEND:
            mine = ctx.history.cell(side["node"], index - 1, got.step - 1)
            theirs = ctx.history.cell(arrow.src, index - 1, arrow.send_step)
            if mine is not None and theirs is not None and mine.entry != theirs.entry:
                rule = (
                    f"Figure 2, AppendEntries rule 2: accept only if the log holds an entry "
                    f"at prevLogIndex with prevLogTerm; at index {index - 1} node "
                    f"{side['node']} held {entry_words(mine.entry)}, the sender node "
                    f"{arrow.src} {entry_words(theirs.entry)}"
                )
        decisive.append(Decisive(got.step, got.node, got.kind, got.what, rule))
    decisive.sort(key=lambda d: d.step)
    return Cause(v.invariant, v.step, v.message, tuple(decisive))


def _state_machine_safety(v: Violation, ctx: _Context) -> Cause:
    w = v.witness
    index = w["index"]
    decisive = []
    for side in (w["first_applied"], w["applied"]):
        node, entry = side["node"], (side["term"], side["id"])
        got = ctx.got(node, index, entry, v.step)
        if got is not None:
            decisive.append(got)
        applied = [a for a in ctx.history.applied if a[1] == node and a[2] == index]
        applied = [a for a in applied if (a[3], a[4]) == entry] or applied
        if not applied:
            continue
        step = applied[-1][0]
        state = ctx.history.at(node, step)
        what = f"node {node} applied {entry_words(entry)} at index {index}: {ctx.event_words(step)}"
        rule = ""
        arrow = ctx.arrow(step)
        if (
            state is not None
            and state.role == Role.LEADER
            and state.commit == index
            and entry[0] < state.term
        ):
            rule = (
                f"§5.4.2 (Figure 8): a leader commits by counting replicas only an entry of "
                f"its own term; this one is of term {entry[0]}, the leader's {state.term}"
            )
        elif arrow is not None and ctx.role_of(arrow.kind) == MessageRole.APPEND:
            sender = ctx.history.cell(arrow.src, index, arrow.send_step)
            if sender is not None and sender.entry != entry and sender.snapshot_index < index:
                rule = (
                    "Figure 2, AppendEntries rules 2 and 5: a follower commits only entries "
                    f"the request verified; the leader, node {arrow.src}, held "
                    f"{entry_words(sender.entry)} at index {index}"
                )
        decisive.append(Decisive(step, node, "apply", what, rule))
    decisive.sort(key=lambda d: d.step)
    return Cause(v.invariant, v.step, v.message, tuple(decisive))


def _node_exception(v: Violation, ctx: _Context) -> Cause:
    where = "; ".join(v.witness.get("where", [])[-2:])
    node = v.nodes[0] if v.nodes else None
    what = f"{v.message}, on {ctx.event_words(v.step)}"
    rule = f"raised at {where}" if where else ""
    return Cause(v.invariant, v.step, what, (Decisive(v.step, node, "exception", what, rule),))


CAUSES: dict[str, Handler] = {
    "ElectionSafety": _election_safety,
    "VoteOnce": _vote_once,
    "VoteForSelf": _vote_for_self,
    "TermMonotonic": _term_monotonic,
    "CommitMonotonic": _commit_monotonic,
    "LeaderAppendOnly": _leader_append_only,
    "LogMatching": _log_matching,
    "LeaderCompleteness": _lost_entry,
    "StateMachineSafety": _state_machine_safety,
    "CommittedNeverLost": _lost_entry,
    "NodeException": _node_exception,
}
"""The cause of each verdict, by invariant name."""


# ------------------------------------------------------------ for commands


def explain_run(result: RunResult) -> Explained:
    """The cause of a run's verdict (`virtraft run` on a failure), from the
    run held in memory as the trace its file would be."""
    trace = Trace(
        result.seed, result.options, result.factory, tuple(result.events), result.verdict(), {}
    )
    return explain_trace(trace, load_factory(result.factory))


def _whom(node: int, vote: int) -> str:
    return "itself" if vote == node else f"node {vote}"
