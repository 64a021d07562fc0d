"""The `virtraft` command line: one function per subcommand, and `main`.

Exit codes: 0 no violation, 1 a violation (safety or liveness) was found,
2 bad usage or input (including a trace that no longer fits the code).
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from virtraft.adapter import FactoryError
from virtraft.check.checker import Checker
from virtraft.check.history import HistoryError, read_history
from virtraft.check.linearizability import check_history
from virtraft.cli.parser import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNDECIDED,
    EXIT_USAGE,
    EXIT_VIOLATION,
    SHRINK_SECONDS,
    UsageError,
    build_parser,
    reproduce_command,
    run_defaults,
    sim_options,
    swarm_keeps,
)
from virtraft.report.campaign import write_campaign_index, write_seed_report
from virtraft.report.cause import explain_trace
from virtraft.report.html import write_report
from virtraft.report.story import STORY_MAX_EVENTS, StoryFilter, print_story, verdict_lines
from virtraft.report.summary import print_bench, print_linearizability, print_profile, print_run
from virtraft.report.terminal import one_line, shown
from virtraft.run import bench
from virtraft.run.campaign import (
    CampaignInterrupted,
    CampaignSpec,
    SeedResult,
    default_workers,
    run_campaign,
    settle_process,
)
from virtraft.run.factory import DEFAULT_FACTORY, factory_for_trace, load_factory
from virtraft.run.isolate import replay_isolated
from virtraft.run.liveness import rejudge, rejudges
from virtraft.run.profile import profiled
from virtraft.run.seed import RunResult, run_seed
from virtraft.run.shrink import ShrinkError, shrink_file
from virtraft.scenario.script import ScenarioError, list_scenarios, load_scenario, run_scenario
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import Trace, TraceError, read_trace, write_trace
from virtraft.trace.replay import replay_events

__all__ = ["EXIT_OK", "EXIT_USAGE", "EXIT_VIOLATION", "UsageError", "main"]


def _factory(args: argparse.Namespace) -> str:
    """The node factory the user named (or the default), once it is known to load."""
    spec = args.node_factory or DEFAULT_FACTORY
    try:
        load_factory(spec)
    except FactoryError as exc:
        raise UsageError(str(exc)) from None
    return spec


def _save_trace(
    args: argparse.Namespace, failed: bool, name: str, lines: Callable[[], Iterable[str]]
) -> str | None:
    """Write the trace where --trace says, or under --out when the run failed."""
    path = args.trace
    if path is None and failed:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = str(out / f"{name}.jsonl")
    if path is not None:
        write_trace(path, lines())
    return path


def _trace_factory(args: argparse.Namespace, trace: Trace) -> str:
    """The node factory to run a trace with: the one the user named, or the
    default; never one the trace names by itself."""
    try:
        return factory_for_trace(trace.factory, args.node_factory)
    except FactoryError as exc:
        raise UsageError(f"{args.trace}: {exc}") from None


def _factory_words(spec: str) -> list[str]:
    """The option that names `spec` again, on a command that reads a trace."""
    return [] if spec == DEFAULT_FACTORY else ["--node-factory", spec]


def _read_trace_or_exit(path: str) -> Trace:
    try:
        return read_trace(path)
    except TraceError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------- run


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    if args.scenario is not None:
        return _run_scenario(args, console)
    options = sim_options(args)
    factory = _factory(args)
    console.print(
        Text.assemble(
            ("virtraft run", "bold"),
            f" seed={args.seed} servers={options.servers} "
            f"steps={options.steps} swarm={args.swarm} factory=",
            shown(factory),
        )
    )

    def run() -> RunResult:
        return run_seed(args.seed, options, factory=factory, swarm=args.swarm, keep=args.swarm_keep)

    profile = None
    if args.profile:
        result, profile = profiled(run)
    else:
        result = run()
    trace_path = _save_trace(args, result.failed, f"seed-{args.seed}", result.iter_trace_lines)
    print_run(console, result, reproduce=reproduce_command(args, args.seed))
    if trace_path is not None:
        console.print(Text.assemble("trace: ", shown(trace_path)))
    if profile is not None:
        print_profile(console, profile)
    return EXIT_VIOLATION if result.failed else EXIT_OK


def _run_scenario(args: argparse.Namespace, console: Console) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    factory = _factory(args)
    defaults = run_defaults()
    ignored = sorted(
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in ("scenario", "seed", "trace", "out", "node_factory", "quiet", "swarm_keep")
        and defaults.get(name) != value
    )
    if ignored:
        console.print(
            f"[yellow]note: a scenario sets its own cluster, options and faults; "
            f"ignoring {', '.join(ignored)}[/]"
        )
    console.print(
        Text.assemble(
            shown(f"virtraft run --scenario {scenario.name}", "bold"),
            f" seed={args.seed}: ",
            shown(scenario.summary),
        )
    )
    outcome = run_scenario(scenario, args.seed, factory=factory)
    if outcome.skipped is not None:
        console.print(Text.assemble("skipped: ", shown(outcome.skipped)))
        return EXIT_OK
    result = outcome.run
    trace_path = _save_trace(
        args, outcome.failed, f"{scenario.name}-seed-{args.seed}", outcome.trace_lines
    )
    print_run(console, result)
    table = Table(title="Expectations", title_justify="left")
    table.add_column("expectation")
    table.add_column("held")
    table.add_column("detail")
    for check in outcome.expectations:
        table.add_row(
            shown(check.description),
            Text("yes") if check.passed else Text("no", style="red"),
            shown(check.detail),
        )
    console.print(table)
    if outcome.expected_failure:
        verdict = Text("as stated") if outcome.as_stated else Text("NOT as stated", style="red")
        console.print(
            Text.assemble(
                "this scenario states it fails: ",
                shown(outcome.expected_failure),
                " (",
                verdict,
                ")",
            )
        )
    if trace_path is not None:
        console.print(Text.assemble("trace: ", shown(trace_path)))
    return EXIT_VIOLATION if outcome.failed or not outcome.as_stated else EXIT_OK


# --------------------------------------------------------------------- fuzz


def cmd_fuzz(args: argparse.Namespace, console: Console) -> int:
    options = sim_options(args)
    factory = _factory(args)
    seeds = args.seeds
    out_dir = str(Path(args.out) / f"fuzz-{seeds.start}-{seeds.stop}")
    spec = CampaignSpec(
        options, factory, args.swarm, out_dir, keep=args.swarm_keep, on_failure=write_seed_report
    )
    console.print(
        Text.assemble(
            ("virtraft fuzz", "bold"),
            f" seeds {seeds.start}:{seeds.stop} ({len(seeds)}), "
            f"{options.steps} steps each, swarm={args.swarm}, workers={args.workers}, "
            f"executor={args.executor}, factory=",
            shown(factory),
        )
    )
    try:
        results, interrupted = _run_with_progress(args, console, spec), False
    except CampaignInterrupted as stop:  # Ctrl-C: the finished seeds still count
        results, interrupted = stop.results, True
    failed = [r for r in results if r.failed]
    console.print(_campaign_table(results))
    if failed:
        _print_failures(args, console, failed)
    stopped = ""
    if interrupted:
        stopped = f"interrupted after {len(results)} of {len(seeds)} seeds"
    elif len(results) < len(seeds):
        stopped = f"time budget reached after {len(results)} of {len(seeds)} seeds"
    # Clean, failing or interrupted: the campaign's page is always written.
    index = write_campaign_index(
        out_dir,
        results,
        options=options,
        swarm=args.swarm,
        keep=args.swarm_keep,
        factory=factory,
        note=stopped,
    )
    console.print(Text.assemble("campaign index: ", shown(index)))
    if stopped:
        console.print(stopped)
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_VIOLATION if failed else EXIT_OK


def _workers(asked: int | None, console: Console) -> int:
    """All cores by default; never more processes than cores (more only
    slow each other down)."""
    cores = default_workers()
    if asked is None:
        return cores
    if asked > cores:
        console.print(
            f"[yellow]note: --workers {asked} is more than the {cores} cores here; using {cores}[/]"
        )
        return cores
    return asked


def _run_with_progress(
    args: argparse.Namespace, console: Console, spec: CampaignSpec
) -> list[SeedResult]:
    """Run the campaign under a progress bar that counts the failing seeds."""
    failures: list[SeedResult] = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=args.quiet,
    ) as progress:
        task = progress.add_task("seeds", total=len(args.seeds))

        def on_result(result: SeedResult) -> None:
            progress.advance(task)
            if result.failed:
                failures.append(result)
                progress.update(task, description=f"seeds ([red]{len(failures)} failing[/])")

        try:
            return run_campaign(
                args.seeds,
                spec,
                workers=args.workers,
                executor=args.executor,
                scheduler=args.scheduler,
                time_budget_s=args.time_budget,
                on_result=on_result,
            )
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None


def _campaign_table(results: Sequence[SeedResult]) -> Table:
    table = Table(title="Campaign", title_justify="left")
    table.add_column("seeds run", justify="right")
    table.add_column("safety violations", justify="right")
    table.add_column("liveness failures", justify="right")
    table.add_column("slow (warnings)", justify="right")
    checked = [r for r in results if r.linearizability != "skipped"]
    if checked:
        table.add_column("not linearizable", justify="right")
    table.add_column("events", justify="right")
    table.add_row(
        str(len(results)),
        str(sum(r.safety != "ok" for r in results)),
        str(sum(r.liveness == "failed" for r in results)),
        str(sum(r.slow for r in results)),
        *([str(sum(r.linearizable_failed for r in checked))] if checked else []),
        str(sum(r.steps for r in results)),
    )
    return table


def _print_failures(
    args: argparse.Namespace, console: Console, failed: Sequence[SeedResult]
) -> None:
    """The failing seeds (the first 50), and how to reproduce and shrink them."""
    detail = Table(title="Failing seeds", title_justify="left")
    for column in ("seed", "verdict", "step", "what happened", "trace"):
        detail.add_column(column)
    for r in failed[:50]:
        named = r.safety != "ok" or r.linearizable_failed
        what = r.message if named else r.liveness_reason
        verdict = r.invariant if named else f"liveness {r.liveness_name or ''}".strip()
        detail.add_row(
            str(r.seed), shown(verdict), str(r.step or "-"), shown(what), shown(r.trace or "-")
        )
    console.print(detail)
    first = failed[0]
    console.print(
        Text.assemble("reproduce the first with: ", shown(_reproduce(args, first), "bold"))
    )
    shortest = min(
        (
            r
            for r in failed
            if (r.safety != "ok" or r.linearizable_failed) and r.trace and not r.process_died
        ),
        key=lambda r: r.step or 0,
        default=None,
    )
    if shortest is not None:
        small = str(shortest.trace).removesuffix(".jsonl") + ".small.jsonl"
        command = shlex.join(
            [
                "virtraft",
                "shrink",
                str(shortest.trace),
                "-o",
                small,
                *_factory_words(args.node_factory or DEFAULT_FACTORY),
            ]
        )
        console.print(Text.assemble("shrink the shortest with: ", shown(command, "bold")))


def _reproduce(args: argparse.Namespace, result: SeedResult) -> str:
    """How to see a failing seed again: run it, or, when its server's process
    died (a run would die with it), replay its trace in a process of its own."""
    if result.process_died and result.trace:
        factory = _factory_words(args.node_factory or DEFAULT_FACTORY)
        return shlex.join(["virtraft", "replay", result.trace, *factory])
    return reproduce_command(args, result.seed)


# ------------------------------------------------------------------- replay


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    trace = _read_trace_or_exit(args.trace)
    spec = _trace_factory(args, trace)
    factory = load_factory(spec)
    keep = StoryFilter(args.node, args.message_type, args.ticks)
    if not args.story and (keep != StoryFilter() or args.format != "text"):
        raise UsageError("--format, --node, --message-type and --no-ticks need --story")
    if "process_died" in trace.header:
        if args.story:
            _refuse_in_process(args.trace, trace, "--story")
        return _replay_died(args.trace, trace, spec, console)
    if args.story:
        print_story(console, trace, factory, keep=keep, as_json=args.format == "json")
        if args.format == "json":
            console.quiet = True  # stdout holds one JSON document; the exit code says the rest
    sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    recorded_liveness = trace.verdict.get("liveness") or {}
    judged = None
    if rejudges(recorded_liveness):  # the liveness verdict is derived again from the events
        judged, violation, diverged, why = rejudge(sim, trace.events, recorded_liveness)
    else:
        violation, diverged, why = replay_events(sim, trace.events)
    if diverged is not None:
        raise UsageError(
            f"{args.trace}: the trace diverges at step {diverged} of {len(trace.events)}: {why}"
        )
    recorded = trace.verdict.get("violation")
    console.print(
        Text.assemble(f"replayed {sim.step} of {len(trace.events)} events from ", shown(args.trace))
    )
    if violation is not None:
        console.print(
            Text.assemble(
                shown(f"safety: {violation.invariant} violated", "bold red"),
                f" at step {violation.step}: ",
                shown(violation.message),
            )
        )
        if recorded is None:
            raise UsageError(
                f"{args.trace}: replay found {violation.invariant} at step "
                f"{violation.step}, but the trace recorded no violation"
            )
        if (recorded.get("invariant"), recorded.get("step")) != (
            violation.invariant,
            violation.step,
        ):
            raise UsageError(
                f"{args.trace}: replay found {violation.invariant} at step {violation.step}, "
                f"the trace recorded {recorded.get('invariant')} at step {recorded.get('step')}"
            )
        console.print("same violation as recorded")
        return EXIT_VIOLATION
    if recorded is not None:
        raise UsageError(
            f"{args.trace}: replay ended without the recorded {recorded.get('invariant')} "
            f"violation (step {recorded.get('step')})"
        )
    for name, replayed in (("steps", sim.step), ("clock_ms", sim.clock_ms)):
        if trace.verdict.get(name) not in (None, replayed):
            raise UsageError(
                f"{args.trace}: replay ended with {name} {replayed}, the trace "
                f"recorded {trace.verdict.get(name)}"
            )
    console.print("[bold green]safety: ok[/], as recorded")
    liveness = recorded_liveness
    if judged is not None:
        same = (judged.verdict, judged.name) == (liveness.get("verdict"), liveness.get("name"))
        if not same:
            raise UsageError(
                f"{args.trace}: replay judged liveness {judged.verdict} ({judged.name}), the "
                f"trace recorded {liveness.get('verdict')} ({liveness.get('name')})"
            )
        console.print(
            Text.assemble(
                shown(f"liveness: {judged.verdict}", "bold"),
                " (",
                shown(judged.reason),
                "), as recorded",
            )
        )
        return EXIT_VIOLATION if judged.verdict == "failed" else EXIT_OK
    if liveness.get("verdict") == "failed":
        console.print(
            Text.assemble(
                ("liveness (recorded): failed", "bold red"),
                " (",
                shown(liveness.get("reason")),
                ")",
            )
        )
        return EXIT_VIOLATION
    return EXIT_OK


def _refuse_in_process(path: str, trace: Trace, what: str) -> None:
    """`what` replays the trace in this process: for a trace whose server's
    process died in its last event, that would take this process down too."""
    if "process_died" in trace.header:
        raise UsageError(
            f"{path}: the server's process {trace.header['process_died']} in this run's last "
            f"event; {what} would replay it in this process, which would die the same way "
            "(`virtraft replay` without --story reruns it in a process of its own)"
        )


def _replay_died(path: str, trace: Trace, spec: str, console: Console) -> int:
    """Replay a trace whose server's process died, in a process of its own,
    and hold its death against the recorded one."""
    recorded = trace.verdict.get("violation") or {}
    death = (trace.header["process_died"], recorded.get("step"))
    end = replay_isolated(path, spec)
    if end.died is None:
        result = end.result
        if result["diverged"] is not None:
            step, why = result["diverged"]
            raise UsageError(
                f"{path}: the trace diverges at step {step} of {len(trace.events)}: {why}"
            )
        found = result["violation"]
        ended = f"found {found[0]} at step {found[1]}" if found else "ran every event"
        raise UsageError(
            f"{path}: replayed in a process of its own, it {ended} and did not die; "
            f"the trace recorded that the server's process {death[0]} during step {death[1]}"
        )
    step = len(end.events)
    if (end.died, step) != death:
        raise UsageError(
            f"{path}: replayed in a process of its own, the server's process {end.died} "
            f"during step {step}; the trace recorded that it {death[0]} during step {death[1]}"
        )
    console.print(
        Text.assemble(
            f"replayed {step} of {len(trace.events)} events from ",
            shown(path),
            ", in a process of its own",
        )
    )
    console.print(
        Text.assemble(
            shown("safety: NodeException", "bold red"),
            f" at step {step}: ",
            shown(str(recorded.get("message", ""))),
        )
    )
    if end.where:
        console.print(Text.assemble("  it died in ", shown("; ".join(end.where[-2:]))))
    console.print("same death as recorded")
    return EXIT_VIOLATION


# ------------------------------------------------------- the other commands


def cmd_shrink(args: argparse.Namespace, console: Console) -> int:
    max_seconds = args.max_seconds
    if max_seconds is None:  # a replay budget alone is not cut short by the clock
        max_seconds = float("inf") if args.max_replays else SHRINK_SECONDS
    try:
        outcome = shrink_file(
            args.trace,
            args.output,
            node_factory=args.node_factory,
            max_seconds=max_seconds,
            max_replays=args.max_replays,
            console=console,
        )
    except ShrinkError as exc:
        raise UsageError(str(exc)) from None
    console.print(
        Text.assemble(
            f"shrunk {outcome.before} events to {outcome.after} (",
            shown(outcome.invariant),
            f" still fails at step {outcome.step}); wrote ",
            shown(args.output),
        )
    )
    if outcome.stopped_by == "seconds":
        console.print(
            f"stopped by the time limit after {outcome.replays} replays; "
            f"--max-replays {outcome.replays} gives this result on any machine"
        )
    elif outcome.stopped_by == "replays":
        console.print(f"stopped after {outcome.replays} replays (--max-replays)")
    if outcome.stopped_by == "interrupted":
        console.print(
            f"interrupted after {outcome.replays} replays: wrote the shortest "
            "failing trace found so far"
        )
    trace = outcome.trace(args.trace)
    explained = explain_trace(trace, load_factory(outcome.factory))
    if outcome.after <= STORY_MAX_EVENTS:
        print_story(console, trace, explained=explained)
    else:
        for line in verdict_lines(explained):
            console.print(line)
    _print_next(console, args.output, outcome.factory)
    return EXIT_VIOLATION


def _print_next(console: Console, path: str, factory: str) -> None:
    """What to run next on a shrunk trace: its story, and its report."""
    words = _factory_words(factory)
    report = str(Path(path).with_suffix(".html"))
    story = shlex.join(["virtraft", "replay", path, "--story", *words])
    page = shlex.join(["virtraft", "report", path, "-o", report, *words])
    # Commands are not wrapped: a line break in one would break its copy.
    console.print(Text.assemble("next: the story with   ", shown(story, "bold")), soft_wrap=True)
    console.print(Text.assemble("      the report with  ", shown(page, "bold")), soft_wrap=True)


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    trace = _read_trace_or_exit(args.trace)
    factory = load_factory(_trace_factory(args, trace))
    _refuse_in_process(args.trace, trace, "the report")
    write_report(args.trace, args.output, trace=trace, factory=factory)
    console.print(Text.assemble("wrote ", shown(args.output)))
    return EXIT_OK


def cmd_scenarios(args: argparse.Namespace, console: Console) -> int:
    try:
        infos = list_scenarios()
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    table = Table(title="Scenarios", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("expects", no_wrap=True)
    table.add_column("what it does")
    for info in infos:
        table.add_row(shown(info.name), shown(info.expects), shown(info.summary))
    console.print(table)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    chosen = args.workload or [w.name for w in bench.WORKLOADS]
    workloads = [w for w in (*bench.WORKLOADS, *bench.PEER_WORKLOADS) if w.name in chosen]
    report = bench.run_bench(
        args.events, args.long, workloads, memory=args.memory, by_kind=args.by_kind
    )
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_bench(console, report)
    return EXIT_OK


def cmd_lincheck(args: argparse.Namespace, console: Console) -> int:
    try:
        operations = read_history(args.history)
    except HistoryError as exc:
        raise UsageError(str(exc)) from None
    outcome = check_history(operations, args.max_steps)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2, sort_keys=True))
    else:
        print_linearizability(console, outcome)
    return {"ok": EXIT_OK, "violation": EXIT_VIOLATION}.get(outcome.verdict, EXIT_UNDECIDED)


def cmd_zoo(args: argparse.Namespace, console: Console) -> int:
    # Imported here: the zoo brings Hypothesis, half of the command line's
    # start-up time and memory, which no other command needs.
    from virtraft.zoo import hunt

    return hunt.main(args, console)


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], int]] = {
    "run": cmd_run,
    "fuzz": cmd_fuzz,
    "replay": cmd_replay,
    "shrink": cmd_shrink,
    "report": cmd_report,
    "scenarios": cmd_scenarios,
    "bench": cmd_bench,
    "zoo": cmd_zoo,
    "lincheck": cmd_lincheck,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    console = Console(stderr=False, quiet=args.quiet, highlight=False)
    args.swarm_keep = swarm_keeps(list(sys.argv[1:] if argv is None else argv))
    if args.command == "fuzz":
        args.workers = _workers(args.workers, console)
    settle_process()
    try:
        return COMMANDS[args.command](args, console)
    except (UsageError, FactoryError) as exc:
        sys.stderr.write(f"virtraft: error: {one_line(exc)}\n")
        return EXIT_USAGE
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(
            f"virtraft: error: cannot write{one_line(where)}: {one_line(exc.strerror or exc)}\n"
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("virtraft: interrupted\n")
        return EXIT_INTERRUPTED
