"""Traces: JSON Lines, one header, one line per event, one verdict.

A trace is data, never code: reading one checks every line and raises a
TraceError naming the line and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtraft import __version__
from virtraft.sim.events import Event, EventError, event_from_json, event_to_json
from virtraft.sim.options import OptionsError, SimOptions

FORMAT_VERSION = 1


class TraceError(ValueError):
    """A trace file cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Trace:
    seed: int
    options: SimOptions
    factory: str
    events: tuple[Event, ...]
    verdict: dict[str, Any]
    header: dict[str, Any]


def versions() -> dict[str, str]:
    return {"virtraft": __version__, "python": platform.python_version()}


def trace_lines(
    seed: int, options: SimOptions, factory: str, events: Iterable[Event],
    verdict: dict[str, Any], extra: dict[str, Any] | None = None,
) -> list[str]:
    header = {
        "type": "header",
        "format": FORMAT_VERSION,
        "seed": seed,
        "factory": factory,
        "options": options.to_json(),
        "versions": versions(),
    }
    if extra:
        header.update(extra)
    dumps = json.dumps
    lines = [dumps(header, sort_keys=True)]
    for step, event in enumerate(events, start=1):
        record = event_to_json(event)
        record["step"] = step
        lines.append(dumps(record, separators=(",", ":")))
    lines.append(dumps({"type": "verdict", **verdict}, sort_keys=True))
    return lines


def digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def write_trace(path: str | Path, lines: Iterable[str]) -> None:
    Path(path).write_text("".join(line + "\n" for line in lines))


def read_trace(path: str | Path) -> Trace:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise TraceError(f"{path} is not a text file") from None
    lines = text.rstrip().splitlines()
    if not lines:
        raise TraceError(f"{path} is empty")
    header = _parse(path, 1, lines[0])
    if header.get("type") != "header":
        raise TraceError(f"{path}:1: the first line must be the trace header")
    if header.get("format") != FORMAT_VERSION:
        raise TraceError(
            f"{path}:1: trace format {header.get('format')!r} is not {FORMAT_VERSION}"
        )
    seed = header.get("seed")
    if type(seed) is not int:
        raise TraceError(f"{path}:1: header.seed must be an integer")
    factory = header.get("factory")
    if not isinstance(factory, str):
        raise TraceError(f"{path}:1: header.factory must be a string")
    try:
        options = SimOptions.from_json(header.get("options"))
    except OptionsError as exc:
        raise TraceError(f"{path}:1: {exc}") from None
    last = _parse(path, len(lines), lines[-1])
    if last.get("type") != "verdict":
        raise TraceError(
            f"{path}:{len(lines)}: the trace ends without a verdict line (truncated?)"
        )
    for name in ("violation", "liveness"):
        if last.get(name) is not None and not isinstance(last.get(name), dict):
            raise TraceError(f"{path}:{len(lines)}: verdict.{name} must be an object or null")
    events = []
    for number, line in enumerate(lines[1:-1], start=2):
        record = _parse(path, number, line)
        try:
            events.append(event_from_json(record))
        except EventError as exc:
            raise TraceError(f"{path}:{number}: {exc}") from None
    return Trace(seed, options, factory, tuple(events), last, header)


def _parse(path: str | Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise TraceError(f"{path}:{number}: expected a JSON object")
    return record
