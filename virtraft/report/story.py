"""A trace told step by step in the terminal: what each event did, and why.

A shrunk counterexample is short enough to read whole. This prints it as a
table (step, virtual clock, the event, what changed in the servers) from
the observed replay that also names the verdict's cause
(`virtraft.report.cause`), and ends with the verdict and its cause, so the
person handed a failure reads the bug rather than decodes it: role changes
say why (an election timeout, a higher term from node 4), votes show both
logs' last (term, index) as §5.4.1 compares them, refusals give the
server's reason, and the decisive steps are marked.

Plain text for people (readable at 80 columns: long text wraps, nothing is
cut) and JSON for programs; filters by node, by message type and without
the ticks that changed nothing. Decisive steps are never filtered out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from virtraft.adapter import NodeFactory, Role
from virtraft.report.cause import (
    Cause,
    Explained,
    NodeChange,
    explain_trace,
    pos_text,
    up_to_date,
)
from virtraft.report.observe import Arrow, Mark, event_text
from virtraft.report.terminal import shown
from virtraft.sim.events import Deliver, Drop, Duplicate, Event, Restart, Tick, acting_nodes
from virtraft.trace.format import Trace

# `virtraft shrink` tells the story of a result up to this long by itself.
STORY_MAX_EVENTS = 80
DECISIVE = "▶"  # marks a decisive step
# Marks whose text is news a node's state does not show.
_MARK_KINDS = ("client", "member", "snapshot", "install", "dup")


@dataclass(frozen=True, slots=True)
class StoryFilter:
    """Which rows to show: one node's, one message type's, without the ticks
    that changed nothing. Decisive rows are always shown."""

    node: int | None = None
    message_type: str | None = None
    ticks: bool = True

    def keeps(self, row: StoryRow) -> bool:
        if row.decisive:
            return True
        if self.node is not None and self.node not in row.nodes:
            return False
        if self.message_type is not None and row.message.lower() != self.message_type.lower():
            return False
        return self.ticks or row.kind != "tick" or bool(row.changes)


@dataclass(frozen=True, slots=True)
class StoryRow:
    """One event: what it was, what it changed, and whether it was decisive."""

    step: int
    ms: int
    kind: str  # the event's kind: deliver, tick, crash, ...
    message: str  # the message type for deliver, drop and duplicate; else ""
    nodes: tuple[int, ...]  # the nodes it involved: acted on, sent by, or changed
    event: str
    changes: tuple[str, ...]
    decisive: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "ms": self.ms,
            "kind": self.kind,
            "message": self.message,
            "nodes": list(self.nodes),
            "event": self.event,
            "changes": list(self.changes),
            "decisive": self.decisive,
        }


def story_rows(explained: Explained) -> list[StoryRow]:
    """One row per event the replay applied (all of them, unless it diverged)."""
    replay = explained.replay
    history = explained.history
    decisive = set(explained.cause.steps) if explained.cause is not None else set()
    marks: dict[int, list[Mark]] = {}
    for mark in replay.marks:
        if mark.kind in _MARK_KINDS:
            marks.setdefault(mark.step, []).append(mark)
    rows = []
    for step, event in enumerate(explained.trace.events, start=1):
        if step > replay.steps:
            break
        changes: list[str] = []
        changed = history.changed_at.get(step, [])
        for node in changed:
            changes.extend(_node_changes(explained, node, step, event))
        refusal = history.refusals.get(step)
        if refusal is not None:
            changes.append(f"node {refusal[0]} refused it: {refusal[1]}")
        changes.extend(m.text for m in marks.get(step, []))
        nodes = set(acting_nodes(event)) | set(changed)
        message = ""
        if isinstance(event, Deliver | Drop | Duplicate):
            nodes.add(event.src)
            message = event.msg
        rows.append(
            StoryRow(
                step,
                replay.ms(step),
                event.kind,
                message,
                tuple(sorted(nodes)),
                event_text(event, replay, step),
                tuple(changes),
                step in decisive,
            )
        )
    return rows


def _node_changes(explained: Explained, node: int, step: int, event: Event) -> list[str]:
    """What changed in one node at `step`, with the reason where the trace tells it."""
    history = explained.history
    after = history.at(node, step)
    before = history.at(node, step - 1)
    if after is None:
        return []
    if before is None:
        return [f"node {node} joins as {after.role} in term {after.term}"] if step else []
    out = []
    if after.role == "down":
        return [] if before.role == "down" else [f"node {node} is down"]
    if isinstance(event, Restart):
        out.append(
            f"node {node} is back as {after.role} of term {after.term}, vote "
            f"{_vote_words(after.vote)}, log ending {pos_text(after.last)}"
        )
    elif after.role != before.role:
        out.append(
            f"node {node} became {after.role} in term {after.term} "
            f"({_why_role(explained, node, step, before, after, event)})"
        )
    elif after.term != before.term:
        why = _from_whom(explained, step, event)
        if isinstance(event, Tick) and after.role == Role.CANDIDATE:
            why = " (election timeout: a new election)"
        out.append(f"node {node} moved to term {after.term} as {after.role}{why}")
    if after.vote != before.vote and after.vote is not None and after.vote != node:
        out.append(_vote_text(explained, node, step, after))
    elif after.vote is None and before.vote is not None and after.term == before.term:
        out.append(f"node {node} forgot its vote for node {before.vote} in term {after.term}")
    if after.alive and before.alive and after.commit != before.commit:
        verb = "committed through" if after.commit > before.commit else "moved its commit back to"
        out.append(f"node {node} {verb} index {after.commit}")
    if after.last != before.last and not isinstance(event, Restart):
        out.append(_log_text(node, before, after))
    if after.snapshot_index != before.snapshot_index and not isinstance(event, Restart):
        out.append(f"node {node}'s snapshot now covers through index {after.snapshot_index}")
    return out


def _vote_words(vote: int | None) -> str:
    return "none" if vote is None else f"node {vote}"


def _from_whom(explained: Explained, step: int, event: Event) -> str:
    arrow = explained.replay.at_step.get(step)
    if isinstance(event, Deliver) and arrow is not None:
        return f" (a higher term in node {event.src}'s {event.msg})"
    return ""


def _why_role(
    explained: Explained,
    node: int,
    step: int,
    before: NodeChange,
    after: NodeChange,
    event: Event,
) -> str:
    """Why a node's role changed, in a few words."""
    role = after.role
    if role in (Role.CANDIDATE, Role.PRECANDIDATE):
        why = "election timeout" if isinstance(event, Tick) else "starts an election"
        if role == Role.PRECANDIDATE:
            return f"{why}: asks for pre-votes first"
        return f"{why}: votes for itself" if after.vote == node else f"{why}, NOT voting for itself"
    if role == Role.LEADER:
        voters = [
            n
            for n in explained.history.nodes()
            if n != node
            and (s := explained.history.at(n, step)) is not None
            and s.term == after.term
            and s.vote == node
        ]
        votes = ", ".join(map(str, [node, *voters]))
        return f"won the election: recorded votes of nodes {votes}"
    # Stepping down, or back to follower.
    if isinstance(event, Deliver):
        if after.term > before.term:
            return f"stepped down: a higher term ({after.term}) from node {event.src}"
        return f"stepped down: node {event.src}'s {event.msg} of term {after.term}"
    if isinstance(event, Tick):
        return "stepped down at its own tick (e.g. check-quorum: no majority heard)"
    return f"on {event.kind}"


