"""`virtraft bench`: how fast the simulator runs with every invariant on.

A fuzzer's worth is bugs found per hour, so the headline number is events
per second with the checker on. Each workload below is a named `SimOptions`
(this is the one place they are defined) run for a fixed number of events on
one core, from a fixed seed:

- once with every invariant checked after every event,
- once with the checker off (the overhead ratio is the first time over this),
- once more under `tracemalloc` for the peak memory of the run (tracing slows
  a run several times over, so that pass is never timed).

An *event* is one scheduler step applied (`Simulation.step`): a delivery, a
drop, a duplicate, a tick, a client command, a fault. Delivered messages per
second is `network.stats.delivered` over the run's seconds, and committed
entries per second the highest commit index any node reached over them.

Time is the CPU time of this process around each run (`time.process_time`,
taken outside the run, never inside a decision): what one core spent, which
other programs on a shared machine cannot inflate the way they inflate wall
time (also recorded, as `wall_seconds`). Each timed run is repeated and the
fastest kept, as `timeit` does. The liveness phase is off: it measures
recovery, not throughput.
"""

from __future__ import annotations

import gc
import multiprocessing
import platform
import resource
import sys
import time
import tracemalloc
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from virtraft import __version__
from virtraft.check.linearizability import check_history
from virtraft.run.campaign import settle_process
from virtraft.run.seed import LINEARIZABILITY_STEPS, RunResult, run_seed
from virtraft.sim.options import SimOptions

SEED = 1
"""Every workload runs this seed: the same events on every machine."""

REPEAT = 3
"""Timed runs per measurement; the fastest counts."""

_FAULTS = {
    "drop_probability": 0.05,  # 5% of the messages picked for delivery are lost,
    "duplicate_probability": 0.05,  # and 5% are copied first
    "partition_rate": 0.002,  # a partition or a heal about every 500 events
    "client_rate": 0.1,  # a client command every 10 events
    "deliver_share": 0.9,  # most other steps move a message; ticks release the rest
    "delay_ms_max": 10,  # each message waits 0-10 virtual ms before it can arrive
    "liveness": False,
}


@dataclass(frozen=True, slots=True)
class Workload:
    name: str
    description: str
    options: SimOptions
    events: int  # events per run unless --events says otherwise


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "static-5",
        "5 servers, 5% drops, 5% duplicates, random partitions, client load",
        SimOptions(servers=5, **_FAULTS),
        100_000,
    ),
    Workload(
        "churn-5",
        "static-5 plus crashes, restarts, membership changes and snapshots",
        SimOptions(servers=5, crash_rate=0.002, member_rate=0.003, snapshot_rate=0.005, **_FAULTS),
        50_000,
    ),
    Workload(
        "static-7",
        "static-5 with 7 servers",
        SimOptions(servers=7, **_FAULTS),
        50_000,
    ),
)
"""The bench's workloads; the first is the headline."""

PEER_WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "peer-w1",
        "virtraft2 (the seed's own simulator) `--servers 5 -i 20000 -d 5 -D 5 -P 10`: "
        "4% drops and duplicates, partitions, client load; matched per delivered message",
        SimOptions(
            servers=5,
            drop_probability=0.04,
            duplicate_probability=0.04,
            partition_rate=0.0094,
            client_rate=0.06,
            liveness=False,
        ),
        332_000,
    ),
    Workload(
        "peer-w2",
        "virtraft2 `--servers 5 -i 20000 -C 10 -d 5 -P 10 -m 3`: drops, partitions, "
        "compaction and membership changes; matched per delivered message, and on "
        "its commits, membership changes and compactions",
        # The first mapping (snapshot rate 0.0456, member rate 0.0026, 197,000
        # events) matched the deliveries but made 300-360 membership changes
        # to virtraft2's 44; these rates match its changes and compactions too.
        SimOptions(
            servers=5,
            drop_probability=0.04,
            partition_rate=0.0173,
            client_rate=0.10,
            snapshot_rate=0.075,
            member_rate=0.00025,
            liveness=False,
        ),
        205_000,
    ),
)
"""Workloads of the seed's Python simulator (virtraft2, in RedisLabs/raft),
for a side-by-side comparison; `virtraft bench --workload peer-w1`. Not run
by default: they are long."""

