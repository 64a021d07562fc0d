"""Progress while the faults happen: a stable majority must elect and commit.

The liveness phase asks for progress once, at the end. This monitor asks
for it all along: whenever a majority of the voters has been connected (a
clique of two-way links) and stable (no partition, crash, restart or
membership change has changed it) for `STABLE_ELECTIONS` election
timeouts, a leader must exist among it within `BOUND_ELECTIONS`; an
election among it must end within `ELECTION_ELECTIONS`; and a command a
leader in it accepted must commit within `BOUND_ELECTIONS`. Each is a named
verdict with its witness, as the invariants are (`LeaderElected`,
`ElectionEnds`, `CommandCommitted`).

Slow is not stuck: a wait that ends past its bound is a slow finding (a
warning, counted); one that lasts `liveness_stuck_factor` bounds is stuck,
the liveness failure that ends the run.

It reads the simulation after each event and never changes it, so a replay
of the same events re-derives the same verdict. It lives in `run`, not in
`check`, because it reads the network's links and the events, which live in
`sim` above the checker.

It judges only what a correct Raft must achieve under the safety phase's
own scheduler, so it stays silent when that cannot be promised: when
messages are lost at random (`drop_probability` above 0), when a message's
delay or a tick is more than a quarter of the election timeout, or while a
node outside the majority can still reach it and could depose its leaders
(unless pre-vote and check-quorum both guard against that, Raft §9.6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from raftcore.quorum import majority
from virtraft.adapter import Role
from virtraft.sim.events import (
    ChangeMembership,
    ClientRequest,
    Crash,
    Event,
    Heal,
    Partition,
    Restart,
)
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation

STABLE_ELECTIONS = 2  # a majority counts as stable after this many election timeouts
BOUND_ELECTIONS = 10  # then a leader, and a commit, within this many
ELECTION_ELECTIONS = 5  # an election among it ends within this many

_STRUCTURAL = (Partition, Heal, Crash, Restart, ChangeMembership)


@dataclass(frozen=True, slots=True)
class ProgressFinding:
    """A wait for progress that ended late (slow) or never (stuck)."""

    name: str  # LeaderElected, ElectionEnds, CommandCommitted, CoreConverged
    step: int  # where it was decided: the step it ended, or the step it became stuck
    since_step: int  # where the wait began
    nodes: tuple[int, ...]  # the stable majority (or the core)
    took_ms: int
    bound_ms: int
    stuck: bool
    message: str
    witness: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "step": self.step,
            "since_step": self.since_step,
            "nodes": list(self.nodes),
            "took_ms": self.took_ms,
            "bound_ms": self.bound_ms,
            "stuck": self.stuck,
            "message": self.message,
            "witness": self.witness,
        }


@dataclass(slots=True)
class _Wait:
    name: str
    since_ms: int
    since_step: int
    bound_ms: int
    what: str  # what is awaited, for the message


def monitor_applies(options: SimOptions) -> bool:
    """Whether the safety phase's scheduler lets a correct Raft promise progress."""
    election = options.node.election_timeout_ms
    return (
        options.liveness_monitor
        and options.drop_probability == 0.0
        and 4 * options.delay_ms_max <= election
        and 4 * options.tick_ms_max <= election
    )


def voters_agreed(sim: Simulation) -> tuple[int, ...] | None:
    """The voters every server agrees on, or None while they disagree (a
    membership change on its way): no majority is well defined then."""
    seen: set[tuple[int, ...]] = set()
    for node_id in sim.node_ids:
        node = sim.nodes[node_id]
        if node.retired:
            continue
        seen.add(tuple(sorted(n for n, voting in node.members if voting)))
        if len(seen) > 1:
            return None
    return next(iter(seen), None)


