"""A Hypothesis state machine over the simulator, for any node factory.

Where `virtraft fuzz` lets one seeded scheduler pick every event, this lets
Hypothesis pick them, at two grains. Single events: deliver, drop or copy
one message (named by its link and its text), let a little time pass,
restart, heal, change the membership, snapshot. And the moves a person
would script: time one server out and run one election round (every voter
first sees an election timeout pass, so leader stickiness lets it grant),
or two candidates of one term splitting the voters (their replies copied
when the run duplicates, the voters rebooting in between if asked), deliver
what is in flight on one link, let the network settle, crash or cut off the
leader, isolate a follower, reboot a server (a power cut, when the run's
crashes may be lossy, loses what it had not synced), let leaders fail one
after another (a command, part of a link, a crash, the next one elected),
send clients to the leader. Each run starts by electing a first leader.

The checker runs after every event, and the step that breaks an invariant
(or makes a server raise) fails there, so a failing run ends in
Hypothesis's shrunk, step-by-step program and, if asked, in a virtraft
trace of the same run that `virtraft replay` and `virtraft shrink` accept.

The program reads as what happened, not as what was drawn: a rule draws
small numbers (a node id, which message on a link) and maps them onto the
servers and messages there are, and the step prints with what they mapped
to, the message by its text at the door (`Messages.text`):

    state.timeout(node=2, then="votes")
    state.deliver(src=2, dst=3, message="AppendEntries(term=3, ...)")
    state.crash(role="leader")

A value that names a live server or a message in flight maps to itself, so
the printed program, pasted back, runs the same steps.

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

import json
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from virtraft.adapter import MembershipChange, MessageRole, NodeFactory, NodeOptions, Role
from virtraft.check.checker import Checker, Violation
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
from virtraft.sim.network import Envelope
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
    "Step",
    "machine_for",
]

TRACE_ENV = "VIRTRAFT_STATEFUL_TRACE"

# A server that raises is a finding of its own, next to the named invariants.
NODE_EXCEPTION = "NodeException"

# What a run may switch off (swarm testing). Delivering messages, letting
# time pass and elections are not faults: they are always on. "skew" lets
# one server's clock run ahead of the others'.
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
    "skew",
)

# Three servers and short timeouts: elections come after a handful of steps.
# No message delay: Hypothesis already chooses which message goes next.
# Removed servers are kept, as scripted scenarios keep them: a step names
# servers and passes time, and one forgotten halfway (see
# `Simulation._retire_removed`) would leave the step half done.
MACHINE_OPTIONS = SimOptions(
    servers=3,
    delay_ms_min=0,
    delay_ms_max=0,
    liveness=False,
    removed_linger_ms=None,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20),
)

KEYS = ("a", "b", "c")
SHAPES = ("split", "one_way", "bridge", "clog")  # isolation is a rule of its own
# A node id, mapped onto the servers that can take the step (itself when it is one).
_NODE = st.integers(min_value=1, max_value=9)
# Whom a fault aims at: faults aimed at the leader are what Raft's stories are made of.
ROLES = ("leader", "follower", "any")
# Which message on a link: the n-th distinct text, oldest first.
_NTH = st.integers(min_value=0, max_value=7)
# Time in percent of the election timeout: enough for heartbeats, not for an election.
_PERCENT = st.integers(min_value=1, max_value=30)
# An election timer fires within twice the timeout (Raft §5.2: random in
# [T, 2T)); `_time_out` gets there in tenths of it.
_TIMEOUT_TENTHS = 20
# What follows a timeout (see `timeout`): mostly a vote round, since a lone
# candidate whose requests stay in flight rarely leads anywhere.
THEN = ("votes", "rival", "reboots", "settle", "nothing")
_THEN = st.sampled_from(
    ("votes", "votes", "rival", "rival", "reboots", "reboots", "settle", "settle", "nothing")
)


def _pick(drawn: int, among: Sequence[int]) -> int:
    """A drawn number as one of `among`: itself when it is one (so a printed
    step pastes back), else by position."""
    assert among
    return drawn if drawn in among else among[drawn % len(among)]


def _literal(value: object) -> str:
    """A value as Python source, strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


