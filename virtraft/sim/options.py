"""Every setting of a simulation, documented where it is declared.

Rates are probabilities per scheduler step (or per message, for drop and
duplicate), in [0, 1]. Times are virtual milliseconds. `options_swarm` is
the one place where a seed turns into options (swarm testing: each seed
draws its own fault mix, so rare combinations get explored).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

from virtraft.adapter import NodeOptions


class OptionsError(ValueError):
    """A setting is out of range; the message names it."""


# The most virtual milliseconds any time setting may say: about 11.6 days,
# far beyond any timeout, and small enough for every draw the scheduler and
# the network make from a range of times.
MAX_MS = 1_000_000_000
MS_FIELDS = (
    "delay_ms_min",
    "delay_ms_max",
    "tick_ms_min",
    "tick_ms_max",
    "liveness_stable_ms",
    "liveness_bound_ms",
    "liveness_delay_ms_max",
)


RATE_FIELDS = (
    "drop_probability",
    "duplicate_probability",
    "partition_rate",
    "crash_rate",
    "client_rate",
    "member_rate",
    "snapshot_rate",
)


@dataclass(frozen=True, slots=True)
class SimOptions:
    servers: int = 5
    # The founders' ids are first_node_id .. first_node_id + servers - 1, and
    # joiners take the ids after: 0 reaches the corner of a server whose id
    # is falsy (`if node_id:` where `is not None` was meant).
    first_node_id: int = 1
    steps: int = 20_000
    # Per message picked for delivery: lose it instead / copy it first.
    drop_probability: float = 0.0
    duplicate_probability: float = 0.0
    # Deliver a random in-flight message (True) or the oldest one (False).
    reorder: bool = True
    # Per step: start or heal a partition.
    partition_rate: float = 0.0
    # Per step: crash a running server (restarts come at 5x this rate).
    crash_rate: float = 0.0
    # Per crash: it is a power cut, and the writes the server had not synced
    # are lost (a random prefix of them survives); otherwise a process crash,
    # which loses nothing written. Only for nodes whose disk models it.
    lossy_crash_probability: float = 0.0
    # Per step: a client submits a command (with `clients`, an idle client
    # invokes an operation).
    client_rate: float = 0.1
    # Clients that read, write and compare-and-set keys, one operation at a
    # time each, with timeouts and retries, their history checked for
    # linearizability after the run (virtraft.sim.clients); 0: the
    # anonymous writes of earlier versions, no history.
    clients: int = 0
    # Per step: ask the leader for a membership change.
    member_rate: float = 0.0
    # Per step: a server snapshots and compacts its log.
    snapshot_rate: float = 0.0
    # Message delay, drawn uniformly per message.
    delay_ms_min: int = 0
    delay_ms_max: int = 10
    # Time a Tick event moves the clock by, drawn uniformly.
    tick_ms_min: int = 1
    tick_ms_max: int = 10
    # Share of the remaining steps spent on message events rather than ticks.
    deliver_share: float = 0.75
    # Membership changes keep the voting members within these bounds.
    min_voters: int = 3
    max_servers: int = 9
    # After the safety phase: a core (a majority of the voters) is healed and
    # must converge: a leader in it, a command committed, every member caught up.
    liveness: bool = True
    liveness_stable_ms: int = 1_000
    # The bound to converge in, after the stable window: in election timeouts
    # (it scales with the timers), unless liveness_bound_ms is above 0 (a
    # scenario's fixed bound; traces written before the bound was in election
    # timeouts say 30_000 here).
    liveness_bound_elections: int = 20
    liveness_bound_ms: int = 0
    # Past the bound a run goes on to this many bounds: converging there is
    # slow (a warning), never converging is stuck (the liveness failure).
    liveness_stuck_factor: int = 10
    # Check progress while the faults happen too (`virtraft.run.progress`):
    # a majority that stays connected and stable must elect and commit.
    liveness_monitor: bool = True
    # Once the network heals for good (the liveness phase), delays shrink to this;
    # 0 keeps every link in order, as TCP would.
    liveness_delay_ms_max: int = 0
    # A server whose removal has committed lingers this long, ticking as
    # before (it may never learn it was removed, and campaign: dissertation
    # §4.2.3), then its operator shuts it down for good and the simulation
    # forgets it: no ticks, no faults, no links (the seed: the host shuts a
    # removed server down once the removal is applied). None: never
    # forgotten, as in traces written before removed servers were.
    removed_linger_ms: int | None = 3_000
    node: NodeOptions = field(default_factory=NodeOptions)

    def __post_init__(self) -> None:
        validate(self)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["node"] = {f.name: getattr(self.node, f.name) for f in dataclasses.fields(self.node)}
        return out

    @classmethod
    def from_json(cls, data: Any) -> SimOptions:
        if not isinstance(data, dict):
            raise OptionsError("options must be an object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionsError(f"unknown option {unknown[0]!r}")
        values = dict(data)
        values.setdefault("removed_linger_ms", None)  # a trace from before it
        node = values.pop("node", {})
        if not isinstance(node, dict):
            raise OptionsError("options.node must be an object")
        node_known = {f.name for f in dataclasses.fields(NodeOptions)}
        bad = sorted(set(node) - node_known)
        if bad:
            raise OptionsError(f"unknown node option {bad[0]!r}")
        try:
            return cls(**values, node=NodeOptions(**node))
        except TypeError as exc:
            raise OptionsError(str(exc)) from None

    def replace(self, **changes: Any) -> SimOptions:
        return dataclasses.replace(self, **changes)

    @property
    def founders(self) -> range:
        """The ids of the servers the cluster starts with."""
        return range(self.first_node_id, self.first_node_id + self.servers)


def validate(options: SimOptions) -> None:
    for name in RATE_FIELDS + ("deliver_share", "lossy_crash_probability"):
        value = getattr(options, name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise OptionsError(f"{name} must be a number, got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise OptionsError(f"{name} must be a probability in [0, 1], got {value}")
    # Restarts come at five times the crash rate (see Scheduler).
    total = sum(getattr(options, name) for name in RATE_FIELDS[2:])
    total += min(1.0, 5 * options.crash_rate)
    if total > 1.0:
        raise OptionsError(
            f"the per-step rates (restarts at 5x the crash rate included) add up to "
            f"{total:.3f}, more than 1"
        )
    _validate_node(options.node)
    for name in (
        "servers",
        "first_node_id",
        "steps",
        "clients",
        "delay_ms_min",
        "delay_ms_max",
        "tick_ms_min",
        "tick_ms_max",
        "min_voters",
        "max_servers",
        "liveness_stable_ms",
        "liveness_bound_ms",
        "liveness_delay_ms_max",
        "liveness_bound_elections",
        "liveness_stuck_factor",
    ):
        value = getattr(options, name)
        if type(value) is not int or value < 0:
            raise OptionsError(f"{name} must be a whole number >= 0, got {value!r}")
    linger = options.removed_linger_ms
    if linger is not None and (type(linger) is not int or not 0 <= linger <= MAX_MS):
        raise OptionsError(
            f"removed_linger_ms must be a whole number in [0, {MAX_MS}] or null, got {linger!r}"
        )
    if options.servers < 1:
        raise OptionsError("servers must be at least 1")
    if options.servers > 64:
        raise OptionsError("servers must be at most 64")
    if options.clients > 64:
        raise OptionsError("clients must be at most 64")
    if options.delay_ms_min > options.delay_ms_max:
        raise OptionsError("delay_ms_min must not exceed delay_ms_max")
    if not 1 <= options.tick_ms_min <= options.tick_ms_max:
        raise OptionsError("need 1 <= tick_ms_min <= tick_ms_max")
    if options.max_servers < options.servers:
        raise OptionsError("max_servers must be at least servers")
    if options.min_voters < 1:
        raise OptionsError("min_voters must be at least 1")
    if options.liveness_bound_elections < 1 or options.liveness_stuck_factor < 1:
        raise OptionsError("liveness_bound_elections and liveness_stuck_factor must be at least 1")
    for name in ("reorder", "liveness", "liveness_monitor"):
        if not isinstance(getattr(options, name), bool):
            raise OptionsError(f"{name} must be true or false")
    _validate_times(options)


def _validate_times(options: SimOptions) -> None:
    node = options.node
    values = [(name, getattr(options, name)) for name in MS_FIELDS] + [
        (f"node.{name}", getattr(node, name))
        for name in ("election_timeout_ms", "request_timeout_ms")
    ]
    for name, value in values:
        if value > MAX_MS:
            raise OptionsError(f"{name} must be at most {MAX_MS} ms, got {value}")


def _validate_node(node: NodeOptions) -> None:
    for name in ("election_timeout_ms", "request_timeout_ms", "max_entries_per_msg"):
        value = getattr(node, name)
        if type(value) is not int or value < 1:
            raise OptionsError(f"node.{name} must be a whole number >= 1, got {value!r}")
    if type(node.lease_drift_ms) is not int or node.lease_drift_ms < 0:
        raise OptionsError(
            f"node.lease_drift_ms must be a whole number >= 0, got {node.lease_drift_ms!r}"
        )
    for name in ("prevote", "check_quorum", "noop_on_election", "lease_read", "forward_reads"):
        if not isinstance(getattr(node, name), bool):
            raise OptionsError(f"node.{name} must be true or false")
    if not node.heartbeat_beats_election():
        raise OptionsError("node.request_timeout_ms must be below node.election_timeout_ms")


SWARM_FIELDS = (
    "servers",
    "first_node_id",
    "drop_probability",
    "duplicate_probability",
    "reorder",
    "partition_rate",
    "crash_rate",
    "lossy_crash_probability",
    "client_rate",
    "member_rate",
    "snapshot_rate",
    "min_voters",
    "delay_ms_max",
    "deliver_share",
    "node.max_entries_per_msg",
    "node.prevote",
    "node.election_timeout_ms",
    "node.request_timeout_ms",
)
"""What swarm testing draws; "node." names are fields of NodeOptions."""
_TIMERS = ("node.election_timeout_ms", "node.request_timeout_ms")

SWARM_FIRST_NODE_IDS = (1, 1, 1, 1, 1, 0, 0, 2)
"""Where a seed's server ids start: mostly 1; a quarter of the seeds from 0
(a server whose id is falsy), some from 2 (ids that are not list indexes)."""

SWARM_PROFILES = ("mixed", "elections", "membership", "snapshots")
"""What a seed's fault mix favours (swarm testing draws one per seed): a
broad mix; leader changes (fast timers, three or five servers, one entry per
message now and then, crashes and partitions: Figure 8 needs all of them);
membership changes (down to a single voter); or snapshots (lagging servers
caught up by snapshot transfer)."""


def options_swarm(
    rng: random.Random,
    base: SimOptions,
    keep: frozenset[str] = frozenset(),
    *,
    zero_node_id: bool = True,
) -> SimOptions:
    """Swarm testing: draw the fault mix from the seed (Groce et al., 2012).

    Each seed first draws a profile (`SWARM_PROFILES`), then each fault is
    switched off with some probability and otherwise given a random
    intensity, leaning the way the profile says, so that a campaign tries
    many different mixes. The fields named in `keep` (the user set them)
    keep their value from `base`; both timers stay as given when either is
    kept, so they stay in order. Everything is drawn all the same, so a kept
    field changes no other draw. A server numbered 0 is drawn only when
    `zero_node_id` says the implementation takes one (its capabilities).
    """
    unknown = sorted(keep - set(SWARM_FIELDS))
    if unknown:
        raise OptionsError(f"swarm cannot keep {', '.join(unknown)}: it does not draw them")
    drawn = _draw_swarm(rng, base, zero_node_id)
    if keep & set(_TIMERS):
        keep = keep | set(_TIMERS)
    top = {name: getattr(base, name) for name in keep if not name.startswith("node.")}
    node = {name[5:]: getattr(base.node, name[5:]) for name in keep if name.startswith("node.")}
    return drawn.replace(**top, node=dataclasses.replace(drawn.node, **node))


def _draw_swarm(rng: random.Random, base: SimOptions, zero_node_id: bool) -> SimOptions:

    def maybe(rate_max: float, off: float = 0.3) -> float:
        return 0.0 if rng.random() < off else round(rng.uniform(0.0, rate_max), 4)

    def some(rate_min: float, rate_max: float) -> float:
        return round(rng.uniform(rate_min, rate_max), 4)

    profile = rng.choice(SWARM_PROFILES)
    elections = profile == "elections"
    node = base.node
    # Elections are where most Raft bugs live: some seeds make them ten
    # times as frequent, and some turn pre-vote off (it hides many vote bugs).
    # One entry per message (an old entry copied alone: Figure 8) only with
    # the fast timers: with slow heartbeats a backlog would take longer than
    # the liveness bound to catch up, one entry at a time.
    scale = 10 if elections else rng.choice((1, 1, 10))
    election_ms = max(2, node.election_timeout_ms // scale)
    request_ms = max(1, min(node.request_timeout_ms // scale, election_ms - 1))
    batches = (1, 4, 16, 64) if scale > 1 else (4, 16, 64)
    # Vote-counting mistakes need five servers (with three, one vote besides
    # the candidate's own is a true majority); a lost replica shows best with
    # three (one server losing an entry leaves it on a minority).
    servers = rng.choice((3, 5)) if profile != "mixed" else rng.choice((3, 5, 5, 5))
    servers = min(servers, base.max_servers)
    options = base.replace(
        servers=servers,
        drop_probability=maybe(0.2),
        duplicate_probability=maybe(0.2),
        reorder=rng.random() < 0.8,
        partition_rate=maybe(0.02),
        crash_rate=maybe(0.005),
        lossy_crash_probability=maybe(1.0, off=0.5),
        client_rate=round(rng.uniform(0.02, 0.3), 4),
        member_rate=maybe(0.004, off=0.5),
        snapshot_rate=maybe(0.01, off=0.4),
        min_voters=rng.choice((1, 2, 3, 3)),
        delay_ms_max=rng.choice([0, 5, 20, 100, 200]),
        deliver_share=round(rng.uniform(0.5, 0.9), 3),
        node=dataclasses.replace(
            node,
            max_entries_per_msg=rng.choice(batches),
            prevote=node.prevote and rng.random() < 0.5,
            election_timeout_ms=election_ms,
            request_timeout_ms=request_ms,
        ),
    )
    if elections:
        options = options.replace(
            partition_rate=some(0.005, 0.03),
            crash_rate=some(0.002, 0.01),
            delay_ms_max=rng.choice([20, 100, 200]),
            node=dataclasses.replace(
                options.node,
                max_entries_per_msg=rng.choice((1, 1, 4)),
                prevote=node.prevote and rng.random() < 0.3,
            ),
        )
    elif profile == "membership":
        options = options.replace(member_rate=some(0.005, 0.03), min_voters=rng.choice((1, 2)))
    elif profile == "snapshots":
        options = options.replace(snapshot_rate=some(0.005, 0.03), crash_rate=some(0.001, 0.01))
    # Drawn last, so that every draw above keeps the value it had before ids
    # were drawn (and a seed that numbers from 1 runs as it did). For an
    # implementation that refuses id 0 the draw stays, and numbers from 1.
    first = rng.choice(SWARM_FIRST_NODE_IDS)
    return options.replace(first_node_id=first if first or zero_node_id else 1)
