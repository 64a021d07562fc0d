"""A seed whose worker process died, run again alone.

A native implementation can take the whole process down (a signal it does
not survive, an abort); in a campaign that breaks the worker pool, and the
seeds it ran leave no trace. Each such seed runs again here, in a child
process of its own that writes every event to a file before applying it.
If the child dies too, the file ends with the event it died in, and the
seed becomes a NodeException finding whose trace holds every event up to
and including that one. The child's `faulthandler` writes the Python stack
it died in to a second file, and the finding names its innermost frames (a
native death's door call and the library function under it), as a Python
exception's finding does. Nothing here knows which implementation it runs.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import json
import multiprocessing
import os
import re
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from virtraft.check.checker import Checker
from virtraft.run.factory import load_factory
from virtraft.run.seed import resolve_options
from virtraft.sim.events import Event, Tick, acting_nodes, event_from_json, event_to_json
from virtraft.sim.simulation import Simulation, where_lines
from virtraft.trace.format import digest, read_trace, trace_lines
from virtraft.trace.replay import replay_events

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


@dataclass(frozen=True, slots=True)
class ChildEnd:
    """How a child process ended: its result (JSON) when it finished, else
    why it died, the events it began, and the innermost frames it died in."""

    result: Any
    died: str | None
    events: list[Event]
    where: list[str]


def _child(work: Callable[..., Any], args: tuple[Any, ...], paths: tuple[str, str, str]) -> None:
    record_path, stack_path, result_path = paths
    with open(record_path, "w") as record, open(stack_path, "w") as stack:
        # A death Python cannot catch still leaves its Python stack here.
        faulthandler.enable(file=stack, all_threads=False)
        _RecordingSimulation.record = record
        result = work(*args, simulation=_RecordingSimulation)
    Path(result_path).write_text(json.dumps(result))


def run_in_child(work: Callable[..., Any], *args: Any) -> ChildEnd:
    """`work(*args, simulation=...)` in a process of its own, its simulation
    writing each event before it applies it. `work` returns plain data (JSON)."""
    with tempfile.TemporaryDirectory(prefix="virtraft-isolated-") as tmp:
        paths = tuple(os.path.join(tmp, name) for name in ("events.jsonl", "stack.txt", "end.json"))
        child = multiprocessing.get_context("spawn").Process(
            target=_child, args=(work, args, paths)
        )
        child.start()
        child.join()
        if child.exitcode == 0 and os.path.exists(paths[2]):
            return ChildEnd(json.loads(Path(paths[2]).read_text()), None, [], [])
        return ChildEnd(None, _death(child.exitcode), _recorded(paths[0]), _stack(paths[1]))


def _seed_in_child(
    seed: int, spec: CampaignSpec, run_one: RunOne, *, simulation: type[Simulation]
) -> dict[str, Any]:
    return dataclasses.asdict(run_one(seed, spec, simulation=simulation))


def _replay_in_child(
    trace_path: str, factory: str, *, simulation: type[Simulation]
) -> dict[str, Any]:
    trace = read_trace(trace_path)
    sim = simulation(trace.options, trace.seed, load_factory(factory), checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    found = violation and [violation.invariant, violation.step]
    return {"violation": found, "diverged": diverged and [diverged, why]}


def replay_isolated(trace_path: str, factory: str) -> ChildEnd:
    """Replay a trace in a process of its own, for a trace whose server's
    process died (its last event would take this process down too). A child
    that finishes returns {"violation": [invariant, step] or None,
    "diverged": [step, why] or None}."""
    return run_in_child(_replay_in_child, trace_path, factory)


def run_isolated(
    seed: int, spec: CampaignSpec, run_one: RunOne, seed_result: type[SeedResult]
) -> SeedResult:
    """Run one seed in a child process; a child that dies is a finding."""
    end = run_in_child(_seed_in_child, seed, spec, run_one)
    if end.died is None:
        return seed_result(**end.result)
    return _died(seed, spec, end.events, end.died, end.where, seed_result)


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


_FRAME = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+) in (?P<name>.+)$')


def _stack(path: str) -> list[str]:
    """The innermost frames of the stack faulthandler wrote as the child died
    (it writes the innermost first); none when it died without a dump, as
    an exit does."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return []
    frames = []
    for line in lines:
        match = _FRAME.match(line)
        if match is not None:
            frames.append((match["file"], int(match["line"]), match["name"]))
        elif frames:  # the stack ends at the first line that is not a frame
            break
    return where_lines(reversed(frames))


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"died of {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"died of signal {-exitcode}"
    return f"exited with status {exitcode}"


def _died(
    seed: int,
    spec: CampaignSpec,
    events: list[Event],
    why: str,
    where: list[str],
    seed_result: type[SeedResult],
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
        "witness": {"exception": "ProcessDied", "message": why, "where": where},
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
        process_died=why,
    )
    if spec.out_dir is not None:
        out = Path(spec.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"seed-{seed}.jsonl"
        path.write_text("".join(line + "\n" for line in lines))
        result = dataclasses.replace(result, trace=str(path))
    return result
