"""Self-contained HTML reports: what a person opens when a run failed.

`write_report` replays a trace (the recorded events, not the RNG) and draws
what happened: a space-time diagram with one lane per node, one arrow per
delivered message from its send step to its delivery step, roles and terms
shaded, faults and commits marked, and the violation highlighted; then each
node's final log and the fault timeline. The page is one file with inline
CSS, SVG and a few lines of JS, so it opens offline and can be attached to a
bug report as it is.

Why replay instead of reading the trace alone: a trace names each delivered
message by link and digest, not by when it was sent, and it holds no roles,
terms or commit indexes. Replaying with the network observed recovers all
of that exactly, at the cost of one more run of the trace.

Stable markup, for tests and for anyone scripting over reports:
each lane is `<g class="lane" data-node="N">`, each delivered message an
element with class `msg` (plus `m-<Type>`), a dropped message `dropped`, a
commit `commit`, and the violation one element with class `violation`
(id `violation`). Long runs are drawn in full detail only in a window of
`WINDOW_STEPS` steps around the violation (or the end); a band above the
diagram summarises roles and terms over the whole run.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import re
import shlex
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtraft.adapter import MessageRole, Messages, NodeAdapter, NodeFactory
from virtraft.check.checker import Checker, Violation
from virtraft.sim.events import (
    ChangeMembership,
    ClientRequest,
    Crash,
    Deliver,
    Drop,
    Duplicate,
    Event,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
    Tick,
)
from virtraft.sim.network import Envelope, Network
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import NotApplicable, Simulation
from virtraft.trace.format import Trace, read_trace

if TYPE_CHECKING:
    from virtraft.run.campaign import SeedResult

__all__ = ["render_report", "replay_trace", "write_campaign_index", "write_report"]

WINDOW_STEPS = 600  # steps drawn in full detail
WINDOW_AFTER_STEPS = 40  # of them, how many after the violation (when the trace has them)
LOG_ENTRIES = 50  # last entries shown per node
LOG_ROWS_MAX = 400  # rows of the log table at most
FAULT_ROWS = 1500  # rows of the fault timeline (the last ones, if there are more)
RECENT_EVENTS = 40  # events listed in words before the violation or the end
OVERVIEW_WIDTH_PX = 1200
MESSAGE_TEXT_CHARS = 220

LANE_H = 40
LANE_GAP = 10
AXIS_H = 34
NET_H = 22
DIAGRAM_TOP = AXIS_H + NET_H + 10
LABEL_W = 96

ROLE_COLORS = {
    "leader": "#f2b33d",
    "candidate": "#e8746a",
    "precandidate": "#f4c2a8",
    "follower": "#dce6f2",
    "down": "#8f8f8f",
}
MESSAGE_COLORS = {
    MessageRole.VOTE: "#7d3cb5",
    MessageRole.VOTE_RESPONSE: "#b88ddb",
    MessageRole.APPEND: "#1f66b0",
    MessageRole.APPEND_RESPONSE: "#59a5d8",
    MessageRole.SNAPSHOT: "#d35400",
    MessageRole.SNAPSHOT_RESPONSE: "#e8a06a",
}
EXTRA_COLORS = ("#2e8b57", "#8b6914", "#b03060", "#008b8b", "#556b2f", "#6a5acd", "#444444")


# ---------------------------------------------------------------- replay data


@dataclass(frozen=True, slots=True)
class Arrow:
    """One delivered message: sent by `src` at `send_step`, handed to `dst` at `step`."""

    src: int
    dst: int
    kind: str
    send_step: int
    step: int
    sent_ms: int
    text: str
    entries: int  # entries carried (0 for a heartbeat or a message without entries)
    prevote: bool
    to_down: bool  # the destination was down: the message was lost on arrival


@dataclass(frozen=True, slots=True)
class Loss:
    """A message that never arrived: dropped by the network, or sent on a cut link."""

    src: int
    dst: int
    kind: str
    send_step: int | None
    step: int
    how: str  # "dropped" or "cut"


@dataclass(frozen=True, slots=True)
class Segment:
    """A node's role and term over steps [start, end)."""

    node: int
    start: int
    end: int
    state: str  # a role, or "down"
    term: int


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened at one step on one node's lane (or the network's)."""

    step: int
    node: int | None
    kind: str  # commit crash restart partition heal member snapshot install client dup
    text: str


@dataclass(frozen=True, slots=True)
class FaultRow:
    step: int
    ms: int
    what: str
    detail: str


@dataclass(frozen=True, slots=True)
class LogCell:
    term: int
    entry_id: int
    type: str


@dataclass(frozen=True, slots=True)
class NodeFinal:
    """A node's state at the end of the replay, with the tail of its log."""

    node: int
    alive: bool
    role: str
    term: int
    commit_index: int
    last_index: int
    snapshot_index: int
    snapshot_term: int
    entries: dict[int, LogCell]
    shown_from: int  # first index of this node's own tail window


@dataclass(frozen=True, slots=True)
class Replay:
    """Everything the report draws, recovered by replaying a trace."""

    steps: int  # events applied
    clock_ms: tuple[int, ...]  # clock after each step; index 0 is the start
    nodes: tuple[int, ...]  # every node that ever existed
    segments: dict[int, list[Segment]]
    arrows: list[Arrow]
    losses: list[Loss]
    marks: list[Mark]
    faults: list[FaultRow]
    notes: dict[int, list[str]]  # what changed at a step, in words
    finals: list[NodeFinal]
    violation: Violation | None
    diverged: tuple[int, str] | None  # (step, why) when an event no longer applied
    problem: str | None  # why nothing could be replayed (only events are shown)
    at_step: dict[int, Arrow | Loss] = field(default_factory=dict)
    roles: dict[str, MessageRole] = field(default_factory=dict)  # message kind -> Raft role

    def ms(self, step: int) -> int:
        clock = self.clock_ms
        return clock[min(max(step, 0), len(clock) - 1)]


