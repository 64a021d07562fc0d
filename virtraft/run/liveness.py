"""The liveness phase: after the faults, a core of the cluster must converge.

Like TigerBeetle's VOPR, the seed (its own sub-seed, `liveness_rng`) picks a
core, a majority of the voters, that is healed, connected and restarted,
while the others keep standing faults: down, cut off, or behind a one-way
cut (`draw_plan`; sometimes the old leader is among them, so that the core
must elect one of its own). Some seeds heal everything instead (the
`HEAL` plan, which scenarios use too). The core must converge: a leader in
it, a command committed, and every member's commit index and applied state
caught up (`Convergence`), within a bound stated in election timeouts.

Slow is not stuck: past the bound the phase runs on to
`liveness_stuck_factor` bounds. A core that converges there is slow (a
warning, with the time it took); one that never does is stuck (the
liveness failure, named after the first step it did not reach:
LeaderElected, CommandCommitted or CoreCaughtUp).

`Convergence` only reads the simulation after each event, so `rejudge`
re-derives the verdict from a trace's events alone (`virtraft replay`).
`liveness_in_place` keeps the last network shape instead, for scenarios
whose claim is about a lasting fault. All run on a calm network
(`calm_options`) under one clock (`CalmRun`).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from raftcore.quorum import majority
from virtraft.adapter import Role, Submitted
from virtraft.check.checker import Violation
from virtraft.run.progress import (
    ProgressFinding,
    ProgressMonitor,
    blocked_witness,
    blocked_words,
    guards_partial_connectivity,
    voters_agreed,
)
from virtraft.sim.events import ClientRequest, Crash, Event, Heal, Partition, Restart
from virtraft.sim.options import SimOptions
from virtraft.sim.scheduler import Scheduler
from virtraft.sim.simulation import NotApplicable, Simulation


@dataclass(frozen=True, slots=True)
class Liveness:
    verdict: str  # "ok", "slow" (converged past the bound), "failed" (stuck), or "skipped"
    reason: str
    leader_at_ms: int | None = None
    committed_at_ms: int | None = None
    # The named verdict that failed (or came late): LeaderElected, ElectionEnds,
    # CommandCommitted, CoreCaughtUp; None when all went in time.
    name: str | None = None
    # How long the core took to converge, from the end of its stable window.
    took_ms: int | None = None
    # The phase as it ran: its plan, first step, clock and bounds (`rejudge` reads it).
    phase: dict[str, Any] | None = None
    # What blocked progress, in words and as the state it was read from.
    blocked: str | None = None
    witness: dict[str, Any] | None = None
    # Progress that came late while the faults happened (`ProgressMonitor`).
    slow: tuple[dict[str, Any], ...] = ()
    # Whether the progress monitor judged the safety phase (replay re-runs it then).
    monitored: bool = False

    @property
    def is_slow(self) -> bool:
        return self.verdict == "slow"

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["slow"] = list(self.slow)
        return out


SKIPPED = Liveness("skipped", "safety was violated")
CALM_TICKS_PER_HEARTBEAT = 20  # at least: the default 200 ms heartbeat, 10 ms ticks
LIVENESS_STEP_LIMIT = 200_000  # a liveness phase's steps per bound, besides the bound in ms
LIVENESS_KEY = "liveness"  # the key of the commands the phase submits
HEAL_SHARE = 0.25  # of the seeds heal everything, as the phase did before it had a core
LEADER_OUT_SHARE = 0.5  # of the others leave the old leader out of the core, if they can


def calm_options(options: SimOptions, **changes: Any) -> SimOptions:
    """The options of a stable network: no losses, copies or faults of any kind."""
    return options.replace(
        drop_probability=0.0,
        duplicate_probability=0.0,
        partition_rate=0.0,
        crash_rate=0.0,
        client_rate=0.0,
        member_rate=0.0,
        snapshot_rate=0.0,
        **changes,
    )


def bound_ms(options: SimOptions) -> int:
    """The liveness bound: a fixed one a scenario (or an old trace) states, or
    `liveness_bound_elections` election timeouts, so that it scales with the timers."""
    if options.liveness_bound_ms > 0:
        return options.liveness_bound_ms
    return options.liveness_bound_elections * options.node.election_timeout_ms


@dataclass(slots=True)
class CalmRun:
    """A liveness phase's clock: from now, the network settles for
    `liveness_stable_ms`, then has the bound to converge and, past it,
    `liveness_stuck_factor` bounds (and at most LIVENESS_STEP_LIMIT steps a
    bound) before it counts as stuck. Every event it applies is shown to
    `observe` (the judge)."""

    sim: Simulation
    calm: Scheduler
    stable_until: int
    bound_ms: int
    deadline: int
    step_limit: int
    observe: Callable[[Event], None] = lambda event: None

    @classmethod
    def start(cls, sim: Simulation, calm: Scheduler, *, factor: int | None = None) -> CalmRun:
        options = sim.options
        factor = options.liveness_stuck_factor if factor is None else factor
        stable_until = sim.clock_ms + options.liveness_stable_ms
        bound = bound_ms(options)
        return cls(
            sim,
            calm,
            stable_until,
            bound,
            stable_until + bound * factor,
            sim.step + LIVENESS_STEP_LIMIT * factor,
        )

    def over(self) -> bool:
        return self.sim.clock_ms > self.deadline or self.sim.step > self.step_limit

    def apply(self, event: Event) -> Violation | None:
        violation = self.sim.apply(event)
        self.observe(event)
        return violation

    def until(self, done: Callable[[], bool]) -> Violation | bool:
        """Let the calm network run until `done()`: True, False once over
        time, or the violation that stopped it."""
        sim = self.sim
        while not done():
            if self.over():
                return False
            if (violation := self.apply(self.calm.network_or_time(sim))) is not None:
                return violation
        return True


# ------------------------------------------------------------------- the plan

# The standing faults a node outside the core may keep: down (crashed), cut
# off both ways, mute (it hears the cluster, the cluster does not hear it),
# deaf (the cluster hears it, it hears no one). A deaf node keeps asking for
# votes in ever higher terms, which only pre-vote makes harmless (Raft §9.6),
# and a deaf old leader keeps the core's timers quiet until check-quorum
# makes it step down: deaf only when both are on.
STANDING_FAULTS = ("down", "isolated", "mute", "deaf")


@dataclass(frozen=True, slots=True)
class Plan:
    """What the phase does: heal everything, or heal a core and let the others
    keep their standing faults."""

    shape: str  # "heal" or "core"
    core: tuple[int, ...] | None = None  # None: the voters of the leader's configuration
    faults: tuple[tuple[int, str], ...] = ()  # (node, standing fault), outside the core

    def to_json(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "core": None if self.core is None else list(self.core),
            "faults": [[n, f] for n, f in self.faults],
        }

    @classmethod
    def from_json(cls, data: Any) -> Plan:
        """The plan a trace's phase recorded (`to_json`), for `rejudge`; a
        ValueError, in words, if the trace holds something else there."""
        if not isinstance(data, dict):
            raise ValueError("the liveness phase's plan is not an object")
        core, faults = data.get("core"), data.get("faults") or ()
        try:
            return cls(
                str(data.get("shape", "heal")),
                None if core is None else tuple(_node_id(n) for n in core),
                tuple((_node_id(n), str(f)) for n, f in faults),
            )
        except (TypeError, ValueError):
            raise ValueError("the liveness phase's plan names no list of servers") from None


def _node_id(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(value)
    return value


HEAL = Plan("heal")


def draw_plan(rng: random.Random, sim: Simulation) -> Plan:
    """The seed's plan for the phase: a core of a majority of the voters
    (sometimes without the old leader) and a standing fault for each voter
    outside it, drawn from this seed's own share of STANDING_FAULTS; or, for
    HEAL_SHARE of the seeds (and whenever the servers disagree on who votes,
    or fewer than three vote), the whole cluster healed."""
    heal = rng.random() < HEAL_SHARE
    voters = voters_agreed(sim)
    if heal or voters is None or len(voters) < 3 or any(n not in sim.nodes for n in voters):
        return HEAL
    need = majority(len(voters))
    size = need + rng.randrange(len(voters) - need)
    leader = sim.leader()
    pool = list(voters)
    if leader is not None and leader.node_id in pool and rng.random() < LEADER_OUT_SHARE:
        pool.remove(leader.node_id)
    core = tuple(sorted(rng.sample(pool, min(size, len(pool)))))
    guarded = guards_partial_connectivity(sim)
    menu = [f for f in STANDING_FAULTS if f != "deaf" or guarded]
    allowed = rng.sample(menu, rng.randint(1, len(menu)))
    faults = tuple((n, rng.choice(allowed)) for n in voters if n not in core)
    return Plan("core", core, faults)


def opening_events(sim: Simulation, plan: Plan) -> list[Event]:
    """The events that set the plan up: the network heals for good (what is
    still in flight is lost, which Raft must survive anyway), the core and
    every other server not kept down restarts, the standing cuts go up."""
    fault_of = dict(plan.faults)
    events: list[Event] = [Heal(flush=True)]
    for n in sim.node_ids:
        node = sim.nodes[n]
        if node.retired:
            continue
        if fault_of.get(n) == "down":
            if node.alive:
                events.append(Crash(n))
        elif not node.alive:
            events.append(Restart(n))
    nodes = sim.node_ids
    down: list[tuple[int, int]] = []
    words = []
    for n, fault in plan.faults:
        if fault == "down":
            continue
        words.append(f"{n} {fault}")
        others = [m for m in nodes if m != n]
        if fault in ("isolated", "mute"):
            down += [(n, m) for m in others]
        if fault in ("isolated", "deaf"):
            down += [(m, n) for m in others]
    if down:
        events.append(Partition(f"standing: {', '.join(words)}", tuple(sorted(set(down)))))
    return events


# ------------------------------------------------------------------ the judge


class Convergence:
    """Whether the core has converged, read after every event: a leader in
    the core, a command the phase submitted committed, and every core member
    alive with its commit index and applied state at that command."""

    def __init__(self, core: tuple[int, ...] | None) -> None:
        self.core = core
        self.leader_at_ms: int | None = None
        self.committed_at_ms: int | None = None
        self.converged_at_ms: int | None = None
        self.index: int | None = None  # where the committed command is
        self.commands: list[tuple[int, Submitted]] = []

    def members(self, sim: Simulation) -> tuple[int, ...]:
        """The core: as planned, or the voters of the leader's configuration."""
        if self.core is not None:
            return self.core
        leader = sim.voting_leader()
        if leader is None:
            return tuple(n for n in sim.node_ids if not sim.nodes[n].retired)
        return tuple(sorted(n for n, voting in leader.members if voting and n in sim.nodes))

    def leader(self, sim: Simulation) -> int | None:
        """The core's leader: its live leader with the highest term, a voter."""
        if self.core is None:
            leader = sim.voting_leader()
            return None if leader is None else leader.node_id
        best = None
        for n in self.core:
            node = sim.nodes[n]
            if (
                node.alive
                and node.role is Role.LEADER
                and (best is None or node.term > best[0])
                and (n, True) in node.members
            ):
                best = (node.term, n)
        return None if best is None else best[1]

    @property
    def converged(self) -> bool:
        return self.converged_at_ms is not None

    def observe(self, sim: Simulation, event: Event) -> None:
        if self.converged:
            return
        now = sim.clock_ms
        if (
            isinstance(event, ClientRequest)
            and event.key == LIVENESS_KEY
            and sim.last_submitted is not None
            and sim.last_submitted[0] == event.command
        ):
            _command, node_id, where = sim.last_submitted
            self.commands.append((node_id, where))
        if self.leader_at_ms is None and self.leader(sim) is not None:
            self.leader_at_ms = now
        if self.committed_at_ms is None:
            for node_id, where in self.commands:
                node = sim.nodes.get(node_id)
                if (
                    node is not None
                    and node.commit_index >= where.index
                    and node.is_committed(where) is True
                ):
                    self.committed_at_ms, self.index = now, where.index
                    break
        if self.index is not None and all(
            self._caught_up(sim, n, self.index) for n in self.members(sim)
        ):
            self.converged_at_ms = now

    @staticmethod
    def _caught_up(sim: Simulation, node_id: int, index: int) -> bool:
        node = sim.nodes[node_id]
        applied = node.last_applied
        return node.alive and node.commit_index >= index and (applied is None or applied >= index)

    def missing(self) -> tuple[str, str]:
        """The first step not reached: its verdict name and what it means."""
        if self.leader_at_ms is None:
            return "LeaderElected", "no leader in the core"
        if self.committed_at_ms is None:
            return "CommandCommitted", "no command committed by a leader of the core"
        return "CoreCaughtUp", "a core member did not catch up with the committed command"

    def lagging(self, sim: Simulation) -> list[int]:
        index = self.index
        if index is None:
            return []
        return [n for n in self.members(sim) if not self._caught_up(sim, n, index)]


