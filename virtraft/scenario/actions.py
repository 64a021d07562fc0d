"""What a phase does: one class per action, found by name in `ACTIONS`.

Each action reads its own fields from its phase's table (so a bad field is
reported where it is read), says in words what it does, and, when its phase
runs, plans the ordinary simulator events it applies. A new action is one
class here and one entry in `ACTIONS` (and a row in scenarios/README.md),
as etcd's rafttest has one handler per command.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from virtraft.adapter import MembershipChange, NodeAdapter
from virtraft.scenario.fields import MAX_PHASE_REPEATS, PhaseTable, Ref, ScenarioError
from virtraft.sim import partitions
from virtraft.sim.events import (
    ChangeMembership,
    ClientRequest,
    Crash,
    Event,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
)
from virtraft.sim.simulation import NotApplicable, Simulation

SHAPES = ("groups", "isolate", "bridge", "one_way", "cut", "clog")


class Wait(Exception):
    """A phase cannot happen yet (no leader, a change refused); it is retried."""


class Ongoing(Protocol):
    """An action that goes on after its phase ran (a flap); the next phase
    waits until it is done."""

    def step(self, stage: Stage) -> bool:
        """Act when due; True once done."""


class Stage(Protocol):
    """What an action may ask of the running script."""

    sim: Simulation

    def resolve(self, ref: Ref) -> int:
        """The node a reference names now (raises Wait or NotApplicable)."""

    def apply(self, event: Event) -> None:
        """Apply one scripted event."""

    def promote_when_caught_up(self, node: int) -> None:
        """Make a joining member a voter once the leader says it caught up."""

    def follow_up(self, ongoing: Ongoing) -> None:
        """Keep `ongoing` running before the next phase."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The events a phase applies, and the one node it picked (for a label)."""

    events: tuple[Event, ...] = ()
    named: int | None = None


class Action(abc.ABC):
    """One phase action, as the file states it; node references resolve when
    its phase runs."""

    __slots__ = ()
    name: ClassVar[str]
    # The capability (of virtraft.adapter.Capabilities) the action needs.
    needs: ClassVar[str | None] = None

    @classmethod
    @abc.abstractmethod
    def read(cls, t: PhaseTable) -> Action:
        """Read the action's own fields from its phase's table."""

    @property
    def named(self) -> Ref | None:
        """The one node the file names for this action, if it names one."""
        return None

    def may_label(self) -> bool:
        """A label names the one node a phase picks; only such a phase has one."""
        return self.named is not None

    def check_expect(self, t: PhaseTable, kind: str) -> None:
        """Refuse an expectation this action cannot carry (none by default)."""
        return None

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def plan(self, stage: Stage) -> Plan:
        """The events to apply; raises Wait (retried) or NotApplicable (the phase fails)."""

    def carry_out(self, stage: Stage, plan: Plan) -> None:
        """Apply the planned events."""
        for event in plan.events:
            stage.apply(event)


# ---------------------------------------------------------------- partitions


@dataclass(frozen=True, slots=True)
class Shape:
    """A partition as the file states it; node references resolve when it happens."""

    kind: str  # one of SHAPES
    nodes: tuple[Ref, ...] = ()  # isolate/bridge: one; one_way/cut/clog: two
    groups: tuple[tuple[Ref, ...], ...] = ()

    def describe(self) -> str:
        if self.kind == "groups":
            return "groups " + " | ".join(",".join(map(str, g)) for g in self.groups)
        if self.kind in ("isolate", "bridge"):
            return f"{self.kind} {self.nodes[0]}"
        arrow = "->" if self.kind == "one_way" else "<->"
        return f"{self.kind} {self.nodes[0]}{arrow}{self.nodes[1]}"

    @property
    def named(self) -> Ref | None:
        return self.nodes[0] if self.kind in ("isolate", "bridge") else None


def read_shape(t: PhaseTable) -> Shape:
    given = [key for key in SHAPES if t.has(key)]
    shapes = f"exactly one partition shape ({', '.join(SHAPES)})"
    if not given:
        raise ScenarioError(f"{t.path}: {t.where}: expected {shapes}, got none")
    if len(given) > 1:
        raise ScenarioError(
            f"{t.path}: {t.field(given[1])}: expected {shapes}, got {' and '.join(given)}"
        )
    kind = given[0]
    if kind == "groups":
        groups = t.get(
            "groups",
            f"a list of at least two lists of nodes ({t.ref_text})",
            lambda v: (
                isinstance(v, list)
                and len(v) >= 2
                and all(isinstance(g, list) and g and all(map(t.is_ref, g)) for g in v)
            ),
        )
        return Shape("groups", groups=tuple(tuple(g) for g in groups))
    if kind in ("isolate", "bridge"):
        return Shape(kind, (t.ref(kind),))
    return Shape(kind, tuple(t.refs(kind, exactly=2)))


