"""Partition shapes: the one place that turns "isolate 3" into cut links.

The scheduler draws a shape's nodes from its seed, the Hypothesis machine
from its examples and a scenario from its file; all three build the
partition here, so a shape means the same links wherever it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from virtraft.sim.events import Partition


def cut_between(group: Sequence[int], nodes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """`group` and the rest of `nodes` as two groups: every link between them
    down, both ways (Partition.groups)."""
    inside = set(group) & set(nodes)
    sides = (sorted(inside), [n for n in sorted(nodes) if n not in inside])
    return tuple(tuple(side) for side in sides if side)


def isolate(node: int, nodes: Sequence[int]) -> Partition:
    """One server hears no one and no one hears it."""
    return Partition(f"isolate {node}", (), groups=cut_between([node], nodes))


def split(minority: Sequence[int], nodes: Sequence[int]) -> Partition:
    """A minority cut off from the majority (each side still talks within)."""
    return Partition(f"split {sorted(minority)}", (), groups=cut_between(minority, nodes))


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
    """Only `node` reaches the others; no two others reach each other (a
    group of two, `node` and one other, for each other)."""
    pairs = tuple((node, n) for n in sorted(nodes) if n != node)
    return Partition(f"bridge {node}", (), groups=pairs)


def groups(group_of: Mapping[int, int], nodes: Sequence[int], shape: str) -> Partition | None:
    """Servers talk only within their group; None when everyone is in one."""
    by_label: dict[int, list[int]] = {}
    for node in sorted(nodes):
        by_label.setdefault(group_of[node], []).append(node)
    if len(by_label) < 2:
        return None
    return Partition(shape, (), groups=tuple(tuple(g) for g in by_label.values()))
