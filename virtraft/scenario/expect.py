"""What must follow a phase: one class per expectation kind, found by name
in `EXPECTS`, and the check that watches it.

An expectation reads its own fields from its phase's table and says in
words what must hold. When its phase has run, `open()` starts a `Check`
that is judged after every step, from then on, until it is decided. A new
expectation is one class here (with its check) and one entry in `EXPECTS`
(and a row in scenarios/README.md).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

from virtraft.adapter import MessageRole, Role, Submitted
from virtraft.scenario.fields import PhaseTable, Ref
from virtraft.sim.events import ClientRequest, Deliver, Event
from virtraft.sim.simulation import Simulation

# A scripted request that the cluster refuses (no leader yet, one membership
# change at a time) is retried at most this often, in virtual ms.
RETRY_MS = 100

Leadership = tuple[int, int]
"""(leader id, term): who led, and when."""


@dataclass(frozen=True, slots=True)
class ExpectationOutcome:
    description: str
    passed: bool
    detail: str


def roles(sim: Simulation) -> str:
    """The cluster at a glance, for failure details: 1:L3 2:F3 3:down."""
    parts = []
    for node_id in sim.node_ids:
        node = sim.nodes[node_id]
        role = node.role.value[0].upper() if node.alive else "down"
        parts.append(f"{node_id}:{role}{node.term if node.alive else ''}")
    return " ".join(parts)


class Expectation(abc.ABC):
    """One stated expectation, as the file states it: with a deadline
    (`within_ms`) or over a window (`for_ms`, or until the next phase)."""

    __slots__ = ()
    name: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> Expectation:
        """Read the expectation's fields; `named` is the one node the phase's
        action names, if any."""

    def deadline_ms(self) -> int | None:
        """How long after its phase it must be decided; None for a window."""
        return None

    def window_ms(self) -> int | None:
        """How long its window lasts; None: until the next phase (or for a deadline)."""
        return None

    @property
    def needs(self) -> str | None:
        """The capability (of virtraft.adapter.Capabilities) it needs."""
        return None

    def refs(self) -> tuple[Ref, ...]:
        """The nodes it names; they resolve just before its phase's action."""
        return ()

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        """Start watching, once the phase's action is done. `nodes` are
        `refs()` resolved; `before` is the leader before the phase ran."""

    def _window(self) -> str:
        for_ms = self.window_ms()
        return f"for {for_ms} ms" if for_ms is not None else "until the next phase"


class Check:
    """One expectation being watched after every step once its phase ran."""

    def __init__(self, title: str, expect: Expectation, sim: Simulation) -> None:
        self.title = title
        self.expect = expect
        self.sim = sim
        self.opened_ms = sim.clock_ms
        within_ms, for_ms = expect.deadline_ms(), expect.window_ms()
        self.deadline_ms = self.opened_ms + within_ms if within_ms is not None else None
        self.ends_ms = self.opened_ms + for_ms if for_ms is not None else None
        self.result: ExpectationOutcome | None = None

    @property
    def description(self) -> str:
        return f"{self.title}: {self.expect.describe()}"

    @property
    def holds_run_open(self) -> bool:
        return self.result is None and (self.deadline_ms is not None or self.ends_ms is not None)

    def settle(self, passed: bool, detail: str) -> None:
        if self.result is None:
            self.result = ExpectationOutcome(self.description, passed, detail)

    def event(self) -> Event | None:
        """An event this check needs applied now (a client command), if any."""
        return None

    def applied(self, event: Event) -> None:
        """The event from `event()` was applied."""

    def observe(self) -> None:
        raise NotImplementedError

    def window_closed(self, why: str) -> None:
        """The window of a check without a deadline ended (next phase, end of script)."""
        if self.result is None and self.deadline_ms is None and self.ends_ms is None:
            self.settle(
                True, f"held from {self.opened_ms} ms until {why} at {self.sim.clock_ms} ms"
            )

    def finish(self, why: str) -> None:
        if self.result is None:
            self.settle(
                False, f"undecided when {why} at {self.sim.clock_ms} ms ({roles(self.sim)})"
            )

    def _timed_out(self, what: str) -> bool:
        if self.deadline_ms is not None and self.sim.clock_ms > self.deadline_ms:
            self.settle(False, f"{what} by {self.deadline_ms} ms ({roles(self.sim)})")
            return True
        return False


def _read_within(t: PhaseTable) -> int:
    return t.whole("within_ms", minimum=1, unit="ms")


def _read_for(t: PhaseTable) -> int | None:
    return t.whole("for_ms", minimum=1, unit="ms", default=None)


# ------------------------------------------------------------------- leaders


