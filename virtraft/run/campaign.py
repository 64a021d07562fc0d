"""Campaigns: many seeds, in parallel processes or on a Dask cluster.

Every seed is an independent run; a worker returns a small `SeedResult`
(verdicts and the trace digest). A local worker writes the trace of a
failing seed itself, so nothing big crosses process boundaries; a Dask
worker may be on another machine, so it sends a failing seed's trace back
and the client writes it. Results are sorted by seed, so a campaign's
outcome does not depend on the executor or on the number of workers.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtraft.run.isolate import run_isolated
from virtraft.run.seed import linearizability_violation, run_seed
from virtraft.sim.options import SimOptions
from virtraft.trace.format import digest, write_trace


@dataclass(frozen=True, slots=True)
class SeedResult:
    seed: int
    safety: str
    invariant: str | None
    step: int | None
    message: str | None
    liveness: str
    liveness_reason: str
    steps: int
    digest: str
    trace: str | None
    # The liveness verdict's name (LeaderElected, ...) and how long progress
    # took in virtual ms, when it was slow or failed.
    liveness_name: str | None = None
    liveness_took_ms: int | None = None
    # Not part of the outcome: how long the seed took on its worker.
    seconds: float = dataclasses.field(default=0.0, compare=False)
    # The clients' history: "ok", "violation", "unknown", or "skipped" (no clients).
    linearizability: str = "skipped"
    # Why the server's process died in the seed's last event ("died of
    # SIGSEGV"), for a seed run again alone (virtraft.run.isolate): its trace
    # replays only in a process of its own, and `virtraft run` would die too.
    process_died: str | None = None

    @property
    def failed(self) -> bool:
        return self.safety != "ok" or self.liveness == "failed" or self.linearizable_failed

    @property
    def linearizable_failed(self) -> bool:
        return self.linearizability == "violation"

    @property
    def slow(self) -> bool:
        """Progress came past its bound: a warning, counted, not a failure."""
        return self.safety == "ok" and self.liveness == "slow"

    def outcome(self) -> tuple:
        """Everything that must not depend on how the campaign was run."""
        return (
            self.seed,
            self.safety,
            self.invariant,
            self.step,
            self.liveness,
            self.linearizability,
            self.steps,
            self.digest,
        )


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    options: SimOptions
    factory: str
    swarm: bool
    out_dir: str | None
    # Under swarm, the option fields the user set, which the swarm keeps.
    keep: frozenset[str] = frozenset()
    # Called with the path of each failing seed's trace once it is written,
    # and the campaign's node factory (the CLI writes the seed's report). It
    # travels to worker processes, so it must be picklable: a module-level
    # function.
    on_failure: Callable[[str, str], None] | None = None


class CampaignInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the campaign; `results` holds the seeds that finished,
    sorted by seed, so the caller can still write the summary and index."""

    def __init__(self, results: list[SeedResult]) -> None:
        super().__init__(f"interrupted after {len(results)} seeds")
        self.results = results


FULL_COLLECTION_EVERY = 1000
"""Passes of the middle generation between two full collections (default 10)."""


def settle_process() -> None:
    """Set a process up for many runs; call it once, before the first run.

    Everything alive now (imported modules, mostly) lives as long as the
    process, so it leaves the cyclic collector's care: the collector's full
    passes, which a long run triggers more and more often as it keeps every
    event it applies, then walk only what the runs made. Campaign worker
    processes and the bench call this.

    A full pass also waits for a thousand passes of the middle generation, not
    ten: what a run keeps (logs, records, the event log) is acyclic and freed
    by reference counts, and every full pass walks all of it. Measured paired
    on a shared machine, a modest gain: within the noise for a run of 332,000
    events, up to a sixth for one of 10^6 (docs/bench.md)."""
    gc.collect()
    gc.freeze()
    young, middle, _full = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def run_one(seed: int, spec: CampaignSpec, **run_options: Any) -> SeedResult:
    """Run one seed; write its trace (and call `on_failure`) when it fails.
    For workers that share the campaign's filesystem (this machine's
    processes)."""
    result, lines = _run_seed(seed, spec, **run_options)
    if result.failed and spec.out_dir is not None:
        result = _save_trace(result, lines, spec)
    return result


def run_one_remote(seed: int, spec: CampaignSpec) -> tuple[SeedResult, list[str] | None]:
    """Run one seed on a worker that may sit on another machine: the trace of
    a failing seed travels back with the result (failures are rare), and the
    client writes it where the campaign keeps its traces."""
    result, lines = _run_seed(seed, spec)
    return result, lines if result.failed else None


def _save_trace(result: SeedResult, lines: list[str], spec: CampaignSpec) -> SeedResult:
    assert spec.out_dir is not None
    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trace_path = str(out / f"seed-{result.seed}.jsonl")
    write_trace(trace_path, lines)
    if spec.on_failure is not None:
        spec.on_failure(trace_path, spec.factory)
    return dataclasses.replace(result, trace=trace_path)


