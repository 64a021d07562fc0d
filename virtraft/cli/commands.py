"""The `virtraft` command line.

Exit codes: 0 no violation, 1 a violation (safety or liveness) was found,
2 bad usage or input (including a trace that no longer fits the code).
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from virtraft.adapter import NodeOptions
from virtraft.sim.options import MAX_MS, OptionsError, SimOptions
from virtraft.trace.format import one_line

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def shown(text: object) -> str:
    """Text from outside (a path, a trace, a server) for console.print:
    printable, and never read as console markup."""
    return escape(one_line(str(text)))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(one_line(f"virtraft: error: {message} (see --help)") + "\n")
        raise SystemExit(EXIT_USAGE)


def probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is less than {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is more than {maximum}")
        return value

    parse.__name__ = f"whole number >= {minimum}"
    return parse


# `virtraft shrink` stops improving after this long unless told otherwise.
SHRINK_SECONDS = 120.0


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    return value


# The most seeds one campaign runs (a range must have a length to count it).
MAX_SEEDS = 1_000_000_000


def seed_range(text: str) -> range:
    start, sep, stop = text.partition(":")
    try:
        first, last = int(start), int(stop)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range A:B of seeds") from None
    if not sep or first < 0 or last <= first:
        raise argparse.ArgumentTypeError(f"{text!r} must be A:B with 0 <= A < B")
    if last - first > MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {MAX_SEEDS} seeds")
    return range(first, last)


# ------------------------------------------------------------------ options


def _add_sim_options(p: argparse.ArgumentParser, *, steps: int, client_rate: float) -> None:
    g = p.add_argument_group("simulation")
    g.add_argument("--servers", type=whole(1), default=5, help="servers in the cluster (5)")
    g.add_argument("--steps", type=whole(1), default=steps,
                   help=f"events in the safety phase ({steps})")
    g.add_argument("--drop", type=probability, default=0.0,
                   help="probability that a message picked for delivery is lost")
    g.add_argument("--dup", type=probability, default=0.0,
                   help="probability that a message picked for delivery is duplicated")
    g.add_argument("--reorder", action=argparse.BooleanOptionalAction, default=True,
                   help="deliver any message in flight (default) or the oldest first")
    g.add_argument("--partition-rate", type=probability, default=0.0,
                   help="per-step probability of a partition or heal")
    g.add_argument("--crash-rate", type=probability, default=0.0,
                   help="per-step probability of a crash (restarts come at 5x)")
    g.add_argument("--client-rate", type=probability, default=client_rate,
                   help=f"per-step probability of a client command ({client_rate})")
    g.add_argument("--member-rate", type=probability, default=0.0,
                   help="per-step probability of a membership change")
    g.add_argument("--snapshot-rate", type=probability, default=0.0,
                   help="per-step probability that a server snapshots its log")
    g.add_argument("--delay-max-ms", type=whole(0, MAX_MS), default=10,
                   help="largest message delay in virtual ms (10)")
    g.add_argument("--tick-ms-max", type=whole(1, MAX_MS), default=10,
                   help="most virtual ms one tick moves the clock (10); near the election "
                        "timeout, a single tick can fire a timer")
    g.add_argument("--swarm", action="store_true",
                   help="draw the fault mix and some Raft settings from each seed (swarm "
                        "testing; see `virtraft fuzz --help`)")
    g.add_argument("--liveness", action=argparse.BooleanOptionalAction, default=True,
                   help="after the faults, require a leader and a commit in bounded time")
    r = p.add_argument_group("raft options")
    r.add_argument("--election-timeout-ms", type=whole(2, MAX_MS), default=1000,
                   help="base election timeout T; each wait is random in [T, 2T) (1000)")
    r.add_argument("--request-timeout-ms", type=whole(1, MAX_MS), default=200,
                   help="heartbeat interval of a leader (200)")
    r.add_argument("--prevote", action=argparse.BooleanOptionalAction, default=True,
                   help="ask for votes before bumping the term (on)")
    r.add_argument("--check-quorum", action=argparse.BooleanOptionalAction, default=True,
                   help="a leader that cannot reach a majority steps down (on)")
    r.add_argument("--max-entries-per-msg", type=whole(1), default=64,
                   help="most entries in one AppendEntries (64)")
    p.add_argument("--node-factory", default=None, metavar="MODULE:CALLABLE",
                   help="run another Raft implementation through the node adapter")


def _sim_options(args: argparse.Namespace) -> SimOptions:
    try:
        node = NodeOptions(
            election_timeout_ms=args.election_timeout_ms,
            request_timeout_ms=args.request_timeout_ms,
            prevote=args.prevote,
            check_quorum=args.check_quorum,
            max_entries_per_msg=args.max_entries_per_msg,
        )
        if not node.heartbeat_beats_election():
            raise OptionsError("--request-timeout-ms must be below --election-timeout-ms")
        return SimOptions(
            servers=args.servers,
            steps=args.steps,
            drop_probability=args.drop,
            duplicate_probability=args.dup,
            reorder=args.reorder,
            partition_rate=args.partition_rate,
            crash_rate=args.crash_rate,
            client_rate=args.client_rate,
            member_rate=args.member_rate,
            snapshot_rate=args.snapshot_rate,
            delay_ms_max=args.delay_max_ms,
            tick_ms_max=args.tick_ms_max,
            max_servers=max(9, args.servers),
            liveness=args.liveness,
            node=node,
        )
    except OptionsError as exc:
        raise UsageError(str(exc)) from None


def _factory(args: argparse.Namespace) -> str:
    from virtraft.adapter import FactoryError
    from virtraft.run.factory import DEFAULT_FACTORY, load_factory

    spec = args.node_factory or DEFAULT_FACTORY
    try:
        load_factory(spec)
    except FactoryError as exc:
        raise UsageError(str(exc)) from None
    return spec


def _factory_words(spec: str) -> list[str]:
    """The option that names `spec` again, on a command that reads a trace."""
    from virtraft.run.factory import DEFAULT_FACTORY

    return [] if spec == DEFAULT_FACTORY else ["--node-factory", spec]


def _reproduce_command(args: argparse.Namespace, seed: int) -> str:
    """The command line that reruns exactly this seed."""
    words = ["virtraft", "run", "--seed", str(seed)]
    skip = {"command", "seed", "seeds", "workers", "executor", "scheduler", "time_budget",
            "out", "trace", "handler", "quiet"}
    defaults = vars(build_parser().parse_args(["run"]))
    for name, value in sorted(vars(args).items()):
        if name in skip or defaults.get(name) == value:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


# ----------------------------------------------------------------- commands


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from virtraft.report.summary import print_run
    from virtraft.run.seed import run_seed

    if args.scenario is not None:
        return _run_scenario(args, console)
    options = _sim_options(args)
    factory = _factory(args)
    console.print(f"[bold]virtraft run[/] seed={args.seed} servers={options.servers} "
                  f"steps={options.steps} swarm={args.swarm} factory={factory}")
    result = run_seed(args.seed, options, factory=factory, swarm=args.swarm)
    trace_path = _save_trace(args, result.failed, f"seed-{args.seed}", result.trace_lines)
    print_run(console, result, reproduce=_reproduce_command(args, args.seed))
    if trace_path is not None:
        console.print(f"trace: {shown(trace_path)}")
    return EXIT_VIOLATION if result.failed else EXIT_OK


def _save_trace(args: argparse.Namespace, failed: bool, name: str,
                lines: Callable[[], list[str]]) -> str | None:
    """Write the trace where --trace says, or under --out when the run failed."""
    from virtraft.trace.format import write_trace

    path = args.trace
    if path is None and failed:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        path = str(out / f"{name}.jsonl")
    if path is not None:
        write_trace(path, lines())
    return path


def _run_scenario(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from virtraft.report.summary import print_run
    from virtraft.scenario.script import ScenarioError, load_scenario, run_scenario

    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    factory = _factory(args)
    defaults = vars(build_parser().parse_args(["run"]))
    ignored = sorted(
        "--" + name.replace("_", "-") for name, value in vars(args).items()
        if name not in ("scenario", "seed", "trace", "out", "node_factory", "quiet", "handler")
        and defaults.get(name) != value
    )
    if ignored:
        console.print(f"[yellow]note: a scenario sets its own cluster, options and faults; "
                      f"ignoring {', '.join(ignored)}[/]")
    console.print(f"[bold]virtraft run --scenario {scenario.name}[/] seed={args.seed}: "
                  f"{scenario.summary}")
    outcome = run_scenario(scenario, args.seed, factory=factory)
    if outcome.skipped is not None:
        console.print(f"skipped: {outcome.skipped}")
        return EXIT_OK
    result = outcome.run
    trace_path = _save_trace(args, outcome.failed, f"{scenario.name}-seed-{args.seed}",
                             outcome.trace_lines)
    print_run(console, result)
    table = Table(title="Expectations", title_justify="left")
    table.add_column("expectation")
    table.add_column("held")
    table.add_column("detail")
    for check in outcome.expectations:
        table.add_row(check.description, "yes" if check.passed else "[red]no[/]", check.detail)
    console.print(table)
    if outcome.expected_failure:
        verdict = "as stated" if outcome.as_stated else "[red]NOT as stated[/]"
        console.print(f"this scenario states it fails: {outcome.expected_failure} ({verdict})")
    if trace_path is not None:
        console.print(f"trace: {shown(trace_path)}")
    return EXIT_VIOLATION if outcome.failed or not outcome.as_stated else EXIT_OK


def cmd_fuzz(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.table import Table

    from virtraft.run.campaign import CampaignSpec, SeedResult, run_campaign

    options = _sim_options(args)
    factory = _factory(args)
    seeds = args.seeds
    out_dir = str(Path(args.out) / f"fuzz-{seeds.start}-{seeds.stop}")
    spec = CampaignSpec(options, factory, args.swarm, out_dir)
    console.print(
        f"[bold]virtraft fuzz[/] seeds {seeds.start}:{seeds.stop} ({len(seeds)}), "
        f"{options.steps} steps each, swarm={args.swarm}, workers={args.workers}, "
        f"executor={args.executor}, factory={factory}"
    )
    failures: list[SeedResult] = []
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False, disable=args.quiet) as progress:
        task = progress.add_task("seeds", total=len(seeds))

        def on_result(result: SeedResult) -> None:
            progress.advance(task)
            if result.failed:
                failures.append(result)
                progress.update(task, description=f"seeds ([red]{len(failures)} failing[/])")

        try:
            results = run_campaign(
                seeds, spec, workers=args.workers, executor=args.executor,
                scheduler=args.scheduler, time_budget_s=args.time_budget, on_result=on_result,
            )
        except RuntimeError as exc:
            raise UsageError(str(exc)) from None
    failed = [r for r in results if r.failed]
    table = Table(title="Campaign", title_justify="left")
    table.add_column("seeds run", justify="right")
    table.add_column("safety violations", justify="right")
    table.add_column("liveness failures", justify="right")
    table.add_column("events", justify="right")
    table.add_row(str(len(results)), str(sum(r.safety != "ok" for r in results)),
                  str(sum(r.liveness == "failed" for r in results)),
                  str(sum(r.steps for r in results)))
    console.print(table)
    if failed:
        detail = Table(title="Failing seeds", title_justify="left")
        for column in ("seed", "verdict", "step", "what happened", "trace"):
            detail.add_column(column)
        for r in failed[:50]:
            what = r.message if r.safety != "ok" else r.liveness_reason
            verdict = r.invariant if r.safety != "ok" else "liveness"
            detail.add_row(str(r.seed), str(verdict), str(r.step or "-"), str(what),
                           str(r.trace or "-"))
        console.print(detail)
        first = failed[0]
        console.print("reproduce the first with: "
                      f"[bold]{escape(_reproduce_command(args, first.seed))}[/]")
        shortest = min((r for r in failed if r.safety != "ok" and r.trace),
                       key=lambda r: r.step or 0, default=None)
        if shortest is not None:
            small = str(shortest.trace).removesuffix(".jsonl") + ".small.jsonl"
            command = shlex.join(["virtraft", "shrink", str(shortest.trace), "-o", small,
                                  *_factory_words(factory)])
            console.print(f"shrink the shortest with: [bold]{escape(command)}[/]")
        _write_campaign_index(out_dir, results)
    if len(results) < len(seeds):
        console.print(f"time budget reached after {len(results)} of {len(seeds)} seeds")
    return EXIT_VIOLATION if failed else EXIT_OK


def _write_campaign_index(out_dir: str, results: Sequence) -> None:
    try:
        from virtraft.report.html import write_campaign_index
    except ImportError:
        return
    write_campaign_index(out_dir, results)


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    from virtraft.check.checker import Checker
    from virtraft.run.factory import load_factory
    from virtraft.sim.simulation import Simulation
    from virtraft.trace.replay import replay_events

    trace = _read_trace_or_exit(args.trace)
    factory = load_factory(_trace_factory(args, trace))
    if args.story:
        from virtraft.report.story import print_story

        print_story(console, trace, factory)
    sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    if diverged is not None:
        raise UsageError(
            f"{args.trace}: the trace diverges at step {diverged} of {len(trace.events)}: {why}"
        )
    recorded = trace.verdict.get("violation")
    console.print(f"replayed {sim.step} of {len(trace.events)} events from {shown(args.trace)}")
    if violation is not None:
        console.print(f"[bold red]safety: {shown(violation.invariant)} violated[/] at step "
                      f"{violation.step}: {shown(violation.message)}")
        if recorded is None:
            raise UsageError(f"{args.trace}: replay found {violation.invariant} at step "
                             f"{violation.step}, but the trace recorded no violation")
        if (recorded.get("invariant"), recorded.get("step")) != (violation.invariant,
                                                                 violation.step):
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
            raise UsageError(f"{args.trace}: replay ended with {name} {replayed}, the trace "
                             f"recorded {trace.verdict.get(name)}")
    console.print("[bold green]safety: ok[/], as recorded")
    liveness = trace.verdict.get("liveness") or {}
    if liveness.get("verdict") == "failed":
        console.print(f"[bold red]liveness (recorded): failed[/] ({shown(liveness.get('reason'))})")
        return EXIT_VIOLATION
    return EXIT_OK


def _trace_factory(args: argparse.Namespace, trace) -> str:
    """The node factory to run a trace with: the one the user named, or the
    default; never one the trace names by itself."""
    from virtraft.adapter import FactoryError
    from virtraft.run.factory import factory_for_trace

    try:
        return factory_for_trace(trace.factory, args.node_factory)
    except FactoryError as exc:
        raise UsageError(f"{args.trace}: {exc}") from None


def _read_trace_or_exit(path: str):
    from virtraft.trace.format import TraceError, read_trace

    try:
        return read_trace(path)
    except TraceError as exc:
        raise UsageError(str(exc)) from None


def cmd_shrink(args: argparse.Namespace, console: Console) -> int:
    from virtraft.report.story import STORY_MAX_EVENTS, print_story
    from virtraft.run.factory import load_factory
    from virtraft.run.shrink import MAX_REPLAYS, ShrinkError, shrink_file

    max_replays = args.max_replays or MAX_REPLAYS
    max_seconds = args.max_seconds
    if max_seconds is None:  # a replay budget alone is not cut short by the clock
        max_seconds = float("inf") if args.max_replays else SHRINK_SECONDS
    try:
        outcome = shrink_file(args.trace, args.output, node_factory=args.node_factory,
                              max_seconds=max_seconds, max_replays=max_replays,
                              console=console)
    except ShrinkError as exc:
        raise UsageError(str(exc)) from None
    console.print(
        f"shrunk {outcome.before} events to {outcome.after} "
        f"({shown(outcome.invariant)} still fails at step {outcome.step}); "
        f"wrote {shown(args.output)}"
    )
    if outcome.stopped_by == "seconds":
        console.print(f"stopped by the time limit after {outcome.replays} replays; "
                      f"--max-replays {outcome.replays} gives this result on any machine")
    elif outcome.stopped_by == "replays":
        console.print(f"stopped after {outcome.replays} replays (--max-replays)")
    if outcome.after <= STORY_MAX_EVENTS:
        print_story(console, outcome.trace(args.trace), load_factory(outcome.factory))
    return EXIT_VIOLATION


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from virtraft.report.html import write_report
    from virtraft.run.factory import load_factory

    trace = _read_trace_or_exit(args.trace)
    factory = load_factory(_trace_factory(args, trace))
    write_report(args.trace, args.output, trace=trace, factory=factory)
    console.print(f"wrote {shown(args.output)}")
    return EXIT_OK


def cmd_scenarios(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from virtraft.scenario.script import ScenarioError, list_scenarios

    try:
        infos = list_scenarios()
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    table = Table(title="Scenarios", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("expects", no_wrap=True)
    table.add_column("what it does")
    for info in infos:
        table.add_row(info.name, info.expects, info.summary)
    console.print(table)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace, console: Console) -> int:
    from virtraft.run.bench import main as bench_main

    return bench_main(args, console)


def cmd_zoo(args: argparse.Namespace, console: Console) -> int:
    from virtraft.zoo.hunt import main as zoo_main

    return zoo_main(args, console)


# ------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="virtraft", description=(
        "Run Raft servers over a hostile simulated network, check the safety invariants "
        "after every event, and keep a replayable trace of every failure."))
    parser.add_argument("--quiet", action="store_true", help="print less")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    run = sub.add_parser("run", help="run one seed and print what happened")
    run.add_argument("--seed", type=whole(0), default=0, help="the seed (0)")
    _add_sim_options(run, steps=20_000, client_rate=0.1)
    run.add_argument("--scenario", metavar="NAME",
                     help="run a named scenario (see `virtraft scenarios`) or a TOML file; one "
                          "that needs what the node factory lacks is skipped, saying why (exit 0)")
    run.add_argument("--trace", metavar="FILE", help="write the trace here (JSON Lines)")
    run.add_argument("--out", default="reports", metavar="DIR",
                     help="where a failing run's trace goes when --trace is not given")
    run.set_defaults(handler=cmd_run)

    fuzz = sub.add_parser("fuzz", help="run many seeds; save and summarise failures")
    fuzz.add_argument("--seeds", type=seed_range, default=range(0, 300), metavar="A:B",
                      help="seeds A (inclusive) to B (exclusive) (0:300)")
    fuzz.add_argument("--workers", type=whole(1), default=None,
                      help="parallel processes (all cores)")
    fuzz.add_argument("--executor", choices=("local", "dask"), default="local",
                      help="local processes, or a Dask cluster (extra [dask])")
    fuzz.add_argument("--scheduler", metavar="ADDR",
                      help="Dask scheduler address; without it a local cluster starts")
    fuzz.add_argument("--time-budget", type=seconds, default=None, metavar="S",
                      help="stop starting new seeds after S seconds of wall time")
    fuzz.add_argument("--out", default="reports", metavar="DIR",
                      help="failing traces and reports go under DIR (reports)")
    _add_sim_options(fuzz, steps=3_000, client_rate=0.1)
    fuzz.set_defaults(handler=cmd_fuzz, swarm=True)
    fuzz.add_argument("--no-swarm", dest="swarm", action="store_false",
                      help="use the options as given for every seed; by default each "
                           "seed draws its own drop, duplicate, partition, crash, client, "
                           "membership and snapshot rates, delays and batch size, may turn "
                           "pre-vote off, and may divide both timeouts by ten")

    replay = sub.add_parser("replay", help="re-run the events of a trace")
    replay.add_argument("trace", metavar="TRACE")
    replay.add_argument("--node-factory", default=None, metavar="MODULE:CALLABLE",
                        help="replay against another implementation")
    replay.add_argument("--story", action="store_true",
                        help="first print the trace step by step: each event and what it "
                             "changed in the servers")
    replay.set_defaults(handler=cmd_replay)

    shrink = sub.add_parser("shrink", help="cut a failing trace down to what makes it fail")
    shrink.add_argument("trace", metavar="TRACE")
    shrink.add_argument("-o", "--output", required=True, metavar="SMALLER",
                        help="where to write the shrunk trace")
    shrink.add_argument("--node-factory", default=None, metavar="MODULE:CALLABLE",
                        help="shrink against another implementation")
    shrink.add_argument("--max-seconds", type=seconds, default=None, metavar="S",
                        help=f"stop improving after S seconds of wall time ({SHRINK_SECONDS:g}; "
                             "none when only --max-replays is given)")
    shrink.add_argument("--max-replays", type=whole(1), default=None, metavar="N",
                        help="stop improving after N candidate replays; given alone, the "
                             "same trace always shrinks to the same result (20000)")
    shrink.set_defaults(handler=cmd_shrink)

    report = sub.add_parser("report", help="write a self-contained HTML report of a trace")
    report.add_argument("trace", metavar="TRACE")
    report.add_argument("-o", "--output", required=True, metavar="HTML")
    report.add_argument("--node-factory", default=None, metavar="MODULE:CALLABLE",
                        help="replay against another implementation (a trace recorded with "
                             "one other than the default needs it named)")
    report.set_defaults(handler=cmd_report)

    scenarios = sub.add_parser("scenarios", help="list the named scenarios")
    scenarios.set_defaults(handler=cmd_scenarios)

    bench = sub.add_parser("bench", help="measure events per second with every invariant on")
    bench.add_argument("--json", action="store_true", help="print JSON for machines")
    bench.add_argument("--events", type=whole(1000), default=None,
                       help="events per workload (default: each workload's own)")
    bench.add_argument("--long", action="store_true",
                       help="also compare a 10,000- and a 200,000-event run")
    bench.set_defaults(handler=cmd_bench)

    zoo = sub.add_parser("zoo", help="run every bug-zoo mutant and tabulate what caught it")
    zoo.add_argument("--seeds", type=seed_range, default=range(0, 100), metavar="A:B",
                     help="seeds tried in order until the first finding (0:100)")
    zoo.add_argument("--mutant", action="append", default=None, metavar="NAME",
                     help="only this mutant (repeatable)")
    zoo.add_argument("--time-budget", type=seconds, default=60.0, metavar="S",
                     help="wall seconds per mutant for the random seeds (60)")
    zoo.add_argument("--stateful", action=argparse.BooleanOptionalAction, default=True,
                     help="also let the Hypothesis state machine hunt each mutant (on)")
    zoo.add_argument("--shrink", action=argparse.BooleanOptionalAction, default=True,
                     help="shrink each safety finding, 10000 replays at most (on)")
    zoo.add_argument("--out", default=None, metavar="DIR",
                     help="write each finding's trace under DIR (NAME.jsonl) and, for "
                          "safety findings, the shrunk one (NAME.shrunk.jsonl), for "
                          "`virtraft replay`")
    zoo.add_argument("--json", action="store_true", help="print JSON for machines")
    zoo.set_defaults(handler=cmd_zoo)
    for sub_parser in sub.choices.values():
        sub_parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                                help="print less")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if getattr(args, "workers", 0) is None:
        from virtraft.run.campaign import default_workers

        args.workers = default_workers()
    from virtraft.adapter import FactoryError
    from virtraft.run.campaign import settle_process

    settle_process()
    console = Console(stderr=False, quiet=args.quiet, highlight=False)
    try:
        return args.handler(args, console)
    except (UsageError, FactoryError) as exc:
        sys.stderr.write(one_line(f"virtraft: error: {exc}") + "\n")
        return EXIT_USAGE
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        sys.stderr.write(one_line(f"virtraft: error: cannot write{where}: {exc.strerror or exc}")
                         + "\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("virtraft: interrupted\n")
        return 130