def verdict(
    sim: Simulation, judge: Convergence, phase: dict[str, Any], monitor: ProgressMonitor | None
) -> Liveness:
    """The phase's verdict from what the judge saw (the same in a run and in
    its replay): ok within the bound, slow past it, failed (stuck) if never."""
    slow = tuple(f.to_json() for f in monitor.slow) if monitor is not None else ()
    monitored = monitor is not None and monitor.active
    common = dict(
        leader_at_ms=judge.leader_at_ms,
        committed_at_ms=judge.committed_at_ms,
        phase=phase,
        slow=slow,
        monitored=monitored,
    )
    where = "the core" if phase["plan"]["shape"] == "core" else "the healed cluster"
    core = judge.members(sim)
    if judge.converged_at_ms is not None:
        took = max(0, judge.converged_at_ms - phase["stable_until_ms"])
        elections = took / sim.options.node.election_timeout_ms
        if took <= phase["bound_ms"] and not slow:
            return Liveness(
                "ok",
                f"{where} converged in {took} ms ({elections:.1f} election timeouts): "
                "a leader, a command committed, every member caught up",
                took_ms=took,
                **common,
            )
        if took <= phase["bound_ms"]:
            first = slow[0]
            return Liveness(
                "slow",
                f"{first['name']} came late while the faults happened: {first['message']}",
                name=first["name"],
                took_ms=first["took_ms"],
                **common,
            )
        return Liveness(
            "slow",
            f"{where} converged late: in {took} ms ({elections:.1f} election timeouts), "
            f"past the bound of {phase['bound_ms']} ms",
            name="CoreConverged",
            took_ms=took,
            **common,
        )
    name, words = judge.missing()
    lagging = judge.lagging(sim)
    witness = blocked_witness(sim, core)
    blocked = blocked_words(witness)
    if lagging:
        blocked = f"behind: {', '.join(map(str, lagging))}; {blocked}"
    stuck_ms = phase["bound_ms"] * phase["factor"]
    return Liveness(
        "failed",
        f"stuck: {words} within {stuck_ms} ms ({phase['factor']} times the bound of "
        f"{phase['bound_ms']} ms) after the network settled; {blocked}",
        name=name,
        blocked=blocked,
        witness=witness,
        **common,
    )