def stable_group(sim: Simulation) -> tuple[int, ...] | None:
    """The largest majority of live voters with two-way links between every
    two of them (Raft needs direct links), the lowest ids first among equals;
    None when there is none, or when a node outside it could depose its
    leaders."""
    voters = voters_agreed(sim)
    if not voters:
        return None
    link = sim.network.has_link
    alive = [n for n in voters if n in sim.nodes and sim.nodes[n].alive]
    need = majority(len(voters))
    group: tuple[int, ...] | None = None
    for size in range(len(alive), need - 1, -1):
        for members in combinations(alive, size):
            if all(link(a, b) for a in members for b in members if a != b):
                group = members
                break
        if group is not None:
            break
    if group is None:
        return None
    if guards_partial_connectivity(sim):
        return group
    learners = {n for n, voting in sim.nodes[group[0]].members if not voting}
    for other in sim.alive_ids():
        if other in group or other in learners:
            continue
        if any(link(other, m) for m in group):
            return None  # it can reach the majority: without pre-vote its terms depose
    return group


def blocked_witness(sim: Simulation, nodes: tuple[int, ...]) -> dict[str, Any]:
    """What the nodes look like while progress is blocked: each one's role,
    term and vote, and who is cut off from them."""
    link = sim.network.has_link
    state = {}
    for n in nodes:
        node = sim.nodes.get(n)
        if node is None:
            continue
        state[str(n)] = {
            "alive": node.alive,
            "role": node.role.value,
            "term": node.term,
            "voted_for": node.voted_for,
            "commit_index": node.commit_index,
            "last_index": node.last_index,
        }
    cut = sorted(
        n
        for n in sim.node_ids
        if n not in nodes and not any(link(n, m) or link(m, n) for m in nodes)
    )
    down = sorted(n for n in sim.node_ids if n not in nodes and not sim.nodes[n].alive)
    return {"nodes": state, "cut_off": cut, "down": down}


def blocked_words(witness: dict[str, Any]) -> str:
    """The witness in a sentence: who was a candidate, in which terms, whose
    votes went where, who was cut off or down."""
    nodes = witness.get("nodes", {})
    parts = []
    for role in ("leader", "candidate", "precandidate"):
        who = [f"{n} (term {s['term']})" for n, s in nodes.items() if s["role"] == role]
        if who:
            parts.append(f"{role}s: {', '.join(who)}")
    votes = [f"{n}->{s['voted_for']}" for n, s in nodes.items() if s["voted_for"] is not None]
    if votes:
        parts.append(f"votes: {', '.join(votes)}")
    terms = sorted({s["term"] for s in nodes.values()})
    if terms:
        parts.append(f"terms {terms[0]}..{terms[-1]}")
    if witness.get("cut_off"):
        parts.append(f"cut off: {', '.join(map(str, witness['cut_off']))}")
    if witness.get("down"):
        parts.append(f"down: {', '.join(map(str, witness['down']))}")
    return "; ".join(parts) or "no server to read"


