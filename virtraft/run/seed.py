"""Run one seed: a safety phase under faults, then a liveness phase.

The safety phase applies `steps` events drawn by the scheduler, checking
every invariant after each; the liveness phase (`virtraft.run.liveness`)
follows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import NODE_OPTION_NAMES, NodeFactory, capabilities_of
from virtraft.check.checker import Checker, Violation
from virtraft.check.linearizability import Linearizability, check_history
from virtraft.run.factory import DEFAULT_FACTORY, load_factory
from virtraft.run.liveness import Liveness, Plan, draw_plan, liveness_phase, stuck_liveness
from virtraft.run.progress import ProgressMonitor
from virtraft.sim.events import Event
from virtraft.sim.options import SWARM_FIELDS, SimOptions, options_swarm
from virtraft.sim.scheduler import Scheduler
from virtraft.sim.seeds import liveness_rng, scheduler_rng, swarm_rng
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import digest, iter_trace_lines


@dataclass(slots=True)
class RunResult:
    seed: int
    options: SimOptions
    factory: str
    violation: Violation | None
    liveness: Liveness
    sim: Simulation
    # What the clients were told, checked (None: the run had no clients).
    linearizability: Linearizability | None = None

    @property
    def failed(self) -> bool:
        return (
            self.violation is not None
            or self.liveness.verdict == "failed"
            or linearizability_failed(self.linearizability)
        )

    @property
    def slow(self) -> bool:
        """Progress came, but past its bound: a warning, not a failure."""
        return self.violation is None and self.liveness.verdict == "slow"

    @property
    def events(self) -> Sequence[Event]:
        return self.sim.events

    def verdict(self) -> dict[str, Any]:
        return verdict_of(self.sim, self.violation, self.liveness, self.linearizability)

    def trace_lines(self) -> list[str]:
        return list(self.iter_trace_lines())

    def iter_trace_lines(self) -> Iterator[str]:
        """The trace one line at a time, for writing or digesting a long run."""
        return iter_trace_lines(
            self.seed, self.options, self.factory, self.sim.events, self.verdict()
        )

    def digest(self) -> str:
        return digest(self.iter_trace_lines())


def verdict_of(
    sim: Simulation,
    violation: Violation | None,
    liveness: Liveness,
    linearizability: Linearizability | None = None,
) -> dict[str, Any]:
    stats = sim.stats
    lin = {} if linearizability is None else {"linearizability": linearizability.to_json()}
    return {
        **lin,
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


def resolve_options(
    seed: int,
    options: SimOptions,
    swarm: bool,
    keep: frozenset[str] = frozenset(),
    factory: NodeFactory | None = None,
) -> SimOptions:
    """The options a seed runs with: under swarm, drawn from the seed except
    for the fields in `keep` and the Raft options the factory's nodes say
    they ignore (varying those would only make the trace's header lie);
    ids from 0 only for nodes that say they take a server 0."""
    if not swarm:
        return options
    capabilities = capabilities_of(factory) if factory is not None else None
    if capabilities is not None:
        ignored = {f"node.{name}" for name in NODE_OPTION_NAMES - capabilities.options}
        keep = keep | (ignored & set(SWARM_FIELDS))
    zero = capabilities is not None and capabilities.zero_node_id
    return options_swarm(swarm_rng(seed), options, keep, zero_node_id=zero)


def run_seed(
    seed: int,
    options: SimOptions,
    *,
    factory: str = DEFAULT_FACTORY,
    swarm: bool = False,
    keep: frozenset[str] = frozenset(),
    check: bool = True,
    invariants: Iterable[str] | None = None,
    on_step: Callable[[Simulation], None] | None = None,
    simulation: type[Simulation] = Simulation,
) -> RunResult:
    make_node = load_factory(factory)
    options = resolve_options(seed, options, swarm, keep, make_node)
    sim = simulation(
        options,
        seed,
        make_node,
        checker=Checker(invariants) if check else None,
    )
    scheduler = Scheduler(scheduler_rng(seed), options)
    monitor = ProgressMonitor(options) if options.liveness else None
    watch = monitor.observe if monitor is not None and monitor.active else None
    apply = sim.apply
    next_event = scheduler.next_event
    violation = None
    stuck = None
    for _ in range(options.steps):
        event = next_event(sim)
        violation = apply(event)
        if violation is not None:
            break
        if watch is not None and (stuck := watch(sim, event)) is not None:
            break
        if on_step is not None:
            on_step(sim)
    if violation is not None:
        liveness = Liveness("skipped", "safety was violated")
    elif stuck is not None:
        assert monitor is not None
        liveness = stuck_liveness(stuck, monitor)
    elif options.liveness:
        liveness, violation = continue_with_liveness(sim, seed, monitor)
    else:
        liveness = Liveness("skipped", "liveness phase switched off")
    return RunResult(seed, options, factory, violation, liveness, sim, check_clients(sim))


def continue_with_liveness(
    sim: Simulation,
    seed: int,
    monitor: ProgressMonitor | None = None,
    *,
    factor: int | None = None,
    plan: Plan | None = None,
) -> tuple[Liveness, Violation | None]:
    """The liveness phase after the safety phase, drawn from the seed's own
    liveness stream: after any safety phase (a shortened one too, when
    shrinking) it is drawn and scheduled the same way."""
    rng = liveness_rng(seed)
    plan = draw_plan(rng, sim) if plan is None else plan
    return liveness_phase(sim, Scheduler(rng, sim.options), plan, monitor, factor=factor)


# Search steps the linearizability verdict may spend on one run's history;
# beyond them the verdict is "unknown", which is not a failure.
LINEARIZABILITY_STEPS = 200_000


def check_clients(sim: Simulation) -> Linearizability | None:
    """The linearizability verdict on the clients' history (None without clients)."""
    if sim.clients is None:
        return None
    history = [record.operation for record in sim.clients.history(sim)]
    return check_history(history, LINEARIZABILITY_STEPS)


def linearizability_failed(linearizability: Linearizability | None) -> bool:
    return linearizability is not None and linearizability.verdict == "violation"


LINEARIZABILITY = "Linearizability"


def linearizability_violation(
    sim: Simulation, linearizability: Linearizability | None
) -> Violation | None:
    """A failed linearizability verdict as a Violation, found at the run's
    last step: what the shrinker keeps failing and the zoo names."""
    if not linearizability_failed(linearizability):
        return None
    assert linearizability is not None
    first = linearizability.failures[0]
    return Violation(
        LINEARIZABILITY,
        sim.step,
        (),
        f"key {first.key}: {first.stuck.text()} fits no linear order "
        f"(after {len(first.longest)} of its {first.operations} operations)",
        first.to_json(),
    )