@dataclass(frozen=True, slots=True)
class LeaderWithin(Expectation):
    """A leader (among some nodes) must appear by the deadline."""

    name: ClassVar[str] = "leader_within"
    within_ms: int
    among: tuple[Ref, ...] = ()

    @classmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> LeaderWithin:
        return cls(_read_within(t), tuple(t.refs("among", default=())))

    def deadline_ms(self) -> int | None:
        return self.within_ms

    def refs(self) -> tuple[Ref, ...]:
        return self.among

    def describe(self) -> str:
        among = f" among {', '.join(map(str, self.among))}" if self.among else ""
        return f"a leader{among} within {self.within_ms} ms"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        return _LeaderCheck(title, self, sim, nodes)


@dataclass(frozen=True, slots=True)
class NewLeaderWithin(LeaderWithin):
    """A leader other than the one before the phase (another node or term)."""

    name: ClassVar[str] = "new_leader_within"

    def describe(self) -> str:
        among = f" among {', '.join(map(str, self.among))}" if self.among else ""
        return f"a new leader{among} within {self.within_ms} ms"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        return _LeaderCheck(title, self, sim, nodes, before)


class _LeaderCheck(Check):
    """With `before`, the leader from before the phase does not count."""

    def __init__(
        self,
        title: str,
        expect: Expectation,
        sim: Simulation,
        among: tuple[int, ...],
        before: Leadership | None = None,
    ) -> None:
        super().__init__(title, expect, sim)
        self.among = among
        self.before = before

    def observe(self) -> None:
        leader = self.sim.voting_leader()
        if (
            leader is not None
            and (not self.among or leader.node_id in self.among)
            and (leader.node_id, leader.term) != self.before
        ):
            self.settle(
                True,
                f"leader {leader.node_id} (term {leader.term}) at "
                f"{self.sim.clock_ms} ms, {self.sim.clock_ms - self.opened_ms} ms after",
            )
            return
        among = f" among {', '.join(map(str, self.among))}" if self.among else ""
        new = " other than the one before" if self.before else ""
        self._timed_out(f"no leader{among}{new}")


@dataclass(frozen=True, slots=True)
class NoLeaderChange(Expectation):
    """The leader at the start stays leader, in the same term."""

    name: ClassVar[str] = "no_leader_change"
    for_ms: int | None = None  # None: until the next phase starts (or the script ends)

    @classmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> NoLeaderChange:
        return cls(_read_for(t))

    def window_ms(self) -> int | None:
        return self.for_ms

    def describe(self) -> str:
        return f"the leader stays the same {self._window()}"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        return _NoLeaderChangeCheck(title, self, sim)


class _NoLeaderChangeCheck(Check):
    def __init__(self, title: str, expect: Expectation, sim: Simulation) -> None:
        super().__init__(title, expect, sim)
        leader = sim.voting_leader()
        self.leader = (leader.node_id, leader.term) if leader is not None else None
        if self.leader is None:
            self.settle(False, f"there was no leader at {sim.clock_ms} ms ({roles(sim)})")

    def observe(self) -> None:
        sim = self.sim
        assert self.leader is not None  # a check without a leader settled at once
        if self.ends_ms is not None and sim.clock_ms > self.ends_ms:
            self.settle(
                True,
                f"leader {self.leader[0]} (term {self.leader[1]}) held from "
                f"{self.opened_ms} to {self.ends_ms} ms",
            )
            return
        leader = sim.voting_leader()
        now = (leader.node_id, leader.term) if leader is not None else None
        if now != self.leader:
            became = f"leader {now[0]} (term {now[1]})" if now else "no leader"
            self.settle(
                False,
                f"leader {self.leader[0]} (term {self.leader[1]}) gave way to "
                f"{became} at {sim.clock_ms} ms ({roles(sim)})",
            )


@dataclass(frozen=True, slots=True)
class NoLeader(Expectation):
    """No live node is leader at any step."""

    name: ClassVar[str] = "no_leader"
    for_ms: int | None = None  # None: until the next phase starts (or the script ends)

    @classmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> NoLeader:
        return cls(_read_for(t))

    def window_ms(self) -> int | None:
        return self.for_ms

    def describe(self) -> str:
        return f"no node is leader {self._window()}"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        return _NoLeaderCheck(title, self, sim)


class _NoLeaderCheck(Check):
    def observe(self) -> None:
        sim = self.sim
        if self.ends_ms is not None and sim.clock_ms > self.ends_ms:
            self.settle(True, f"no leader from {self.opened_ms} to {self.ends_ms} ms")
            return
        for node_id in sim.node_ids:
            node = sim.nodes[node_id]
            if node.alive and node.role is Role.LEADER:
                self.settle(
                    False,
                    f"node {node_id} became leader (term {node.term}) at "
                    f"{sim.clock_ms} ms ({roles(sim)})",
                )
                return


# ------------------------------------------------------------------- commits


@dataclass(frozen=True, slots=True)
class CommitWithin(Expectation):
    """A command sent to the leader commits by the deadline (resent if that
    leader is lost)."""

    name: ClassVar[str] = "commit_within"
    within_ms: int

    @classmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> CommitWithin:
        return cls(_read_within(t))

    def deadline_ms(self) -> int | None:
        return self.within_ms

    def describe(self) -> str:
        return f"a new command commits within {self.within_ms} ms"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        return _CommitCheck(title, self, sim)