class ProgressMonitor:
    """Reads the simulation after every event; `stuck` is set once a wait
    outlasts its stuck bound, and `slow` collects the waits that ended late."""

    def __init__(self, options: SimOptions) -> None:
        election = options.node.election_timeout_ms
        self.active = monitor_applies(options)
        self.stable_ms = STABLE_ELECTIONS * election
        self.bound_ms = BOUND_ELECTIONS * election
        self.election_ms = ELECTION_ELECTIONS * election
        self.factor = options.liveness_stuck_factor
        self.election_timeout_ms = election
        self.group: tuple[int, ...] | None = None
        self.since_ms = 0
        self.since_step = 0
        self.checked_config_ms = 0
        self.waits: dict[str, _Wait] = {}
        self.command: tuple[int, int] | None = None  # (node, index) awaited
        self.slow: list[ProgressFinding] = []
        self.stuck: ProgressFinding | None = None
        self._started = False

    def observe(self, sim: Simulation, event: Event | None) -> ProgressFinding | None:
        """Read the state after `event`; the stuck finding once there is one."""
        if not self.active or self.stuck is not None:
            return self.stuck
        now = sim.clock_ms
        regroup = not self._started or isinstance(event, _STRUCTURAL)
        if now - self.checked_config_ms >= self.election_timeout_ms:
            regroup = True  # a membership change settles by deliveries: look again now and then
        if regroup:
            self._started = True
            self.checked_config_ms = now
            group = None if isinstance(event, ChangeMembership) else stable_group(sim)
            if group != self.group:
                self.group = group
                self.since_ms, self.since_step = now, sim.step
                self.waits.clear()
                self.command = None
        group = self.group
        if group is None:
            return None
        nodes = sim.nodes
        leader = None
        electing = False
        for n in group:
            role = nodes[n].role
            if role is Role.LEADER:
                leader = n
            elif role is not Role.FOLLOWER:
                electing = True
        settled = now - self.since_ms >= self.stable_ms
        if leader is not None:
            self._end(sim, "LeaderElected")
            self._end(sim, "ElectionEnds")
        else:
            if settled and "LeaderElected" not in self.waits:
                self._begin(sim, "LeaderElected", self.bound_ms, "a leader among it")
            if electing and "ElectionEnds" not in self.waits:
                self._begin(sim, "ElectionEnds", self.election_ms, "its election to end")
        self._follow_command(sim, event, leader, settled)
        return self._check_stuck(sim)

    def _follow_command(
        self, sim: Simulation, event: Event | None, leader: int | None, settled: bool
    ) -> None:
        if self.command is not None:
            node_id, index = self.command
            node = sim.nodes[node_id]
            if node.role is not Role.LEADER:
                self.command = None  # its leader stepped down: the command may be lost
                self.waits.pop("CommandCommitted", None)
            elif node.commit_index >= index:
                self.command = None
                self._end(sim, "CommandCommitted")
        if (
            self.command is None
            and settled
            and isinstance(event, ClientRequest)
            and sim.last_submitted is not None
            and sim.last_submitted[0] == event.command
        ):
            _command, node_id, where = sim.last_submitted
            if node_id == leader:
                self.command = (node_id, where.index)
                self._begin(
                    sim, "CommandCommitted", self.bound_ms, f"command {event.command} to commit"
                )

    def _begin(self, sim: Simulation, name: str, bound_ms: int, what: str) -> None:
        self.waits[name] = _Wait(name, sim.clock_ms, sim.step, bound_ms, what)

    def _end(self, sim: Simulation, name: str) -> None:
        wait = self.waits.pop(name, None)
        if wait is None:
            return
        took = sim.clock_ms - wait.since_ms
        if took > wait.bound_ms:
            self.slow.append(self._finding(sim, wait, took, stuck=False))

    def _check_stuck(self, sim: Simulation) -> ProgressFinding | None:
        for wait in self.waits.values():
            took = sim.clock_ms - wait.since_ms
            if took > wait.bound_ms * self.factor:
                self.stuck = self._finding(sim, wait, took, stuck=True)
                return self.stuck
        return None

    def _finding(self, sim: Simulation, wait: _Wait, took: int, *, stuck: bool) -> ProgressFinding:
        assert self.group is not None
        witness = blocked_witness(sim, self.group)
        elections = took / self.election_timeout_ms
        verb = "never came" if stuck else "came late"
        message = (
            f"nodes {', '.join(map(str, self.group))} were a connected, stable majority, "
            f"yet {wait.what} {verb}: {took} ms ({elections:.1f} election timeouts, "
            f"bound {wait.bound_ms} ms); {blocked_words(witness)}"
        )
        return ProgressFinding(
            wait.name,
            sim.step,
            wait.since_step,
            self.group,
            took,
            wait.bound_ms,
            stuck,
            message,
            witness,
        )


def guards_partial_connectivity(sim: Simulation) -> bool:
    """Pre-vote and check-quorum both on, and honoured by the implementation
    (its capabilities): only then does Raft promise progress to a majority
    that a server outside it can still reach, or that a deaf old leader
    keeps sending to (dissertation §9.6, §6.2)."""
    node = sim.options.node
    honoured = sim.capabilities.options
    return (
        node.prevote and node.check_quorum and "prevote" in honoured and "check_quorum" in honoured
    )
