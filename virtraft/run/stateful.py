"""A Hypothesis state machine over the simulator, for any node factory.

Where `virtraft fuzz` lets one seeded scheduler pick every event, this lets
Hypothesis pick them: which message in flight to deliver, drop or copy (or
let the network catch up, oldest first), which server sees a little time pass
or its election timer fire, when to crash, restart, partition, heal, change
the membership or snapshot. Each run starts by electing a first leader.
Every checker invariant is an `@invariant`, so a failing run ends in
Hypothesis's shrunk, step-by-step program (a short script a person can
paste), and, if asked, in a virtraft trace of the same run that
`virtraft replay` and `virtraft shrink` accept.

Use it for your own implementation:

    from virtraft.run.stateful import machine_for

    TestMyRaft = machine_for("mypkg.node:make_node").TestCase

Swarm testing (Groce et al., 2012): each run first draws which faults it may
use at all (`choose_faults`), and a rule whose fault is off is never
enabled, so some runs crash servers a lot and others never do. Hypothesis
adds its own per-rule swarm flags on top.

Set `VIRTRAFT_STATEFUL_TRACE=path.jsonl` (or `trace_path=` in `machine_for`)
to have the failing run's events written as a trace; Hypothesis replays the
shrunk example last, so the file ends up holding that one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from virtraft.adapter import MembershipChange, NodeFactory, NodeOptions
from virtraft.check.checker import INVARIANTS, Checker, Violation
from virtraft.run.factory import DEFAULT_FACTORY, load_factory
from virtraft.run.liveness import Liveness
from virtraft.run.seed import check_clients, linearizability_violation, verdict_of
from virtraft.sim import partitions
from virtraft.sim.clients import CLIENT_KEYS
from virtraft.sim.events import (
    CLIENT_OPS,
    ChangeMembership,
    ClientInvoke,
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
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import NotApplicable, Simulation
from virtraft.trace.format import trace_lines, write_trace

__all__ = [
    "FAULTS",
    "MACHINE_OPTIONS",
    "NODE_EXCEPTION",
    "InvariantViolated",
    "RaftMachine",
    "StatefulFailure",
    "machine_for",
]

TRACE_ENV = "VIRTRAFT_STATEFUL_TRACE"

# A server that raises is a finding of its own, next to the named invariants.
NODE_EXCEPTION = "NodeException"

# What a run may switch off (swarm testing). Delivering messages and letting
# time pass are not faults: they are always on.
FAULTS: tuple[str, ...] = (
    "client",
    "drop",
    "duplicate",
    "crash",
    "restart",
    "partition",
    "heal",
    "membership",
    "snapshot",
)

# Three servers and short timeouts: elections come after a handful of steps.
# No message delay: Hypothesis already chooses which message goes next.
MACHINE_OPTIONS = SimOptions(
    servers=3,
    delay_ms_min=0,
    delay_ms_max=0,
    liveness=False,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20),
)

KEYS = ("a", "b", "c")
SHAPES = ("isolate", "split", "one_way", "bridge", "clog")
_PICK = st.integers(min_value=0, max_value=255)  # an index, taken modulo the choices


@dataclass(frozen=True, slots=True)
class StatefulFailure:
    """The last violation a machine class saw, and how many events led to it."""

    violation: Violation
    events: int
    trace: tuple[str, ...]


class InvariantViolated(AssertionError):
    """A checker invariant broke; `violation` says which, where and why."""

    def __init__(self, violation: Violation) -> None:
        super().__init__(
            f"{violation.invariant} violated at step {violation.step}: {violation.message}"
        )
        self.violation = violation


class RaftMachine(RuleBasedStateMachine):
    """The simulator under Hypothesis's control; subclass it with
    `machine_for` to choose the implementation and the options."""

    factory_spec: ClassVar[str] = DEFAULT_FACTORY
    # The factory itself, when given as a callable (else `factory_spec` is imported).
    node_factory: ClassVar[NodeFactory | None] = None
    sim_options: ClassVar[SimOptions] = MACHINE_OPTIONS
    seed: ClassVar[int] = 0  # seeds the servers' own random streams only
    faults: ClassVar[tuple[str, ...]] = FAULTS
    trace_path: ClassVar[str | None] = None
    # The last failure any instance of this class saw (the shrunk one, once
    # Hypothesis is done): for tools that report what the machine found.
    last_failure: ClassVar[StatefulFailure | None] = None

    def __init__(self) -> None:
        super().__init__()
        given = self.node_factory
        self._factory: NodeFactory = given if given is not None else load_factory(self.factory_spec)
        self.sim = Simulation(self.sim_options, self.seed, self._factory, checker=Checker())
        self.enabled: frozenset[str] = frozenset(self.faults)
        self.violation: Violation | None = None
        self._reported = False

    # ------------------------------------------------------------- plumbing

    def _apply(self, event: Event) -> None:
        """Apply one event; one that cannot happen now is simply skipped."""
        if self.violation is not None:
            return  # the run already failed; the invariants say so
        try:
            violation = self.sim.apply(event)
        except NotApplicable:
            return
        if violation is not None:
            self.violation = violation

    def _on(self, fault: str) -> bool:
        return fault in self.enabled

    def _node(self, pick: int, among: Sequence[int] | None = None) -> int:
        ids = self.sim.node_ids if among is None else among
        return ids[pick % len(ids)]

    def _envelope(self, pick: int):
        pool = self.sim.network.pool
        return pool[pick % len(pool)]

    def _down(self) -> list[int]:
        return [n for n in self.sim.node_ids if not self.sim.nodes[n].alive]

    # ---------------------------------------------------------------- swarm

    @initialize(faults=st.frozensets(st.sampled_from(FAULTS)))
    def choose_faults(self, faults: frozenset[str]) -> None:
        """Swarm testing: this run may use only these faults."""
        self.enabled = frozenset(f for f in faults if f in self.faults)

    @initialize(first=_PICK)
    def elect_first(self, first: int) -> None:
        """Start from a cluster with a leader: one server's timer fires and
        the network runs until it is calm (the first election is checked too)."""
        timeout = self.sim_options.node.election_timeout_ms
        self._apply(Tick(self._node(first), 2 * timeout))
        self.deliver_in_order(4 * len(self.sim.node_ids) ** 2)

    # ---------------------------------------------------------------- rules

    @precondition(lambda self: self.sim.network.pool)
    @rule(pick=_PICK)
    def deliver(self, pick: int) -> None:
        """The network hands one in-flight message to its destination."""
        env = self._envelope(pick)
        self._apply(Deliver(env.src, env.dst, env.kind, env.key, env.id))

    @precondition(lambda self: self.sim.network.pool)
    @rule(limit=st.integers(min_value=1, max_value=64))
    def deliver_in_order(self, limit: int) -> None:
        """The network catches up: up to `limit` messages, oldest first,
        replies included (a few rounds of a calm network in one step)."""
        pool = self.sim.network.pool
        for _ in range(limit):
            if not pool or self.violation is not None:
                return
            env = pool[0]
            self._apply(Deliver(env.src, env.dst, env.kind, env.key, env.id))

    @precondition(lambda self: self._on("drop") and self.sim.network.pool)
    @rule(pick=_PICK)
    def drop(self, pick: int) -> None:
        """The network loses one in-flight message."""
        env = self._envelope(pick)
        self._apply(Drop(env.src, env.dst, env.kind, env.key, env.id))

    @precondition(lambda self: self._on("duplicate") and self.sim.network.pool)
    @rule(pick=_PICK)
    def duplicate(self, pick: int) -> None:
        """The network copies one in-flight message."""
        env = self._envelope(pick)
        self._apply(Duplicate(env.src, env.dst, env.kind, env.key, env.id))

    @rule(node=_PICK, percent=st.integers(min_value=1, max_value=60))
    def tick(self, node: int, percent: int) -> None:
        """A little time passes (`percent` of the election timeout), seen by
        one server: enough for a leader's heartbeat, not for an election."""
        timeout = self.sim_options.node.election_timeout_ms
        self._apply(Tick(self._node(node), max(1, timeout * percent // 100)))

    @rule(node=_PICK)
    def time_out(self, node: int) -> None:
        """Two election timeouts pass, seen by one server: unless it leads,
        its election timer fires."""
        timeout = self.sim_options.node.election_timeout_ms
        self._apply(Tick(self._node(node), 2 * timeout))

    @precondition(lambda self: self._on("client"))
    @rule(node=_PICK, key=st.sampled_from(KEYS), value=st.integers(0, 9))
    def client(self, node: int, key: str, value: int) -> None:
        """A client sends a command to a server (and follows redirects)."""
        self._apply(ClientRequest(self._node(node), self.sim.next_command_id, key, value))

    @precondition(lambda self: self.sim.clients is not None)
    @rule(client=_PICK, op=st.sampled_from(CLIENT_OPS), key=st.sampled_from(CLIENT_KEYS))
    def client_op(self, client: int, op: str, key: str) -> None:
        """A client (options.clients) invokes a read, a write of a new value, or
        a compare-and-set from the value it last saw; checked at teardown."""
        clients = self.sim.clients
        assert clients is not None
        who = client % self.sim_options.clients + 1
        op = op if clients.capable else "write"
        value = None if op == "read" else clients.values + 1
        expected = clients.expected(who, key) if op == "cas" else None
        self._apply(ClientInvoke(who, op, key, value, expected))

    @precondition(lambda self: self._on("crash") and len(self.sim.alive_ids()) > 1)
    @rule(node=_PICK)
    def crash(self, node: int) -> None:
        """A running server loses its volatile state."""
        self._apply(Crash(self._node(node, self.sim.alive_ids())))

    @precondition(lambda self: self._on("restart") and self._down())
    @rule(node=_PICK)
    def restart(self, node: int) -> None:
        """A crashed server comes back from its disk."""
        self._apply(Restart(self._node(node, self._down())))

    @precondition(lambda self: self._on("partition") and len(self.sim.node_ids) > 1)
    @rule(shape=st.sampled_from(SHAPES), picks=st.lists(_PICK, min_size=2, max_size=4))
    def partition(self, shape: str, picks: list[int]) -> None:
        """Links go down (or are held): one server, a minority, one direction..."""
        event = self._partition(shape, picks)
        if event is not None:
            self._apply(event)

    def _partition(self, shape: str, picks: list[int]) -> Partition | None:
        ids = list(self.sim.node_ids)
        chosen: list[int] = []
        for pick in picks:
            node = self._node(pick, ids)
            if node not in chosen:
                chosen.append(node)
        if shape == "isolate":
            return partitions.isolate(chosen[0], ids)
        if shape == "split":
            return partitions.split(chosen[: max(1, (len(ids) - 1) // 2)], ids)
        if shape == "bridge":
            return partitions.bridge(chosen[0], ids)
        if len(chosen) < 2:
            return None
        if shape == "one_way":
            return partitions.one_way(*chosen[:2])
        return partitions.clog(*chosen[:2])

    @precondition(lambda self: self._on("heal") and self.sim.network.partitioned)
    @rule(flush=st.booleans())
    def heal(self, flush: bool) -> None:
        """Every link comes back (with `flush`, what is in flight is lost)."""
        self._apply(Heal(flush))

    @precondition(lambda self: self._on("membership") and self.sim.leader() is not None)
    @rule(change=st.sampled_from(MembershipChange), pick=_PICK)
    def membership(self, change: MembershipChange, pick: int) -> None:
        """The leader is asked to add, promote, demote or remove a server."""
        leader = self.sim.leader()
        assert leader is not None
        members = dict(leader.members)
        voters = [n for n, voting in sorted(members.items()) if voting]
        learners = [n for n, voting in sorted(members.items()) if not voting]
        options = self.sim_options
        if change is MembershipChange.ADD_NONVOTING:
            if len(members) >= options.max_servers:
                return
            node = self.sim.next_node_id
        elif change is MembershipChange.PROMOTE:
            if not learners:
                return
            node = self._node(pick, learners)
        elif change is MembershipChange.REMOVE and learners and pick % 2:
            node = self._node(pick // 2, learners)
        else:
            if len(voters) <= options.min_voters:
                return  # keep a cluster worth testing
            node = self._node(pick, voters)
        self._apply(ChangeMembership(leader.node_id, change, node))

    @precondition(lambda self: self._on("snapshot"))
    @rule(node=_PICK)
    def snapshot(self, node: int) -> None:
        """A server compacts its log through what it has applied."""
        self._apply(TakeSnapshot(self._node(node)))

    # ----------------------------------------------------------- invariants

    def teardown(self) -> None:
        """With clients, what they were told must have a linear order."""
        if self.violation is not None or self.sim.clients is None:
            return
        violation = linearizability_violation(self.sim, check_clients(self.sim))
        if violation is not None:
            self._report(violation)
            raise InvariantViolated(violation)

    def _check(self, name: str) -> None:
        violation = self.violation
        if violation is None or violation.invariant != name:
            return
        self._report(violation)
        raise InvariantViolated(violation)

    def _report(self, violation: Violation) -> None:
        """Remember the failure and write its trace, once per run."""
        if self._reported:
            return
        self._reported = True
        sim = self.sim
        verdict = verdict_of(sim, violation, Liveness("skipped", "stateful machine"))
        lines = trace_lines(
            self.seed,
            self.sim_options,
            self.factory_spec,
            sim.events,
            verdict,
            extra={"source": "virtraft.run.stateful"},
        )
        type(self).last_failure = StatefulFailure(violation, len(sim.events), tuple(lines))
        path = self.trace_path or os.environ.get(TRACE_ENV)
        if path:
            write_trace(path, lines)


def _invariant_method(name: str):
    def check(self: RaftMachine) -> None:
        self._check(name)

    check.__name__ = f"holds_{name}"
    check.__doc__ = f"The checker's {name} invariant has not been violated."
    return invariant()(check)


for _name in (*INVARIANTS, NODE_EXCEPTION):
    setattr(RaftMachine, f"holds_{_name}", _invariant_method(_name))
del _name


def machine_for(
    factory: str | NodeFactory = DEFAULT_FACTORY,
    options: SimOptions | None = None,
    *,
    seed: int = 0,
    faults: Sequence[str] = FAULTS,
    trace_path: str | None = None,
    name: str | None = None,
) -> type[RaftMachine]:
    """A RaftMachine subclass for one implementation and one set of options.

    `factory` is a "module:callable" spec (preferred: a trace of a failing run
    then names it, so `virtraft replay` can find it) or the factory itself.
    `faults` limits what the swarm may draw from (e.g. no "membership")."""
    unknown = sorted(set(faults) - set(FAULTS))
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; known: {', '.join(FAULTS)}")
    if isinstance(factory, str):
        load_factory(factory)  # fail now, with a clear message, not in every example
        spec, given = factory, None
    else:
        spec, given = f"{factory.__module__}:{factory.__qualname__}", staticmethod(factory)
    attrs = {
        "factory_spec": spec,
        "node_factory": given,
        "sim_options": options if options is not None else MACHINE_OPTIONS,
        "seed": seed,
        "faults": tuple(faults),
        "trace_path": trace_path,
        "last_failure": None,
    }
    title = name or "RaftMachine_" + spec.rpartition(":")[2]
    return type(title, (RaftMachine,), attrs)
