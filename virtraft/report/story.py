"""A trace told step by step in the terminal: what each event did.

A shrunk counterexample is short enough to read whole. This prints it as a
table (step, virtual clock, the event, what changed in the servers) from
the same observed replay the HTML report draws, and ends with the verdict,
so the person handed a failure reads the bug rather than decodes it.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from virtraft.adapter import NodeFactory
from virtraft.report.observe import Replay, event_text, replay_trace
from virtraft.report.terminal import shown
from virtraft.trace.format import Trace

# `virtraft shrink` tells the story of a result up to this long by itself.
STORY_MAX_EVENTS = 80


def story_table(trace: Trace, replay: Replay) -> Table:
    """One row per event the replay applied (all of them, unless it diverged)."""
    table = Table(title=f"Step by step ({replay.steps} events)", title_justify="left")
    table.add_column("step", justify="right")
    table.add_column("ms", justify="right")
    table.add_column("event")
    table.add_column("what changed")
    for step, event in enumerate(trace.events, start=1):
        if step > replay.steps:
            break
        # Message contents are the server's own text: never read as markup.
        table.add_row(
            str(step),
            str(replay.ms(step)),
            shown(event_text(event, replay, step)),
            shown("; ".join(replay.notes.get(step, []))),
        )
    return table


def print_story(console: Console, trace: Trace, factory: NodeFactory | None = None) -> None:
    """Replay `trace` and print its story and how it ended."""
    replay = replay_trace(trace, factory)
    if replay.problem is not None:
        console.print(Text.assemble("cannot tell the story: ", shown(replay.problem)))
        return
    console.print(story_table(trace, replay))
    if replay.diverged is not None:
        step, why = replay.diverged
        console.print(
            Text.assemble((f"the trace diverges at step {step}", "bold red"), ": ", shown(why))
        )
    elif replay.violation is not None:
        v = replay.violation
        console.print(
            Text.assemble(
                shown(f"{v.invariant} violated at step {v.step}", "bold red"),
                ": ",
                shown(v.message),
            )
        )
    else:
        console.print("[bold green]every invariant held[/]")
        liveness = trace.verdict.get("liveness") or {}
        if isinstance(liveness, dict) and liveness.get("verdict") in ("failed", "slow"):
            colour = "bold red" if liveness["verdict"] == "failed" else "bold yellow"
            name = liveness.get("name") or ""
            console.print(
                Text.assemble(
                    shown(f"liveness {liveness['verdict']} {name}".strip(), colour),
                    ": ",
                    shown(str(liveness.get("reason", ""))),
                )
            )
            if liveness.get("blocked"):
                console.print(
                    Text.assemble("what blocked progress: ", shown(str(liveness["blocked"])))
                )
