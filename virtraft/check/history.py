"""What clients were told: a history of operations on a key-value store.

A history is what a linearizability checker reads, whoever recorded it: the
simulator's clients, or a real system's (Jepsen, a test harness, logs). Its
file is JSON, documented in docs/linearizability.md:

    {"format": "virtraft-history", "version": 1,
     "operations": [
        {"client": 1, "op": "write", "key": "x", "value": 3,
         "invoke": 10, "complete": 25, "status": "ok"},
        {"client": 2, "op": "read", "key": "x", "output": 3,
         "invoke": 12, "complete": 30, "status": "ok"},
        {"client": 3, "op": "cas", "key": "x", "expected": 3, "value": 4,
         "output": true, "invoke": 40, "complete": null, "status": "unknown"}]}

`status` is what the client learnt: "ok" (it took effect and returned
`output`), "fail" (it certainly did not take effect), or "unknown" (a
timeout: it may have taken effect at any time after `invoke`, or never).
Times are numbers on one clock (virtual milliseconds in the simulator).
Values are any JSON scalars; a key never written reads as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HISTORY_FORMAT = "virtraft-history"
HISTORY_VERSION = 1

OPS = ("read", "write", "cas")
STATUSES = ("ok", "fail", "unknown")
Scalar = str | int | float | bool | None


class HistoryError(ValueError):
    """A history file or record cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation, from its invocation to what the client was told."""

    client: int | str
    op: str  # "read", "write" or "cas"
    key: str
    invoke: float
    complete: float  # math.inf when the outcome is unknown
    status: str  # "ok", "fail" or "unknown"
    value: Scalar = None  # what a write or a cas writes
    expected: Scalar = None  # what a cas compares with
    output: Scalar = None  # what a read returned; a cas: whether it swapped

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "client": self.client,
            "op": self.op,
            "key": self.key,
            "invoke": self.invoke,
            "complete": None if math.isinf(self.complete) else self.complete,
            "status": self.status,
        }
        if self.op != "read":
            record["value"] = self.value
        if self.op == "cas":
            record["expected"] = self.expected
        if self.op != "write" and self.status == "ok":
            record["output"] = self.output
        return record

    def text(self) -> str:
        """The operation as a person reads it: `c1 cas(x, 3 -> 4) = true`."""
        if self.op == "read":
            call = f"read({self.key})"
        elif self.op == "write":
            call = f"write({self.key}, {json.dumps(self.value)})"
        else:
            call = f"cas({self.key}, {json.dumps(self.expected)} -> {json.dumps(self.value)})"
        if self.status == "ok" and self.op != "write":
            call += f" = {json.dumps(self.output)}"
        elif self.status != "ok":
            call += f" ({self.status})"
        end = "?" if math.isinf(self.complete) else f"{self.complete:g}"
        return f"client {self.client}: {call} [{self.invoke:g}, {end}]"


def operation_from_json(record: Any, where: str = "operation") -> Operation:
    """One operation from its JSON record; HistoryError says what is wrong."""
    if not isinstance(record, Mapping):
        raise HistoryError(f"{where}: expected an object, got {type(record).__name__}")
    op = record.get("op")
    if op not in OPS:
        raise HistoryError(f"{where}: 'op' must be one of {', '.join(OPS)}, got {op!r}")
    status = record.get("status")
    if status not in STATUSES:
        raise HistoryError(
            f"{where}: 'status' must be one of {', '.join(STATUSES)}, got {status!r}"
        )
    key = record.get("key")
    if not isinstance(key, str | int) or isinstance(key, bool):
        raise HistoryError(f"{where}: 'key' must be a string or an integer")
    client = record.get("client", 0)
    if not isinstance(client, str | int) or isinstance(client, bool):
        raise HistoryError(f"{where}: 'client' must be a string or an integer")
    invoke = _time(record.get("invoke"), f"{where}: 'invoke'")
    complete_raw = record.get("complete")
    if complete_raw is None:
        if status != "unknown":
            raise HistoryError(f"{where}: an operation with status {status!r} needs 'complete'")
        complete = math.inf
    else:
        complete = _time(complete_raw, f"{where}: 'complete'")
        if complete < invoke:
            raise HistoryError(f"{where}: 'complete' ({complete}) is before 'invoke' ({invoke})")
    if status == "unknown":
        complete = math.inf  # it may take effect any time after its invocation
    for name in ("value", "expected", "output"):
        if not isinstance(record.get(name), str | int | float | bool | type(None)):
            raise HistoryError(f"{where}: {name!r} must be a JSON scalar")
    if op == "cas" and status == "ok" and not isinstance(record.get("output"), bool):
        raise HistoryError(f"{where}: a cas with status 'ok' needs a boolean 'output'")
    return Operation(
        client,
        op,
        str(key),
        invoke,
        complete,
        status,
        record.get("value"),
        record.get("expected"),
        record.get("output"),
    )


def _time(raw: Any, where: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise HistoryError(f"{where} must be a finite number")
    return float(raw)


def history_to_json(operations: Iterable[Operation]) -> dict[str, Any]:
    return {
        "format": HISTORY_FORMAT,
        "version": HISTORY_VERSION,
        "operations": [o.to_json() for o in operations],
    }


def history_from_json(document: Any, source: str = "history") -> list[Operation]:
    if isinstance(document, list):  # a bare list of operations is accepted too
        records = document
    elif isinstance(document, Mapping):
        if document.get("format", HISTORY_FORMAT) != HISTORY_FORMAT:
            raise HistoryError(f"{source}: not a {HISTORY_FORMAT} file")
        if document.get("version", HISTORY_VERSION) != HISTORY_VERSION:
            raise HistoryError(
                f"{source}: version {document.get('version')!r}; this virtraft reads "
                f"version {HISTORY_VERSION}"
            )
        records = document.get("operations")
        if not isinstance(records, list):
            raise HistoryError(f"{source}: 'operations' must be a list")
    else:
        raise HistoryError(f"{source}: expected an object with 'operations'")
    return [operation_from_json(r, f"{source}: operation {i}") for i, r in enumerate(records)]


def read_history(path: str) -> list[Operation]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: cannot read: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HistoryError(f"{path}: not JSON: {exc}") from None
    return history_from_json(document, path)


def write_history(path: str, operations: Iterable[Operation]) -> None:
    Path(path).write_text(json.dumps(history_to_json(operations), indent=1) + "\n")