LONG_SHORT_EVENTS = 10_000
LONG_LONG_EVENTS = 200_000
LONG_TOLERANCE = 0.15
"""--long: the checker's cost per event must not grow with the run: the
events/s of a 200,000-event run stays within 15% of a 10,000-event run's."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One timed run."""

    events: int
    seconds: float  # CPU time
    wall_seconds: float
    delivered: int
    committed: int
    checker_records: int | None  # per-index records the checker holds at the end
    violation: str | None  # a bench run should find none; if it does, say so

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 4),
            "wall_seconds": round(self.wall_seconds, 4),
            "events_per_s": round(self.events_per_s),
            "delivered_per_s": round(self.delivered / self.seconds),
            "committed_per_s": round(self.committed / self.seconds),
            "delivered": self.delivered,
            "committed": self.committed,
            "checker_records": self.checker_records,
            "violation": self.violation,
        }


def run_once(options: SimOptions, events: int, *, check: bool) -> tuple[Sample, RunResult]:
    """One run of `events` events, timed from start to end."""
    options = options.replace(steps=events, liveness=False)
    gc.collect()  # start every run from the same heap, not the last run's garbage
    started_wall = time.perf_counter()
    started = time.process_time()
    result = run_seed(SEED, options, check=check)
    seconds = time.process_time() - started
    wall_seconds = time.perf_counter() - started_wall
    sim = result.sim
    records = None
    if sim.checker is not None:
        records = sum(sim.checker.records().values())
    violation = result.violation.invariant if result.violation is not None else None
    sample = Sample(
        sim.step,
        seconds,
        wall_seconds,
        sim.network.stats.delivered,
        sim.stats.max_commit_index,
        records,
        violation,
    )
    return sample, result


def timed(options: SimOptions, events: int, *, check: bool, repeat: int = REPEAT) -> Sample:
    """The fastest of `repeat` runs (the runs are identical: same seed)."""
    best: Sample | None = None
    for _ in range(repeat):
        sample, result = run_once(options, events, check=check)
        del result  # free the run before the next one starts
        if best is None or sample.seconds < best.seconds:
            best = sample
    assert best is not None
    return best


