"""Traces: JSON Lines, one header, one line per event, one verdict.

A trace is data, never code: reading one checks every line and raises a
TraceError naming the line and what is wrong with it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from virtraft import __version__
from virtraft.sim.events import Event, EventError, event_from_json, event_to_json, json_type
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
    seed: int,
    options: SimOptions,
    factory: str,
    events: Iterable[Event],
    verdict: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> list[str]:
    return list(iter_trace_lines(seed, options, factory, events, verdict, extra))


def iter_trace_lines(
    seed: int,
    options: SimOptions,
    factory: str,
    events: Iterable[Event],
    verdict: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> Iterator[str]:
    """The trace's lines one at a time: a long run's trace is written or
    digested without ever being held whole."""
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
    yield dumps(header, sort_keys=True)
    for step, event in enumerate(events, start=1):
        record = event_to_json(event)
        record["step"] = step
        yield dumps(record, separators=(",", ":"))
    yield dumps({"type": "verdict", **verdict}, sort_keys=True)


def digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def write_trace(path: str | Path, lines: Iterable[str]) -> None:
    """Write line by line (buffered), so `lines` may be a generator."""
    with Path(path).open("w") as file:
        for line in lines:
            file.write(line)
            file.write("\n")


def read_trace(path: str | Path) -> Trace:
    try:
        text = _read_text(path)
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
    if type(header.get("format")) is not int or header["format"] != FORMAT_VERSION:
        raise TraceError(f"{path}:1: trace format {header.get('format')!r} is not {FORMAT_VERSION}")
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
    _check_record(path, 1, "header", header, HEADER_FIELDS)
    last = _parse(path, len(lines), lines[-1])
    if last.get("type") != "verdict":
        raise TraceError(f"{path}:{len(lines)}: the trace ends without a verdict line (truncated?)")
    for name in ("violation", "liveness"):
        if last.get(name) is not None and not isinstance(last.get(name), dict):
            raise TraceError(f"{path}:{len(lines)}: verdict.{name} must be an object or null")
    _check_record(path, len(lines), "verdict", last, VERDICT_FIELDS)
    for name, fields in (("violation", VIOLATION_FIELDS), ("liveness", LIVENESS_FIELDS)):
        if last.get(name) is not None:
            _check_record(path, len(lines), f"verdict.{name}", last[name], fields)
    events = []
    for number, line in enumerate(lines[1:-1], start=2):
        record = _parse(path, number, line)
        try:
            events.append(event_from_json(record))
        except EventError as exc:
            raise TraceError(f"{path}:{number}: {exc}") from None
    return Trace(seed, options, factory, tuple(events), last, header)


def _whole(value: Any) -> bool:
    return type(value) is int and value >= 0


# Fields of the header and the verdict that commands read, beyond those
# checked on the way (type, format, seed, factory, options): (what is
# expected, the check, whether the field must be there).
_Fields = dict[str, tuple[str, Callable[[Any], bool], bool]]
HEADER_FIELDS: _Fields = {
    "versions": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        False,
    ),
}
VERDICT_FIELDS: _Fields = {
    "safety": ("a string", lambda v: isinstance(v, str), False),
    "steps": ("a whole number", _whole, False),
    "clock_ms": ("a whole number", _whole, False),
    "stats": ("an object", lambda v: isinstance(v, dict), False),
}
VIOLATION_FIELDS: _Fields = {
    "invariant": ("a string", lambda v: isinstance(v, str), True),
    "step": ("a whole number", _whole, True),
    "nodes": ("a list of node ids", lambda v: isinstance(v, list) and all(map(_whole, v)), False),
    "message": ("a string", lambda v: isinstance(v, str), False),
    "witness": ("an object", lambda v: isinstance(v, dict), False),
}
LIVENESS_FIELDS: _Fields = {
    "verdict": ("a string", lambda v: isinstance(v, str), False),
    "reason": ("a string", lambda v: isinstance(v, str), False),
    "leader_at_ms": ("a whole number or null", lambda v: v is None or _whole(v), False),
    "committed_at_ms": ("a whole number or null", lambda v: v is None or _whole(v), False),
    # Since the core phase and the progress monitor (older traces lack them):
    "name": ("a string or null", lambda v: v is None or isinstance(v, str), False),
    "took_ms": ("a whole number or null", lambda v: v is None or _whole(v), False),
    "phase": ("an object or null", lambda v: v is None or isinstance(v, dict), False),
    "blocked": ("a string or null", lambda v: v is None or isinstance(v, str), False),
    "witness": ("an object or null", lambda v: v is None or isinstance(v, dict), False),
    "slow": (
        "a list of objects",
        lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v),
        False,
    ),
    "monitored": ("true or false", lambda v: isinstance(v, bool), False),
}


def _check_record(
    path: str | Path, number: int, where: str, record: dict[str, Any], fields: _Fields
) -> None:
    for name, (expected, check, required) in fields.items():
        if name not in record:
            if required:
                raise TraceError(f"{path}:{number}: {where}.{name} is missing")
            continue
        if not check(record[name]):
            raise TraceError(
                f"{path}:{number}: {where}.{name} must be {expected}, got {json_type(record[name])}"
            )


def _read_text(path: str | Path) -> str:
    """The text of a regular file. It is opened without waiting: a FIFO (or
    a terminal, a device) is refused, where reading it could block forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TraceError(f"{path} is not a regular file")
        return file.read().decode("utf-8")


def _parse(path: str | Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise TraceError(f"{path}:{number}: JSON nested too deeply") from None
    except ValueError:  # an integer longer than int() reads
        raise TraceError(
            f"{path}:{number}: a number with more than {sys.get_int_max_str_digits()} digits"
        ) from None
    if not isinstance(record, dict):
        raise TraceError(f"{path}:{number}: expected a JSON object")
    _check_json(path, number, line, record)
    return record


# No line of a trace this version writes is nested deeper than a few levels.
MAX_DEPTH = 32


def _check_json(path: str | Path, number: int, line: str, record: dict[str, Any]) -> None:
    """Refuse what json.loads lets through but no trace holds: nesting deep
    enough to exhaust the stack of whatever walks it, and strings with a lone
    surrogate (an escape like \\ud800), which are not text and cannot be
    written out again. Both checks are skipped for lines that cannot need them."""
    if line.count("[") + line.count("{") > MAX_DEPTH and _depth(record) > MAX_DEPTH:
        raise TraceError(f"{path}:{number}: JSON nested deeper than {MAX_DEPTH} levels")
    if "\\u" in line:
        try:
            json.dumps(record, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise TraceError(
                f"{path}:{number}: a string holds a lone surrogate (an escape "
                "\\ud800 to \\udfff without its pair), which is not text"
            ) from None


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion."""
    deepest = 0
    todo = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                todo.extend((child, depth + 1) for child in item)
    return deepest