def partition_of(shape: Shape, stage: Stage) -> tuple[Partition, int | None]:
    """The partition event a shape makes now, and the one node it names."""
    nodes = list(stage.sim.node_ids)
    if shape.kind == "groups":
        group_of: dict[int, int] = {}
        for number, group in enumerate(shape.groups):
            for ref in group:
                node = stage.resolve(ref)
                if node in group_of:
                    raise NotApplicable(f"node {node} is in two groups")
                group_of[node] = number
        # A node in no group is cut off from everyone.
        for node in nodes:
            group_of.setdefault(node, -node)
        text = "groups " + " | ".join(
            ",".join(str(stage.resolve(r)) for r in g) for g in shape.groups
        )
        return partitions.groups(group_of, nodes, text) or Partition(text, ()), None
    ends = [stage.resolve(r) for r in shape.nodes]
    if shape.kind == "isolate":
        (lonely,) = ends
        return partitions.isolate(lonely, nodes), lonely
    if shape.kind == "bridge":
        (bridge,) = ends
        return partitions.bridge(bridge, nodes), bridge
    a, b = ends
    if a == b:
        raise NotApplicable(f"{shape.kind} needs two different nodes, got {a} twice")
    return _TWO_NODE_SHAPES[shape.kind](a, b), None


_TWO_NODE_SHAPES = {"one_way": partitions.one_way, "cut": partitions.cut, "clog": partitions.clog}


@dataclass(frozen=True, slots=True)
class PartitionAction(Action):
    """Links go down in a shape; it replaces the previous partition."""

    name: ClassVar[str] = "partition"
    shape: Shape

    @classmethod
    def read(cls, t: PhaseTable) -> PartitionAction:
        return cls(read_shape(t))

    @property
    def named(self) -> Ref | None:
        return self.shape.named

    def describe(self) -> str:
        return f"partition {self.shape.describe()}"

    def plan(self, stage: Stage) -> Plan:
        partition, named = partition_of(self.shape, stage)
        return Plan((partition,), named)


@dataclass(frozen=True, slots=True)
class FlapAction(Action):
    """A partition that comes and goes: `times` rounds of `down_ms` cut and
    `up_ms` healed; its nodes are resolved once."""

    name: ClassVar[str] = "flap"
    shape: Shape
    times: int
    down_ms: int
    up_ms: int

    @classmethod
    def read(cls, t: PhaseTable) -> FlapAction:
        shape = read_shape(t)
        if not t.has("at_ms"):
            t.fail("at_ms", "at_ms: a flap is timed in virtual ms")
        return cls(
            shape,
            t.whole("times", minimum=1, maximum=MAX_PHASE_REPEATS),
            t.whole("down_ms", minimum=1, unit="ms"),
            t.whole("up_ms", minimum=1, unit="ms"),
        )

    def check_expect(self, t: PhaseTable, kind: str) -> None:
        if kind not in ("no_leader_change", "no_leader"):
            t.fail(
                "expect",
                "no_leader_change or no_leader on a flap (they cover the "
                "flapping); put a deadline in the phase after it",
                kind,
            )

    def describe(self) -> str:
        return (
            f"flap {self.shape.describe()} {self.times}x "
            f"({self.down_ms} ms down, {self.up_ms} ms up)"
        )

    def plan(self, stage: Stage) -> Plan:
        partition, named = partition_of(self.shape, stage)
        return Plan((partition,), named)

    def carry_out(self, stage: Stage, plan: Plan) -> None:
        (partition,) = plan.events
        assert isinstance(partition, Partition)
        stage.apply(partition)
        stage.follow_up(Flapping(self, partition))