def liveness_phase(
    sim: Simulation,
    scheduler: Scheduler,
    plan: Plan = HEAL,
    monitor: ProgressMonitor | None = None,
    *,
    factor: int | None = None,
) -> tuple[Liveness, Violation | None]:
    """Set the plan up, settle; then the core must converge in time. The calm
    schedule draws from `scheduler`'s stream (the seed's liveness stream,
    for `run_seed`)."""
    options = sim.options
    # A stable network: no losses, copies or reordering (messages leave the
    # pool oldest first), and no more faults. Its ticks shrink with fast
    # heartbeats, so that it delivers as many messages per heartbeat as at
    # the default timers instead of falling behind them.
    calm = Scheduler(
        scheduler.rng,
        calm_options(
            options,
            reorder=False,
            tick_ms_max=max(
                options.tick_ms_min,
                min(
                    options.tick_ms_max, options.node.request_timeout_ms // CALM_TICKS_PER_HEARTBEAT
                ),
            ),
        ),
    )
    first_step = sim.step + 1
    started_ms = sim.clock_ms
    # The judge sees the network only once the plan is set up: a leader the
    # openings find (say a stale one, about to step down at its next tick)
    # is not one the calm network elected. `rejudge` starts it there too.
    for event in opening_events(sim, plan):
        if (violation := sim.apply(event)) is not None:
            return SKIPPED, violation
    judge = Convergence(plan.core)
    run = CalmRun.start(sim, calm, factor=factor)
    run.observe = lambda event: judge.observe(sim, event)
    phase = {
        "plan": plan.to_json(),
        "first_step": first_step,
        "started_ms": started_ms,
        "stable_until_ms": run.stable_until,
        "bound_ms": run.bound_ms,
        "factor": (run.deadline - run.stable_until) // max(1, run.bound_ms),
    }
    outcome = run.until(lambda: sim.clock_ms >= run.stable_until)
    if isinstance(outcome, Violation):
        return SKIPPED, outcome
    # Like a real client: submit to the core's leader, and submit again to
    # whoever leads if the command is lost or its leader steps down first.
    while outcome is True and not judge.converged:
        outcome = run.until(lambda: judge.leader(sim) is not None)
        if outcome is not True:
            break
        leader = judge.leader(sim)
        assert leader is not None
        command = sim.next_command_id
        if (violation := run.apply(ClientRequest(leader, command, LIVENESS_KEY, 1))) is not None:
            return SKIPPED, violation
        last = sim.last_submitted
        if last is None or last[0] != command:
            # Refused (it may have just stepped down): let time pass, then
            # look for the leader again.
            if (violation := run.apply(calm.tick(sim))) is not None:
                return SKIPPED, violation
            continue
        node = sim.nodes[last[1]]
        outcome = run.until(
            lambda node=node: judge.committed_at_ms is not None or node.role is not Role.LEADER
        )
        if outcome is True and judge.committed_at_ms is not None:
            outcome = run.until(lambda: judge.converged)
    if isinstance(outcome, Violation):
        return SKIPPED, outcome
    return verdict(sim, judge, phase, monitor), None


