"""Shrinking: cut a failing trace down to the events that make it fail.

A candidate is a list of events; it still fails when replaying it (skipping
events that no longer apply, and taking the newest message of the same type
on the same link when the exact one is gone) breaks the same invariant. Every
replay stops at the violation, so what follows it is cut from the start.
Removing events keeps the clock: the ticks of a removed stretch hand their
milliseconds to the next tick, so the servers still see the time they saw,
only later (and a timer that fired still fires). Only a stretch with no
tick after it takes its time along.
Passes, in order, each keeping every cut that still fails, repeat until a
round makes no progress or the budget (replays, wall seconds) runs out:

1. remove every event of one kind at once (all duplicates, all snapshots...);
2. drop the highest-numbered server (a smaller cluster, where possible);
3. collapse runs of ticks into one tick per server;
4. remove chunks of events, from half the trace down to single events
   (delta debugging, Zeller 2002), trying the end first;
5. fold ticks into the next tick, merge neighbouring ticks of one server,
   and shorten partitions.

The result replays strictly: it holds only events that applied. The budget
counted in replays makes a shrink deterministic; the one in seconds only
keeps a person from waiting.

A liveness failure (`shrink_liveness`) shrinks differently, because a
shortened schedule proves nothing about progress: removing deliveries
from a calm stretch makes any cluster look stuck. So only the safety
phase (the events before the liveness phase, or all of them for a failure
the progress monitor found) is shrunk, and every candidate is judged by
running the liveness phase again after it, drawn from the seed's own
liveness stream, to its full stuck bound: that phase is the fair, calm
schedule the verdict is about, and it is deterministic. The monitor does
not judge the shortened safety phase (the shrunk trace's options switch it
off). A candidate still fails when that phase is stuck with the same named
verdict (LeaderElected, CommandCommitted, CoreCaughtUp). A candidate is
judged in one place (`_LivenessShrinker.judge`), after the state its trace
will replay to, and kept with the phase it was judged by. The result is
the shortened safety phase plus that phase, and `virtraft replay`
re-derives its verdict from its events alone (`liveness.rejudge`): the
shrink's last step does just that, and a proof that fails anyway is a
ShrinkError in words, with nothing written.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from virtraft.adapter import FactoryError, NodeFactory
from virtraft.check.checker import Checker, Violation
from virtraft.run.factory import factory_for_trace, load_factory
from virtraft.run.liveness import Liveness, rejudge
from virtraft.run.seed import (
    LINEARIZABILITY,
    check_clients,
    continue_with_liveness,
    linearizability_violation,
    verdict_of,
)
from virtraft.sim.events import MESSAGE_EVENTS, Event, Partition, Tick, strip_refs
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import NotApplicable, Simulation
from virtraft.trace.format import Trace, TraceError, read_trace, trace_lines, write_trace
from virtraft.trace.replay import replay_events

MAX_REPLAYS = 20_000


class ShrinkError(ValueError):
    """The trace cannot be shrunk (no safety violation, or it does not replay)."""


@dataclass(frozen=True, slots=True)
class ShrinkOutcome:
    before: int
    after: int
    invariant: str
    step: int
    options: SimOptions
    events: tuple[Event, ...]
    violation: Violation | None  # None for a liveness failure
    verdict: dict  # the verdict line of the shrunk trace
    replays: int  # candidate traces replayed to get there
    stopped_by: str  # "done" (no cut left), "replays" or "seconds" (the budget), "interrupted"

    seed: int
    factory: str

    def trace(self, source: str) -> Trace:
        """The shrunk trace, naming the trace it was shrunk from by its file name
        only: a trace is shared, and where it lay on one machine means nothing on
        another."""
        header = {"shrunk_from": {"events": self.before, "trace": PurePath(source).name}}
        return Trace(self.seed, self.options, self.factory, self.events, self.verdict, header)

    def trace_lines(self, source: str) -> list[str]:
        t = self.trace(source)
        return trace_lines(t.seed, t.options, t.factory, t.events, t.verdict, extra=t.header)


class _Shrinker:
    def __init__(
        self,
        seed: int,
        options: SimOptions,
        factory: str,
        invariant: str,
        deadline: float,
        max_replays: int,
    ) -> None:
        self.seed = seed
        self.options = options
        self.factory_spec = factory
        self.factory = load_factory(factory)
        self.invariant = invariant
        self.deadline = deadline
        self.max_replays = max_replays
        self.attempts = 0
        # The violation being shrunk, once the original trace replayed to it.
        self.target: Violation | None = None
        self.stopped_by = "done"
        # The shortest failing candidate so far, kept for an interrupted shrink.
        self.best: tuple[list[Event], SimOptions] | None = None

    def out_of_time(self) -> bool:
        if self.attempts >= self.max_replays:
            self.stopped_by = "replays"
        elif time.monotonic() >= self.deadline:
            self.stopped_by = "seconds"
        return self.stopped_by != "done"

    def replay(
        self, events: Sequence[Event], options: SimOptions | None = None
    ) -> tuple[Violation | None, list[Event]]:
        """Replay leniently; return the violation and the events that applied."""
        _sim, violation, applied = self.replay_sim(events, options)
        return violation, applied

    def replay_sim(
        self, events: Sequence[Event], options: SimOptions | None = None
    ) -> tuple[Simulation, Violation | None, list[Event]]:
        """Replay leniently: the simulation, the violation, the events that applied."""
        self.attempts += 1
        sim = Simulation(options or self.options, self.seed, self.factory, checker=Checker())
        sim.match_messages_by_kind = True
        applied: list[Event] = []
        for event in events:
            try:
                violation = sim.apply(event)
            except NotApplicable:
                continue
            if isinstance(event, MESSAGE_EVENTS):
                env = sim.last_envelope
                assert env is not None
                if env.key != event.key:  # matched by type: name what was really used
                    event = type(event)(env.src, env.dst, env.kind, env.key)
            applied.append(event)
            if violation is not None:
                return sim, violation, applied
        if self.invariant == LINEARIZABILITY:  # decided as the run ends
            return sim, linearizability_violation(sim, check_clients(sim)), applied
        return sim, None, applied

    def fails(
        self, events: Sequence[Event], options: SimOptions | None = None
    ) -> list[Event] | None:
        """The applied events up to the violation, if the same invariant breaks."""
        violation, applied = self.replay(events, options)
        if violation is None or violation.invariant != self.invariant:
            return None
        if self.target is None:
            self.target = violation
        elif not same_failure(self.target, violation):
            return None
        if self.best is None or len(applied) < len(self.best[0]):
            self.best = (applied, options or self.options)
        return applied

    # ------------------------------------------------------------------ passes

    def remove_kinds(self, events: list[Event]) -> list[Event]:
        kinds = sorted({e.kind for e in events})
        for kind in kinds:
            if self.out_of_time():
                break
            candidate = [e for e in events if e.kind != kind]
            if len(candidate) < len(events) and (kept := self.fails(candidate)) is not None:
                events = kept
        return events

    def drop_servers(self, events: list[Event]) -> list[Event]:
        while self.options.servers > 1 and not self.out_of_time():
            smaller = self.options.replace(servers=self.options.servers - 1)
            kept = self.fails(events, smaller)
            if kept is None:
                break
            self.options = smaller
            events = kept
        return events

    def remove_chunks(self, events: list[Event]) -> list[Event]:
        size = max(1, len(events) // 2)
        while size >= 1 and not self.out_of_time():
            index = len(events) - size
            while index >= 0 and not self.out_of_time():
                kept = self.fails(_cut(events, index, index + size))
                if kept is not None:
                    events = kept
                    index = min(index, len(events)) - size
                else:
                    index -= size
            if size == 1:
                break
            size //= 2
        return events

    def merge_ticks(self, events: list[Event]) -> list[Event]:
        merged: list[Event] = []
        for event in events:
            last = merged[-1] if merged else None
            if isinstance(event, Tick) and isinstance(last, Tick) and last.node == event.node:
                merged[-1] = Tick(event.node, last.ms + event.ms)
            else:
                merged.append(event)
        if len(merged) < len(events) and (kept := self.fails(merged)) is not None:
            return kept
        return events

    def collapse_ticks(self, events: list[Event]) -> list[Event]:
        """Replace each run of ticks by one tick per server in it, the first
        carrying all the run's time: every server still learns of the same
        time, in one piece. Tried for all runs at once, then run by run."""
        runs = _tick_runs(events)
        if not runs:
            return events
        candidate = _collapse(events, runs)
        if len(candidate) < len(events) and (kept := self.fails(candidate)) is not None:
            return kept
        for start, stop in reversed(runs):
            if self.out_of_time():
                break
            if stop > len(events) or not all(isinstance(e, Tick) for e in events[start:stop]):
                continue
            candidate = _collapse(events, [(start, stop)])
            if len(candidate) < len(events) and (kept := self.fails(candidate)) is not None:
                events = kept
        return events

    def fold_ticks(self, events: list[Event]) -> list[Event]:
        """Remove groups of ticks, handing their time to the next tick after
        them: the clock ends up where it was, servers just hear of it later.
        Groups halve in size down to single ticks, the end first."""
        size = max(1, sum(isinstance(e, Tick) for e in events) // 2)
        while not self.out_of_time():
            ticks = [i for i, e in enumerate(events) if isinstance(e, Tick)]
            group_end = len(ticks) - 1  # the last tick receives, never folds
            while group_end - size >= 0 and not self.out_of_time():
                group = ticks[group_end - size : group_end]
                receiver = ticks[group_end]
                candidate = _remove(events, group, receiver)
                kept = self.fails(candidate)
                if kept is not None:
                    events = kept
                    ticks = [i for i, e in enumerate(events) if isinstance(e, Tick)]
                    group_end = min(group_end - size, len(ticks) - 1)
                else:
                    group_end -= size
            if size == 1:
                break
            size //= 2
        return events

    def shorten_partitions(self, events: list[Event]) -> list[Event]:
        for position in range(len(events)):
            if self.out_of_time() or position >= len(events):
                break
            event = events[position]
            if not isinstance(event, Partition):
                continue
            down = event.cut_links()
            if len(down) < 2:
                continue
            smaller = dataclasses.replace(event, down=down[: len(down) // 2], groups=())
            candidate = events[:position] + [smaller] + events[position + 1 :]
            if (kept := self.fails(candidate)) is not None:
                events = kept
        return events


def same_failure(target: Violation, found: Violation) -> bool:
    """Whether `found` is still the failure being shrunk. One invariant is
    one failure; but a server that raised could raise for another reason in
    a shorter trace (one assert traded for another), so a NodeException must
    keep its exception type and message, numbers aside: an index or a term
    in the message moves as the trace shrinks."""
    if found.invariant != target.invariant:
        return False
    if target.invariant != NODE_EXCEPTION:
        return True
    return _exception_shape(found) == _exception_shape(target)


NODE_EXCEPTION = "NodeException"
_DIGITS = re.compile(r"\d+")


def _exception_shape(violation: Violation) -> tuple[str, str]:
    witness = violation.witness
    return (
        str(witness.get("exception", "")),
        _DIGITS.sub("#", str(witness.get("message", ""))),
    )


@dataclass(frozen=True, slots=True)
class _Judged:
    """A candidate safety phase that still fails, with the liveness phase it
    was judged by: together, the shrunk trace."""

    prefix: list[Event]  # the candidate's events that applied, as they applied
    tail: list[Event]  # the liveness phase run after them
    liveness: Liveness
    options: SimOptions

    @property
    def events(self) -> list[Event]:
        return [*self.prefix, *self.tail]


class _LivenessShrinker(_Shrinker):
    """Shrinks the safety phase in front of a liveness failure; each candidate
    is judged by the liveness phase run again after it (see the module)."""

    # The kept candidate the shrink stands on: the last one `fails` kept.
    kept: _Judged | None = None
    shortest: _Judged | None = None  # for an interrupted shrink

    def fails(
        self, events: Sequence[Event], options: SimOptions | None = None
    ) -> list[Event] | None:
        judged = self.judge(events, options or self.options)
        if judged is None:
            return None
        self.kept = judged
        if self.shortest is None or len(judged.prefix) < len(self.shortest.prefix):
            self.shortest = judged
        return judged.prefix

    def judge(self, events: Sequence[Event], options: SimOptions) -> _Judged | None:
        """The one judgement of a candidate: its safety phase as the shrunk
        trace will hold it (the events that applied, replayed strictly), then
        the liveness phase after it, judged as `virtraft replay` judges it.
        A lenient replay tells which events apply; when it skipped or
        re-matched any, what it left differs from a strict replay of the rest
        (another copy of a message taken, say), so the phase runs after a
        strict replay instead: never after state the trace will not hold."""
        sim, violation, applied = self.replay_sim(events, options)
        if violation is not None:
            return None
        if len(applied) != len(events) or any(
            a is not e for a, e in zip(applied, events, strict=True)
        ):
            sim = Simulation(options, self.seed, self.factory, checker=Checker())
            violation, diverged, _why = replay_events(sim, applied)
            if violation is not None or diverged is not None:
                return None
        sim.match_messages_by_kind = False  # the phase runs as its replay will
        liveness, violation = continue_with_liveness(sim, self.seed)
        if violation is not None or (liveness.verdict, liveness.name) != ("failed", self.invariant):
            return None
        return _Judged(applied, list(sim.events[len(applied) :]), liveness, options)

    def everything(self, events: list[Event]) -> list[Event]:
        """The whole safety phase at once: many liveness bugs need none of it."""
        if events and (kept := self.fails([])) is not None:
            return kept
        return events


# A liveness candidate runs its liveness phase to the stuck bound: far dearer
# than a safety candidate, so its own budget.
LIVENESS_MAX_REPLAYS = 200


def shrink_liveness(
    seed: int,
    options: SimOptions,
    factory: str,
    events: Sequence[Event],
    recorded: dict,
    *,
    max_seconds: float = 60.0,
    max_replays: int = LIVENESS_MAX_REPLAYS,
    on_progress: Callable[[str, int], None] | None = None,
) -> ShrinkOutcome:
    """Shrink a liveness failure (`recorded` is the trace's liveness verdict)
    while the same named verdict stays stuck; see the module docstring."""
    name = recorded.get("name")
    if recorded.get("verdict") != "failed" or not isinstance(name, str):
        raise ShrinkError("the trace records no named liveness failure; nothing to shrink")
    phase = recorded.get("phase")
    original = strip_refs(events)
    prefix = list(original)
    if isinstance(phase, dict) and type(phase.get("first_step")) is int:
        prefix = prefix[: phase["first_step"] - 1]
    options = options.replace(liveness_monitor=False)
    shrinker = _LivenessShrinker(
        seed, options, factory, name, time.monotonic() + max_seconds, max_replays
    )
    current = shrinker.fails(prefix)
    if current is None:
        raise ShrinkError(
            f"after the safety phase, the liveness phase run again is not stuck on {name}; "
            "nothing to shrink"
        )
    passes = (
        ("everything", shrinker.everything),
        ("servers", shrinker.drop_servers),
        ("by kind", shrinker.remove_kinds),
        ("chunks", shrinker.remove_chunks),
    )
    try:
        for pass_name, run_pass in passes:
            if shrinker.out_of_time() or not current:
                break
            current = run_pass(current)
            if on_progress is not None:
                on_progress(pass_name, len(current))
    except KeyboardInterrupt:
        shrinker.kept = shrinker.shortest
        shrinker.stopped_by = "interrupted"
    kept = shrinker.kept
    assert kept is not None  # the first candidate failed, or the shrink was refused
    sim, liveness = _prove(seed, shrinker.factory, kept, name)
    final = strip_refs(kept.events)
    return ShrinkOutcome(
        len(original),
        len(final),
        name,
        len(final),
        kept.options,
        tuple(final),
        None,
        verdict_of(sim, None, liveness),
        shrinker.attempts,
        shrinker.stopped_by,
        seed,
        factory,
    )


def _prove(
    seed: int, factory: NodeFactory, kept: _Judged, name: str
) -> tuple[Simulation, Liveness]:
    """The proof that the shrunk trace stands on its own: replayed strictly
    from its events, as a trace file holds them, and judged again as
    `virtraft replay` judges it, it is stuck on the same named verdict. The
    candidate was judged so already; a proof that fails anyway is the
    shrinker's bug, told in one sentence (no trace is written)."""
    sim = Simulation(kept.options, seed, factory, checker=Checker())
    recorded = kept.liveness.to_json()
    judged, violation, diverged, why = rejudge(sim, strip_refs(kept.events), recorded)
    if diverged is not None:
        problem = f"it diverges at step {diverged} ({why})"
    elif violation is not None:
        problem = f"it breaks {violation.invariant} at step {violation.step}"
    elif judged is None or (judged.verdict, judged.name) != ("failed", name):
        problem = "its liveness is judged " + (
            "not at all" if judged is None else f"{judged.verdict} ({judged.name})"
        )
    else:
        return sim, kept.liveness
    raise ShrinkError(
        f"the shrunk trace does not stand on its own: replayed, {problem}, where its "
        f"candidate was judged failed ({name}); a shrinker bug, nothing written"
    )


def _cut(events: list[Event], start: int, stop: int) -> list[Event]:
    """Remove events[start:stop], handing the time of its ticks to the next
    tick after it: the clock stays where it was for everything that follows."""
    after = (i for i in range(stop, len(events)) if isinstance(events[i], Tick))
    return _remove(events, range(start, stop), next(after, None))


def _tick_runs(events: Sequence[Event]) -> list[tuple[int, int]]:
    """[start, stop) of every run of two or more consecutive ticks."""
    runs = []
    start = None
    for index, event in enumerate([*events, None]):
        if isinstance(event, Tick):
            if start is None:
                start = index
            continue
        if start is not None and index - start >= 2:
            runs.append((start, index))
        start = None
    return runs


def _remove(events: list[Event], drop: Sequence[int], receiver: int | None) -> list[Event]:
    """Drop the events at `drop`, adding the time of the ticks among them to
    the tick at `receiver` (with no receiver, after the last event, that
    time is simply gone: nothing that follows needs it)."""
    dropped = set(drop)
    extra = sum(e.ms for i, e in enumerate(events) if i in dropped and isinstance(e, Tick))
    out: list[Event] = []
    for index, event in enumerate(events):
        if index in dropped:
            continue
        if index == receiver and isinstance(event, Tick):
            event = Tick(event.node, event.ms + extra)
        out.append(event)
    return out


def _collapse(events: list[Event], runs: Sequence[tuple[int, int]]) -> list[Event]:
    out: list[Event] = []
    position = 0
    for start, stop in runs:
        out.extend(events[position:start])
        ticks = events[start:stop]
        total = sum(t.ms for t in ticks)  # type: ignore[union-attr]
        order: dict[int, None] = {}
        for tick in ticks:
            order.pop(tick.node, None)  # type: ignore[union-attr]
            order[tick.node] = None  # type: ignore[union-attr]
        nodes = list(order)
        out.append(Tick(nodes[0], total))
        out.extend(Tick(node, 0) for node in nodes[1:])
        position = stop
    out.extend(events[position:])
    return out


def shrink_events(
    seed: int,
    options: SimOptions,
    factory: str,
    events: Sequence[Event],
    invariant: str,
    *,
    max_seconds: float = 60.0,
    max_replays: int = MAX_REPLAYS,
    on_progress: Callable[[str, int], None] | None = None,
) -> ShrinkOutcome:
    """Shrink `events` while `invariant` still breaks; see the module docstring."""
    shrinker = _Shrinker(
        seed, options, factory, invariant, time.monotonic() + max_seconds, max_replays
    )
    original = strip_refs(events)
    current = shrinker.fails(original)
    if current is None:
        raise ShrinkError(f"replaying the trace does not break {invariant}; nothing to shrink")
    passes = (
        ("by kind", shrinker.remove_kinds),
        ("servers", shrinker.drop_servers),
        ("tick runs", shrinker.collapse_ticks),
        ("chunks", shrinker.remove_chunks),
        ("tick folding", shrinker.fold_ticks),
        ("ticks", shrinker.merge_ticks),
        ("partitions", shrinker.shorten_partitions),
    )
    try:
        while True:
            size = len(current)
            for name, run_pass in passes:
                if shrinker.out_of_time():
                    break
                current = run_pass(current)
                if on_progress is not None:
                    on_progress(name, len(current))
            if len(current) >= size or shrinker.out_of_time():
                break
    except KeyboardInterrupt:  # keep the work: the shortest failing trace so far
        assert shrinker.best is not None
        current, shrinker.options = shrinker.best
        shrinker.stopped_by = "interrupted"
    # The proof that the result stands on its own: a strict replay.
    sim = Simulation(shrinker.options, seed, shrinker.factory, checker=Checker())
    violation, diverged, _why = replay_events(sim, current)
    linearizability = None
    if invariant == LINEARIZABILITY and violation is None:
        linearizability = check_clients(sim)
        violation = linearizability_violation(sim, linearizability)
    assert diverged is None and violation is not None and violation.invariant == invariant
    if linearizability is not None:
        verdict = verdict_of(sim, None, Liveness("skipped", "shrunk"), linearizability)
    else:
        verdict = verdict_of(sim, violation, Liveness("skipped", "safety was violated"))
    return ShrinkOutcome(
        len(original),
        len(current),
        invariant,
        violation.step,
        shrinker.options,
        tuple(current),
        violation,
        verdict,
        shrinker.attempts,
        shrinker.stopped_by,
        seed,
        factory,
    )


def shrink_file(
    trace_path: str,
    output: str,
    *,
    node_factory: str | None = None,
    max_seconds: float = float("inf"),
    max_replays: int | None = None,
    console=None,
) -> ShrinkOutcome:
    """Shrink the trace at `trace_path` and write the result to `output`.
    `max_replays` None is each kind's own budget: MAX_REPLAYS for a safety
    violation, LIVENESS_MAX_REPLAYS for a liveness failure; a number is
    honoured as given."""
    try:
        trace = read_trace(trace_path)
    except TraceError as exc:
        raise ShrinkError(str(exc)) from None
    try:
        factory = factory_for_trace(trace.factory, node_factory)
    except FactoryError as exc:
        raise ShrinkError(f"{trace_path}: {exc}") from None
    recorded = trace.verdict.get("violation")
    liveness = trace.verdict.get("liveness") or {}
    lin = trace.verdict.get("linearizability")
    if not recorded and isinstance(lin, dict) and lin.get("verdict") == "violation":
        recorded = {"invariant": LINEARIZABILITY}
    is_liveness = not recorded and liveness.get("verdict") == "failed" and liveness.get("name")
    if not is_liveness and (
        not recorded or not isinstance(recorded, dict) or "invariant" not in recorded
    ):
        raise ShrinkError(
            f"{trace_path}: the trace records no safety violation, no linearizability "
            "violation and no named liveness failure; only those are shrunk"
        )
    try:
        load_factory(factory)
    except FactoryError as exc:
        raise ShrinkError(str(exc)) from None
    if "process_died" in trace.header:
        # Every replay would take this process down with the server.
        raise ShrinkError(
            f"{trace_path}: the server's process {trace.header['process_died']} in this run; "
            "shrinking replays it in this process, which would die the same way"
        )

    def progress(name: str, size: int) -> None:
        if console is not None:
            console.print(f"  {name}: {size} events")

    if is_liveness:
        outcome = shrink_liveness(
            trace.seed,
            trace.options,
            factory,
            trace.events,
            liveness,
            max_seconds=max_seconds,
            max_replays=LIVENESS_MAX_REPLAYS if max_replays is None else max_replays,
            on_progress=progress,
        )
        write_trace(output, outcome.trace_lines(trace_path))
        return outcome
    outcome = shrink_events(
        trace.seed,
        trace.options,
        factory,
        trace.events,
        recorded["invariant"],
        max_seconds=max_seconds,
        max_replays=MAX_REPLAYS if max_replays is None else max_replays,
        on_progress=progress,
    )
    write_trace(output, outcome.trace_lines(trace_path))
    return outcome