class _Recorder:
    """Watches one Simulation while it replays: which step sent each envelope,
    which envelope each step took, and every node's role, term and commit."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        net = sim.network
        self.sent: dict[int, tuple[int, int]] = {}  # envelope id -> (step, ms)
        self.taken: Envelope | None = None
        self.copied: Envelope | None = None
        self.cut: list[tuple[int, int, str]] = []  # sends lost on a cut link this step
        self.arrows: list[Arrow] = []
        self.losses: list[Loss] = []
        self.marks: list[Mark] = []
        self.faults: list[FaultRow] = []
        self.notes: dict[int, list[str]] = {}
        self.at_step: dict[int, Arrow | Loss] = {}
        self.roles: dict[str, MessageRole] = {}  # message kind -> what it is for in Raft
        self.clock: list[int] = [sim.clock_ms]
        self.seen: list[int] = []
        self.segments: dict[int, list[Segment]] = {}
        # node -> (state, term, since step, commit index, vote)
        self.state: dict[int, tuple[str, int, int, int, int | None]] = {}
        # node -> (last index, (term, id) of the entry there): the log, in brief
        self.log_tails: dict[int, tuple[int, tuple[int, int] | None]] = {}
        self._wrap(net)
        self._observe_nodes(0)

    def _wrap(self, net: Network) -> None:
        """Instance attributes shadow the Network's methods; the simulator calls
        them through `self.network`, so nothing in network.py changes."""
        send, take, duplicate = net.send, net.take, net.duplicate
        sim = self.sim

        def observed_send(src: int, dst: int, message: object, now_ms: int, delay_ms: int) -> None:
            # Envelope ids are assigned in send order; a send on a cut link makes none.
            before = net._next_id
            send(src, dst, message, now_ms, delay_ms)
            if net._next_id != before:
                self.sent[before] = (sim.step, now_ms)
            else:
                kind = sim.messages.kind(message)
                self.roles.setdefault(kind, sim.messages.role(message))
                self.cut.append((src, dst, kind))

        def observed_take(env: Envelope) -> None:
            self.taken = env
            take(env)

        def observed_duplicate(env: Envelope) -> Envelope:
            copy = duplicate(env)
            self.copied = env
            if env.id in self.sent:
                self.sent[copy.id] = self.sent[env.id]
            return copy

        net.send = observed_send  # type: ignore[method-assign]
        net.take = observed_take  # type: ignore[method-assign]
        net.duplicate = observed_duplicate  # type: ignore[method-assign]

    def note(self, step: int, text: str) -> None:
        self.notes.setdefault(step, []).append(text)

    def apply(self, event: Event) -> Violation | None:
        """Apply one event (NotApplicable propagates) and record what it did."""
        sim = self.sim
        stats = sim.stats
        before = (stats.membership_changes, stats.snapshots_taken, stats.snapshots_installed,
                  sim.last_submitted)
        self.taken = self.copied = None
        self.cut = []
        violation = sim.apply(event)
        step = sim.step
        self.clock.append(sim.clock_ms)
        self._observe_event(step, event, before)
        self._observe_nodes(step)
        return violation

    def _observe_event(self, step: int, event: Event, before: tuple) -> None:
        sim = self.sim
        ms = sim.clock_ms
        for src, dst, kind in self.cut:
            loss = Loss(src, dst, kind, step, step, "cut")
            self.losses.append(loss)
        env = self.taken
        messages = sim.messages
        if env is not None:
            self.roles.setdefault(env.kind, messages.role(env.message))
        if isinstance(event, Deliver) and env is not None:
            sent_step, sent_ms = self.sent.pop(env.id, (0, env.sent_ms))
            target = sim.nodes.get(env.dst)
            arrow = Arrow(
                env.src, env.dst, env.kind, sent_step, step, sent_ms,
                message_text(messages, env.message), messages.entries_carried(env.message),
                messages.is_prevote(env.message),
                target is None or not target.alive,
            )
            self.arrows.append(arrow)
            self.at_step[step] = arrow
        elif isinstance(event, Drop) and env is not None:
            sent = self.sent.pop(env.id, None)
            loss = Loss(env.src, env.dst, env.kind, sent[0] if sent else None, step, "dropped")
            self.losses.append(loss)
            self.at_step[step] = loss
        elif isinstance(event, Duplicate) and self.copied is not None:
            env = self.copied
            self.marks.append(Mark(step, env.src, "dup",
                                   f"the network copied {env.kind} {env.src}→{env.dst}"))
        members, taken, installed, submitted = before
        stats = sim.stats
        if isinstance(event, Crash):
            self._fault(step, ms, "crash", f"node {event.node} crashes", event.node)
        elif isinstance(event, Restart):
            self._fault(step, ms, "restart", f"node {event.node} restarts from its disk",
                        event.node)
        elif isinstance(event, Partition):
            self._fault(step, ms, "partition", partition_text(event), None)
        elif isinstance(event, Heal):
            what = "network heals" + (" and loses everything in flight" if event.flush else "")
            self._fault(step, ms, "heal", what, None)
        elif isinstance(event, ChangeMembership):
            outcome = "accepted" if stats.membership_changes > members else "refused"
            self._fault(step, ms, "member",
                        f"node {event.via} asked to {event.change.value} node {event.node}: "
                        f"{outcome}", event.via)
        elif isinstance(event, TakeSnapshot):
            outcome = ("compacted its log" if stats.snapshots_taken > taken
                       else "nothing to compact")
            self._fault(step, ms, "snapshot", f"node {event.node} snapshots: {outcome}",
                        event.node)
        elif isinstance(event, ClientRequest):
            last = sim.last_submitted
            if last is not None and last is not submitted and last[0] == event.command:
                _command, node_id, where = last
                text = (f"node {node_id} took command {event.command} at index "
                        f"{where.index} (term {where.term})")
                self.marks.append(Mark(step, node_id, "client", text))
            else:
                text = f"command {event.command} sent to node {event.node} was not taken"
                self.marks.append(Mark(step, event.node, "client", text))
            self.note(step, text)
        if stats.snapshots_installed > installed and isinstance(event, Deliver):
            self._fault(step, ms, "install",
                        f"node {event.dst} installed a snapshot from node {event.src}", event.dst)

    def _fault(self, step: int, ms: int, kind: str, text: str, node: int | None) -> None:
        self.faults.append(FaultRow(step, ms, kind, text))
        self.marks.append(Mark(step, node, kind, text))
        if kind in ("member", "snapshot", "install"):  # the outcome is news
            self.note(step, text)

    def _observe_nodes(self, step: int) -> None:
        sim = self.sim
        nodes = sim.nodes
        state = self.state
        if len(nodes) != len(state) or any(n not in nodes for n in state):
            for node_id in list(state):
                if node_id not in nodes:  # refused entry: the node never existed
                    self._close(node_id, step)
                    del state[node_id]
        for node_id in sim.node_ids:
            node = nodes[node_id]
            alive = node.alive
            role = str(node.role.value) if alive else "down"
            term = node.term
            commit = node.commit_index if alive else 0
            vote = node.voted_for
            old = state.get(node_id)
            if old is None:
                if node_id not in self.segments:
                    self.seen.append(node_id)
                    self.segments[node_id] = []
                state[node_id] = (role, term, step, commit, vote)
                if step:
                    self.note(step, f"node {node_id} joins as {role} in term {term}")
                continue
            old_role, old_term, since, old_commit, old_vote = old
            if role != old_role or term != old_term:
                self.segments[node_id].append(Segment(node_id, since, step, old_role, old_term))
                since = step
                if role != old_role:
                    self.note(step, f"node {node_id} became {role}"
                              + (f" in term {term}" if role != "down" else ""))
                else:
                    self.note(step, f"node {node_id} moved to term {term} as {role}")
            if commit > old_commit and alive:
                text = f"node {node_id} committed through index {commit}"
                self.marks.append(Mark(step, node_id, "commit",
                                       f"{text} (was {old_commit})"))
                self.note(step, text)
            if vote != old_vote and vote is not None and alive:
                self.note(step, f"node {node_id} voted for node {vote} in term {term}")
            if alive:
                self._observe_log(step, node_id, node)
            state[node_id] = (role, term, since, commit, vote)

    def _observe_log(self, step: int, node_id: int, node: NodeAdapter) -> None:
        """Say when a log grows or is rewritten, judged by its last entry. A
        snapshot's own note says what compaction or an install did."""
        last = node.last_index
        tail = (last, node.entry(last))
        old = self.log_tails.get(node_id)
        self.log_tails[node_id] = tail
        if old is None or old == tail or tail[1] is None:
            return
        old_last, old_entry = old
        kept = old_last <= node.snapshot_index or node.entry(old_last) == old_entry
        term = tail[1][0]
        if last > old_last and kept:
            what = f"index {last}" if last == old_last + 1 else f"indexes {old_last + 1}-{last}"
            self.note(step, f"node {node_id} appended {what} (term {term})")
        else:
            self.note(step, f"node {node_id} rewrote its log: it now ends at index {last} "
                            f"(term {term})")

    def _close(self, node_id: int, end: int) -> None:
        role, term, since, _commit, _vote = self.state[node_id]
        self.segments[node_id].append(Segment(node_id, since, end, role, term))

    def finish(self, violation: Violation | None, diverged: tuple[int, str] | None) -> Replay:
        end = self.sim.step + 1
        for node_id in list(self.state):
            self._close(node_id, end)
        return Replay(
            steps=self.sim.step, clock_ms=tuple(self.clock), nodes=tuple(sorted(self.seen)),
            segments=self.segments, arrows=self.arrows, losses=self.losses, marks=self.marks,
            faults=self.faults, notes=self.notes, finals=_finals(self.sim),
            violation=violation, diverged=diverged, problem=None, at_step=self.at_step,
            roles=self.roles,
        )