def rejudges(recorded: dict[str, Any]) -> bool:
    """Whether a recorded liveness verdict can be derived again from the
    trace's events: it names its phase, or the progress monitor judged."""
    return isinstance(recorded.get("phase"), dict) or recorded.get("monitored") is True


def rejudge(
    sim: Simulation, events: Sequence[Event], recorded: dict[str, Any]
) -> tuple[Liveness | None, Violation | None, int | None, str | None]:
    """Replay `events` and judge them as the run did: the progress monitor
    over the safety phase (if it ran), the core's convergence from the
    phase's first step. Returns (liveness, violation, diverged_at, why);
    liveness is None for a trace that recorded no phase (older traces)."""
    phase = recorded.get("phase")
    monitor = ProgressMonitor(sim.options) if recorded.get("monitored") else None
    first = phase.get("first_step") if isinstance(phase, dict) else None
    try:
        plan = Plan.from_json(phase.get("plan") or {}) if isinstance(phase, dict) else HEAL
    except ValueError as exc:
        return None, None, first if type(first) is int else 1, str(exc)
    judged_from = None  # the step after the phase's openings, as `liveness_phase` judges
    judge = None
    for step, event in enumerate(events, start=1):
        if step == first:
            if plan.core is not None and not set(plan.core) <= set(sim.nodes):
                return None, None, step, "the liveness phase's core names servers not in the run"
            judged_from = first + len(opening_events(sim, plan))
        if step == judged_from:
            judge = Convergence(plan.core)
        try:
            violation = sim.apply(event)
        except NotApplicable as exc:
            return None, None, step, str(exc)
        if violation is not None:
            return None, violation, None, None
        if judge is not None:
            judge.observe(sim, event)
        elif (
            monitor is not None
            and judged_from is None
            and (stuck := monitor.observe(sim, event)) is not None
        ):
            return stuck_liveness(stuck, monitor), None, None, None
    if judge is None or not isinstance(phase, dict):
        return None, None, None, None
    return verdict(sim, judge, phase, monitor), None, None, None


