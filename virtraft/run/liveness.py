"""The liveness phase: after the faults, the cluster must make progress.

`liveness_phase` heals the network, restarts crashed servers, lets the
cluster settle, and then demands a leader and a committed command within a
bound (TigerBeetle's VOPR does the same). `liveness_in_place` keeps the last
network shape instead, for scenarios whose claim is about a lasting fault.
Both run on a calm network (`calm_options`) under one clock (`CalmRun`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import Role
from virtraft.check.checker import Violation
from virtraft.sim.events import ClientRequest, Event, Heal, Restart
from virtraft.sim.options import SimOptions
from virtraft.sim.scheduler import Scheduler
from virtraft.sim.simulation import Simulation


@dataclass(frozen=True, slots=True)
class Liveness:
    verdict: str  # "ok", "failed", or "skipped"
    reason: str
    leader_at_ms: int | None = None
    committed_at_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


CALM_TICKS_PER_HEARTBEAT = 20  # at least: the default 200 ms heartbeat, 10 ms ticks
LIVENESS_STEP_LIMIT = 200_000  # a liveness phase's steps, besides its bound in virtual ms


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
        return cls(
            sim,
            calm,
            stable_until,
            stable_until + sim.options.liveness_bound_ms,
            sim.step + LIVENESS_STEP_LIMIT,
        )

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
    # The network heals and forgets the backlog the faults left behind: what
    # is still in flight is lost, which Raft must survive anyway.
    opening: list[Event] = [Heal(flush=True)]
    opening += [
        Restart(n) for n in sim.node_ids if not sim.nodes[n].alive and not sim.nodes[n].retired
    ]
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
            return Liveness(
                "failed",
                f"no command committed within {bound} ms after the network settled",
                leader_at,
            ), None
        outcome = run.until(lambda: sim.voting_leader() is not None)
        if isinstance(outcome, Violation):
            return Liveness("skipped", "safety was violated"), outcome
        if outcome is False:
            if leader_at is None:
                return Liveness(
                    "failed", f"no leader within {bound} ms after the network settled"
                ), None
            return Liveness(
                "failed",
                f"no command committed within {bound} ms after the network settled",
                leader_at,
            ), None
        voting_leader = sim.voting_leader()
        assert voting_leader is not None
        leader = voting_leader.node_id
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
            return Liveness(
                "failed", f"leader {leader} did not commit a command within {bound} ms", leader_at
            ), None
        if sim.nodes[node_id].is_committed(where) is True:
            return Liveness(
                "ok", "leader elected and a command committed", leader_at, sim.clock_ms
            ), None


def liveness_in_place(sim: Simulation, scheduler: Scheduler) -> tuple[Liveness, Violation | None]:
    """The liveness phase for a fault that never heals (`[liveness] heal =
    false`): the network keeps its last shape as its stable state, and still
    a leader and a commit must follow within the bound. This is the claim
    pre-vote and check-quorum make about partial connectivity."""
    run = CalmRun.start(sim, Scheduler(scheduler.rng, calm_options(sim.options)))
    bound = sim.options.liveness_bound_ms
    skipped = Liveness("skipped", "safety was violated")
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
