"""Sub-seeds: every component of a run draws from its own stream, derived
from the run's seed and the component's name in this one function.

Seeding `random.Random` with a str hashes it with SHA-512, so the streams
are the same in every process and under any PYTHONHASHSEED. The names are
part of the trace format: changing one changes every trace.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def index_drawer(rng: random.Random) -> Callable[[int], int]:
    """A function `n -> i`: the index `rng.choice(seq)` would pick in a
    sequence of `n > 0` items, from the same calls to the generator. For a
    plain random.Random it calls getrandbits itself, one call instead of the
    three choice() makes (the scheduler draws on every step); any other
    generator is asked through its own choice()."""
    if type(rng) is not random.Random:
        return lambda n: rng.choice(range(n))
    bits = rng.getrandbits

    def below(n: int) -> int:
        k = n.bit_length()
        r = bits(k)
        while r >= n:
            r = bits(k)
        return r

    return below


def sub_rng(seed: int, component: str, *parts: int) -> random.Random:
    """The stream of `component` (e.g. "scheduler", or "node" with its id)."""
    name = ":".join(["virtraft", str(seed), component, *map(str, parts)])
    return random.Random(name)


def scheduler_rng(seed: int) -> random.Random:
    """What the scheduler draws every event from."""
    return sub_rng(seed, "scheduler")


def swarm_rng(seed: int) -> random.Random:
    """What swarm testing draws the run's options from."""
    return sub_rng(seed, "swarm")


def delays_rng(seed: int) -> random.Random:
    """What message delays are drawn from."""
    return sub_rng(seed, "delays")


def node_rng(seed: int, node_id: int) -> random.Random:
    """Each node's own stream (its election timeouts)."""
    return sub_rng(seed, "node", node_id)


def liveness_rng(seed: int) -> random.Random:
    """What the liveness phase draws from: its core, the standing faults of
    the others, its calm schedule. Its own stream, so the phase after a
    shortened safety phase (shrinking) is drawn the same way."""
    return sub_rng(seed, "liveness")
