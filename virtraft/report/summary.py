"""What a person reads in the terminal after a run: rich tables and verdicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from virtraft.run.seed import RunResult


def node_table(result: RunResult) -> Table:
    sim = result.sim
    table = Table(title="Nodes at the end", title_justify="left")
    for column in ("node", "state", "role", "term", "commit", "log length", "snapshot",
                   "applied", "members"):
        table.add_column(column, justify="right" if column not in ("role", "state") else "left")
    for node_id in sim.node_ids:
        node = sim.nodes[node_id]
        voters = sorted(n for n, voting in node.members if voting)
        table.add_row(
            str(node_id),
            "up" if node.alive else "down",
            node.role.value,
            str(node.term),
            str(node.commit_index),
            str(node.last_index - node.snapshot_index),
            str(node.snapshot_index),
            str(node.last_applied) if node.last_applied is not None else "-",
            ",".join(map(str, voters)),
        )
    return table


def event_table(result: RunResult) -> Table:
    verdict = result.verdict()
    stats = verdict["stats"]
    table = Table(title="What happened", title_justify="left")
    table.add_column("count", justify="left")
    table.add_column("value", justify="right")
    rows: list[tuple[str, Any]] = [
        (f"events: {kind}", count) for kind, count in stats["events"].items()
    ]
    rows += [
        ("messages sent", stats["network"]["sent"]),
        ("messages delivered", stats["network"]["delivered"]),
        ("messages lost on cut links", stats["network"]["lost_on_cut_links"]),
        ("messages refused by servers", stats["refused_messages"]),
        ("leaders elected", stats["leader_changes"]),
        ("highest term", stats["max_term"]),
        ("highest commit index", stats["max_commit_index"]),
        ("commands submitted", stats["commands_submitted"]),
        ("commands acknowledged", stats["commands_acknowledged"]),
        ("crashes / restarts", f"{stats['crashes']} / {stats['restarts']}"),
        ("membership changes accepted", stats["membership_changes"]),
        ("snapshots taken / installed",
         f"{stats['snapshots_taken']} / {stats['snapshots_installed']}"),
        ("virtual time", f"{verdict['clock_ms'] / 1000:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def print_run(console: Console, result: RunResult, *, reproduce: str | None = None) -> None:
    console.print(node_table(result))
    console.print(event_table(result))
    print_verdicts(console, result, reproduce=reproduce)


def print_verdicts(console: Console, result: RunResult, *, reproduce: str | None = None) -> None:
    violation = result.violation
    if violation is None:
        console.print("[bold green]safety: ok[/] (every invariant held after every event)")
    else:
        nodes = ", ".join(map(str, violation.nodes)) or "-"
        console.print(
            f"[bold red]safety: {violation.invariant} violated[/] at step {violation.step} "
            f"(nodes {nodes}): {violation.message}"
        )
    liveness = result.liveness
    colour = {"ok": "green", "failed": "red"}.get(liveness.verdict, "yellow")
    console.print(f"[bold {colour}]liveness: {liveness.verdict}[/] ({liveness.reason})")
    if result.failed and reproduce:
        console.print(f"reproduce with: [bold]{reproduce}[/]")