def _run_seed(seed: int, spec: CampaignSpec, **run_options: Any) -> tuple[SeedResult, list[str]]:
    started = time.perf_counter()
    result = run_seed(
        seed, spec.options, factory=spec.factory, swarm=spec.swarm, keep=spec.keep, **run_options
    )
    # The lines are kept only where they are written: a passing seed's trace
    # is digested a line at a time.
    lines = result.trace_lines() if result.failed else []
    lin = result.linearizability
    # The failure to name: a safety violation, else a linearizability one.
    violation = result.violation or linearizability_violation(result.sim, lin)
    return SeedResult(
        seed=seed,
        safety="ok" if result.violation is None else "violation",
        invariant=violation.invariant if violation else None,
        step=violation.step if violation else None,
        message=violation.message if violation else None,
        liveness=result.liveness.verdict,
        liveness_reason=result.liveness.reason,
        liveness_name=result.liveness.name,
        liveness_took_ms=result.liveness.took_ms,
        steps=result.sim.step,
        digest=digest(lines or result.iter_trace_lines()),
        trace=None,
        seconds=time.perf_counter() - started,
        linearizability="skipped" if lin is None else lin.verdict,
    ), lines


def run_campaign(
    seeds: Sequence[int],
    spec: CampaignSpec,
    *,
    workers: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    time_budget_s: float | None = None,
    on_result: Callable[[SeedResult], None] | None = None,
) -> list[SeedResult]:
    """Run every seed (or as many as the time budget allows), sorted by seed.
    Ctrl-C raises CampaignInterrupted with the results of the finished seeds."""
    results: list[SeedResult] = []

    def collect(result: SeedResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    try:
        if executor == "dask":
            _run_dask(seeds, spec, workers, scheduler, time_budget_s, collect)
        else:
            # One worker still runs in a process of its own: a server that
            # takes its process down then costs a worker, not the campaign.
            _run_processes(seeds, spec, max(1, workers), time_budget_s, collect)
    except KeyboardInterrupt:
        raise CampaignInterrupted(sorted(results, key=lambda r: r.seed)) from None
    return sorted(results, key=lambda r: r.seed)


def _out_of_time(started: float, budget: float | None) -> bool:
    return budget is not None and time.monotonic() - started >= budget


def _settle_worker() -> None:
    """A campaign worker: Ctrl-C is the parent's to handle (it keeps the
    finished seeds); the worker only settles for many runs."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settle_process()


def _run_processes(seeds, spec, workers, budget, on_result) -> None:
    started = time.monotonic()
    todo = iter(seeds)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_settle_worker)
    try:
        running: set[Future] = set()
        seed_of: dict[Future, int] = {}

        def top_up() -> None:
            while len(running) < workers * 2 and not _out_of_time(started, budget):
                seed = next(todo, None)
                if seed is None:
                    return
                future = pool.submit(run_one, seed, spec)
                seed_of[future] = seed
                running.add(future)

        top_up()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            lost: list[int] = []
            for future in done:
                running.discard(future)
                try:
                    result = future.result()
                except BrokenProcessPool:  # a worker died: its seeds left no result
                    lost.append(seed_of.pop(future))
                    continue
                seed_of.pop(future, None)
                on_result(result)
            if lost:
                # Every seed in flight is lost with the pool; each runs again
                # alone, and the one that kills its process is a finding.
                lost += [seed_of.pop(future) for future in running]
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                for seed in sorted(lost):
                    on_result(run_isolated(seed, spec, run_one, SeedResult))
                pool = ProcessPoolExecutor(max_workers=workers, initializer=_settle_worker)
            top_up()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(seeds, spec, workers, address, budget, on_result) -> None:
    try:
        from distributed import Client, KilledWorker, LocalCluster, as_completed
    except ImportError:
        raise RuntimeError(
            "the dask executor needs the [dask] extra: pip install 'virtraft[dask]'"
        ) from None
    started = time.monotonic()
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=max(1, workers), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    else:
        client = _connect(Client, address)
    in_flight = max(1, workers) * DASK_SEEDS_IN_FLIGHT_PER_WORKER
    todo = iter(seeds)
    seed_of: dict[str, int] = {}
    pending = as_completed()
    try:

        def submit_more() -> None:
            while pending.count() < in_flight and not _out_of_time(started, budget):
                seed = next(todo, None)
                if seed is None:
                    return
                future = client.submit(run_one_remote, seed, spec=spec, pure=False)
                seed_of[future.key] = seed
                pending.add(future)

        submit_more()
        for future in pending:
            try:
                result, lines = future.result()
            except KilledWorker:
                # The seed took its workers down (Dask gave it a few): it runs
                # again here, alone in a child process, and becomes a finding.
                result = run_isolated(seed_of[future.key], spec, run_one, SeedResult)
                on_result(result)
                submit_more()
                continue
            except Exception as exc:  # e.g. the node factory cannot be imported there
                raise RuntimeError(
                    f"seed {seed_of[future.key]} failed on a Dask worker: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if lines is not None and spec.out_dir is not None:
                result = _save_trace(result, lines, spec)
            on_result(result)
            submit_more()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# Seeds submitted to Dask ahead of the results, per worker: enough to keep
# every worker busy, few enough that a 200,000-seed range costs no memory
# and a time budget stops the campaign within one batch.
DASK_SEEDS_IN_FLIGHT_PER_WORKER = 4


# How long a campaign waits to reach the Dask scheduler it was given.
CONNECT_SECONDS = 5


def _connect(client_class: type, address: str):
    """A client of the scheduler at `address`; a RuntimeError saying why not
    (an address Dask cannot read, or no scheduler there in time)."""
    try:
        return client_class(address, timeout=CONNECT_SECONDS)
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot reach the Dask scheduler at {address!r}: {exc}") from None


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)
