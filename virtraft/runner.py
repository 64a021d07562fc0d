"""Run one seed: a safety phase under faults, then a liveness phase.

The safety phase applies `steps` events drawn by the scheduler, checking
every invariant after each. The liveness phase heals the network, restarts
crashed servers, lets the cluster settle, and then demands a leader and a
committed command within a bound (TigerBeetle's VOPR does the same).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import random
import shlex
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import FactoryError, NodeFactory, Role
from virtraft.checker import Checker, Violation
from virtraft.events import ClientRequest, Event, Heal, Restart, strip_refs
from virtraft.options import SimOptions, options_swarm
from virtraft.scheduler import Scheduler
from virtraft.simulator import NotApplicable, Simulation
from virtraft.trace import digest, trace_lines

DEFAULT_FACTORY = "virtraft.raftcore_node:default_factory"


def load_factory(spec: str) -> NodeFactory:
    """Import `module:callable`; the callable makes nodes."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise FactoryError(f"node factory {spec!r} must look like module:callable")
    if spec != DEFAULT_FACTORY:
        _search_cwd_last()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise FactoryError(f"cannot import {module_name!r} for the node factory: {exc}") from None
    except SyntaxError as exc:
        raise FactoryError(f"cannot import {module_name!r} for the node factory: {exc.msg} "
                           f"({exc.filename}, line {exc.lineno})") from None
    except Exception as exc:  # the user's module failed as it loaded
        raise FactoryError(f"importing {module_name!r} for the node factory raised "
                           f"{type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise FactoryError(f"{module_name} has no attribute {attr!r}")
    if not callable(target):
        raise FactoryError(f"{spec} is not callable")
    return target


def _search_cwd_last() -> None:
    """A factory the user names may live in the current directory, which is
    searched, but after everything else: a file there named like an
    installed package (raftcore.py) never stands in for it."""
    cwd = os.getcwd()
    if "" not in sys.path and cwd not in sys.path:
        sys.path.append(cwd)


def factory_for_trace(recorded: str, named: str | None) -> str:
    """The node factory to run a trace's events with. A trace is data: the
    factory it records is never imported on the trace's word. The user names
    one (`--node-factory`), or the trace must have been recorded with the
    default one."""
    if named is not None:
        return named
    if recorded == DEFAULT_FACTORY:
        return DEFAULT_FACTORY
    raise FactoryError(
        f"the trace was recorded with node factory {recorded!r}, which a trace alone never "
        f"runs; to run it, pass --node-factory {shlex.quote(recorded)}"
    )


@dataclass(frozen=True, slots=True)
class Liveness:
    verdict: str  # "ok", "failed", or "skipped"
    reason: str
    leader_at_ms: int | None = None
    committed_at_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class RunResult:
    seed: int
    options: SimOptions
    factory: str
    violation: Violation | None
    liveness: Liveness
    sim: Simulation

    @property
    def failed(self) -> bool:
        return self.violation is not None or self.liveness.verdict == "failed"

    @property
    def events(self) -> list[Event]:
        return self.sim.events

    def verdict(self) -> dict[str, Any]:
        return verdict_of(self.sim, self.violation, self.liveness)

    def trace_lines(self) -> list[str]:
        return trace_lines(self.seed, self.options, self.factory, self.sim.events, self.verdict())

    def digest(self) -> str:
        return digest(self.trace_lines())


def verdict_of(sim: Simulation, violation: Violation | None, liveness: Liveness) -> dict[str, Any]:
    stats = sim.stats
    return {
        "safety": "ok" if violation is None else "violation",
        "violation": dataclasses.asdict(violation) if violation is not None else None,
        "liveness": liveness.to_json(),
        "steps": sim.step,
        "clock_ms": sim.clock_ms,
        "stats": {
            **{k: v for k, v in dataclasses.asdict(stats).items() if k != "events"},
            "events": dict(sorted(stats.events.items())),
            "network": dataclasses.asdict(sim.network.stats),
        },
    }


def resolve_options(seed: int, options: SimOptions, swarm: bool) -> SimOptions:
    if not swarm:
        return options
    return options_swarm(random.Random(f"virtraft:{seed}:swarm"), options)


def run_seed(
    seed: int,
    options: SimOptions,
    *,
    factory: str = DEFAULT_FACTORY,
    swarm: bool = False,
    check: bool = True,
    invariants: Iterable[str] | None = None,
    on_step: Callable[[Simulation], None] | None = None,
) -> RunResult:
    options = resolve_options(seed, options, swarm)
    sim = Simulation(
        options, seed, load_factory(factory),
        checker=Checker(invariants) if check else None,
    )
    scheduler = Scheduler(random.Random(f"virtraft:{seed}:scheduler"), options)
    apply = sim.apply
    next_event = scheduler.next_event
    violation = None
    for _ in range(options.steps):
        violation = apply(next_event(sim))
        if violation is not None:
            break
        if on_step is not None:
            on_step(sim)
    if violation is not None:
        liveness = Liveness("skipped", "safety was violated")
    elif options.liveness:
        liveness, violation = liveness_phase(sim, scheduler)
    else:
        liveness = Liveness("skipped", "liveness phase switched off")
    return RunResult(seed, options, factory, violation, liveness, sim)


CALM_TICKS_PER_HEARTBEAT = 20  # at least: the default 200 ms heartbeat, 10 ms ticks
LIVENESS_STEP_LIMIT = 200_000  # a liveness phase's steps, besides its bound in virtual ms


def calm_options(options: SimOptions, **changes: Any) -> SimOptions:
    """The options of a stable network: no losses, copies or faults of any kind."""
    return options.replace(
        drop_probability=0.0, duplicate_probability=0.0, partition_rate=0.0, crash_rate=0.0,
        client_rate=0.0, member_rate=0.0, snapshot_rate=0.0, **changes,
    )


@dataclass(slots=True)
class CalmRun:
    """A liveness phase's clock: from now, the network settles for
    `liveness_stable_ms`, then has `liveness_bound_ms` (and at most
    LIVENESS_STEP_LIMIT steps) to deliver what is asked."""

    sim: Simulation
    calm: Scheduler
    stable_until: int
    deadline: int
    step_limit: int

    @classmethod
    def start(cls, sim: Simulation, calm: Scheduler) -> CalmRun:
        stable_until = sim.clock_ms + sim.options.liveness_stable_ms
        return cls(sim, calm, stable_until, stable_until + sim.options.liveness_bound_ms,
                   sim.step + LIVENESS_STEP_LIMIT)

    def over(self) -> bool:
        return self.sim.clock_ms > self.deadline or self.sim.step > self.step_limit

    def until(self, done: Callable[[], bool]) -> Violation | bool:
        """Let the calm network run until `done()`: True, False once over
        time, or the violation that stopped it."""
        sim = self.sim
        while not done():
            if self.over():
                return False
            if (violation := sim.apply(self.calm.network_or_time(sim))) is not None:
                return violation
        return True


def liveness_phase(sim: Simulation, scheduler: Scheduler) -> tuple[Liveness, Violation | None]:
    """Heal, restart, settle; then a leader and one commit must follow in time."""
    options = sim.options
    # A stable network: no losses, copies or reordering (messages leave the
    # pool oldest first), and no more faults. Its ticks shrink with fast
    # heartbeats, so that it delivers as many messages per heartbeat as at
    # the default timers instead of falling behind them.
    calm = Scheduler(scheduler.rng, calm_options(
        options, reorder=False,
        tick_ms_max=max(options.tick_ms_min, min(
            options.tick_ms_max, options.node.request_timeout_ms // CALM_TICKS_PER_HEARTBEAT)),
    ))
    # The network heals and forgets the backlog the faults left behind: what
    # is still in flight is lost, which Raft must survive anyway.
    opening: list[Event] = [Heal(flush=True)]
    opening += [Restart(n) for n in sim.node_ids if not sim.nodes[n].alive]
    for event in opening:
        if (violation := sim.apply(event)) is not None:
            return Liveness("skipped", "safety was violated"), violation
    run = CalmRun.start(sim, calm)
    outcome = run.until(lambda: sim.clock_ms >= run.stable_until)
    if isinstance(outcome, Violation):
        return Liveness("skipped", "safety was violated"), outcome
    # Like a real client: submit to the leader, and submit again to whoever
    # leads if the command is lost or its leader steps down before it commits.
    bound = options.liveness_bound_ms
    leader_at: int | None = None
    while True:
        if run.over():
            return Liveness("failed", f"no command committed within {bound} ms after the "
                                      "network settled", leader_at), None
        outcome = run.until(lambda: _stable_leader(sim) is not None)
        if isinstance(outcome, Violation):
            return Liveness("skipped", "safety was violated"), outcome
        if outcome is False:
            if leader_at is None:
                return Liveness("failed", f"no leader within {bound} ms after the network "
                                          "settled"), None
            return Liveness("failed", f"no command committed within {bound} ms after the "
                                      "network settled", leader_at), None
        leader = _stable_leader(sim)
        assert leader is not None
        leader_at = leader_at if leader_at is not None else sim.clock_ms
        command = sim.next_command_id
        if (violation := sim.apply(ClientRequest(leader, command, "liveness", 1))) is not None:
            return Liveness("skipped", "safety was violated"), violation
        last = sim.last_submitted
        if last is None or last[0] != command:
            # Refused (it may have just stepped down): let time pass, then
            # look for the leader again.
            if (violation := sim.apply(calm.tick(sim))) is not None:
                return Liveness("skipped", "safety was violated"), violation
            continue
        _command, node_id, where = last

        def settled(node_id: int = node_id, where=where) -> bool:
            node = sim.nodes[node_id]
            return node.is_committed(where) is not None or node.role is not Role.LEADER

        outcome = run.until(settled)
        if isinstance(outcome, Violation):
            return Liveness("skipped", "safety was violated"), outcome
        if outcome is False:
            return Liveness("failed", f"leader {leader} did not commit a command within "
                                      f"{bound} ms", leader_at), None
        if sim.nodes[node_id].is_committed(where) is True:
            return Liveness("ok", "leader elected and a command committed", leader_at,
                            sim.clock_ms), None


def _stable_leader(sim: Simulation) -> int | None:
    """A live leader that is a voter of its own configuration."""
    leader = sim.leader()
    if leader is None:
        return None
    if not any(node == leader.node_id and voting for node, voting in leader.members):
        return None
    return leader.node_id


def replay_events(
    sim: Simulation, events: Iterable[Event], *, strict: bool = True
) -> tuple[Violation | None, int | None, str | None]:
    """Apply recorded events. Returns (violation, diverged_at_step, why); with
    strict=False an event that no longer applies is skipped (for shrinking)."""
    for step, event in enumerate(strip_refs(list(events)), start=1):
        try:
            violation = sim.apply(event)
        except NotApplicable as exc:
            if strict:
                return None, step, str(exc)
            continue
        if violation is not None:
            return violation, None, None
    return None, None, None