def replay_trace(trace: Trace, factory: NodeFactory | None = None) -> Replay:
    """Replay every event of `trace` under observation. Never raises for a
    trace that no longer applies or a factory that cannot load: the Replay
    then says why, and holds what the events alone tell."""
    if factory is None:
        from virtraft.adapter import FactoryError
        from virtraft.run.factory import factory_for_trace, load_factory

        try:
            factory = load_factory(factory_for_trace(trace.factory, None))
        except FactoryError as exc:
            return _events_only(trace, f"could not load the node factory: {exc}")
    try:
        sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    except Exception as exc:  # a user's factory failed to build a node
        return _events_only(trace, f"could not start the simulation: {type(exc).__name__}: {exc}")
    recorder = _Recorder(sim)
    violation = None
    diverged = None
    for event in trace.events:
        try:
            violation = recorder.apply(event)
        except NotApplicable as exc:
            diverged = (sim.step + 1, str(exc))
            break
        if violation is not None:
            break
    return recorder.finish(violation, diverged)


def _events_only(trace: Trace, problem: str) -> Replay:
    """What the trace says without a replay: the clock and the faults."""
    clock = [0]
    faults: list[FaultRow] = []
    marks: list[Mark] = []
    for step, event in enumerate(trace.events, start=1):
        ms = clock[-1] + (event.ms if isinstance(event, Tick) else 0)
        clock.append(ms)
        text = _fault_text(event)
        if text is not None:
            kind, node, words = text
            faults.append(FaultRow(step, ms, kind, words))
            marks.append(Mark(step, node, kind, words))
    nodes = tuple(range(1, trace.options.servers + 1))
    return Replay(
        steps=len(trace.events), clock_ms=tuple(clock), nodes=nodes, segments={},
        arrows=[], losses=[], marks=marks, faults=faults, notes={}, finals=[],
        violation=None, diverged=None, problem=problem,
    )


def _fault_text(event: Event) -> tuple[str, int | None, str] | None:
    if isinstance(event, Crash):
        return "crash", event.node, f"node {event.node} crashes"
    if isinstance(event, Restart):
        return "restart", event.node, f"node {event.node} restarts from its disk"
    if isinstance(event, Partition):
        return "partition", None, partition_text(event)
    if isinstance(event, Heal):
        return "heal", None, "network heals" + (" and loses everything in flight"
                                                if event.flush else "")
    if isinstance(event, ChangeMembership):
        return ("member", event.via,
                f"node {event.via} asked to {event.change.value} node {event.node}")
    if isinstance(event, TakeSnapshot):
        return "snapshot", event.node, f"node {event.node} snapshots"
    return None


def _finals(sim: Simulation) -> list[NodeFinal]:
    """Each node's state and log at the end: the last LOG_ENTRIES entries of each
    node, and every node's entry at each index some node shows, so that rows
    compare like with like."""
    views = [sim.nodes[node_id] for node_id in sim.node_ids]
    firsts = [max(v.snapshot_index + 1, v.last_index - LOG_ENTRIES + 1, 1) for v in views]
    shown = sorted({i for v, first in zip(views, firsts, strict=True)
                    for i in range(first, v.last_index + 1)})
    finals = []
    for node, first in zip(views, firsts, strict=True):
        snap = node.snapshot_index
        entries: dict[int, LogCell] = {}
        for index in shown:
            if snap < index <= node.last_index:
                got = node.entry(index)
                if got is not None:
                    entries[index] = LogCell(got[0], got[1], node.entry_kind(index))
        finals.append(NodeFinal(
            node.node_id, node.alive, str(node.role.value) if node.alive else "down",
            node.term, node.commit_index, node.last_index, snap, node.snapshot_term, entries,
            first,
        ))
    return finals


def message_text(messages: Messages, message: object) -> str:
    """A message in one line, cut to MESSAGE_TEXT_CHARS."""
    text = messages.text(message)
    if len(text) > MESSAGE_TEXT_CHARS:
        text = text[: MESSAGE_TEXT_CHARS - 1] + "…"
    return text


def partition_text(event: Partition) -> str:
    links = ", ".join(f"{a}→{b}" for a, b in event.down[:12])
    more = f" (+{len(event.down) - 12} more)" if len(event.down) > 12 else ""
    text = f"partition ({event.shape}): {len(event.down)} links down"
    if event.down:
        text += f" [{links}{more}]"
    if event.held:
        held = ", ".join(f"{a}→{b}" for a, b in event.held[:12])
        text += f"; {len(event.held)} held [{held}]"
    return text


def event_text(event: Event, replay: Replay, step: int) -> str:
    """One event in words, with what the replay knows about its message."""
    if isinstance(event, Deliver):
        arrow = replay.at_step.get(step)
        text = f"deliver {event.msg} {event.src}→{event.dst}"
        if isinstance(arrow, Arrow):
            text += f" (sent at step {arrow.send_step}): {arrow.text}"
            if arrow.to_down:
                text += " — node is down, message lost"
        return text
    if isinstance(event, Drop):
        return f"network drops {event.msg} {event.src}→{event.dst}"
    if isinstance(event, Duplicate):
        return f"network duplicates {event.msg} {event.src}→{event.dst}"
    if isinstance(event, Tick):
        return f"clock +{event.ms} ms; node {event.node} ticks"
    if isinstance(event, ClientRequest):
        return (f"client sends command {event.command} ({event.key}={event.value}) "
                f"to node {event.node}")
    if isinstance(event, ChangeMembership):
        return f"node {event.via} is asked to {event.change.value} node {event.node}"
    fault = _fault_text(event)
    return fault[2] if fault else repr(event)


# ------------------------------------------------------------------ rendering

