"""The report's navigable part: the whole run as compact JSON, drawn by inline JS.

Why data and a script rather than more SVG: a 20,000-step run drawn in
full is megabytes of markup, while its facts are small. The page embeds
each node's state only where it changed (role, term, vote, commit, last
index) and its log's tail only where that changed; the script
(`navigate.js`, inlined) rebuilds any step's state by a binary search and
draws the diagram for whatever window the reader picks. Nothing is fetched.

`decisive_steps` is the hook the verdict's cause fills: the steps to
highlight and link between the diagram, the events table and the verdict.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from virtraft.report.cause import Cause
from virtraft.report.diagram import partition_spans
from virtraft.report.observe import Arrow, Loss, Replay, event_text
from virtraft.sim.events import (
    EVENT_TYPES,
    ChangeMembership,
    ClientInvoke,
    ClientRequest,
    CompleteIO,
    Crash,
    Deliver,
    Drop,
    Duplicate,
    Event,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
    Tick,
)
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import Trace

__all__ = ["StateLog", "decisive_steps", "page_data", "script"]

_ENUM = re.compile(r"<\w+\.(\w+): [^>]*>")
_NONE = re.compile(r", \w+=None\b")
TAIL_ENTRIES = 6  # log entries shown per node in an event's before/after
ROLE_CODES = ("follower", "precandidate", "candidate", "leader", "down")
# Event kinds in the page's data, by index (the script names them the same).
# Every kind the simulator knows, from its one table: a new kind can never
# be missing here (a report would stop at its first event of that kind).
EVENT_KINDS: tuple[type[Event], ...] = tuple(EVENT_TYPES.values())


@dataclass(slots=True)
class StateLog:
    """Watches a replay (`replay_trace(watch=...)`): each node's state where
    it changed, and its log's tail where that changed."""

    states: dict[int, list[list[Any]]] = field(default_factory=dict)
    tails: dict[int, list[list[Any]]] = field(default_factory=dict)
    _last: dict[int, tuple] = field(default_factory=dict)
    _last_tail: dict[int, tuple] = field(default_factory=dict)
    _shadow: dict[int, dict[int, tuple[int, int, str] | None]] = field(default_factory=dict)

    def __call__(self, step: int, sim: Simulation) -> None:
        for node_id in sim.node_ids:
            node = sim.nodes[node_id]
            alive = node.alive
            role = str(node.role.value) if alive else "down"
            code = ROLE_CODES.index(role) if role in ROLE_CODES else 0
            last = node.last_index
            snap = node.snapshot_index
            state = (
                code,
                node.term,
                node.voted_for,
                node.commit_index if alive else -1,
                last,
                snap,
            )
            if self._last.get(node_id) != state:
                self._last[node_id] = state
                self.states.setdefault(node_id, []).append([step, *state])
            if not alive:
                continue
            brief = (last, snap, node.entry(last))
            if self._last_tail.get(node_id) == brief:
                continue
            self._last_tail[node_id] = brief
            shadow = self._shadow.setdefault(node_id, {})
            first = max(snap + 1, last - TAIL_ENTRIES + 1, 1)
            changed = last + 1
            window = []
            for index in range(first, last + 1):
                got = node.entry(index)
                kind = node.entry_kind(index) if got is not None else ""
                cell = (got[0], got[1], "" if kind == "normal" else kind) if got else None
                window.append(cell)
                if shadow.get(index) != cell and changed > last:
                    changed = index
            for index in [i for i in shadow if i < first or i > last]:
                del shadow[index]
            cells = []
            for index, cell in zip(range(first, last + 1), window, strict=True):
                shadow[index] = cell
                if index >= changed:
                    cells.append(_cell(cell))
            # [step, first index written, last index, entries from there]: a
            # reader takes each index from the latest record that wrote it.
            self.tails.setdefault(node_id, []).append([step, changed, last, cells])


def _cell(cell: tuple[int, int, str] | None) -> list[Any]:
    """A log entry as [term, id] or [term, id, kind]; [] where compacted."""
    if cell is None:
        return []
    term, entry_id, kind = cell
    return [term, entry_id, kind] if kind else [term, entry_id]