@dataclass(slots=True)
class Flapping:
    """A flap under way: heal after down_ms, cut again after up_ms, `times` rounds."""

    flap: FlapAction
    partition: Partition
    rounds_left: int = 0
    down: bool = True
    next_ms: int = -1  # set on the first step, once the partition is applied

    def __post_init__(self) -> None:
        self.rounds_left = self.flap.times

    def step(self, stage: Stage) -> bool:
        """Toggle when due; True once the last heal happened."""
        sim = stage.sim
        if self.next_ms < 0:
            self.next_ms = sim.clock_ms + self.flap.down_ms
        if sim.clock_ms < self.next_ms:
            return False
        if self.down:
            stage.apply(Heal())
            self.rounds_left -= 1
            self.down = False
            self.next_ms = sim.clock_ms + self.flap.up_ms
            return self.rounds_left == 0
        stage.apply(self.partition)
        self.down = True
        self.next_ms = sim.clock_ms + self.flap.down_ms
        return False


@dataclass(frozen=True, slots=True)
class HealAction(Action):
    """Every link comes back; with `flush`, every message in flight is lost."""

    name: ClassVar[str] = "heal"
    flush: bool = False

    @classmethod
    def read(cls, t: PhaseTable) -> HealAction:
        return cls(t.flag("flush", False))

    def describe(self) -> str:
        return "heal" + (" and flush" if self.flush else "")

    def plan(self, stage: Stage) -> Plan:
        return Plan((Heal(flush=self.flush),))


# ------------------------------------------------------------- node by node


@dataclass(frozen=True, slots=True)
class _OnNodes(Action):
    """One event per node: `node = N`, `nodes = [..]`, or `nodes = "all"`."""

    event: ClassVar[Callable[[int], Event]]
    # What "all" means: every live node, or (for restart) every crashed one.
    all_alive: ClassVar[bool] = True
    node: Ref | None = None
    nodes: tuple[Ref, ...] | str = ()  # given with `nodes`: references, or "all"

    @classmethod
    def read(cls, t: PhaseTable) -> _OnNodes:
        own = cls.read_own(t)
        if not t.has("nodes"):
            return cls(node=t.ref("node"), **own)
        if t.has("node"):
            t.fail("nodes", "node or nodes, not both", t.data["nodes"])
        nodes = t.data["nodes"]
        given = "all" if nodes == "all" else tuple(t.refs("nodes"))
        t.read.add("nodes")
        return cls(nodes=given, **own)

    @classmethod
    def read_own(cls, t: PhaseTable) -> dict[str, Any]:
        """The action's fields besides the nodes it names (none by default)."""
        return {}

    def event_for(self, node: int) -> Event:
        """The event the action applies to one node."""
        return type(self).event(node)

    @property
    def named(self) -> Ref | None:
        return self.node

    def describe(self) -> str:
        if self.node is not None:
            return f"{self.name} {self.node}"
        nodes = self.nodes if isinstance(self.nodes, str) else ",".join(map(str, self.nodes))
        return f"{self.name} {nodes}"

    def plan(self, stage: Stage) -> Plan:
        sim = stage.sim
        if self.nodes == "all":
            ids = [n for n in sim.node_ids if sim.nodes[n].alive == self.all_alive]
        else:
            refs = (self.node,) if self.node is not None else self.nodes
            ids = [stage.resolve(r) for r in refs]
        return Plan(tuple(self.event_for(n) for n in ids), ids[0] if len(ids) == 1 else None)


@dataclass(frozen=True, slots=True)
class CrashAction(_OnNodes):
    """Servers crash: volatile state gone, durable state kept. With
    `power_cut = true` the writes they had not synced are lost too, all but
    the first `keep` share of them (0 unless told): what a server that
    replies before it syncs must not survive."""

    name: ClassVar[str] = "crash"
    event: ClassVar[Callable[[int], Event]] = Crash
    power_cut: bool = False
    keep: float = 0.0

    @classmethod
    def read_own(cls, t: PhaseTable) -> dict[str, Any]:
        power_cut = t.flag("power_cut", False)
        if t.has("keep") and not power_cut:
            t.fail("keep", "it only with power_cut = true", t.data["keep"])
        keep = t.get(
            "keep",
            "the share of unsynced writes that survive, a number in [0, 1]",
            lambda v: type(v) in (int, float) and 0.0 <= v <= 1.0,
            0.0,
        )
        return {"power_cut": power_cut, "keep": float(keep)}

    @property
    def needs(self) -> str | None:  # type: ignore[override]
        return "lossy_disk" if self.power_cut else None

    def describe(self) -> str:
        words = _OnNodes.describe(self)
        if not self.power_cut:
            return words
        return f"{words} (power cut, {self.keep:.0%} of unsynced writes kept)"

    def event_for(self, node: int) -> Event:
        return Crash(node, self.keep if self.power_cut else None)


