"""A seed whose worker process died, run again alone.

A native implementation can take the whole process down (a signal it does
not survive, an abort); in a campaign that breaks the worker pool, and the
seeds it ran leave no trace. Each such seed runs again here, in a child
process of its own that writes every event to a file before applying it.
If the child dies too, the file ends with the event it died in, and the
seed becomes a NodeException finding whose trace holds every event up to
and including that one. Nothing here knows which implementation it runs.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtraft.run.factory import load_factory
from virtraft.run.seed import resolve_options
from virtraft.sim.events import Event, Tick, acting_nodes, event_from_json, event_to_json
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import digest, trace_lines

if TYPE_CHECKING:
    from virtraft.run.campaign import CampaignSpec, SeedResult

# The campaign's own run_one(seed, spec, simulation=...) and SeedResult are
# handed in: the campaign imports this module, not the other way round.
RunOne = Callable[..., "SeedResult"]


class _RecordingSimulation(Simulation):
    """Writes each event, flushed, before applying it."""

    record: Any = None

    def apply(self, event: Event):  # type: ignore[override]
        record = type(self).record
        record.write(json.dumps(event_to_json(event), separators=(",", ":")) + "\n")
        record.flush()
        return super().apply(event)


def _child(
    seed: int, spec: CampaignSpec, run_one: RunOne, record_path: str, result_path: str
) -> None:
    with open(record_path, "w") as record:
        _RecordingSimulation.record = record
        result = run_one(seed, spec, simulation=_RecordingSimulation)
    Path(result_path).write_text(json.dumps(dataclasses.asdict(result)))


def run_isolated(
    seed: int, spec: CampaignSpec, run_one: RunOne, seed_result: type[SeedResult]
) -> SeedResult:
    """Run one seed in a child process; a child that dies is a finding."""
    with tempfile.TemporaryDirectory(prefix="virtraft-isolated-") as work:
        record_path = os.path.join(work, "events.jsonl")
        result_path = os.path.join(work, "result.json")
        child = multiprocessing.get_context("spawn").Process(
            target=_child, args=(seed, spec, run_one, record_path, result_path)
        )
        child.start()
        child.join()
        if child.exitcode == 0 and os.path.exists(result_path):
            return seed_result(**json.loads(Path(result_path).read_text()))
        events = _recorded(record_path)
        why = _death(child.exitcode)
    return _died(seed, spec, events, why, seed_result)


def _recorded(path: str) -> list[Event]:
    events = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            events.append(event_from_json(json.loads(line)))
        except ValueError:  # the last line may be cut short by the death
            break
    return events


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"died of {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"died of signal {-exitcode}"
    return f"exited with status {exitcode}"


def _died(
    seed: int, spec: CampaignSpec, events: list[Event], why: str, seed_result: type[SeedResult]
) -> SeedResult:
    options = resolve_options(seed, spec.options, spec.swarm, spec.keep, load_factory(spec.factory))
    step = len(events)
    last = events[-1] if events else None
    nodes = acting_nodes(last)
    kind = last.kind if last is not None else "start"
    message = f"the server process {why} during step {step} ({kind})"
    violation = {
        "invariant": "NodeException",
        "step": step,
        "nodes": list(nodes),
        "message": message,
        "witness": {"exception": "ProcessDied", "message": why, "where": []},
    }
    verdict = {
        "safety": "violation",
        "violation": violation,
        "liveness": {
            "verdict": "skipped",
            "reason": "safety was violated",
            "leader_at_ms": None,
            "committed_at_ms": None,
        },
        "steps": step,
        "clock_ms": sum(e.ms for e in events if isinstance(e, Tick)),
    }
    lines = trace_lines(seed, options, spec.factory, events, verdict, extra={"process_died": why})
    result = seed_result(
        seed=seed,
        safety="violation",
        invariant="NodeException",
        step=step,
        message=message,
        liveness="skipped",
        liveness_reason="safety was violated",
        steps=step,
        digest=digest(lines),
        trace=None,
    )
    if spec.out_dir is not None:
        out = Path(spec.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"seed-{seed}.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        result = dataclasses.replace(result, trace=str(path))
    return result
