"""The scheduler: one seeded random stream decides every event.

`next_event` reads the simulation (never changes it) and returns the event
to apply. Rare faults are drawn first at their per-step rates; the rest of
the steps deliver, drop or duplicate a message, or let time pass.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from virtraft.adapter import MembershipChange
from virtraft.sim import partitions
from virtraft.sim.clients import CLIENT_KEYS
from virtraft.sim.events import (
    ChangeMembership,
    ClientInvoke,
    ClientRequest,
    CompleteIO,
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
    message_event,
)
from virtraft.sim.options import SimOptions
from virtraft.sim.seeds import index_drawer
from virtraft.sim.simulation import Simulation

KEYS = tuple(f"k{i}" for i in range(8))
# Share of the network-or-time steps that complete a pending I/O request,
# when the implementation's disk is asynchronous (`Capabilities.async_io`).
IO_SHARE = 0.3


class Scheduler:
    def __init__(self, rng: random.Random, options: SimOptions) -> None:
        self.rng = rng
        self.options = options
        o = options
        # Cumulative thresholds for the rare events, drawn from one number.
        self._thresholds = [
            (o.partition_rate, self._partition_or_heal),
            (o.crash_rate, self._crash),
            (min(1.0, o.crash_rate * 5), self._restart),
            (o.client_rate, self._client),
            (o.member_rate, self._membership),
            (o.snapshot_rate, self._snapshot),
        ]
        acc = 0.0
        self._cumulative = []
        for rate, make in self._thresholds:
            if rate > 0:
                acc += rate
                self._cumulative.append((acc, make))
        self._drop = o.drop_probability
        self._dup_threshold = o.drop_probability + o.duplicate_probability
        self._deliver_share = o.deliver_share
        self._reorder = o.reorder
        # choice() over a range draws the very numbers randint() would, with
        # less argument checking per draw.
        self._tick_ms = range(o.tick_ms_min, o.tick_ms_max + 1)
        # Ticks are immutable values from a small set (node x ms), and a run
        # keeps every event it applies: share them rather than allocate one
        # per step.
        self._ticks: dict[tuple[int, int], Tick] = {}
        # The per-step draws, as random.Random's choice() makes them (the same
        # numbers from the same calls to getrandbits) in one call, not three
        # (seeds.index_drawer): half of all steps draw a message, the other half a tick.
        self._random = rng.random
        self._index = index_drawer(rng)
        self._tick_ms_min = o.tick_ms_min

    def next_event(self, sim: Simulation) -> Event:
        r = self.rng.random()
        for threshold, make in self._cumulative:
            if r < threshold:
                event = make(sim)
                if event is not None:
                    return event
                break
        return self.network_or_time(sim)

    def network_or_time(self, sim: Simulation) -> Event:
        rng = self.rng
        if sim.capabilities.async_io:  # no draw at all for a synchronous disk
            busy = sim.io_busy()
            if busy and rng.random() < IO_SHARE:
                node, pending = rng.choice(busy)
                return CompleteIO(node, rng.randrange(pending))
        pool = sim.network.pool
        if pool and self._random() < self._deliver_share:
            env = pool[self._index(len(pool))] if self._reorder else pool[0]
            x = self._random()
            kind = Deliver if x >= self._dup_threshold else Drop if x < self._drop else Duplicate
            return message_event(kind, env.src, env.dst, env.kind, env.key, env.id)
        return self.tick(sim)

    def tick(self, sim: Simulation) -> Tick:
        nodes = sim.alive_ids_view() or sim.node_ids
        node = nodes[self._index(len(nodes))]
        ms = self._tick_ms_min + self._index(len(self._tick_ms))
        tick = self._ticks.get((node, ms))
        if tick is None:
            tick = self._ticks[node, ms] = Tick(node, ms)
        return tick

    # ---------------------------------------------------------------- faults

    def _partition_or_heal(self, sim: Simulation) -> Event | None:
        if sim.network.partitioned and self.rng.random() < 0.6:
            return Heal()
        return self.partition(sim.node_ids)

    def partition(self, nodes: Sequence[int]) -> Partition | None:
        """Draw one partition shape over `nodes`."""
        rng = self.rng
        if len(nodes) < 2:
            return None
        shape = rng.choice(("isolate", "split", "one_way", "bridge", "random", "clog"))
        nodes = list(nodes)
        if shape == "isolate":
            return partitions.isolate(rng.choice(nodes), nodes)
        if shape == "split":
            return partitions.split(
                rng.sample(nodes, rng.randint(1, (len(nodes) - 1) // 2 or 1)), nodes
            )
        if shape == "one_way":
            return partitions.one_way(*rng.sample(nodes, 2))
        if shape == "bridge":
            return partitions.bridge(rng.choice(nodes), nodes)
        if shape == "clog":
            return partitions.clog(*rng.sample(nodes, 2))
        return partitions.groups({n: rng.randrange(3) for n in nodes}, nodes, "random")

    def _crash(self, sim: Simulation) -> Event | None:
        alive = sim.alive_ids()
        if len(alive) <= 1:
            return None
        rng = self.rng
        node = rng.choice(alive)
        lossy = self.options.lossy_crash_probability
        if lossy and sim.capabilities.lossy_disk and rng.random() < lossy:
            # A power cut: half of them lose every unsynced write, the others
            # keep a random share (a prefix: disks write in order).
            return Crash(node, 0.0 if rng.random() < 0.5 else round(rng.random(), 3))
        return Crash(node)

    def _restart(self, sim: Simulation) -> Event | None:
        down = [i for i in sim.node_ids if not sim.nodes[i].alive and not sim.nodes[i].retired]
        return Restart(self.rng.choice(down)) if down else None

    def _client(self, sim: Simulation) -> Event | None:
        if sim.clients is not None:
            return self._invoke(sim)
        rng = self.rng
        guess = sim.client_leader_guess
        if guess is None or guess not in sim.nodes or rng.random() < 0.05:
            guess = rng.choice(sim.node_ids)
        return ClientRequest(guess, sim.next_command_id, rng.choice(KEYS), rng.randrange(1000))

    def _invoke(self, sim: Simulation) -> ClientInvoke | None:
        """An idle client invokes a read (half the time), a write of a new
        value, or a compare-and-set from the value it last saw."""
        clients = sim.clients
        assert clients is not None
        idle = clients.idle()
        if not idle:
            return None
        rng = self.rng
        client = rng.choice(idle)
        key = rng.choice(CLIENT_KEYS)
        x = rng.random()
        if not clients.capable or x >= 0.5:
            value = clients.values + 1
            if clients.capable and x >= 0.8:
                return ClientInvoke(client, "cas", key, value, clients.expected(client, key))
            return ClientInvoke(client, "write", key, value)
        return ClientInvoke(client, "read", key)

    def _membership(self, sim: Simulation) -> Event | None:
        if not sim.capabilities.membership:
            return None
        leader = sim.leader()
        if leader is None:
            return None
        members = dict(leader.members)
        # A change names only servers the simulation still runs: a leader may
        # list one it forgot (a removal that committed, then a server that
        # lost it, as PySyncObj's restart does), and that one is gone for good.
        voters = sorted(n for n, voting in members.items() if voting and n in sim.nodes)
        learners = sorted(n for n, voting in members.items() if not voting and n in sim.nodes)
        told = leader.caught_up
        caught_up = [n for n in (learners if told is None else told) if n in learners]
        rng = self.rng
        if caught_up:
            return ChangeMembership(leader.node_id, MembershipChange.PROMOTE, caught_up[0])
        choice = rng.random()
        if len(members) < self.options.max_servers and choice < 0.5:
            return ChangeMembership(
                leader.node_id, MembershipChange.ADD_NONVOTING, sim.next_node_id
            )
        if learners and choice < 0.7:
            return ChangeMembership(leader.node_id, MembershipChange.REMOVE, rng.choice(learners))
        if len(voters) > self.options.min_voters:
            change = MembershipChange.REMOVE if choice < 0.9 else MembershipChange.DEMOTE
            return ChangeMembership(leader.node_id, change, rng.choice(voters))
        return None

    def _snapshot(self, sim: Simulation) -> Event | None:
        if not sim.capabilities.snapshots:
            return None
        alive = sim.alive_ids()
        return TakeSnapshot(self.rng.choice(alive)) if alive else None