def peak_memory_bytes(options: SimOptions, events: int) -> int:
    """Peak Python memory allocated during one checked run (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        result = run_seed(SEED, options.replace(steps=events, liveness=False))
        peak = tracemalloc.get_traced_memory()[1]
        del result
    finally:
        tracemalloc.stop()
    return peak


def bench_workload(workload: Workload, events: int | None) -> dict[str, Any]:
    count = events or workload.events
    checked = timed(workload.options, count, check=True)
    unchecked = timed(workload.options, count, check=False)
    peak = peak_memory_bytes(workload.options, count)
    return {
        "name": workload.name,
        "description": workload.description,
        "options": workload.options.to_json(),
        "events": count,
        "checked": checked.json(),
        "unchecked": unchecked.json(),
        "checker_overhead": round(checked.seconds / unchecked.seconds, 3),
        "peak_memory_mb": round(peak / 1e6, 2),
        "history": bench_history(workload.options, count),
    }


BENCH_CLIENTS = 3
"""Clients in the run whose history the linearizability checker is timed on."""


def bench_history(options: SimOptions, events: int) -> dict[str, Any]:
    """The linearizability checker's CPU time on the history of one run of
    the workload with clients (the run itself is not timed)."""
    result = run_seed(
        SEED, options.replace(steps=events, liveness=False, clients=BENCH_CLIENTS), check=False
    )
    sim = result.sim
    assert sim.clients is not None
    history = [record.operation for record in sim.clients.history(sim)]
    started = time.process_time()
    verdict = check_history(history, LINEARIZABILITY_STEPS)
    seconds = time.process_time() - started
    return {
        "clients": BENCH_CLIENTS,
        "operations": len(history),
        "checked": verdict.operations,
        "keys": verdict.keys,
        "verdict": verdict.verdict,
        "search_steps": verdict.steps,
        "seconds": round(seconds, 4),
    }


def bench_long(workload: Workload) -> dict[str, Any]:
    """A short and a long run of one workload, checker on: does the cost per
    event grow with the run (and so with the log)? The short run is repeated
    three times (fastest kept) and the long one runs once, so noise can only
    make the long run look slower, never faster."""
    short = timed(workload.options, LONG_SHORT_EVENTS, check=True, repeat=3)
    long = timed(workload.options, LONG_LONG_EVENTS, check=True, repeat=1)
    ratio = long.events_per_s / short.events_per_s
    return {
        "workload": workload.name,
        "short": short.json(),
        "long": long.json(),
        "ratio": round(ratio, 3),
        "within_tolerance": abs(1 - ratio) <= LONG_TOLERANCE,
        "tolerance": LONG_TOLERANCE,
    }


MEMORY_EVENTS = (10_000, 100_000, 1_000_000)
"""--memory: run lengths whose peak memory and events/s are compared."""

MEMORY_TOLERANCE = 0.20
"""--memory: the peak at 10^6 events should be within 20% of the peak at 10^5."""

RATE_FLOOR = 0.95
"""--memory: events/s at 10^6 events should be at least 0.95 of the rate at 10^4."""


def _child_run(options: SimOptions, events: int) -> dict[str, Any]:
    """One checked run in a fresh process: its CPU time and its memory's
    high-water mark (the process's maximum resident set, before and after)."""
    run_once(options, 2_000, check=True)  # first calls paid for, as run_bench does
    settle_process()  # a spawned child starts with the collector's defaults
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes there, KiB here
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    sample, result = run_once(options, events, check=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    del result
    return {
        **sample.json(),
        "rss_before_mb": round(before / 1e6, 1),
        "peak_rss_mb": round(peak / 1e6, 1),
        "full_collection_every": gc.get_threshold()[2],
    }


def bench_memory(workload: Workload, counts: Sequence[int] = MEMORY_EVENTS) -> dict[str, Any]:
    """Runs of growing length, each in a fresh process (so one run's heap is
    not the next one's): does a run's memory, or its cost per event, grow
    with its length? Peak memory is the process's maximum resident set (all
    of it: the interpreter and the imports too, `rss_before_mb`), which,
    unlike tracemalloc, does not slow the run, so the same runs are timed."""
    context = multiprocessing.get_context("spawn")
    runs = []
    for count in counts:
        with context.Pool(1) as pool:
            runs.append(pool.apply(_child_run, (workload.options, count)))
    by_events = {run["events"]: run for run in runs}
    report: dict[str, Any] = {"workload": workload.name, "runs": runs}
    short, middle, longest = (by_events.get(c) for c in MEMORY_EVENTS)
    if middle is not None and longest is not None:
        ratio = longest["peak_rss_mb"] / middle["peak_rss_mb"]
        report["peak_ratio"] = round(ratio, 3)
        report["peak_within_tolerance"] = ratio <= 1 + MEMORY_TOLERANCE
    if short is not None and longest is not None:
        ratio = longest["events_per_s"] / short["events_per_s"]
        report["rate_ratio"] = round(ratio, 3)
        report["rate_at_floor"] = ratio >= RATE_FLOOR
    return report


BY_KIND_EVENTS = 1_000_000
BY_KIND_EARLY = 10_000
BY_KIND_LATE = 100_000
"""--by-kind: one run of 10^6 events, its first 10,000 and its last 100,000
events timed one by one."""


def same_mix_ratio(early: dict[str, dict[str, float]], late: dict[str, dict[str, float]]) -> float:
    """The late window's events/s over the early one's, had the late window
    applied the early one's mix of events: each kind's cost per event from
    its own window, weighted by the early shares (kinds both windows saw).
    1.0: an event costs what it did early in the run, whatever the mix."""
    kinds = [k for k in early if k in late]
    early_cost = sum(early[k]["share"] * early[k]["us_per_event"] for k in kinds)
    late_cost = sum(early[k]["share"] * late[k]["us_per_event"] for k in kinds)
    return early_cost / late_cost


def _window(kinds: Sequence[str], costs: Sequence[int]) -> dict[str, Any]:
    """Per kind of event: its share of the window's events and its mean cost."""
    count: dict[str, int] = {}
    spent: dict[str, int] = {}
    for kind, ns in zip(kinds, costs, strict=True):
        count[kind] = count.get(kind, 0) + 1
        spent[kind] = spent.get(kind, 0) + ns
    total = len(kinds)
    return {
        "events": total,
        "events_per_s": round(total / (sum(costs) / 1e9)),
        "kinds": {
            kind: {
                "share": round(count[kind] / total, 4),
                "us_per_event": round(spent[kind] / count[kind] / 1e3, 2),
            }
            for kind in sorted(count, key=lambda k: (-count[k], k))
        },
    }


def bench_by_kind(workload: Workload, events: int = BY_KIND_EVENTS) -> dict[str, Any]:
    """Does an event cost more late in a long run than early in it? The
    events/s of a run's start and end differ by their mix too (the first
    thousands hold the first elections: more ticks, fewer deliveries), so
    each event is timed (CPU time, from the end of the one before: the
    scheduler's draw and the apply, plus one clock read, about 0.5us) and the
    windows are compared kind by kind."""
    stamps = array("q")  # stamps[i]: the clock after event i (0: before the first)
    clock = time.process_time_ns
    options = workload.options.replace(steps=events, liveness=False)
    gc.collect()
    stamps.append(clock())
    result = run_seed(SEED, options, on_step=lambda _sim: stamps.append(clock()))
    applied = result.sim.events  # fewer than asked if a violation ended the run
    ran = len(applied)
    early_end = min(BY_KIND_EARLY, ran // 2)
    late_start = max(ran - BY_KIND_LATE, early_end)

    def window(first: int, last: int) -> dict[str, Any]:
        """Events first..last (1-based): only their chunks of the log are decoded."""
        kinds = [event.kind for event in applied[first - 1 : last]]
        return _window(kinds, [stamps[i] - stamps[i - 1] for i in range(first, last + 1)])

    # The first event also paid for the run's setup: the early window starts after it.
    early = window(2, early_end)
    late = window(late_start + 1, ran)
    return {
        "workload": workload.name,
        "events": ran,
        "early": {"first": 2, "last": early_end, **early},
        "late": {"first": late_start + 1, "last": ran, **late},
        "same_mix_ratio": round(same_mix_ratio(early["kinds"], late["kinds"]), 3),
    }


def run_bench(
    events: int | None = None,
    long: bool = False,
    workloads: Sequence[Workload] = WORKLOADS,
    memory: bool = False,
    by_kind: bool = False,
) -> dict[str, Any]:
    """Every workload, and with `long` the short/long comparison; plain JSON."""
    # Warm up (the first run in a process pays for first calls), then set the
    # process up as campaign workers are, for the bench's duration only.
    run_once(workloads[0].options, 2_000, check=True)
    settle_process()
    try:
        report: dict[str, Any] = {
            "virtraft": __version__,
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "machine": platform.machine(),
            "seed": SEED,
            "repeat": REPEAT,
            "workloads": [bench_workload(w, events) for w in workloads],
        }
        if long:
            report["long"] = bench_long(workloads[0])
        if memory:
            report["memory"] = bench_memory(workloads[0])
        if by_kind:
            report["by_kind"] = bench_by_kind(workloads[0], BY_KIND_EVENTS)
    finally:
        gc.unfreeze()
    return report
