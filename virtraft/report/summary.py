"""What a person reads in the terminal after a run: rich tables and verdicts."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from virtraft.check.linearizability import Linearizability
from virtraft.report.cause import Cause, explain_run, liveness_cause
from virtraft.report.story import cause_text
from virtraft.report.terminal import shown
from virtraft.run.profile import Profile
from virtraft.run.seed import RunResult


def node_table(result: RunResult) -> Table:
    sim = result.sim
    table = Table(title="Nodes at the end", title_justify="left")
    for column in (
        "node",
        "state",
        "role",
        "term",
        "commit",
        "log length",
        "snapshot",
        "applied",
        "members",
    ):
        table.add_column(column, justify="right" if column not in ("role", "state") else "left")
    for node_id in sim.node_ids:
        node = sim.nodes[node_id]
        voters = sorted(n for n, voting in node.members if voting)
        table.add_row(
            str(node_id),
            "up" if node.alive else "down",
            shown(node.role.value),
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
        (
            "snapshots taken / installed",
            f"{stats['snapshots_taken']} / {stats['snapshots_installed']}",
        ),
        ("virtual time", f"{verdict['clock_ms'] / 1000:.1f} s"),
    ]
    for name, value in rows:
        table.add_row(shown(name), shown(value))
    return table


def print_run(console: Console, result: RunResult, *, reproduce: str | None = None) -> None:
    """The nodes at the end, what happened, the verdicts and, on a failure,
    its cause (one more replay of the run, under observation)."""
    console.print(node_table(result))
    console.print(event_table(result))
    cause = None
    if result.violation is not None:
        cause = explain_run(result).cause
    elif result.liveness.verdict == "failed":
        cause = liveness_cause(explain_run(result), result.liveness.to_json())
    print_verdicts(console, result, reproduce=reproduce, cause=cause)


def print_verdicts(
    console: Console,
    result: RunResult,
    *,
    reproduce: str | None = None,
    cause: Cause | None = None,
) -> None:
    violation = result.violation
    if violation is None:
        console.print("[bold green]safety: ok[/] (every invariant held after every event)")
    else:
        nodes = ", ".join(map(str, violation.nodes)) or "-"
        console.print(
            Text.assemble(
                shown(f"safety: {violation.invariant} violated", "bold red"),
                f" at step {violation.step} (nodes ",
                shown(nodes),
                "): ",
                shown(violation.message),
            )
        )
    if cause is not None and cause.decisive:
        for line in cause_text(cause):
            console.print(line)
    liveness = result.liveness
    colour = {"ok": "green", "failed": "red"}.get(liveness.verdict, "yellow")
    named = f" {liveness.name}" if liveness.name else ""
    console.print(
        Text.assemble(
            shown(f"liveness: {liveness.verdict}{named}", f"bold {colour}"),
            " (",
            shown(liveness.reason),
            ")",
        )
    )
    print_liveness_details(console, result.verdict()["liveness"])
    lin = result.linearizability
    if lin is not None:
        colour = {"ok": "green", "violation": "red"}.get(lin.verdict, "yellow")
        console.print(
            Text.assemble(
                shown(f"linearizability: {lin.verdict}", f"bold {colour}"),
                " (",
                shown(lin.reason),
                ")",
            )
        )
    if result.failed and reproduce:
        console.print(Text.assemble("reproduce with: ", shown(reproduce, "bold")))


def print_liveness_details(console: Console, liveness: dict[str, Any]) -> None:
    """The phase's plan (the core, the standing faults), what blocked
    progress, and the progress that came late while the faults happened."""
    phase = liveness.get("phase")
    if isinstance(phase, dict) and isinstance(phase.get("plan"), dict):
        plan = phase["plan"]
        if plan.get("shape") == "core":
            faults = ", ".join(f"{n} {f}" for n, f in plan.get("faults", [])) or "none"
            core = ", ".join(map(str, plan.get("core") or []))
            console.print(
                Text.assemble("  core: ", shown(core), "; standing faults: ", shown(faults))
            )
        else:
            console.print("  every server healed and restarted")
    if liveness.get("blocked"):
        console.print(Text.assemble("  what blocked progress: ", shown(liveness["blocked"])))
    slow = liveness.get("slow") or []
    if slow:
        console.print(
            Text.assemble(
                shown(f"  slow while the faults happened ({len(slow)}): ", "yellow"),
                shown("; ".join(f"{f.get('name')} took {f.get('took_ms')} ms" for f in slow[:5])),
            )
        )


def print_bench(console: Console, report: dict[str, Any]) -> None:
    """What `virtraft bench` measured (`virtraft.run.bench.run_bench`), as a table."""
    table = Table(
        title=shown(
            f"virtraft bench (seed {report['seed']}, Python "
            f"{report['python']}, fastest of {report['repeat']})"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    # Checked run: events/s, delivered messages/s, committed entries/s, peak
    # memory; then events/s with the checker off, and checked time / unchecked.
    for column in (
        "workload",
        "events",
        "ev/s",
        "msg/s",
        "commit/s",
        "peak MB",
        "ev/s off",
        "on/off",
    ):
        table.add_column(column, justify="left" if column == "workload" else "right", no_wrap=True)
    for w in report["workloads"]:
        on, off = w["checked"], w["unchecked"]
        table.add_row(
            shown(w["name"]),
            f"{w['events']:,}",
            f"{on['events_per_s']:,}",
            f"{on['delivered_per_s']:,}",
            f"{on['committed_per_s']:,}",
            f"{w['peak_memory_mb']:.1f}",
            f"{off['events_per_s']:,}",
            f"{w['checker_overhead']:.2f}x",
        )
    console.print(table)
    console.print(
        "ev/s (events), msg/s (delivered messages), commit/s (committed entries) "
        "and peak MB with every invariant on; ev/s off: the checker off; on/off: "
        "the checker's overhead, time on / time off."
    )
    for w in report["workloads"]:
        console.print(Text.assemble("  ", shown(w["name"]), ": ", shown(w["description"])))
        h = w.get("history")
        if h is not None:
            console.print(
                f"    linearizability checker: {h['seconds']:.3f} s CPU on the history of "
                f"{h['clients']} clients ({h['operations']:,} operations, {h['keys']} keys, "
                f"{h['search_steps']:,} search steps): {h['verdict']}"
            )
        if w["checked"]["violation"]:
            console.print(
                Text.assemble(
                    "  ", shown(f"{w['name']} stopped early: {w['checked']['violation']}", "red")
                )
            )
    if "long" in report:
        lg = report["long"]
        verdict = (
            Text("within", style="green")
            if lg["within_tolerance"]
            else Text("NOT within", style="red")
        )
        console.print(
            Text.assemble(
                shown(lg["workload"]),
                f", checker on: {lg['short']['events']:,} events at "
                f"{lg['short']['events_per_s']:,}/s, {lg['long']['events']:,} events at "
                f"{lg['long']['events_per_s']:,}/s: ratio {lg['ratio']:.2f} (",
                verdict,
                f" {lg['tolerance']:.0%})",
            )
        )
    if "memory" in report:
        _print_memory(console, report["memory"])
    if "by_kind" in report:
        _print_by_kind(console, report["by_kind"])


def _print_memory(console: Console, memory: dict[str, Any]) -> None:
    """`virtraft bench --memory`: peak memory and events/s as a run grows."""
    for run in memory["runs"]:
        console.print(
            f"{memory['workload']}, checker on, a fresh process: {run['events']:,} events at "
            f"{run['events_per_s']:,}/s, peak {run['peak_rss_mb']:.1f} MB resident "
            f"({run['rss_before_mb']:.1f} MB before the run)"
        )
    if "peak_ratio" in memory:
        ok = "within" if memory["peak_within_tolerance"] else "NOT within"
        console.print(
            f"  peak memory, 10^6 over 10^5 events: {memory['peak_ratio']:.2f} ({ok} 20%)"
        )
    if "rate_ratio" in memory:
        ok = "at least" if memory["rate_at_floor"] else "NOT at least"
        console.print(f"  events/s, 10^6 over 10^4 events: {memory['rate_ratio']:.2f} ({ok} 0.95)")


def _print_by_kind(console: Console, by_kind: dict[str, Any]) -> None:
    """`virtraft bench --by-kind`: an event's cost early and late in a long run."""
    early, late = by_kind["early"], by_kind["late"]
    table = Table(
        title=f"{shown(by_kind['workload'])}, {by_kind['events']:,} events, each timed",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("event")
    for window in (early, late):
        span = f"{window['first']:,}-{window['last']:,}"
        table.add_column(f"share, {span}", justify="right")
        table.add_column("us each", justify="right")
    for kind in early["kinds"] | late["kinds"]:
        row = [shown(kind)]
        for window in (early, late):
            cost = window["kinds"].get(kind)
            row += [f"{cost['share']:.1%}", f"{cost['us_per_event']:.1f}"] if cost else ["", ""]
        table.add_row(*row)
    console.print(table)
    console.print(
        f"  events/s: {early['events_per_s']:,} early, {late['events_per_s']:,} late; "
        f"late over early at the early mix of events: {by_kind['same_mix_ratio']:.2f}"
    )


def print_profile(console: Console, profile: Profile) -> None:
    """Where a run's CPU time went (`virtraft.run.profile`), by component."""
    table = Table(
        title="where the time went",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("component")
    table.add_column("share", justify="right")
    table.add_column("s", justify="right")
    for share in profile.shares:
        table.add_row(shown(share.component), f"{share.fraction:.0%}", f"{share.seconds:.2f}")
    console.print(table)
    hottest = Table(title="hottest functions, own time", title_justify="left", box=box.SIMPLE_HEAD)
    hottest.add_column("function")
    hottest.add_column("s", justify="right")
    for name, seconds in profile.hottest:
        hottest.add_row(shown(name), f"{seconds:.2f}")
    console.print(hottest)
    console.print(
        f"{profile.total_seconds:.2f} s under cProfile, several times a plain run's: "
        "compare shares, not seconds"
    )


def print_linearizability(console: Console, outcome: Linearizability) -> None:
    """A linearizability verdict: for a violation, each key's longest legal
    order and the operation that has no place after it."""
    style = {"ok": "bold green", "violation": "bold red"}.get(outcome.verdict, "bold yellow")
    console.print(
        Text.assemble((f"linearizability: {outcome.verdict}", style), " ", shown(outcome.reason))
    )
    for failure in outcome.failures:
        console.print(Text.assemble(f"key {failure.key!r}: the longest legal order found"))
        for operation in failure.longest[-10:]:
            console.print(Text.assemble("  ", shown(operation.text())))
        console.print(
            Text.assemble(("  then no legal place for ", "red"), shown(failure.stuck.text()))
        )
    console.print(
        f"{outcome.operations} operations, {outcome.keys} keys, {outcome.steps} search steps"
    )