def stuck_liveness(stuck: ProgressFinding, monitor: ProgressMonitor) -> Liveness:
    """The liveness failure of progress that never came while the faults happened."""
    return Liveness(
        "failed",
        f"stuck: {stuck.message}",
        name=stuck.name,
        took_ms=stuck.took_ms,
        blocked=blocked_words(stuck.witness),
        witness={**stuck.witness, "since_step": stuck.since_step, "step": stuck.step},
        slow=tuple(f.to_json() for f in monitor.slow),
        monitored=True,
    )


def liveness_in_place(sim: Simulation, scheduler: Scheduler) -> tuple[Liveness, Violation | None]:
    """The liveness phase for a fault that never heals (`[liveness] heal =
    false`): the network keeps its last shape as its stable state, and still
    a leader and a commit must follow within the bound. This is the claim
    pre-vote and check-quorum make about partial connectivity."""
    run = CalmRun.start(sim, Scheduler(scheduler.rng, calm_options(sim.options)), factor=1)
    bound = run.bound_ms
    skipped = SKIPPED
    outcome = run.until(lambda: sim.clock_ms >= run.stable_until)
    if isinstance(outcome, Violation):
        return skipped, outcome
    outcome = run.until(lambda: sim.voting_leader() is not None)
    if isinstance(outcome, Violation):
        return skipped, outcome
    if outcome is False:
        return Liveness("failed", f"no leader within {bound} ms under the lasting partition"), None
    leader = sim.voting_leader()
    assert leader is not None
    leader_at = sim.clock_ms
    command = sim.next_command_id
    if violation := sim.apply(ClientRequest(leader.node_id, command, "liveness", 1)):
        return skipped, violation
    last = sim.last_submitted
    if last is None or last[0] != command:
        return Liveness("failed", f"leader {leader.node_id} refused a command", leader_at), None
    _command, node_id, where = last
    outcome = run.until(lambda: sim.nodes[node_id].is_committed(where) is True)
    if isinstance(outcome, Violation):
        return skipped, outcome
    if outcome is False:
        return Liveness(
            "failed",
            f"leader {leader.node_id} did not commit a command within {bound} ms "
            "under the lasting partition",
            leader_at,
        ), None
    return Liveness(
        "ok",
        "leader elected and a command committed under the lasting partition",
        leader_at,
        sim.clock_ms,
    ), None