@dataclass(frozen=True, slots=True)
class RestartAction(_OnNodes):
    """Crashed servers come back from their durable state."""

    name: ClassVar[str] = "restart"
    event: ClassVar[Callable[[int], Event]] = Restart
    all_alive: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SnapshotAction(_OnNodes):
    """Servers compact their logs through what they have applied."""

    name: ClassVar[str] = "snapshot"
    needs: ClassVar[str | None] = "snapshots"
    event: ClassVar[Callable[[int], Event]] = TakeSnapshot


# ---------------------------------------------------------------- membership


class _Membership(Action):
    """A change asked of the leader, retried while it refuses (one change at a time)."""

    __slots__ = ()
    needs: ClassVar[str | None] = "membership"

    def carry_out(self, stage: Stage, plan: Plan) -> None:
        (change,) = plan.events
        assert isinstance(change, ChangeMembership)
        accepted = stage.sim.stats.membership_changes
        stage.apply(change)
        if stage.sim.stats.membership_changes == accepted:
            raise Wait(f"leader {change.via} refused {change.change.value} {change.node}")


def _leader_to_ask(stage: Stage) -> NodeAdapter:
    leader = stage.sim.voting_leader()
    if leader is None:
        raise Wait("no leader to ask for a membership change")
    return leader


@dataclass(frozen=True, slots=True)
class AddMemberAction(_Membership):
    """A fresh server joins as a non-voting member; with `promote`, it becomes
    a voter once the leader reports it caught up."""

    name: ClassVar[str] = "add_member"
    promote: bool = True

    @classmethod
    def read(cls, t: PhaseTable) -> AddMemberAction:
        return cls(t.flag("promote", True))

    def may_label(self) -> bool:
        return True  # the fresh server it adds

    def describe(self) -> str:
        return "add a member" + ("" if self.promote else " (non-voting)")

    def plan(self, stage: Stage) -> Plan:
        sim = stage.sim
        leader = _leader_to_ask(stage)
        limit = sim.options.max_servers
        if len(leader.members) >= limit:
            raise NotApplicable(f"the cluster already has max_servers ({limit}) members")
        change = ChangeMembership(leader.node_id, MembershipChange.ADD_NONVOTING, sim.next_node_id)
        return Plan((change,), change.node)

    def carry_out(self, stage: Stage, plan: Plan) -> None:
        _Membership.carry_out(self, stage, plan)
        if self.promote:
            assert plan.named is not None
            stage.promote_when_caught_up(plan.named)


@dataclass(frozen=True, slots=True)
class RemoveMemberAction(_Membership):
    """A server is removed from the configuration (it may be the leader)."""

    name: ClassVar[str] = "remove_member"
    node: Ref

    @classmethod
    def read(cls, t: PhaseTable) -> RemoveMemberAction:
        return cls(t.ref("node"))

    @property
    def named(self) -> Ref | None:
        return self.node

    def describe(self) -> str:
        return f"remove member {self.node}"

    def plan(self, stage: Stage) -> Plan:
        leader = _leader_to_ask(stage)
        change = ChangeMembership(leader.node_id, MembershipChange.REMOVE, stage.resolve(self.node))
        return Plan((change,), change.node)


# ------------------------------------------------------------------- clients


@dataclass(frozen=True, slots=True)
class ClientAction(Action):
    """`count` client commands, sent to the leader (or the client's best guess)."""

    name: ClassVar[str] = "client"
    count: int = 1

    @classmethod
    def read(cls, t: PhaseTable) -> ClientAction:
        return cls(t.whole("count", minimum=1, default=1, maximum=MAX_PHASE_REPEATS))

    def describe(self) -> str:
        return f"{self.count} client command{'s' if self.count != 1 else ''}"

    def plan(self, stage: Stage) -> Plan:
        sim = stage.sim
        leader = sim.voting_leader()
        target = (
            leader.node_id if leader is not None else (sim.client_leader_guess or sim.node_ids[0])
        )
        first = sim.next_command_id
        return Plan(
            tuple(
                ClientRequest(target, c, f"k{c % 8}", c) for c in range(first, first + self.count)
            )
        )


# The actions a phase may name, in the order error messages list them.
ACTIONS: dict[str, type[Action]] = {
    cls.name: cls
    for cls in (
        PartitionAction,
        FlapAction,
        HealAction,
        CrashAction,
        RestartAction,
        AddMemberAction,
        RemoveMemberAction,
        SnapshotAction,
        ClientAction,
    )
}