esc = html.escape


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _css_name(kind: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", kind) or "_"


@dataclass(frozen=True, slots=True)
class _Focus:
    """Which violation the page shows and where the detailed window is."""

    violation: dict[str, Any] | None
    step: int | None
    start: int
    end: int


def _shown_violation(trace: Trace, replay: Replay) -> dict[str, Any] | None:
    if replay.violation is not None:
        return dataclasses.asdict(replay.violation)
    recorded = trace.verdict.get("violation")
    return recorded if isinstance(recorded, dict) else None


def _focus(trace: Trace, replay: Replay) -> _Focus:
    violation = _shown_violation(trace, replay)
    total = replay.steps
    step = violation.get("step") if violation else None
    if not isinstance(step, int) or not 1 <= step <= total:
        step = None
    if total <= WINDOW_STEPS:
        return _Focus(violation, step, 1, max(total, 1))
    end = total
    if step is not None:
        end = min(total, max(step + WINDOW_AFTER_STEPS, WINDOW_STEPS))
    return _Focus(violation, step, end - WINDOW_STEPS + 1, end)


def _message_colors(kinds: Sequence[str], roles: dict[str, MessageRole]) -> dict[str, str]:
    """A colour per message kind: by its Raft role when the implementation
    says what it is, else one of the extra colours."""
    colors = {k: MESSAGE_COLORS[roles[k]] for k in kinds if roles.get(k) in MESSAGE_COLORS}
    extra = iter(EXTRA_COLORS * (1 + len(kinds) // len(EXTRA_COLORS)))
    for kind in sorted(set(kinds) - set(colors)):
        colors[kind] = next(extra)
    return colors


class _Svg:
    """Geometry of the detailed diagram: step s is drawn at the middle of its column."""

    def __init__(self, replay: Replay, focus: _Focus) -> None:
        self.replay = replay
        self.start = focus.start
        self.end = focus.end
        n = self.end - self.start + 1
        self.pps = min(24.0, max(4.0, 1400.0 / n))
        self.left = 12.0
        self.width = self.left * 2 + n * self.pps
        self.row = {node: i for i, node in enumerate(replay.nodes)}
        self.height = DIAGRAM_TOP + len(replay.nodes) * (LANE_H + LANE_GAP) + 8

    def x(self, step: float) -> float:
        return self.left + (step - self.start + 0.5) * self.pps

    def clamp_x(self, step: float) -> float:
        return min(max(self.x(step), 0.0), self.width)

    def top(self, node: int) -> float:
        return DIAGRAM_TOP + self.row[node] * (LANE_H + LANE_GAP)

    def y(self, node: int) -> float:
        return self.top(node) + LANE_H / 2

    def visible(self, step: int) -> bool:
        return self.start <= step <= self.end


def _tick_every(pps: float, span: int) -> int:
    for every in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if every * pps >= 70:
            return every
    return max(1, span)


def _diagram(trace: Trace, replay: Replay, focus: _Focus, colors: dict[str, str]) -> str:
    g = _Svg(replay, focus)
    out: list[str] = []
    add = out.append
    add(f'<svg class="diagram" id="diagram" data-first-step="{g.start}" '
        f'data-last-step="{g.end}" width="{_num(g.width)}" height="{g.height}" '
        f'viewBox="0 0 {_num(g.width)} {g.height}" role="img" '
        f'aria-label="space-time diagram, steps {g.start} to {g.end}">')
    add("<defs>")
    add(f'<clipPath id="clip"><rect x="0" y="0" width="{_num(g.width)}" '
        f'height="{g.height}"/></clipPath>')
    for kind, color in sorted(colors.items()):
        add(f'<marker id="ah-{_css_name(kind)}" viewBox="0 0 8 8" refX="7.5" refY="4" '
            f'markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0L8,4L0,8z" '
            f'fill="{color}"/></marker>')
    add("</defs>")
    add('<g clip-path="url(#clip)">')
    _axis(g, add)
    _network_row(replay, g, add)
    for node in replay.nodes:
        _lane(replay, g, node, add)
    _phase_line(trace, replay, g, add)
    _marks(replay, g, add)
    _messages(replay, g, add)
    if focus.violation is not None and focus.step is not None and g.visible(focus.step):
        _violation_marker(replay, g, focus, add)
    add("</g></svg>")
    return "".join(out)


def _axis(g: _Svg, add: Callable[[str], None]) -> None:
    every = _tick_every(g.pps, g.end - g.start + 1)
    first = ((g.start + every - 1) // every) * every
    add('<g class="axis">')
    for step in range(first, g.end + 1, every):
        x = _num(g.x(step))
        add(f'<line x1="{x}" y1="{AXIS_H - 6}" x2="{x}" y2="{g.height}" class="grid"/>'
            f'<text x="{x}" y="12" class="tick">{step}</text>'
            f'<text x="{x}" y="25" class="tick ms">{g.replay.ms(step)} ms</text>')
    add("</g>")


def _partition_spans(replay: Replay) -> list[tuple[int, int, str]]:
    """(from step, to step, words) for every stretch of a partitioned network."""
    spans = []
    open_at: tuple[int, str] | None = None
    for row in replay.faults:
        if row.what in ("partition", "heal"):
            if open_at is not None:
                spans.append((open_at[0], row.step, open_at[1]))
                open_at = None
            if row.what == "partition":
                open_at = (row.step, row.detail)
    if open_at is not None:
        spans.append((open_at[0], replay.steps + 1, open_at[1]))
    return spans


def _network_row(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    y = AXIS_H + 4
    add(f'<g class="network"><text x="{_num(g.left)}" y="{y + 14}" class="netlabel">'
        f"network</text>")
    for start, end, text in _partition_spans(replay):
        if end < g.start or start > g.end:
            continue
        x1 = g.clamp_x(start)
        x2 = g.clamp_x(end)
        add(f'<rect class="partitioned" x="{_num(x1)}" y="{y}" width="{_num(max(x2 - x1, 1))}" '
            f'height="{NET_H - 4}"><title>{esc(text)} (steps {start}–{end})</title></rect>')
        if x2 - x1 > 60:
            add(f'<text class="netlabel" x="{_num(x1 + 3)}" y="{y + 13}">'
                f"{esc(text[:max(8, int((x2 - x1) / 6))])}</text>")
    add("</g>")


def _lane(replay: Replay, g: _Svg, node: int, add: Callable[[str], None]) -> None:
    top = g.top(node)
    y = g.y(node)
    add(f'<g class="lane" data-node="{node}">')
    for seg in replay.segments.get(node, ()):
        if seg.end <= g.start - 1 or seg.start > g.end:
            continue
        x1 = g.clamp_x(seg.start)
        x2 = g.clamp_x(seg.end)
        if x2 <= x1:
            continue
        add(f'<rect class="role role-{_css_name(seg.state)}" x="{_num(x1)}" y="{_num(top)}" '
            f'width="{_num(x2 - x1)}" height="{LANE_H}"><title>node {node} {esc(seg.state)}, '
            f"term {seg.term}, steps {seg.start}–{seg.end - 1} "
            f"({replay.ms(seg.start)}–{replay.ms(seg.end - 1)} ms)</title></rect>")
        if x2 - x1 >= 22:
            add(f'<text class="term" x="{_num(x1 + 2)}" y="{_num(top + 10)}">'
                f"{'t' + str(seg.term) if seg.state != 'down' else 'down'}</text>")
        elif x2 - x1 >= 10 and seg.state == "leader":
            add(f'<text class="term" x="{_num(x1 + 1)}" y="{_num(top + 10)}">'
                f"{seg.term}</text>")
    add(f'<line class="lane-line" x1="0" y1="{_num(y)}" x2="{_num(g.width)}" y2="{_num(y)}"/>')
    add("</g>")


def _phase_line(trace: Trace, replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    """Where the liveness phase begins: the first event after the safety steps."""
    step = trace.options.steps + 1
    events = trace.events
    if step > replay.steps or not g.visible(step) or not isinstance(events[step - 1], Heal):
        return
    x = _num(g.x(step) - g.pps / 2)
    add(f'<g class="phase"><line x1="{x}" y1="{AXIS_H}" x2="{x}" y2="{g.height}"/>'
        f'<text x="{x}" y="{g.height - 2}" dx="3">liveness phase →</text></g>')


_MARK_SHAPES = {
    "crash": ("✕", "crash"),
    "restart": ("↻", "restart"),
    "member": ("◆", "member"),
    "snapshot": ("▣", "snapshot"),
    "install": ("▤", "install"),
    "client": ("▾", "client"),
    "dup": ("+", "dup"),
}


def _marks(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    for mark in replay.marks:
        if not g.visible(mark.step):
            continue
        x = _num(g.x(mark.step))
        title = f"<title>step {mark.step} ({replay.ms(mark.step)} ms): {esc(mark.text)}</title>"
        if mark.kind in ("partition", "heal"):
            add(f'<g class="{mark.kind}"><line x1="{x}" y1="{AXIS_H}" x2="{x}" '
                f'y2="{g.height}"/>{title}</g>')
            continue
        if mark.node is None or mark.node not in g.row:
            continue
        top = g.top(mark.node)
        if mark.kind == "commit":
            add(f'<circle class="commit" cx="{x}" cy="{_num(top + LANE_H - 6)}" r="3">'
                f"{title}</circle>")
            continue
        symbol, css = _MARK_SHAPES.get(mark.kind, ("•", "other"))
        yy = top + (13 if mark.kind in ("client", "dup") else LANE_H - 2)
        add(f'<text class="mark {css}" x="{x}" y="{_num(yy)}">{symbol}{title}</text>')


def _messages(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    for arrow in replay.arrows:
        if not g.visible(arrow.step):
            continue
        kind = _css_name(arrow.kind)
        classes = f"msg m-{kind}"
        if arrow.entries:
            classes += " carries"
        if arrow.prevote:
            classes += " prevote"
        if arrow.to_down:
            classes += " to-down"
        if arrow.send_step < g.start:
            classes += " early"
        add(f'<line class="{classes}" x1="{_num(g.x(arrow.send_step))}" '
            f'y1="{_num(g.y(arrow.src))}" x2="{_num(g.x(arrow.step))}" '
            f'y2="{_num(g.y(arrow.dst))}" marker-end="url(#ah-{kind})">'
            f"<title>{esc(arrow.kind)} {arrow.src}→{arrow.dst}, sent step {arrow.send_step} "
            f"({arrow.sent_ms} ms), delivered step {arrow.step} ({replay.ms(arrow.step)} ms)"
            f"{' to a down node' if arrow.to_down else ''}: {esc(arrow.text)}</title></line>")
    for loss in replay.losses:
        if not g.visible(loss.step):
            continue
        if loss.src not in g.row or loss.dst not in g.row:
            continue
        y_src = g.y(loss.src)
        y_mid = (y_src + g.y(loss.dst)) / 2
        x2 = g.x(loss.step)
        if loss.how == "cut":
            title = f"{loss.kind} {loss.src}→{loss.dst} sent on a cut link at step {loss.step}"
            add(f'<g class="lost"><path d="M{_num(x2 - 2)},{_num(y_src - 7)}l4,4m0,-4l-4,4"/>'
                f"<title>{esc(title)}</title></g>")
            continue
        send = loss.send_step if loss.send_step is not None else loss.step
        title = (f"{loss.kind} {loss.src}→{loss.dst} sent at step {send}, dropped at step "
                 f"{loss.step} ({replay.ms(loss.step)} ms)")
        add(f'<g class="dropped"><line x1="{_num(g.x(send))}" y1="{_num(y_src)}" '
            f'x2="{_num(x2)}" y2="{_num(y_mid)}"/><path d="M{_num(x2 - 3)},{_num(y_mid - 3)}'
            f'l6,6m0,-6l-6,6"/><title>{esc(title)}</title></g>')


def _violation_marker(replay: Replay, g: _Svg, focus: _Focus, add: Callable[[str], None]) -> None:
    violation = focus.violation
    assert violation is not None and focus.step is not None
    x = g.x(focus.step)
    name = str(violation.get("invariant", "violation"))
    message = str(violation.get("message", ""))
    words = f"{name} at step {focus.step}: {message}"
    short = words if len(words) <= 110 else words[:109] + "…"
    anchor_end = x > g.width - 420
    tx = x - 8 if anchor_end else x + 8
    add(f'<g class="violation" id="violation" data-step="{focus.step}" '
        f'data-invariant="{esc(name)}">')
    add(f'<rect class="vband" x="{_num(x - max(g.pps, 6) / 2)}" y="{AXIS_H}" '
        f'width="{_num(max(g.pps, 6))}" height="{g.height - AXIS_H}"/>')
    for node in violation.get("nodes") or ():
        if isinstance(node, int) and node in g.row:
            add(f'<circle class="vnode" cx="{_num(x)}" cy="{_num(g.y(node))}" r="7"/>')
    add(f'<text class="vtext" x="{_num(tx)}" y="{AXIS_H + 15}" '
        f'text-anchor="{"end" if anchor_end else "start"}">{esc(short)}</text>')
    add(f"<title>{esc(words)}</title></g>")


def _overview(trace: Trace, replay: Replay, focus: _Focus) -> str:
    """The whole run in one band per lane: the dominant role per pixel column,
    terms where they change, and a bracket around the detailed window."""
    total = replay.steps + 1  # steps 0..steps
    width = OVERVIEW_WIDTH_PX
    columns = min(total, width)
    per = total / columns
    px = width / columns
    lane_h = 14
    top = 20
    height = top + len(replay.nodes) * (lane_h + 4) + 18
    out = [f'<svg class="overview" width="{width + LABEL_W}" height="{height}" '
           f'viewBox="0 0 {width + LABEL_W} {height}" role="img" '
           f'aria-label="whole run, steps 1 to {replay.steps}">']
    add = out.append
    for start, end, text in _partition_spans(replay):
        x1 = LABEL_W + start / per * px
        x2 = LABEL_W + end / per * px
        add(f'<rect class="partitioned" x="{_num(x1)}" y="4" width="{_num(max(x2 - x1, 1))}" '
            f'height="10"><title>{esc(text)} (steps {start}–{end})</title></rect>')
    add('<text x="2" y="13" class="netlabel">network</text>')
    for i, node in enumerate(replay.nodes):
        y = top + i * (lane_h + 4)
        add(f'<g class="band" data-node="{node}"><text x="2" y="{y + 11}" class="bandlabel">'
            f"node {node}</text>")
        cells = _dominant(replay.segments.get(node, []), columns, per)
        last_label_x = -1e9
        run_start = 0
        for c in range(1, columns + 1):
            if c < columns and cells[c] == cells[run_start]:
                continue
            state, term = cells[run_start] if cells[run_start] else ("", 0)
            if state:
                x1 = LABEL_W + run_start * px
                add(f'<rect class="role role-{_css_name(state)}" x="{_num(x1)}" y="{y}" '
                    f'width="{_num((c - run_start) * px)}" height="{lane_h}"><title>node '
                    f"{node} {esc(state)} term {term}, steps ≈{int(run_start * per)}–"
                    f"{int(c * per)}</title></rect>")
                if state != "down" and x1 - last_label_x >= 34:
                    add(f'<text class="term" x="{_num(x1 + 1)}" y="{y + 10}">t{term}</text>')
                    last_label_x = x1
            run_start = c
        add("</g>")
    wx1 = LABEL_W + focus.start / per * px
    wx2 = LABEL_W + (focus.end + 1) / per * px
    add(f'<rect class="window" x="{_num(wx1)}" y="1" width="{_num(max(wx2 - wx1, 2))}" '
        f'height="{height - 16}"><title>drawn in detail below: steps {focus.start}–'
        f"{focus.end}</title></rect>")
    if focus.step is not None:
        vx = _num(LABEL_W + focus.step / per * px)
        add(f'<line class="overview-violation" x1="{vx}" y1="1" x2="{vx}" y2="{height - 16}"/>')
    for step in (1, replay.steps):
        anchor = "start" if step == 1 else "end"
        add(f'<text class="tick" x="{_num(LABEL_W + step / per * px)}" y="{height - 3}" '
            f'text-anchor="{anchor}">step {step} · {replay.ms(step)} ms</text>')
    add("</svg>")
    return "".join(out)


def _dominant(
    segments: Sequence[Segment], columns: int, per: float
) -> list[tuple[str, int] | None]:
    """For each column (covering `per` steps), the (role, term) that held longest."""
    weights: list[Counter[tuple[str, int]]] = [Counter() for _ in range(columns)]
    for seg in segments:
        s, e = float(seg.start), float(seg.end)
        c = int(s / per)
        while c < columns and c * per < e:
            lo, hi = max(s, c * per), min(e, (c + 1) * per)
            if hi > lo:
                weights[c][(seg.state, seg.term)] += hi - lo
            c += 1
    cells: list[tuple[str, int] | None] = []
    for counter in weights:
        if not counter:
            cells.append(None)
            continue
        best = max(counter.items(), key=lambda kv: (kv[1], kv[0][0] == "leader", kv[0][1]))
        cells.append(best[0])
    return cells


def _labels_svg(replay: Replay, g_height: int) -> str:
    out = [f'<svg class="labels" width="{LABEL_W}" height="{g_height}" '
           f'viewBox="0 0 {LABEL_W} {g_height}">']
    out.append('<text x="4" y="12" class="tick">step</text>'
               '<text x="4" y="25" class="tick ms">virtual time</text>')
    for i, node in enumerate(replay.nodes):
        y = DIAGRAM_TOP + i * (LANE_H + LANE_GAP) + LANE_H / 2 + 4
        out.append(f'<text class="lane-label" data-node="{node}" x="4" y="{_num(y)}">'
                   f"node {node}</text>")
    out.append("</svg>")
    return "".join(out)


# ------------------------------------------------------------------ the page

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
main{padding:16px 24px;max-width:1700px}
h1{font-size:22px;margin:4px 0 8px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.headline{font-size:18px;font-weight:600;padding:10px 14px;border-radius:6px;margin:8px 0}
.bad{background:#fde2e0;color:#8b1a10}.warn{background:#fff1cc;color:#6b4b00}
.good{background:#e3f4e1;color:#1d5e1a}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 8px;
text-align:left;vertical-align:top}th{background:#f0f0f0}
table.kv th{width:13em;background:#f6f6f6}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:#f2f2f2;padding:8px 10px;border-radius:4px;overflow-x:auto;margin:4px 0}
.note{color:#555;font-size:13px}
.diagram-wrap{display:flex;border:1px solid #ddd;background:#fff}
.diagram-scroll{overflow-x:auto;flex:1}
svg text{font-size:10px;fill:#333}
.tick{font-size:10px;text-anchor:middle}.labels .tick{text-anchor:start}.ms{fill:#777}
.grid{stroke:#eee;stroke-width:1}
.lane-label,.bandlabel{font-size:12px;font-weight:600}
.lane-line{stroke:#b5b5b5;stroke-width:1}
.role{opacity:.75}
.role-leader{fill:#f2b33d}.role-candidate{fill:#e8746a}.role-precandidate{fill:#f4c2a8}
.role-follower{fill:#dce6f2}.role-down{fill:#8f8f8f}
.term{font-size:9px;fill:#222}
.msg{stroke-width:1.1;opacity:.85}.msg.carries{stroke-width:2.2}.msg.prevote{stroke-dasharray:4 2}
.msg.to-down{stroke-dasharray:1 2;opacity:.6}.msg:hover{stroke-width:3.5;opacity:1}
.dropped line{stroke:#c0392b;stroke-dasharray:3 2;stroke-width:1}
.dropped path,.lost path{stroke:#c0392b;stroke-width:1.6;fill:none}
.commit{fill:#1e8449;stroke:#fff;stroke-width:.8}
.mark{font-size:13px;text-anchor:middle}.mark.crash{fill:#b00;font-weight:700}
.mark.restart{fill:#1e8449;font-weight:700}.mark.member{fill:#6a1b9a}
.mark.snapshot,.mark.install{fill:#555}.mark.client{fill:#0b6e99;font-size:11px}
.mark.dup{fill:#a04000;font-size:11px}
.partition line{stroke:#b03a2e;stroke-width:1.2;stroke-dasharray:6 3}
.heal line{stroke:#1e8449;stroke-width:1.2;stroke-dasharray:6 3}
.partitioned{fill:#f5b7b1;opacity:.8}.netlabel{font-size:10px;fill:#7b241c}
.phase line{stroke:#1a5276;stroke-width:1.5;stroke-dasharray:2 2}.phase text{fill:#1a5276}
.vband{fill:#e74c3c;opacity:.22}.vnode{fill:none;stroke:#c0392b;stroke-width:2.5}
.vtext{font-size:12px;font-weight:700;fill:#a31515;paint-order:stroke;stroke:#fff;
stroke-width:3px}
.window{fill:none;stroke:#1a5276;stroke-width:1.5}
.overview-violation{stroke:#c0392b;stroke-width:2}
.legend span{display:inline-block;margin:0 14px 4px 0;font-size:12px}
.swatch{display:inline-block;width:22px;height:10px;vertical-align:middle;margin-right:4px;
border-radius:2px}
.logs td{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:nowrap}
.logs tr.diverge td.idx{background:#f9d6d2;font-weight:700}
.logs td.differs{background:#f5b7b1;font-weight:700}
.logs td.uncommitted{color:#777;font-style:italic}
.logs td.compacted{color:#999}.logs tr.gap td{text-align:center;color:#999}
tr.in-window td{background:#eef5fb}.recent td:nth-child(-n+2){white-space:nowrap}
details{margin:6px 0}summary{cursor:pointer;color:#1a5276}
"""

_JS = """
(function(){var s=document.getElementById('diagram-scroll');if(!s)return;
var f=parseFloat(s.getAttribute('data-focus-x'));
if(!isNaN(f)){s.scrollLeft=Math.max(0,f-s.clientWidth*0.75);}})();
"""


def render_report(
    trace: Trace, *, trace_path: str = "TRACE", factory: NodeFactory | None = None
) -> str:
    """The report as HTML text. `factory` overrides the trace's factory spec
    (for a node factory that is not importable by name)."""
    replay = replay_trace(trace, factory)
    focus = _focus(trace, replay)
    kinds = sorted({a.kind for a in replay.arrows} | {loss.kind for loss in replay.losses})
    colors = _message_colors(kinds, replay.roles)
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>virtraft report: seed {trace.seed} — {esc(_headline(trace, focus)[0])}</title>",
        f"<style>{_CSS}{_message_css(colors)}</style></head><body><main>",
        _header(trace, replay, focus, trace_path),
        _diagram_section(trace, replay, focus, colors),
        _recent_section(trace, replay, focus),
        _logs_section(replay),
        _faults_section(replay, focus),
        _stats_section(trace),
        f"</main><script>{_JS}</script></body></html>\n",
    ]
    return "".join(parts)


def _message_css(colors: dict[str, str]) -> str:
    return "".join(f".m-{_css_name(k)}{{stroke:{c}}}" for k, c in sorted(colors.items()))


def _headline(trace: Trace, focus: _Focus) -> tuple[str, str]:
    violation = focus.violation
    if violation is not None:
        return f"Safety violation: {violation.get('invariant')}", "bad"
    liveness = trace.verdict.get("liveness") or {}
    if isinstance(liveness, dict) and liveness.get("verdict") == "failed":
        return "Liveness failure", "warn"
    return "No failure", "good"


def _header(trace: Trace, replay: Replay, focus: _Focus, trace_path: str) -> str:
    headline, css = _headline(trace, focus)
    out = [f"<h1>virtraft report — seed {trace.seed}</h1>",
           f'<div class="headline {css}">{esc(headline)}</div>']
    rows: list[tuple[str, str]] = [
        ("trace", f"<code>{esc(trace_path)}</code>"),
        ("seed", str(trace.seed)),
        ("node factory", f"<code>{esc(trace.factory)}</code>"),
        ("options", esc(_options_summary(trace.options))),
        ("events", f"{len(trace.events)} ({replay.steps} replayed, "
                   f"{replay.ms(replay.steps)} ms of virtual time)"),
    ]
    versions = trace.header.get("versions")
    if isinstance(versions, dict):
        rows.append(("recorded with", esc(", ".join(f"{k} {v}" for k, v in sorted(
            versions.items())))))
    out.append(_kv_table(rows))
    out.append("<h2>Verdict</h2>")
    out.append(_verdict_html(trace, replay, focus))
    quoted = shlex.quote(trace_path)
    named = esc(_factory_option(trace.factory))
    out.append("<h2>Reproduce</h2><pre>"
               f"virtraft replay {esc(quoted)}{named}\n"
               f"virtraft shrink {esc(quoted)} -o small.jsonl{named}\n"
               f"virtraft report {esc(quoted)} -o report.html{named}</pre>"
               '<p class="note">replay runs the recorded events (not the random stream), so it '
               "reproduces the run exactly; shrink removes events while the same invariant "
               "still fails.</p>")
    out.append("<details><summary>all options</summary><pre>"
               f"{esc(json.dumps(trace.options.to_json(), indent=1, sort_keys=True))}"
               "</pre></details>")
    return "".join(out)


def _factory_option(spec: str) -> str:
    """` --node-factory SPEC` for a trace recorded with another factory than the default."""
    from virtraft.run.factory import DEFAULT_FACTORY

    return "" if spec == DEFAULT_FACTORY else f" --node-factory {shlex.quote(spec)}"


def _options_summary(options: SimOptions) -> str:
    default = SimOptions().to_json()
    mine = options.to_json()
    parts = [f"{options.servers} servers", f"{options.steps} safety steps"]
    for name, value in mine.items():
        if name in ("servers", "steps", "node"):
            continue
        if value != default.get(name):
            parts.append(f"{name}={value}")
    for name, value in mine["node"].items():
        if value != default["node"].get(name):
            parts.append(f"node.{name}={value}")
    if len(parts) == 2:
        parts.append("otherwise defaults")
    return ", ".join(parts)


def _kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """Rows of (label, already-escaped HTML)."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _witness_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for key, item in value.items():
            rows += _witness_rows(item, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for i, item in enumerate(value):
            rows += _witness_rows(item, f"{prefix}[{i}]")
        return rows
    if isinstance(value, list):
        text = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    else:
        text = json.dumps(value) if not isinstance(value, str) else value
    return [(prefix or "value", f'<span class="mono">{esc(text)}</span>')]


def _verdict_html(trace: Trace, replay: Replay, focus: _Focus) -> str:
    out = []
    violation = focus.violation
    recorded = trace.verdict.get("violation")
    if violation is not None:
        step = violation.get("step")
        nodes = violation.get("nodes") or []
        at_ms = f" ({replay.ms(step)} ms)" if isinstance(step, int) else ""
        rows = [
            ("safety", f"<b>{esc(str(violation.get('invariant')))}</b> violated at step "
                       f"{esc(str(step))}{at_ms}"),
            ("what", esc(str(violation.get("message", "")))),
            ("nodes", esc(", ".join(f"node {n}" for n in dict.fromkeys(nodes)))),
        ]
        rows += [(f"witness: {k}", v) for k, v in _witness_rows(violation.get("witness") or {})]
        out.append(_kv_table(rows))
    else:
        out.append(_kv_table([("safety", "ok: no invariant was violated")]))
    out.append(_replay_agreement(replay, recorded))
    liveness = trace.verdict.get("liveness") or {}
    if isinstance(liveness, dict) and liveness:
        verdict = str(liveness.get("verdict", "?"))
        words = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}.get(verdict, verdict)
        text = f"{words}: {liveness.get('reason', '')}"
        extra = []
        if liveness.get("leader_at_ms") is not None:
            extra.append(f"leader at {liveness['leader_at_ms']} ms")
        if liveness.get("committed_at_ms") is not None:
            extra.append(f"command committed at {liveness['committed_at_ms']} ms")
        if extra:
            text += f" ({', '.join(extra)})"
        out.append(_kv_table([("liveness", esc(text))]))
    return "".join(out)


def _replay_agreement(replay: Replay, recorded: Any) -> str:
    if replay.problem is not None:
        return (f'<p class="headline warn">The trace was not replayed ({esc(replay.problem)}); '
                "the page shows only what the events say: no roles, terms or messages.</p>")
    notes = []
    if replay.diverged is not None:
        step, why = replay.diverged
        notes.append(f"The replay diverges at step {step}: {why}. Everything after it is "
                     "missing from this page.")
    found = replay.violation
    if found is not None and isinstance(recorded, dict):
        if (recorded.get("invariant"), recorded.get("step")) == (found.invariant, found.step):
            notes.append("The replay reproduces the recorded violation.")
        else:
            notes.append(f"The replay found {found.invariant} at step {found.step}; the trace "
                         f"recorded {recorded.get('invariant')} at step {recorded.get('step')}.")
    elif found is not None:
        notes.append(f"The replay found {found.invariant} at step {found.step}; the trace "
                     "recorded no violation.")
    elif isinstance(recorded, dict):
        notes.append(f"The replay did not reproduce the recorded {recorded.get('invariant')} "
                     f"(step {recorded.get('step')}): the code has changed since the trace was "
                     "written, or it was checked with other invariants.")
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _legend(colors: dict[str, str], kinds: Sequence[str]) -> str:
    roles = "".join(f'<span><i class="swatch" style="background:{c}"></i>{esc(r)}</span>'
                    for r, c in ROLE_COLORS.items())
    msgs = "".join(f'<span><i class="swatch" style="background:{colors[k]};height:3px"></i>'
                   f"{esc(k)}</span>" for k in kinds)
    marks = ("<span>thick arrow: carries entries</span><span>dashed: pre-vote</span>"
             "<span>dotted: to a down node</span>"
             '<span style="color:#c0392b">✕ on a dashed line: dropped</span>'
             '<span style="color:#1e8449">● commit index advanced</span>'
             '<span style="color:#b00">✕ crash</span><span style="color:#1e8449">↻ restart'
             '</span><span style="color:#6a1b9a">◆ membership change</span>'
             "<span>▣ snapshot taken · ▤ snapshot installed</span>"
             '<span style="color:#0b6e99">▾ client command</span>'
             '<span style="color:#a04000">+ duplicated</span>'
             '<span style="color:#b03a2e">red dashed line / band: partition</span>'
             '<span style="color:#1e8449">green dashed line: heal</span>')
    return (f'<div class="legend"><div>roles: {roles}</div><div>messages: {msgs}</div>'
            f"<div>{marks}</div></div>")


def _diagram_section(trace: Trace, replay: Replay, focus: _Focus, colors: dict[str, str]) -> str:
    kinds = sorted({a.kind for a in replay.arrows} | {loss.kind for loss in replay.losses})
    out = ["<h2>Space-time diagram</h2>"]
    whole = focus.start <= 1 and focus.end >= replay.steps
    if whole:
        out.append(f'<p class="note">All {replay.steps} steps, left to right; one lane per '
                   "node; an arrow per delivered message, from its send to its delivery. "
                   "Hover over anything for details.</p>")
    else:
        where = (f"ending {focus.end - focus.step} steps after the violation"
                 if focus.step is not None else "ending at the last step")
        out.append(
            f'<p class="note">The run has {replay.steps} steps. The band below summarises '
            f"all of them (each lane coloured by the role it held longest in each pixel "
            f"column, with terms); the diagram under it draws steps {focus.start}–{focus.end} "
            f"in full detail ({where}). Arrows of messages sent before step {focus.start} "
            "start off the left edge.</p>")
        out.append(f'<div class="diagram-wrap">{_overview(trace, replay, focus)}</div>')
    out.append(_legend(colors, kinds))
    g = _Svg(replay, focus)
    focus_x = _num(g.x(focus.step)) if focus.step is not None else _num(g.width)
    out.append(f'<div class="diagram-wrap">{_labels_svg(replay, g.height)}'
               f'<div class="diagram-scroll" id="diagram-scroll" data-focus-x="{focus_x}">'
               f"{_diagram(trace, replay, focus, colors)}</div></div>")
    return "".join(out)


def _recent_section(trace: Trace, replay: Replay, focus: _Focus) -> str:
    """The events just before the violation (or the end) in words; runs of
    ticks that changed nothing are folded into one row."""
    last = min(focus.step if focus.step is not None else replay.steps, len(trace.events))
    if last < 1:
        return ""
    events = trace.events
    notes = replay.notes

    def quiet(step: int) -> bool:
        return isinstance(events[step - 1], Tick) and step not in notes

    rows: list[str] = []
    step = last
    lowest = max(1, last - RECENT_EVENTS * 25)
    while step >= lowest and len(rows) < RECENT_EVENTS:
        css = ' class="in-window"' if step == focus.step else ""
        if quiet(step):
            run_end = step
            while step - 1 >= lowest and quiet(step - 1):
                step -= 1
            if run_end > step:
                ticked = sorted({events[i - 1].node for i in range(step, run_end + 1)})
                rows.append(
                    f"<tr{css}><td>{step}–{run_end}</td><td>{replay.ms(step)}–"
                    f"{replay.ms(run_end)}</td><td class=\"mono\">{run_end - step + 1} ticks "
                    f"(nodes {', '.join(map(str, ticked))})</td><td>nothing</td></tr>")
                step -= 1
                continue
        outcome = "; ".join(notes.get(step, ()))
        rows.append(f"<tr{css}><td>{step}</td><td>{replay.ms(step)}</td>"
                    f'<td class="mono">{esc(event_text(events[step - 1], replay, step))}</td>'
                    f"<td>{esc(outcome)}</td></tr>")
        step -= 1
    rows.reverse()
    title = "before the violation" if focus.step is not None else "at the end"
    return (f"<h2>What happened {title} (steps {step + 1}–{last})</h2>"
            '<table class="recent"><tr><th>step</th><th>ms</th><th>event</th>'
            f"<th>what changed</th></tr>{''.join(rows)}</table>")


def _logs_section(replay: Replay) -> str:
    finals = replay.finals
    if not finals:
        return ""
    out = ["<h2>Final logs</h2>",
           f'<p class="note">The last {LOG_ENTRIES} entries of each node (above its snapshot), '
           "as (term, entry id, type). A red index marks an index where nodes hold different "
           "entries; red cells differ from the most common entry there. Grey italics: not yet "
           "committed on that node.</p>"]
    head = "".join(
        f"<th>node {f.node}<br><small>{esc(f.role)} · term {f.term} · commit "
        f"{f.commit_index}<br>last {f.last_index} · snapshot {f.snapshot_index}"
        f"{'@t' + str(f.snapshot_term) if f.snapshot_index else ''}</small></th>"
        for f in finals
    )
    indices = sorted({i for f in finals for i in f.entries}
                     | {i for f in finals for i in range(f.shown_from, f.last_index + 1)})
    if len(indices) > LOG_ROWS_MAX:  # nodes far apart: keep the page small
        out.append(f'<p class="note">Only the highest {LOG_ROWS_MAX} of {len(indices)} '
                   "indices are shown.</p>")
        indices = indices[-LOG_ROWS_MAX:]
    rows = []
    previous = None
    for index in indices:
        if previous is not None and index > previous + 1:
            rows.append(f'<tr class="gap"><td colspan="{len(finals) + 1}">⋯ indices '
                        f"{previous + 1}–{index - 1} not shown ⋯</td></tr>")
        previous = index
        held = [f.entries.get(index) for f in finals]
        values = Counter((c.term, c.entry_id) for c in held if c is not None)
        common = values.most_common(1)[0][0] if values else None
        diverge = len(values) > 1
        cells = []
        for f, cell in zip(finals, held, strict=True):
            if cell is None:
                text = "(snapshot)" if index <= f.snapshot_index else ""
                cells.append(f'<td class="compacted">{text}</td>')
                continue
            classes = []
            if diverge and (cell.term, cell.entry_id) != common:
                classes.append("differs")
            if index > f.commit_index:
                classes.append("uncommitted")
            css = f' class="{" ".join(classes)}"' if classes else ""
            kind = f" {esc(cell.type)}" if cell.type else ""
            cells.append(f"<td{css}>t{cell.term} #{cell.entry_id}{kind}</td>")
        css = ' class="diverge"' if diverge else ""
        rows.append(f'<tr{css} data-index="{index}"><td class="idx">{index}</td>'
                    f'{"".join(cells)}</tr>')
    if not rows:
        rows.append(f'<tr><td colspan="{len(finals) + 1}">every log is empty or compacted'
                    "</td></tr>")
    out.append(f'<table class="logs"><tr><th>index</th>{head}</tr>{"".join(rows)}</table>')
    return "".join(out)


def _faults_section(replay: Replay, focus: _Focus) -> str:
    faults = replay.faults
    out = ["<h2>Fault timeline</h2>"]
    if not faults:
        out.append('<p class="note">No partitions, crashes, membership changes or snapshots.'
                   "</p>")
        return "".join(out)
    shown = faults[-FAULT_ROWS:]
    if len(shown) < len(faults):
        out.append(f'<p class="note">The last {len(shown)} of {len(faults)} entries.</p>')
    out.append('<p class="note">Highlighted rows fall inside the detailed diagram.</p>')
    rows = []
    for row in shown:
        css = ' class="in-window"' if focus.start <= row.step <= focus.end else ""
        rows.append(f"<tr{css}><td>{row.step}</td><td>{row.ms}</td><td>{esc(row.what)}</td>"
                    f"<td>{esc(row.detail)}</td></tr>")
    out.append("<table><tr><th>step</th><th>ms</th><th>kind</th><th>what</th></tr>"
               f"{''.join(rows)}</table>")
    return "".join(out)


def _stats_section(trace: Trace) -> str:
    stats = trace.verdict.get("stats")
    if not isinstance(stats, dict):
        return ""
    return ("<h2>Run statistics (recorded)</h2>"
            + _kv_table(_witness_rows(stats)))


def write_report(
    trace_path: str, out_path: str, *, trace: Trace | None = None,
    factory: NodeFactory | None = None,
) -> None:
    """Replay `trace_path` (or the already-read `trace`) and write the HTML report."""
    if trace is None:
        trace = read_trace(trace_path)
    text = render_report(trace, trace_path=trace_path, factory=factory)
    out = Path(out_path)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")


# ------------------------------------------------------------ campaign index


def write_campaign_index(out_dir: str, results: Sequence[SeedResult]) -> str:
    """Write out_dir/index.html: every seed's outcome, with relative links to the
    failing seeds' reports (seed-N.html beside seed-N.jsonl). Returns its path."""
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    path = base / "index.html"
    results = sorted(results, key=lambda r: r.seed)
    failed = [r for r in results if r.failed]
    safety = sum(1 for r in results if r.safety != "ok")
    liveness = sum(1 for r in results if r.safety == "ok" and r.liveness == "failed")
    out = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>virtraft campaign: {len(failed)} of {len(results)} seeds failed</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<h1>virtraft campaign</h1>",
        f'<div class="headline {"bad" if failed else "good"}">{len(results)} seeds: '
        f"{safety} safety violations, {liveness} liveness failures</div>",
    ]
    invariants = Counter(r.invariant for r in results if r.invariant)
    if invariants:
        out.append(_kv_table([(name, str(count)) for name, count in invariants.most_common()]))
    if failed:
        out.append("<h2>Failing seeds</h2>")
        out.append(_seed_table(failed, base))
    out.append("<h2>Every seed</h2>")
    table = _seed_table(results, base)
    if len(results) > 300:
        table = f"<details><summary>show all {len(results)} seeds</summary>{table}</details>"
    out.append(table)
    out.append("</main></body></html>\n")
    path.write_text("".join(out), encoding="utf-8")
    return str(path)


def _seed_table(results: Sequence[SeedResult], base: Path) -> str:
    rows = []
    for r in results:
        links = []
        if r.trace:
            trace = Path(r.trace)
            report = trace.with_suffix(".html")
            if report.exists():
                links.append(f'<a class="report" href="{esc(_relative(report, base))}">report</a>')
            links.append(f'<a class="trace" href="{esc(_relative(trace, base))}">trace</a>')
        what = r.message if r.safety != "ok" else (r.liveness_reason if r.failed else "")
        css = ' class="in-window"' if r.failed else ""
        rows.append(
            f"<tr{css}><td>{r.seed}</td><td>{esc(r.safety)}</td><td>{esc(r.invariant or '')}"
            f"</td><td>{'' if r.step is None else r.step}</td><td>{esc(r.liveness)}</td>"
            f"<td>{r.steps}</td><td class=\"mono\">{esc(r.digest)}</td>"
            f"<td>{' · '.join(links)}</td><td>{esc(what or '')}</td></tr>"
        )
    return ("<table><tr><th>seed</th><th>safety</th><th>invariant</th><th>step</th>"
            "<th>liveness</th><th>steps</th><th>digest</th><th>files</th><th>what happened</th>"
            f"</tr>{''.join(rows)}</table>")


def _relative(target: Path, base: Path) -> str:
    """A link from index.html to `target`, with forward slashes (a URL path)."""
    rel = os.path.relpath(target.resolve(), base.resolve())
    return "/".join(rel.split(os.sep))