def _witness_steps(value: Any, path: str = "") -> list[tuple[int, str]]:
    """Every step a violation's witness names (keys ending in `step`)."""
    found: list[tuple[int, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else str(key)
            if str(key).endswith("step") and isinstance(item, int):
                found.append((item, f"witness: {name}"))
            else:
                found += _witness_steps(item, name)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _witness_steps(item, f"{path}[{i}]")
    return found


def decisive_steps(
    violation: dict[str, Any] | None, steps: int, cause: Cause | None = None
) -> list[tuple[int, str]]:
    """The steps that decide the verdict, each with why, in step order: the
    step where the invariant was seen broken and the decisive events of its
    cause (`virtraft.report.cause`: the commit that was lost, the votes of
    the election that lost it...), or, without a cause, the steps its
    witness names. Every part of the page highlights and links them."""
    if not violation:
        return []
    found: dict[int, str] = {}
    step = violation.get("step")
    if isinstance(step, int):
        found[step] = f"{violation.get('invariant')} seen broken"
    if cause is not None:
        for d in cause.decisive:
            found[d.step] = f"{found[d.step]}; {d.what}" if d.step in found else d.what
    else:
        for at, why in _witness_steps(violation.get("witness") or {}):
            found.setdefault(at, why)
    return sorted((s, w) for s, w in found.items() if 1 <= s <= steps)


def _event_row(event: Event, kinds: dict[str, int]) -> list[Any]:
    """One event as [kind, fields...]: what the script needs to name it."""
    code = next(i for i, cls in enumerate(EVENT_KINDS) if isinstance(event, cls))
    if isinstance(event, Tick):
        return [code, event.node, event.ms]
    if isinstance(event, Deliver | Drop | Duplicate):
        return [code, event.src, event.dst, kinds.setdefault(event.msg, len(kinds))]
    if isinstance(event, ClientRequest):
        return [code, event.node]
    if isinstance(event, Crash | Restart | TakeSnapshot | CompleteIO):
        return [code, event.node]
    if isinstance(event, ChangeMembership):
        return [code, event.via]
    if isinstance(event, ClientInvoke):
        return [code, event.client, event.op, event.key]
    return [code]


def page_data(
    trace: Trace,
    replay: Replay,
    states: StateLog,
    *,
    focus: tuple[int, int, int | None],
    violation: dict[str, Any] | None,
    decisive: list[tuple[int, str]],
    roles_of: dict[str, str],
) -> dict[str, Any]:
    """Everything the script draws, as plain JSON data."""
    steps = replay.steps
    events = trace.events[:steps]
    kinds: dict[str, int] = {}
    for kind in sorted({a.kind for a in replay.arrows} | {x.kind for x in replay.losses}):
        kinds.setdefault(kind, len(kinds))
    rows = [_event_row(e, kinds) for e in events]
    # Rare events keep their words; common ones are named by the script.
    text: dict[str, str] = {}
    for step, event in enumerate(events, start=1):
        if isinstance(event, ClientRequest | ChangeMembership | Partition | Heal):
            text[str(step)] = event_text(event, replay, step)
    clock = replay.clock_ms
    deltas = [clock[0]] + [clock[i] - clock[i - 1] for i in range(1, len(clock))]
    texts: dict[str, int] = {}
    arrows = [_arrow(a, kinds, texts) for a in replay.arrows]
    losses = [_loss(x, kinds) for x in replay.losses]
    notes = replay.notes
    marks = [  # a mark's words are the step's note when it has one
        [m.step, -1 if m.node is None else m.node, m.kind, _unless_noted(m.text, notes.get(m.step))]
        for m in replay.marks
    ]
    segments = {
        str(node): [
            [s.start, s.end, ROLE_CODES.index(s.state) if s.state in ROLE_CODES else 0, s.term]
            for s in replay.segments.get(node, ())
        ]
        for node in replay.nodes
    }
    partitions = [[a, b, words] for a, b, words in partition_spans(replay)]
    start, end, at = focus
    phase = trace.options.steps + 1
    return {
        "steps": steps,
        "nodes": list(replay.nodes),
        "roles": list(ROLE_CODES),
        "kinds": list(kinds),
        "kindRoles": [roles_of.get(k, "") for k in kinds],
        "eventKinds": [cls.__name__ for cls in EVENT_KINDS],
        "ms": deltas,
        "ev": rows,
        "text": text,
        "notes": {str(s): n for s, n in sorted(replay.notes.items())},
        "partitions": partitions,
        "arrows": arrows,
        "messageTexts": list(texts),
        "losses": losses,
        "marks": marks,
        "segments": segments,
        "states": {str(n): v for n, v in sorted(states.states.items())},
        "tails": {str(n): v for n, v in sorted(states.tails.items())},
        "window": [start, end],
        "violationStep": at,
        "violation": violation,
        "decisive": [[s, w] for s, w in decisive],
        "phase": phase if phase <= steps and isinstance(events[phase - 1], Heal) else None,
    }


def _arrow(a: Arrow, kinds: dict[str, int], texts: dict[str, int]) -> list[Any]:
    flags = (1 if a.entries else 0) | (2 if a.prevote else 0) | (4 if a.to_down else 0)
    text = texts.setdefault(short_message(a.kind, a.text), len(texts))
    return [a.src, a.dst, kinds[a.kind], a.send_step, a.step, flags, a.entries, text]


def short_message(kind: str, text: str) -> str:
    """A message's text without what the page shows beside it or what says
    nothing: its kind around the fields, enum reprs, fields that are None."""
    if text.startswith(kind + "(") and text.endswith(")"):
        text = text[len(kind) + 1 : -1]
    text = _ENUM.sub(r"\1", text)
    return _NONE.sub("", text)


def _loss(x: Loss, kinds: dict[str, int]) -> list[Any]:
    return [x.src, x.dst, kinds[x.kind], -1 if x.send_step is None else x.send_step, x.step, x.how]


def _unless_noted(text: str, notes: list[str] | None) -> str:
    return "" if notes and any(text.startswith(n) for n in notes) else text


def data_script(data: dict[str, Any]) -> str:
    """The data as a JSON script element; every `<` is escaped, so no text
    from a trace can close the element or open a comment."""
    text = json.dumps(data, separators=(",", ":")).replace("<", "\\u003c")
    return f'<script type="application/json" id="report-data">{text}</script>'


def script() -> str:
    """The page's script, inlined."""
    return resources.files("virtraft.report").joinpath("navigate.js").read_text(encoding="utf-8")