@dataclass(frozen=True, slots=True)
class Step:
    """One step as the printed program shows it: the call with the values
    the rule acted on, and a note on what came of it."""

    rule: str
    args: tuple[tuple[str, object], ...]
    note: str = ""

    def text(self) -> str:
        call = f"state.{self.rule}({', '.join(f'{k}={_literal(v)}' for k, v in self.args)})"
        return f"{call}  # {self.note}" if self.note else call


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
        self._shown: Step | None = None
        self._seen = self._looks()  # the servers after the last step, for its note

    # ------------------------------------------------------------- plumbing

    def _apply(self, event: Event) -> bool:
        """Apply one event; one that cannot happen now is skipped (False)."""
        if self.violation is not None:
            return False  # the run already failed; the step says so
        try:
            violation = self.sim.apply(event)
        except NotApplicable:
            return False
        if violation is not None:
            self.violation = violation
        return True

    def _on(self, fault: str) -> bool:
        return fault in self.enabled

    def _alive(self) -> list[int]:
        return self.sim.alive_ids()

    def _down(self) -> list[int]:
        return [n for n in self.sim.node_ids if not self.sim.nodes[n].alive]

    def _followers(self) -> list[int]:
        """The running servers that do not believe they lead."""
        return [n for n in self._alive() if self.sim.nodes[n].role is not Role.LEADER]

    def _leaders(self) -> list[int]:
        """The running servers that believe they lead, deposed ones included."""
        return [n for n in self._alive() if self.sim.nodes[n].role is Role.LEADER]

    def _done(self, rule_name: str, note: str = "", **args: object) -> None:
        """End a step: say how it reads in a printed program (with `note` and
        what changed in the servers), and fail it if it broke an invariant
        (checked after each of its events), so the program ends with the
        step that did."""
        note = "; ".join(part for part in (note, self._changes()) if part)
        self._shown = Step(rule_name, tuple(args.items()), note)
        violation = self.violation
        if violation is not None:
            self._report(violation)
            raise InvariantViolated(violation)

    def _looks(self) -> dict[int, tuple[bool, Role, int, int, int]]:
        return {
            n: (v.alive, v.role, v.term, v.commit_index, v.last_index)
            for n, v in self.sim.nodes.items()
        }

    def _changes(self) -> str:
        """What the step changed, server by server: up or down, role and
        term, commit index, log length (`node 3 leader t4, commit 2->3`)."""
        before, now = self._seen, self._looks()
        self._seen = now
        parts = []
        for node, (alive, role, term, commit, last) in now.items():
            was = before.get(node)
            if was == (alive, role, term, commit, last):
                continue
            if was is None:
                parts.append(f"node {node} joined")
                continue
            bits = []
            if alive != was[0]:
                bits.append("up" if alive else "down")
            if (role, term) != (was[1], was[2]):
                bits.append(f"{role.value} t{term}")
            if commit != was[3]:
                bits.append(f"commit {was[3]}->{commit}")
            if last != was[4]:
                bits.append(f"log {was[4]}->{last}")
            if bits:
                parts.append(f"node {node} {', '.join(bits)}")
        return "; ".join(parts)

    def _repr_step(self, rule: Any, data: Any, result: Any) -> str:
        """Hypothesis prints each step of a failing example with this: the
        step as its rule recorded it, with the servers and messages its drawn
        numbers mapped to, rather than the numbers."""
        shown, self._shown = self._shown, None
        if shown is None or shown.rule != rule.function.__name__:
            return super()._repr_step(rule, data, result)
        return shown.text()

    def _text(self, env: Envelope) -> str:
        return self.sim.messages.text(env.message)

    def _envelope_event(self, kind: type[Deliver] | type[Drop] | type[Duplicate], env: Envelope):
        return kind(env.src, env.dst, env.kind, env.key, env.id)

    def _links(self) -> dict[tuple[int, int], list[Envelope]]:
        """The messages in flight by link, each list oldest first."""
        links: dict[tuple[int, int], list[Envelope]] = {}
        for env in self.sim.network.pool:
            links.setdefault((env.src, env.dst), []).append(env)
        return links

    def _link(self, src: int, dst: int) -> tuple[int, int, list[Envelope]]:
        """A link with messages in flight: from a sender, to one of its
        destinations (the link as given, and nothing, when none is)."""
        links = self._links()
        if not links:
            return src, dst, []
        chosen_src = _pick(src, sorted({s for s, _ in links}))
        chosen_dst = _pick(dst, sorted(d for s, d in links if s == chosen_src))
        return chosen_src, chosen_dst, links[chosen_src, chosen_dst]

    def _message(
        self, src: int, dst: int, message: int | str
    ) -> tuple[int, int, str, Envelope | None]:
        """The oldest message on a link whose text is `message` (a text, or
        which of the link's distinct texts, oldest first)."""
        chosen_src, chosen_dst, envelopes = self._link(src, dst)
        texts = [self._text(env) for env in envelopes]
        if isinstance(message, str) or not texts:
            text = str(message)
        else:
            distinct = list(dict.fromkeys(texts))
            text = distinct[message % len(distinct)]
        env = envelopes[texts.index(text)] if text in texts else None
        return chosen_src, chosen_dst, text, env

    def _one_message(
        self,
        name: str,
        kind: type[Deliver] | type[Drop] | type[Duplicate],
        src: int,
        dst: int,
        message: int | str,
    ) -> None:
        chosen_src, chosen_dst, text, env = self._message(src, dst, message)
        if env is not None:
            self._apply(self._envelope_event(kind, env))
        note = "" if env is not None else "no such message"
        self._done(name, note, src=chosen_src, dst=chosen_dst, message=text)

    def _who(self, role: str, node: int) -> tuple[dict[str, object], int | None]:
        """The running server `role` and `node` name: the leader (the live
        leader of the highest term), a server that does not lead, or any;
        and the arguments the step prints (`role="leader"`, or the node)."""
        if role == "leader":
            leader = self.sim.leader()
            return {"role": "leader"}, None if leader is None else leader.node_id
        among = self._followers() if role == "follower" else self._alive()
        if not among:
            return {"role": role}, None
        chosen = _pick(node, among)
        return ({"node": chosen} if role == "any" else {"role": role, "node": chosen}), chosen

    # ---------------------------------------------------------------- swarm

    @initialize(
        faults=st.fixed_dictionaries(
            {fault: st.just(True) if fault == "client" else st.booleans() for fault in FAULTS}
        )
    )
    def choose_faults(self, faults: Mapping[str, bool] | Collection[str]) -> None:
        """Swarm testing: this run may use only these faults (drawn as which
        are on; printed, and pasted, as their names)."""
        if isinstance(faults, Mapping):
            faults = [fault for fault, on in faults.items() if on]
        self.enabled = frozenset(f for f in faults if f in self.faults)
        self._done("choose_faults", faults=sorted(self.enabled))

    @initialize(node=_NODE, settle=st.booleans())
    def elect_first(self, node: int, settle: bool = True) -> None:
        """Start from a cluster with a leader: one election round with `node`
        as the candidate (the first election is checked too). With `settle`,
        the cluster then settles (everyone learns of the leader's first
        commit); without, its first AppendEntries are still in flight."""
        candidate = _pick(node, self._alive())
        self._elect(candidate, "settle" if settle else "votes")
        self._done("elect_first", node=candidate, settle=settle)

    # ----------------------------------------------------------------- time

    @rule(percent=_PERCENT)
    def wait(self, percent: int) -> None:
        """A little time passes (`percent` of the election timeout) for every
        running server alike: enough for a leader's heartbeat, not for an
        election, unless the heartbeats stay in flight."""
        self._wait(max(1, self.sim_options.node.election_timeout_ms * percent // 100))
        self._done("wait", percent=percent)

    @precondition(lambda self: self._on("skew") and self._alive())
    @rule(node=_NODE, percent=_PERCENT)
    def tick(self, node: int, percent: int) -> None:
        """Time passes (`percent` of the election timeout) at one running
        server only: its clock runs ahead, the others learn of the time when
        they next tick (timers fire out of step, candidates collide)."""
        chosen = _pick(node, self._alive())
        ms = max(1, self.sim_options.node.election_timeout_ms * percent // 100)
        self._apply(Tick(chosen, ms))
        self._done("tick", node=chosen, percent=percent)

    @precondition(lambda self: self._followers())
    @rule(node=_NODE, then=_THEN)
    def timeout(self, node: int, then: str = "votes") -> None:
        """`node`'s election timer fires: an election timeout passes for every
        server (so leader leases run out and voters will grant), then `node`
        campaigns. `then` says what follows: "votes", one election round (its
        vote requests and the replies, one voter at a time; a new leader's
        first AppendEntries stay in flight); "settle", that round and then
        the cluster settles (see `settle`); "nothing", the requests stay in
        flight (for a rival to campaign in the same term, or to arrive late);
        "rival", a second server times out in the same term and the two
        split the voters (see `_rival_round`); "reboots", the same with each
        voter rebooting between the two requests (in runs with crashes: what
        it granted must survive)."""
        chosen = _pick(node, self._followers())
        self._elect(chosen, then)
        self._done("timeout", node=chosen, then=then)

    def _wait(self, ms: int) -> None:
        """`ms` pass for every running server; each also learns of the time
        it had not seen yet."""
        alive = self._alive()
        if not alive:
            return
        self._apply(Tick(alive[0], ms))
        for node in alive[1:]:
            self._apply(Tick(node, 0))  # the clock has moved: it sees the same `ms`

    def _elect(self, node: int, then: str) -> None:
        """An election timeout passes for every server alike, then `node`
        alone sees time pass, in tenths of the timeout, until its timer
        fires: so it is the first to campaign, and every voter has seen the
        timeout pass since it last heard from a leader (leader stickiness,
        dissertation §4.2.3: a server that heard from a leader within the
        election timeout refuses votes). The others learn of the extra time
        when they next tick: after a vote round, at once (a vote granted
        restarted the voter's timer, so catching up then fires none of the
        voters' timers; a server the candidate did not need may time out,
        as it would have). Then `then`: "votes", one vote round; "settle",
        the round and a calm spell; "nothing", the vote requests stay in
        flight."""
        self._wait(self.sim_options.node.election_timeout_ms)
        self._fire(node)
        if then == "nothing":
            return
        if then in ("rival", "reboots"):
            rival = self._rival(node)
            if rival is not None:
                self._fire(rival)
                self._rival_round(node, rival, reboots=then == "reboots" and self._on("crash"))
                self._wait(0)
                return
        self._vote_round(node)
        self._wait(0)
        if then == "settle":
            self._settle()

    def _fire(self, node: int) -> None:
        """`node` alone sees time pass, in tenths of the election timeout,
        until its timer fires (its role or term changes)."""
        view = self.sim.nodes[node]
        before = (view.role, view.term)
        step_ms = max(1, self.sim_options.node.election_timeout_ms // 10)
        for _ in range(_TIMEOUT_TENTHS):
            if not view.alive or (view.role, view.term) != before or self.violation is not None:
                return
            self._apply(Tick(node, step_ms))

    def _rival(self, node: int) -> int | None:
        """The server that campaigns against `node`: the next running one in
        id order that does not lead (None when there is none)."""
        others = [n for n in self._followers() if n != node]
        if not others:
            return None
        return next((n for n in others if n > node), others[0])

    def _rival_round(self, first: int, second: int, *, reboots: bool = False) -> None:
        """Two candidates of one term split the voters (Raft §5.2, split
        votes): the voters in id order hear them in turns, the first voter
        `first`'s request first, the next `second`'s, and so on, each reply
        delivered at once (twice when the run duplicates messages: a
        candidate must count a voter once). With `reboots`, a voter reboots
        (see `reboot`) once it has answered the first of the two. Repeated
        while requests come (pre-vote, then the vote); the candidates'
        requests to each other stay in flight."""
        copies = 2 if self._on("duplicate") else 1
        for _ in range(4):
            moved = False
            voters = [n for n in self._alive() if n not in (first, second)]
            for turn, voter in enumerate(voters):
                order = (first, second) if turn % 2 == 0 else (second, first)
                for place, candidate in enumerate(order):
                    requests = self._on_link(candidate, voter, MessageRole.VOTE)
                    if not requests or self.violation is not None:
                        continue
                    moved = True
                    self._apply(self._envelope_event(Deliver, requests[0]))
                    for kind in (Duplicate,) * (copies - 1) + (Deliver,):
                        for reply in self._on_link(voter, candidate, MessageRole.VOTE_RESPONSE):
                            self._apply(self._envelope_event(kind, reply))
                    if reboots and place == 0:
                        self._reboot(voter, power_cut=self._lossy())
            if not moved:
                return

    def _on_link(self, src: int, dst: int, kind: MessageRole | None = None) -> list[Envelope]:
        """The messages (of one role, if given) in flight from `src` to
        `dst`, oldest first."""
        role = self.sim.messages.role
        return [
            e
            for e in self.sim.network.pool
            if (e.src, e.dst) == (src, dst) and (kind is None or role(e.message) is kind)
        ]

    def _vote_round(self, node: int) -> None:
        """`node` asks for votes one server at a time: its oldest vote request
        is delivered, then the reply, and so on until it leads or has asked
        everyone (with pre-vote, that is two rounds). The requests it did not
        need stay in flight, to arrive late."""
        pool = self.sim.network.pool
        role = self.sim.messages.role
        view = self.sim.nodes[node]
        for _ in range(8 * len(self.sim.node_ids)):
            if view.role is Role.LEADER or self.violation is not None:
                return
            env = next(
                (e for e in pool if e.dst == node and role(e.message) is MessageRole.VOTE_RESPONSE),
                None,
            )
            if env is None:
                env = next(
                    (e for e in pool if e.src == node and role(e.message) is MessageRole.VOTE),
                    None,
                )
            if env is None:
                return
            self._apply(self._envelope_event(Deliver, env))

    # -------------------------------------------------------------- network

    @precondition(lambda self: self.sim.network.pool)
    @rule(src=_NODE, dst=_NODE, message=_NTH)
    def deliver(self, src: int, dst: int, message: int | str) -> None:
        """The network hands one in-flight message to its destination."""
        self._one_message("deliver", Deliver, src, dst, message)

    @precondition(lambda self: self.sim.network.pool)
    @rule(src=_NODE, dst=_NODE, rounds=st.integers(min_value=1, max_value=4))
    def deliver_link(self, src: int, dst: int, rounds: int = 1) -> None:
        """One link catches up: every message in flight from `src` to `dst`,
        oldest first; then, `rounds` times in all, the link back, and so on
        (a follower and its leader settle a probe in a few rounds)."""
        chosen_src, chosen_dst, _ = self._link(src, dst)
        heard = self._link_rounds(chosen_src, chosen_dst, rounds)
        self._done(
            "deliver_link",
            "; ".join(heard),
            src=chosen_src,
            dst=chosen_dst,
            rounds=rounds,
        )

    def _link_rounds(self, src: int, dst: int, rounds: int) -> list[str]:
        """Deliver what is in flight from `src` to `dst`, oldest first, then
        the link back, `rounds` times in all; say what each round carried."""
        heard: list[str] = []
        link = (src, dst)
        for _ in range(rounds):
            envelopes = self._on_link(*link)
            if envelopes:
                heard.append(f"{link[0]}->{link[1]} {len(envelopes)}")
            self._deliver_all(envelopes)
            link = (link[1], link[0])
        return heard

    @precondition(lambda self: self.sim.network.pool)
    @rule()
    def settle(self) -> None:
        """A calm spell: every message in flight is delivered, oldest first,
        replies included; then a heartbeat interval passes for everyone and
        that round is delivered too, so followers learn what was committed."""
        self._settle()
        self._done("settle")

    def _settle(self) -> None:
        bound = 8 * len(self.sim.node_ids) ** 2
        self._deliver_oldest(bound)
        self._wait(self.sim_options.node.request_timeout_ms)
        self._deliver_oldest(bound)

    def _deliver_oldest(self, limit: int) -> None:
        pool = self.sim.network.pool
        for _ in range(limit):
            if not pool or self.violation is not None:
                return
            self._apply(self._envelope_event(Deliver, pool[0]))

    @precondition(lambda self: self._on("drop") and self.sim.network.pool)
    @rule(src=_NODE, dst=_NODE, message=_NTH)
    def drop(self, src: int, dst: int, message: int | str) -> None:
        """The network loses one in-flight message."""
        self._one_message("drop", Drop, src, dst, message)

    @precondition(lambda self: self._on("duplicate") and self.sim.network.pool)
    @rule(src=_NODE, dst=_NODE, message=_NTH)
    def duplicate(self, src: int, dst: int, message: int | str) -> None:
        """The network copies one in-flight message (the copy arrives later)."""
        self._one_message("duplicate", Duplicate, src, dst, message)

    # --------------------------------------------------------------- faults

    @precondition(lambda self: self._on("client") and self._leaders())
    @rule(node=_NODE, commands=st.integers(min_value=1, max_value=3))
    def client(self, node: int, commands: int = 1) -> None:
        """Clients send `commands` commands to a server that believes it leads
        (a deposed leader cut off from the others still takes them)."""
        chosen = _pick(node, self._leaders())
        taken = []
        for _ in range(commands):
            before = self.sim.last_submitted
            self._submit(chosen)
            after = self.sim.last_submitted
            if after is not None and after is not before:
                taken.append(after[2].index)
        note = f"at {', '.join(map(str, taken))}" if taken else "not taken"
        self._done("client", note, node=chosen, commands=commands)

    def _submit(self, node: int) -> None:
        """A client sends the next command to `node`."""
        command = self.sim.next_command_id
        self._apply(ClientRequest(node, command, KEYS[command % len(KEYS)], command))

    @precondition(lambda self: self.sim.clients is not None)
    @rule(client=_NODE, op=st.sampled_from(CLIENT_OPS), key=st.sampled_from(CLIENT_KEYS))
    def client_op(self, client: int = 1, op: str = "read", key: str = "k0") -> None:
        """A client (options.clients) invokes a read, a write of a new value, or
        a compare-and-set from the value it last saw; checked at teardown."""
        clients = self.sim.clients
        assert clients is not None
        who = (client - 1) % self.sim_options.clients + 1
        op = op if clients.capable else "write"
        value = None if op == "read" else clients.values + 1
        expected = clients.expected(who, key) if op == "cas" else None
        self._apply(ClientInvoke(who, op, key, value, expected))
        self._done("client_op", client=who, op=op, key=key)

    @precondition(lambda self: self._on("crash") and len(self._alive()) > 1)
    @rule(role=st.sampled_from(ROLES), node=_NODE)
    def crash(self, role: str = "any", node: int = 1) -> None:
        """A running server loses its volatile state: the leader, a server
        that does not lead, or any."""
        shown, chosen = self._who(role, node)
        if chosen is not None:
            self._apply(Crash(chosen))
        self._done("crash", "" if chosen is not None else "no such server", **shown)

    @precondition(lambda self: self._on("restart") and self._down())
    @rule(node=_NODE)
    def restart(self, node: int) -> None:
        """A crashed server comes back from its disk."""
        chosen = _pick(node, self._down())
        self._apply(Restart(chosen))
        self._done("restart", node=chosen)

    @precondition(lambda self: self._on("crash") and self._leaders() and len(self._alive()) > 1)
    @rule(reach=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=4))
    def failover(self, reach: list[int]) -> None:
        """Leaders fail one after another, as in the churn of MIT 6.824's
        Figure 8 test: for each number in `reach`, the leader takes a
        command, its link to the next running server gets through that many
        rounds (see `deliver_link`; 0: nothing gets out), and it crashes;
        the servers that were down restart, and the first of them (else the
        next server after the old leader) campaigns until it leads, at most
        three elections. Entries of old terms then meet new leaders with
        different logs (Raft §5.4.2, Figure 8)."""
        notes = []
        for rounds in reach:
            leader = self.sim.leader()
            if leader is None or self.violation is not None:
                break
            old = leader.node_id
            down = self._down()
            self._submit(old)
            others = [n for n in self._alive() if n != old]
            if not others:
                break
            self._link_rounds(old, next((n for n in others if n > old), others[0]), rounds)
            self._apply(Crash(old))
            for node in down:
                self._apply(Restart(node))
            running = [n for n in self._alive() if n != old]
            candidate = down[0] if down else next((n for n in running if n > old), running[0])
            self._campaign(candidate)
            notes.append(f"{old} down, {candidate} {self.sim.nodes[candidate].role.value}")
        self._done("failover", "; ".join(notes), reach=reach)

    def _campaign(self, node: int, elections: int = 3) -> None:
        """`node` campaigns until it leads, at most `elections` times: the
        first as `timeout` runs it, then its timer alone fires again. The
        others learn of the time its elections took when they next tick."""
        view = self.sim.nodes[node]
        self._wait(self.sim_options.node.election_timeout_ms)
        for _ in range(elections):
            if not view.alive or view.role is Role.LEADER or self.violation is not None:
                break
            self._fire(node)
            self._vote_round(node)

    @precondition(lambda self: self._on("crash") and self._alive())
    @rule(role=st.sampled_from(ROLES), node=_NODE, power_cut=st.booleans())
    def reboot(self, role: str = "any", node: int = 1, power_cut: bool = False) -> None:
        """A running server crashes and comes straight back from its disk:
        what it promised before (its vote, the entries it acknowledged) must
        survive. With `power_cut`, in a run whose crashes may be lossy
        (options.lossy_crash_probability), the crash is a power cut: every
        write the server had not synced is lost (Raft Figure 2: persistent
        state is "updated on stable storage before responding to RPCs")."""
        shown, chosen = self._who(role, node)
        power_cut = power_cut and self._lossy()
        if chosen is not None:
            self._reboot(chosen, power_cut)
        note = "" if chosen is not None else "no such server"
        self._done("reboot", note, **shown, power_cut=power_cut)

    def _reboot(self, node: int, power_cut: bool) -> None:
        self._apply(Crash(node, 0.0 if power_cut else None))
        self._apply(Restart(node))

    def _lossy(self) -> bool:
        """Whether this run's crashes may lose unsynced writes."""
        return self.sim_options.lossy_crash_probability > 0 and self.sim.capabilities.lossy_disk

    @precondition(lambda self: self._on("partition") and len(self.sim.node_ids) > 1)
    @rule(role=st.sampled_from(ROLES), node=_NODE)
    def isolate(self, role: str = "any", node: int = 1) -> None:
        """A server hears no one and no one hears it: the leader (cut off, it
        still believes it leads), a follower, or any. Any other partition
        heals first."""
        shown, chosen = self._who(role, node)
        if chosen is not None:
            self._apply(partitions.isolate(chosen, list(self.sim.node_ids)))
        self._done("isolate", "" if chosen is not None else "no such server", **shown)

    @precondition(lambda self: self._on("partition") and len(self.sim.node_ids) > 1)
    @rule(shape=st.sampled_from(SHAPES), nodes=st.lists(_NODE, min_size=1, max_size=2))
    def partition(self, shape: str, nodes: list[int]) -> None:
        """Links go down (or are held): a minority, one direction, all but a
        bridge, one clogged link."""
        event, used = self._partition(shape, nodes)
        self._apply(event)
        self._done("partition", event.shape, shape=shape, nodes=used)

    def _partition(self, shape: str, nodes: list[int]) -> tuple[Partition, list[int]]:
        """The partition `shape` over the servers `nodes` map to (a shape of
        two distinct servers takes the next one when only one is given)."""
        ids = list(self.sim.node_ids)
        chosen: list[int] = []
        for drawn in nodes:
            node = _pick(drawn, ids)
            if node not in chosen:
                chosen.append(node)
        if shape == "split":
            minority = chosen[: max(1, (len(ids) - 1) // 2)]
            return partitions.split(minority, ids), minority
        if shape == "bridge":
            return partitions.bridge(chosen[0], ids), chosen[:1]
        if len(chosen) < 2:
            chosen.append(ids[(ids.index(chosen[0]) + 1) % len(ids)])
        pair = chosen[:2]
        if shape == "one_way":
            return partitions.one_way(*pair), pair
        return partitions.clog(*pair), pair

    @precondition(lambda self: self._on("heal") and self.sim.network.partitioned)
    @rule(flush=st.booleans())
    def heal(self, flush: bool = False) -> None:
        """Every link comes back (with `flush`, what is in flight is lost)."""
        self._apply(Heal(flush))
        self._done("heal", flush=flush)

    @precondition(lambda self: self._on("membership") and self.sim.leader() is not None)
    @rule(change=st.sampled_from(MembershipChange), node=_NODE)
    def membership(self, change: MembershipChange | str, node: int) -> None:
        """The leader is asked to add, promote, demote or remove a server."""
        change = MembershipChange(change)
        leader = self.sim.leader()
        assert leader is not None
        members = dict(leader.members)
        voters = [n for n, voting in sorted(members.items()) if voting]
        learners = [n for n, voting in sorted(members.items()) if not voting]
        options = self.sim_options
        # Keep a cluster worth testing: never fewer voters than `min_voters`.
        removable = voters if len(voters) > options.min_voters else []
        if change is MembershipChange.ADD_NONVOTING:
            among = [self.sim.next_node_id] if len(members) < options.max_servers else []
        elif change is MembershipChange.PROMOTE:
            among = learners
        elif change is MembershipChange.REMOVE:
            among = learners + removable
        else:
            among = removable
        if not among:
            self._done("membership", "nothing to change", change=change.value, node=node)
            return
        chosen = _pick(node, among)
        self._apply(ChangeMembership(leader.node_id, change, chosen))
        self._done("membership", f"asked node {leader.node_id}", change=change.value, node=chosen)

    @precondition(lambda self: self._on("snapshot") and self._compactable())
    @rule(node=_NODE)
    def snapshot(self, node: int) -> None:
        """A server compacts its log through what it has applied."""
        chosen = _pick(node, self._compactable())
        self._apply(TakeSnapshot(chosen))
        self._done("snapshot", node=chosen)

    @precondition(
        lambda self: self._on("snapshot") and self.sim.leader() is not None and self._lagging()
    )
    @rule(
        node=_NODE,
        commands=st.integers(min_value=2, max_value=4),
        behind=st.integers(min_value=1, max_value=3),
    )
    def compact_while_lagging(self, node: int, commands: int = 3, behind: int = 2) -> None:
        """The leader compacts its log while `node` lags behind its pipeline
        (Raft §7; dissertation Figure 5.3 step 6: a follower keeps what
        follows a snapshot that matches its log). The leader takes `commands`
        commands; every other follower gets what is in flight to it but the
        newest `behind` messages, and answers; the leader snapshots through
        what it committed. Then `node`'s link reorders once: its newest
        message first (a gap: it rejects), the rejection goes back (the
        leader, having compacted what `node` lacks, sends its snapshot),
        then the rest oldest first (the stale batch, its commit index below
        the snapshot, before the snapshot) and `node`'s replies."""
        leader = self.sim.leader()
        assert leader is not None
        lead = leader.node_id
        lagging = _pick(node, self._lagging())
        for _ in range(commands):
            self._submit(lead)
        for other in self._lagging():
            if other != lagging:
                sent = self._on_link(lead, other)
                self._deliver_all(sent[: max(0, len(sent) - behind)])
                self._deliver_all(self._on_link(other, lead))
        if lead in self._compactable():
            self._apply(TakeSnapshot(lead))
        self._deliver_all(self._on_link(lead, lagging)[-1:])
        self._deliver_all(self._on_link(lagging, lead))
        heard = self._link_rounds(lead, lagging, 2)
        self._done(
            "compact_while_lagging",
            "; ".join(heard),
            node=lagging,
            commands=commands,
            behind=behind,
        )

    def _lagging(self) -> list[int]:
        """The running servers that could lag behind the leader: the others."""
        leader = self.sim.leader()
        return [n for n in self._followers() if leader is None or n != leader.node_id]

    def _deliver_all(self, envelopes: Sequence[Envelope]) -> None:
        for env in envelopes:
            self._apply(self._envelope_event(Deliver, env))

    def _compactable(self) -> list[int]:
        """The running servers that committed entries their snapshot lacks."""
        nodes = self.sim.nodes
        return [n for n in self._alive() if nodes[n].commit_index > nodes[n].snapshot_index]

    def teardown(self) -> None:
        """With clients, what they were told must have a linear order."""
        if self.violation is not None or self.sim.clients is None:
            return
        violation = linearizability_violation(self.sim, check_clients(self.sim))
        if violation is not None:
            self._report(violation)
            raise InvariantViolated(violation)

    # -------------------------------------------------------------- failure

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
        "sim_options": (options or MACHINE_OPTIONS).replace(removed_linger_ms=None),
        "seed": seed,
        "faults": tuple(faults),
        "trace_path": trace_path,
        "last_failure": None,
    }
    title = name or "RaftMachine_" + spec.rpartition(":")[2]
    return type(title, (RaftMachine,), attrs)
