"""Partition shapes: the one place that turns "isolate 3" into cut links.

The scheduler draws a shape's nodes from its seed, the Hypothesis machine
from its examples and a scenario from its file; all three build the
partition here, so a shape means the same links wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from virtraft.sim.events import Partition
from virtraft.sim.network import Link


def cut_between(group: Sequence[int], nodes: Sequence[int]) -> tuple[Link, ...]:
    """Every link, both ways, between `group` and the rest of `nodes`."""
    inside = set(group)
    return tuple(
        (a, b) for a in nodes for b in nodes if a != b and ((a in inside) != (b in inside))
    )


def isolate(node: int, nodes: Sequence[int]) -> Partition:
    """One server hears no one and no one hears it."""
    return Partition(f"isolate {node}", cut_between([node], nodes))


def split(minority: Sequence[int], nodes: Sequence[int]) -> Partition:
    """A minority cut off from the majority (each side still talks within)."""
    return Partition(f"split {sorted(minority)}", cut_between(minority, nodes))


def one_way(src: int, dst: int) -> Partition:
    """`src` cannot reach `dst`, though `dst` still reaches `src`."""
    return Partition(f"one-way {src}->{dst}", ((src, dst),))


def cut(a: int, b: int) -> Partition:
    """One link down both ways."""
    return Partition(f"cut {a}<->{b}", ((a, b), (b, a)))


def clog(a: int, b: int) -> Partition:
    """One link holds its messages both ways, delivered when it heals."""
    return Partition(f"clog {a}<->{b}", (), ((a, b), (b, a)))


def bridge(node: int, nodes: Sequence[int]) -> Partition:
    """Only `node` reaches the others; no two others reach each other."""
    others = [n for n in nodes if n != node]
    return Partition(f"bridge {node}", tuple((a, b) for a in others for b in others if a != b))


def groups(group_of: Mapping[int, int], nodes: Sequence[int], shape: str) -> Partition | None:
    """Servers talk only within their group; None when everyone is in one."""
    down = tuple((a, b) for a in nodes for b in nodes if a != b and group_of[a] != group_of[b])
    return Partition(shape, down) if down else None