def _vote_text(explained: Explained, node: int, step: int, after: NodeChange) -> str:
    history = explained.history
    candidate = after.vote
    assert candidate is not None
    mine = history.last_log(node, step - 1)
    arrow = explained.replay.at_step.get(step)
    asked = step - 1
    if isinstance(arrow, Arrow) and arrow.src == candidate:
        asked = arrow.send_step  # the candidate's log when it asked
    theirs = history.last_log(candidate, asked)
    verdict = "§5.4.1 allows it" if up_to_date(theirs, mine) else "§5.4.1 FORBIDS it"
    return (
        f"node {node} voted for node {candidate} in term {after.term}: its log ends "
        f"{pos_text(mine)}, the candidate's {pos_text(theirs)} ({verdict})"
    )


def _log_text(node: int, before: NodeChange, after: NodeChange) -> str:
    (old_term, old_last), (term, last) = before.last, after.last
    if last > old_last and term >= old_term:
        what = f"index {last}" if last == old_last + 1 else f"indexes {old_last + 1}-{last}"
        return f"node {node} appended {what} (term {term})"
    return f"node {node}'s log now ends {pos_text(after.last)} (was {pos_text(before.last)})"


# ----------------------------------------------------------------- output


def story_table(rows: list[StoryRow], total: int) -> Table:
    """The rows as a table that wraps to the console's width, never cuts."""
    shown_rows = len(rows)
    title = f"Step by step ({total} events"
    title += f", {shown_rows} shown)" if shown_rows != total else ")"
    table = Table(
        title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False
    )
    table.add_column("", width=1, no_wrap=True)
    table.add_column("step", justify="right", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    table.add_column("event, and what it changed", overflow="fold", ratio=1)
    for row in rows:
        # Message contents are the server's own text: never read as markup.
        cell = shown(row.event, "bold" if row.decisive else "")
        for change in row.changes:
            cell.append("\n  ")
            cell.append_text(shown(change))
        table.add_row(DECISIVE if row.decisive else "", str(row.step), str(row.ms), cell)
    return table


def verdict_lines(explained: Explained) -> list[RenderableType]:
    """How the replay ended, and the cause."""
    replay = explained.replay
    if replay.problem is not None:
        return [Text.assemble("cannot tell the story: ", shown(replay.problem))]
    if replay.diverged is not None:
        step, why = replay.diverged
        return [Text.assemble((f"the trace diverges at step {step}", "bold red"), ": ", shown(why))]
    v = replay.violation
    if v is None:
        return [Text("every invariant held", style="bold green"), *liveness_lines(explained)]
    lines: list[RenderableType] = [
        Text.assemble(
            shown(f"{v.invariant} violated at step {v.step}", "bold red"), ": ", shown(v.message)
        )
    ]
    if explained.cause is not None:
        lines.extend(cause_text(explained.cause))
    return lines


def liveness_lines(explained: Explained) -> list[RenderableType]:
    """A liveness verdict that failed or was slow, and what blocked progress."""
    liveness = explained.trace.verdict.get("liveness") or {}
    if not isinstance(liveness, dict) or liveness.get("verdict") not in ("failed", "slow"):
        return []
    colour = "bold red" if liveness["verdict"] == "failed" else "bold yellow"
    name = liveness.get("name") or ""
    lines: list[RenderableType] = [
        Text.assemble(
            shown(f"liveness {liveness['verdict']} {name}".strip(), colour),
            ": ",
            shown(str(liveness.get("reason", ""))),
        )
    ]
    if liveness.get("blocked"):
        lines.append(Text.assemble("what blocked progress: ", shown(str(liveness["blocked"]))))
    return lines


def cause_text(cause: Cause) -> list[RenderableType]:
    """The cause's lines for rich: the summary bold, decisive steps marked."""
    out: list[RenderableType] = []
    for i, line in enumerate(cause.lines()):
        if i == 0:
            out.append(shown(line, "bold"))
        elif line.startswith("  step "):
            grid = Table.grid(padding=(0, 1, 0, 0))
            grid.add_column(no_wrap=True)
            grid.add_column(overflow="fold", ratio=1)
            grid.add_row(DECISIVE, shown(line.lstrip()))
            out.append(grid)
        else:
            # Wrapped lines keep their indent, so each fact reads as one.
            indent = len(line) - len(line.lstrip())
            out.append(Padding(shown(line.lstrip()), (0, 0, 0, indent + 2)))
    return out


def story_json(explained: Explained, rows: list[StoryRow]) -> dict[str, Any]:
    replay = explained.replay
    v = replay.violation
    return {
        "events": len(explained.trace.events),
        "replayed": replay.steps,
        "rows": [row.to_json() for row in rows],
        "violation": None
        if v is None
        else {"invariant": v.invariant, "step": v.step, "message": v.message},
        "cause": explained.cause.to_json() if explained.cause is not None else None,
        "diverged": list(replay.diverged) if replay.diverged is not None else None,
        "problem": replay.problem,
    }


def print_story(
    console: Console,
    trace: Trace,
    factory: NodeFactory | None = None,
    *,
    explained: Explained | None = None,
    keep: StoryFilter | None = None,
    as_json: bool = False,
) -> Explained:
    """Replay `trace` (unless `explained` is its replay already) and print its
    story, how it ended and why. Returns the replay, for what follows."""
    if explained is None:
        explained = explain_trace(trace, factory)
    keep = keep or StoryFilter()
    rows = [row for row in story_rows(explained) if keep.keeps(row)]
    if as_json:
        console.file.write(json.dumps(story_json(explained, rows), indent=2) + "\n")
        return explained
    if explained.replay.problem is None:
        console.print(story_table(rows, explained.replay.steps))
    for line in verdict_lines(explained):
        console.print(line)
    return explained
