"""What a trace shows: replay it with the network observed, and keep what happened.

Why replay instead of reading the trace alone: a trace names each delivered
message by link and digest, not by when it was sent, and it holds no roles,
terms or commit indexes. Replaying with the network observed recovers all
of that exactly, at the cost of one more run of the trace. The HTML report
draws the `Replay` this module returns; the terminal story prints it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from virtraft.adapter import FactoryError, MessageRole, Messages, NodeAdapter, NodeFactory
from virtraft.check.checker import Checker, Violation
from virtraft.run.factory import factory_for_trace, load_factory
from virtraft.sim.clients import Record
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
from virtraft.sim.simulation import NotApplicable, Simulation
from virtraft.trace.format import Trace

LOG_ENTRIES = 50  # last entries kept per node
MESSAGE_TEXT_CHARS = 220


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
    # The clients' operations as the replay ended (None: the run had no clients).
    history: list[Record] | None = None

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
        before = (
            stats.membership_changes,
            stats.snapshots_taken,
            stats.snapshots_installed,
            sim.last_submitted,
        )
        self.taken = self.copied = None
        self.cut = []
        violation = sim.apply(event)
        step = sim.step
        self.clock.append(sim.clock_ms)
        self._observe_messages(step, event)
        self._observe_outcome(step, event, before)
        self._observe_nodes(step)
        return violation

    def _observe_messages(self, step: int, event: Event) -> None:
        """The step's messages: sends lost on a cut link, and the envelope the
        event delivered, dropped or copied."""
        sim = self.sim
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
                env.src,
                env.dst,
                env.kind,
                sent_step,
                step,
                sent_ms,
                message_text(messages, env.message),
                messages.entries_carried(env.message),
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
            self.marks.append(
                Mark(step, env.src, "dup", f"the network copied {env.kind} {env.src}→{env.dst}")
            )

    def _observe_outcome(self, step: int, event: Event, before: tuple) -> None:
        """The step's faults, membership changes, snapshots and client commands,
        with their outcome judged by the counters `before` the event."""
        sim = self.sim
        ms = sim.clock_ms
        members, taken, installed, submitted = before
        stats = sim.stats
        if isinstance(event, Crash):
            self._fault(step, ms, "crash", f"node {event.node} crashes", event.node)
        elif isinstance(event, Restart):
            self._fault(
                step, ms, "restart", f"node {event.node} restarts from its disk", event.node
            )
        elif isinstance(event, Partition):
            self._fault(step, ms, "partition", partition_text(event), None)
        elif isinstance(event, Heal):
            what = "network heals" + (" and loses everything in flight" if event.flush else "")
            self._fault(step, ms, "heal", what, None)
        elif isinstance(event, ChangeMembership):
            outcome = "accepted" if stats.membership_changes > members else "refused"
            self._fault(
                step,
                ms,
                "member",
                f"node {event.via} asked to {event.change.value} node {event.node}: {outcome}",
                event.via,
            )
        elif isinstance(event, TakeSnapshot):
            outcome = "compacted its log" if stats.snapshots_taken > taken else "nothing to compact"
            self._fault(step, ms, "snapshot", f"node {event.node} snapshots: {outcome}", event.node)
        elif isinstance(event, ClientRequest):
            last = sim.last_submitted
            if last is not None and last is not submitted and last[0] == event.command:
                _command, node_id, where = last
                text = (
                    f"node {node_id} took command {event.command} at index "
                    f"{where.index} (term {where.term})"
                )
                self.marks.append(Mark(step, node_id, "client", text))
            else:
                text = f"command {event.command} sent to node {event.node} was not taken"
                self.marks.append(Mark(step, event.node, "client", text))
            self.note(step, text)
        if stats.snapshots_installed > installed and isinstance(event, Deliver):
            self._fault(
                step,
                ms,
                "install",
                f"node {event.dst} installed a snapshot from node {event.src}",
                event.dst,
            )

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
                    self.note(
                        step,
                        f"node {node_id} became {role}"
                        + (f" in term {term}" if role != "down" else ""),
                    )
                else:
                    self.note(step, f"node {node_id} moved to term {term} as {role}")
            if commit > old_commit and alive:
                text = f"node {node_id} committed through index {commit}"
                self.marks.append(Mark(step, node_id, "commit", f"{text} (was {old_commit})"))
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
            self.note(
                step, f"node {node_id} rewrote its log: it now ends at index {last} (term {term})"
            )

    def _close(self, node_id: int, end: int) -> None:
        role, term, since, _commit, _vote = self.state[node_id]
        self.segments[node_id].append(Segment(node_id, since, end, role, term))

    def finish(self, violation: Violation | None, diverged: tuple[int, str] | None) -> Replay:
        end = self.sim.step + 1
        for node_id in list(self.state):
            self._close(node_id, end)
        return Replay(
            steps=self.sim.step,
            clock_ms=tuple(self.clock),
            nodes=tuple(sorted(self.seen)),
            segments=self.segments,
            arrows=self.arrows,
            losses=self.losses,
            marks=self.marks,
            faults=self.faults,
            notes=self.notes,
            finals=_finals(self.sim),
            violation=violation,
            diverged=diverged,
            problem=None,
            at_step=self.at_step,
            roles=self.roles,
        )


def replay_trace(
    trace: Trace,
    factory: NodeFactory | None = None,
    *,
    watch: Callable[[int, Simulation], None] | None = None,
) -> Replay:
    """Replay every event of `trace` under observation. Never raises for a
    trace that no longer applies or a factory that cannot load: the Replay
    then says why, and holds what the events alone tell. `watch`, when
    given, reads the simulation at step 0 and after every applied step (the
    report's per-step node states); it must not change it."""
    if factory is None:
        try:
            factory = load_factory(factory_for_trace(trace.factory, None))
        except FactoryError as exc:
            return _events_only(trace, f"could not load the node factory: {exc}")
    try:
        sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    except Exception as exc:  # a user's factory failed to build a node
        return _events_only(trace, f"could not start the simulation: {type(exc).__name__}: {exc}")
    return record(_Recorder(sim), trace.events, watch)


def record(
    recorder: _Recorder,
    events: Sequence[Event],
    watch: Callable[[int, Simulation], None] | None = None,
) -> Replay:
    """Apply `events` under `recorder` until a violation or an event that no
    longer applies; what it recorded (a subclass may keep more). `watch`
    reads the simulation at step 0 and after every applied step."""
    violation = None
    diverged = None
    if watch is not None:
        watch(0, recorder.sim)
    for event in events:
        try:
            violation = recorder.apply(event)
        except NotApplicable as exc:
            diverged = (recorder.sim.step + 1, str(exc))
            break
        if watch is not None:
            watch(recorder.sim.step, recorder.sim)
        if violation is not None:
            break
    replay = recorder.finish(violation, diverged)
    sim = recorder.sim
    if sim.clients is not None:
        replay = dataclasses.replace(replay, history=sim.clients.history(sim))
    return replay


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
    nodes = tuple(trace.options.founders)
    return Replay(
        steps=len(trace.events),
        clock_ms=tuple(clock),
        nodes=nodes,
        segments={},
        arrows=[],
        losses=[],
        marks=marks,
        faults=faults,
        notes={},
        finals=[],
        violation=None,
        diverged=None,
        problem=problem,
    )


def _fault_text(event: Event) -> tuple[str, int | None, str] | None:
    if isinstance(event, Crash):
        return "crash", event.node, f"node {event.node} crashes"
    if isinstance(event, Restart):
        return "restart", event.node, f"node {event.node} restarts from its disk"
    if isinstance(event, Partition):
        return "partition", None, partition_text(event)
    if isinstance(event, Heal):
        return (
            "heal",
            None,
            "network heals" + (" and loses everything in flight" if event.flush else ""),
        )
    if isinstance(event, ChangeMembership):
        return (
            "member",
            event.via,
            f"node {event.via} asked to {event.change.value} node {event.node}",
        )
    if isinstance(event, TakeSnapshot):
        return "snapshot", event.node, f"node {event.node} snapshots"
    return None


def _finals(sim: Simulation) -> list[NodeFinal]:
    """Each node's state and log at the end: the last LOG_ENTRIES entries of each
    node, and every node's entry at each index some node shows, so that rows
    compare like with like."""
    views = [sim.nodes[node_id] for node_id in sim.node_ids]
    firsts = [max(v.snapshot_index + 1, v.last_index - LOG_ENTRIES + 1, 1) for v in views]
    shown = sorted(
        {i for v, first in zip(views, firsts, strict=True) for i in range(first, v.last_index + 1)}
    )
    finals = []
    for node, first in zip(views, firsts, strict=True):
        snap = node.snapshot_index
        entries: dict[int, LogCell] = {}
        for index in shown:
            if snap < index <= node.last_index:
                got = node.entry(index)
                if got is not None:
                    entries[index] = LogCell(got[0], got[1], node.entry_kind(index))
        finals.append(
            NodeFinal(
                node.node_id,
                node.alive,
                str(node.role.value) if node.alive else "down",
                node.term,
                node.commit_index,
                node.last_index,
                snap,
                node.snapshot_term,
                entries,
                first,
            )
        )
    return finals


def message_text(messages: Messages, message: object) -> str:
    """A message in one line, cut to MESSAGE_TEXT_CHARS."""
    text = messages.text(message)
    if len(text) > MESSAGE_TEXT_CHARS:
        text = text[: MESSAGE_TEXT_CHARS - 1] + "…"
    return text


def partition_text(event: Partition) -> str:
    down = event.cut_links()
    links = ", ".join(f"{a}→{b}" for a, b in down[:12])
    more = f" (+{len(down) - 12} more)" if len(down) > 12 else ""
    text = f"partition ({event.shape}): {len(down)} links down"
    if down:
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
        return (
            f"client sends command {event.command} ({event.key}={event.value}) to node {event.node}"
        )
    if isinstance(event, ChangeMembership):
        return f"node {event.via} is asked to {event.change.value} node {event.node}"
    fault = _fault_text(event)
    return fault[2] if fault else repr(event)
