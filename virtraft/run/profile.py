"""Where a run's time goes, by component: `virtraft run --profile`.

A regression in speed is found by asking which part of the stack got
slower: the server under test, the door around it, the simulator's glue,
the checker, the trace. cProfile times every function; each function's own
time (not its callees') is charged to the component its file belongs to.
Built-in and library functions (a `dict.get`, `random.choice`) have no file
of ours, so their time goes to the components that called them, in
proportion to the time spent in them from each caller, through any chain
of library calls. The clock is cProfile's own (wall time, cheap to read; a
CPU clock costs a system call per function call and triples the run):
other programs on a shared machine inflate every component alike, so the
shares hold though the seconds do not.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import TypeVar

T = TypeVar("T")

# A component is the first folder (or file) under these packages that a
# function's file sits in, named here; the first match wins.
COMPONENTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("raftcore",), "raftcore (the server)"),
    (("virtraft", "nodes"), "node adapters"),
    (("virtraft", "adapter.py"), "the door (adapter.py)"),
    (("virtraft", "check"), "checker"),
    (("virtraft", "sim", "network.py"), "simulator: network"),
    (("virtraft", "sim", "scheduler.py"), "simulator: scheduler"),
    (("virtraft", "sim"), "simulator: apply and events"),
    (("virtraft", "trace"), "trace"),
    (("virtraft",), "virtraft, other"),
)
OTHER = "python and libraries"


@dataclass(frozen=True, slots=True)
class Share:
    component: str
    seconds: float
    fraction: float


@dataclass(frozen=True, slots=True)
class Profile:
    total_seconds: float
    shares: tuple[Share, ...]  # largest first
    hottest: tuple[tuple[str, float], ...]  # (function, own seconds), largest first


def component_of(filename: str) -> str | None:
    """The component a source file belongs to; None for files not ours."""
    parts = PurePath(filename).parts
    for prefix, name in COMPONENTS:
        size = len(prefix)
        for start in range(len(parts) - size + 1):
            if parts[start : start + size] == prefix:
                return name
    return None


def profiled(run: Callable[[], T], hottest: int = 12) -> tuple[T, Profile]:
    """Run `run()` under cProfile; its result and where its time went."""
    profiler = cProfile.Profile()
    result = profiler.runcall(run)
    return result, summarise(pstats.Stats(profiler), hottest)


def summarise(stats: pstats.Stats, hottest: int = 12) -> Profile:
    raw = stats.stats  # type: ignore[attr-defined]
    blame = _Blame(raw)
    own: dict[str, float] = {}
    functions: list[tuple[str, float]] = []
    for key, (_cc, _nc, tottime, _ct, _callers) in raw.items():
        filename, line, name = key
        functions.append((f"{PurePath(filename).name}:{line} {name}", tottime))
        for component, weight in blame.of(key).items():
            own[component] = own.get(component, 0.0) + tottime * weight
    total = sum(own.values()) or 1e-12
    shares = tuple(
        Share(name, seconds, seconds / total)
        for name, seconds in sorted(own.items(), key=lambda item: (-item[1], item[0]))
    )
    functions.sort(key=lambda item: (-item[1], item[0]))
    return Profile(total, shares, tuple(functions[:hottest]))


class _Blame:
    """For each profiled function, the components its time is charged to,
    as weights summing to 1: its own component, or, for a function of no
    component, its callers' blame weighted by the time spent in it from
    each (a cycle of library calls, or no caller at all, is OTHER)."""

    def __init__(self, raw: dict) -> None:
        self.raw = raw
        self.known: dict[tuple, dict[str, float]] = {}
        self.visiting: set[tuple] = set()

    def of(self, key: tuple) -> dict[str, float]:
        if key in self.known:
            return self.known[key]
        component = component_of(key[0])
        if component is not None:
            self.known[key] = {component: 1.0}
            return self.known[key]
        if key in self.visiting or key not in self.raw:
            return {OTHER: 1.0}
        self.visiting.add(key)
        callers = self.raw[key][4]
        mixed: dict[str, float] = {}
        spent = sum(counts[2] for counts in callers.values())
        for caller, counts in callers.items():
            share = counts[2] / spent if spent > 0 else 1.0 / len(callers)
            for name, weight in self.of(caller).items():
                mixed[name] = mixed.get(name, 0.0) + share * weight
        self.visiting.discard(key)
        self.known[key] = mixed or {OTHER: 1.0}
        return self.known[key]