class _CommitCheck(Check):
    """Submits a command to the leader (again, if that leader is lost) and
    passes once one of them is committed."""

    def __init__(self, title: str, expect: Expectation, sim: Simulation) -> None:
        super().__init__(title, expect, sim)
        self.submitted: list[tuple[int, int, Submitted]] = []  # (command, node, where)
        self.last_try_ms: int | None = None

    def event(self) -> Event | None:
        sim = self.sim
        if self.result is not None:
            return None
        leader = sim.voting_leader()
        if leader is None or any(
            node == leader.node_id and leader.is_committed(where) is not False
            for _command, node, where in self.submitted
        ):
            return None
        if self.last_try_ms is not None and sim.clock_ms - self.last_try_ms < RETRY_MS:
            return None
        self.last_try_ms = sim.clock_ms
        return ClientRequest(leader.node_id, sim.next_command_id, "scenario", sim.next_command_id)

    def applied(self, event: Event) -> None:
        assert isinstance(event, ClientRequest)
        last = self.sim.last_submitted
        if last is not None and last[0] == event.command:
            self.submitted.append(last)

    def observe(self) -> None:
        sim = self.sim
        for command, node_id, where in self.submitted:
            node = sim.nodes.get(node_id)
            if node is not None and node.alive and node.is_committed(where) is True:
                self.settle(
                    True,
                    f"command {command} committed at index {where.index} at "
                    f"{sim.clock_ms} ms, {sim.clock_ms - self.opened_ms} ms after",
                )
                return
        self._timed_out(f"none of {len(self.submitted)} submitted commands committed")


@dataclass(frozen=True, slots=True)
class NodeCaughtUp(Expectation):
    """The node's commit index reaches the highest one in the cluster when
    the phase ran; with `via_snapshot`, it also received a snapshot transfer."""

    name: ClassVar[str] = "node_caught_up"
    within_ms: int
    node: Ref
    via_snapshot: bool = False

    @classmethod
    def read(cls, t: PhaseTable, named: Ref | None) -> NodeCaughtUp:
        within_ms = _read_within(t)
        # The action's own node (restart 4: 4 catches up), else a `node` of its own.
        acted_on = "node" in t.read and named is not None
        node = named if acted_on else t.ref("node")
        assert node is not None
        return cls(within_ms, node, t.flag("via_snapshot", False))

    def deadline_ms(self) -> int | None:
        return self.within_ms

    @property
    def needs(self) -> str | None:
        return "snapshots" if self.via_snapshot else None

    def refs(self) -> tuple[Ref, ...]:
        return (self.node,)

    def describe(self) -> str:
        how = " by a snapshot transfer" if self.via_snapshot else ""
        return f"node {self.node} catches up{how} within {self.within_ms} ms"

    def open(
        self, title: str, sim: Simulation, nodes: tuple[int, ...], before: Leadership | None
    ) -> Check:
        (node_id,) = nodes
        return _CaughtUpCheck(title, self, sim, node_id, self.via_snapshot)


class _CaughtUpCheck(Check):
    def __init__(
        self, title: str, expect: Expectation, sim: Simulation, node_id: int, via_snapshot: bool
    ) -> None:
        super().__init__(title, expect, sim)
        self.node_id = node_id
        self.via_snapshot = via_snapshot
        self.target = max((n.commit_index for n in sim.views() if n.alive), default=0)
        self.snapshots_received = 0

    def observe(self) -> None:
        sim = self.sim
        last = sim.events[-1] if sim.events else None
        env = sim.last_envelope
        if (
            isinstance(last, Deliver)
            and last.dst == self.node_id
            and env is not None
            and sim.messages.role(env.message) is MessageRole.SNAPSHOT
        ):
            self.snapshots_received += 1
        node = sim.nodes.get(self.node_id)
        ready = node is not None and node.alive and node.commit_index >= self.target
        if ready and (self.snapshots_received or not self.via_snapshot):
            assert node is not None
            self.settle(
                True,
                f"node {self.node_id} reached commit index {node.commit_index} "
                f"(>= {self.target}) at {sim.clock_ms} ms; "
                f"{self.snapshots_received} snapshot messages received",
            )
            return
        have = node.commit_index if node is not None and node.alive else "down"
        self._timed_out(
            f"node {self.node_id} at commit index {have} of {self.target}, "
            f"{self.snapshots_received} snapshot messages received,"
        )


# The expectations a phase may state, in the order error messages list them.
EXPECTS: dict[str, type[Expectation]] = {
    cls.name: cls
    for cls in (LeaderWithin, NewLeaderWithin, CommitWithin, NoLeaderChange, NoLeader, NodeCaughtUp)
}
