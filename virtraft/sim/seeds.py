"""Sub-seeds: every component of a run draws from its own stream, derived
from the run's seed and the component's name in this one function.

Seeding `random.Random` with a str hashes it with SHA-512, so the streams
are the same in every process and under any PYTHONHASHSEED. The names are
part of the trace format: changing one changes every trace.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def fast_bits(rng: random.Random) -> Callable[[int], int] | None:
    """`rng.getrandbits` when `below` draws what `rng.choice` would (a plain
    random.Random), else None: then call `rng.choice` itself."""
    return rng.getrandbits if type(rng) is random.Random else None


def below(bits: Callable[[int], int], n: int) -> int:
    """What `choice(seq)` of a plain random.Random picks as an index into a
    sequence of `n > 0` items: the same getrandbits calls, the same number,
    one call instead of three (the scheduler draws on every step)."""
    k = n.bit_length()
    r = bits(k)
    while r >= n:
        r = bits(k)
    return r


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
