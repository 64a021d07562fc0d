"""The `virtraft` argument parser: subcommands, option groups, and what the
options mean as `SimOptions`.

Nothing here runs anything, so the zoo can build exactly the options that
`virtraft fuzz` would from a command line. Bad input raises `UsageError`
(or, from argparse, ends with one line and exit code 2).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from virtraft.adapter import NodeOptions
from virtraft.report.terminal import one_line
from virtraft.run.bench import PEER_WORKLOADS, WORKLOADS
from virtraft.sim.options import MAX_MS, SWARM_FIELDS, OptionsError, SimOptions

# Exit codes: 0 no violation, 1 a violation (safety or liveness) was found,
# 2 bad usage or input (including a trace that no longer fits the code).
EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2
EXIT_UNDECIDED = 3  # a check whose budget ran out before a verdict
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

# `virtraft shrink` stops improving after this long unless told otherwise.
SHRINK_SECONDS = 120.0


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"virtraft: error: {one_line(message)} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


# -------------------------------------------------------------- value types


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


# ------------------------------------------------------------ option groups


def _add_sim_options(p: argparse.ArgumentParser, *, steps: int, client_rate: float) -> None:
    _add_simulation_group(p, steps=steps, client_rate=client_rate)
    _add_raft_group(p)
    p.add_argument(
        "--node-factory",
        default=None,
        metavar="MODULE:CALLABLE",
        help="run another Raft implementation through the node adapter",
    )


def _add_simulation_group(p: argparse.ArgumentParser, *, steps: int, client_rate: float) -> None:
    g = p.add_argument_group("simulation")
    g.add_argument("--servers", type=whole(1), default=5, help="servers in the cluster (5)")
    g.add_argument(
        "--first-node-id",
        type=whole(0),
        default=1,
        metavar="N",
        help="the first server's id; the others follow (1; 0 tests a server whose id is 0)",
    )
    g.add_argument(
        "--steps", type=whole(1), default=steps, help=f"events in the safety phase ({steps})"
    )
    g.add_argument(
        "--drop",
        type=probability,
        default=0.0,
        help="probability that a message picked for delivery is lost",
    )
    g.add_argument(
        "--dup",
        type=probability,
        default=0.0,
        help="probability that a message picked for delivery is duplicated",
    )
    g.add_argument(
        "--reorder",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="deliver any message in flight (default) or the oldest first",
    )
    g.add_argument(
        "--partition-rate",
        type=probability,
        default=0.0,
        help="per-step probability of a partition or heal",
    )
    g.add_argument(
        "--crash-rate",
        type=probability,
        default=0.0,
        help="per-step probability of a crash (restarts come at 5x)",
    )
    g.add_argument(
        "--lossy-crash",
        type=probability,
        default=0.0,
        help="probability that a crash is a power cut, losing the writes the "
        "server had not synced (a random prefix of them survives)",
    )
    g.add_argument(
        "--client-rate",
        type=probability,
        default=client_rate,
        help=f"per-step probability of a client command ({client_rate})",
    )
    g.add_argument(
        "--clients",
        type=whole(0, 64),
        default=0,
        help="clients reading, writing and compare-and-setting keys, their history "
        "checked for linearizability after the run (0: anonymous writes, no history)",
    )
    g.add_argument(
        "--member-rate",
        type=probability,
        default=0.0,
        help="per-step probability of a membership change",
    )
    g.add_argument(
        "--min-voters",
        type=whole(1),
        default=3,
        help="membership changes remove voters down to this many, 1 included (3)",
    )
    g.add_argument(
        "--snapshot-rate",
        type=probability,
        default=0.0,
        help="per-step probability that a server snapshots its log",
    )
    g.add_argument(
        "--delay-max-ms",
        type=whole(0, MAX_MS),
        default=10,
        help="largest message delay in virtual ms (10)",
    )
    g.add_argument(
        "--tick-ms-max",
        type=whole(1, MAX_MS),
        default=10,
        help="most virtual ms one tick moves the clock (10); near the election "
        "timeout, a single tick can fire a timer",
    )
    g.add_argument(
        "--swarm",
        action="store_true",
        help="draw the fault mix and some Raft settings from each seed, except "
        "the options given (swarm testing; see `virtraft fuzz --help`)",
    )
    g.add_argument(
        "--liveness",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the faults, require a leader and a commit in bounded time",
    )


def _add_raft_group(p: argparse.ArgumentParser) -> None:
    r = p.add_argument_group("raft options")
    r.add_argument(
        "--election-timeout-ms",
        type=whole(2, MAX_MS),
        default=1000,
        help="base election timeout T; each wait is random in [T, 2T) (1000)",
    )
    r.add_argument(
        "--request-timeout-ms",
        type=whole(1, MAX_MS),
        default=200,
        help="heartbeat interval of a leader (200)",
    )
    r.add_argument(
        "--prevote",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="ask for votes before bumping the term (on)",
    )
    r.add_argument(
        "--check-quorum",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a leader that cannot reach a majority steps down (on)",
    )
    r.add_argument(
        "--max-entries-per-msg",
        type=whole(1),
        default=64,
        help="most entries in one AppendEntries (64)",
    )
    r.add_argument(
        "--lease-read",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="serve reads from a leader lease, without a heartbeat round (off)",
    )
    r.add_argument(
        "--forward-reads",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="a follower asked to read gets a read index from the leader and serves "
        "the read itself, instead of redirecting the client (off)",
    )


def sim_options(args: argparse.Namespace) -> SimOptions:
    """The simulation the options of `run` or `fuzz` describe."""
    try:
        node = NodeOptions(
            election_timeout_ms=args.election_timeout_ms,
            request_timeout_ms=args.request_timeout_ms,
            prevote=args.prevote,
            check_quorum=args.check_quorum,
            max_entries_per_msg=args.max_entries_per_msg,
            lease_read=args.lease_read,
            forward_reads=args.forward_reads,
        )
        if not node.heartbeat_beats_election():
            raise OptionsError("--request-timeout-ms must be below --election-timeout-ms")
        return SimOptions(
            servers=args.servers,
            first_node_id=args.first_node_id,
            steps=args.steps,
            drop_probability=args.drop,
            duplicate_probability=args.dup,
            reorder=args.reorder,
            partition_rate=args.partition_rate,
            crash_rate=args.crash_rate,
            lossy_crash_probability=args.lossy_crash,
            client_rate=args.client_rate,
            clients=args.clients,
            member_rate=args.member_rate,
            snapshot_rate=args.snapshot_rate,
            delay_ms_max=args.delay_max_ms,
            tick_ms_max=args.tick_ms_max,
            max_servers=max(9, args.servers),
            min_voters=args.min_voters,
            liveness=args.liveness,
            node=node,
        )
    except OptionsError as exc:
        raise UsageError(str(exc)) from None


# Options of `run` and `fuzz` that swarm testing draws, by their argparse
# names: under swarm, the ones the user gives are kept as given.
SWARM_DESTS = {
    "drop": "drop_probability",
    "dup": "duplicate_probability",
    "reorder": "reorder",
    "partition_rate": "partition_rate",
    "crash_rate": "crash_rate",
    "lossy_crash": "lossy_crash_probability",
    "servers": "servers",
    "first_node_id": "first_node_id",
    "min_voters": "min_voters",
    "client_rate": "client_rate",
    "member_rate": "member_rate",
    "snapshot_rate": "snapshot_rate",
    "delay_max_ms": "delay_ms_max",
    "election_timeout_ms": "node.election_timeout_ms",
    "request_timeout_ms": "node.request_timeout_ms",
    "prevote": "node.prevote",
    "max_entries_per_msg": "node.max_entries_per_msg",
}
assert set(SWARM_DESTS.values()) <= set(SWARM_FIELDS)


def given_options(argv: list[str]) -> set[str]:
    """The argparse names of the options given on this command line (not
    those left at their defaults)."""
    parser = build_parser()
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in (parser, *(p for a in subparsers for p in a.choices.values())):
        for action in sub._actions:
            if action.dest not in ("command", "help"):
                action.default = argparse.SUPPRESS
        sub._defaults.clear()
    return set(vars(parser.parse_args(argv))) - {"command"}


def swarm_keeps(argv: list[str]) -> frozenset[str]:
    """The option fields swarm must keep: those the user set on this command line."""
    return frozenset(SWARM_DESTS[d] for d in given_options(argv) if d in SWARM_DESTS)


def run_defaults() -> dict[str, Any]:
    """Every option of `virtraft run` as it is when not given."""
    return vars(build_parser().parse_args(["run"]))


def reproduce_command(args: argparse.Namespace, seed: int) -> str:
    """The command line that reruns exactly this seed."""
    words = ["virtraft", "run", "--seed", str(seed)]
    skip = {
        "command",
        "seed",
        "seeds",
        "workers",
        "executor",
        "scheduler",
        "time_budget",
        "out",
        "trace",
        "quiet",
        "swarm_keep",
    }
    defaults = run_defaults()
    for name, value in sorted(vars(args).items()):
        if name in skip or defaults.get(name) == value:
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            words.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


# -------------------------------------------------------------- subcommands


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; `args.command` names the one given."""
    parser = _Parser(
        prog="virtraft",
        description=(
            "Run Raft servers over a hostile simulated network, check the safety invariants "
            "after every event, and keep a replayable trace of every failure."
        ),
    )
    parser.add_argument("--quiet", action="store_true", help="print less")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    _add_run(sub)
    _add_fuzz(sub)
    _add_replay(sub)
    _add_shrink(sub)
    report = sub.add_parser("report", help="write a self-contained HTML report of a trace")
    report.add_argument("trace", metavar="TRACE")
    report.add_argument("-o", "--output", required=True, metavar="HTML")
    report.add_argument(
        "--node-factory",
        default=None,
        metavar="MODULE:CALLABLE",
        help="replay against another implementation (a trace recorded with "
        "one other than the default needs it named)",
    )
    sub.add_parser("scenarios", help="list the named scenarios")
    _add_bench(sub)
    _add_zoo(sub)
    _add_lincheck(sub)
    for sub_parser in sub.choices.values():
        sub_parser.add_argument(
            "--quiet", action="store_true", default=argparse.SUPPRESS, help="print less"
        )
    return parser


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run one seed and print what happened")
    run.add_argument("--seed", type=whole(0), default=0, help="the seed (0)")
    _add_sim_options(run, steps=20_000, client_rate=0.1)
    run.add_argument(
        "--scenario",
        metavar="NAME",
        help="run a named scenario (see `virtraft scenarios`) or a TOML file; one "
        "that needs what the node factory lacks is skipped, saying why (exit 0)",
    )
    run.add_argument("--trace", metavar="FILE", help="write the trace here (JSON Lines)")
    run.add_argument(
        "--profile",
        action="store_true",
        help="also print where the run's CPU time went, by component (raftcore, "
        "adapter, simulator, checker, trace), under cProfile: read the shares, "
        "the run is several times slower",
    )
    run.add_argument(
        "--out",
        default="reports",
        metavar="DIR",
        help="where a failing run's trace goes when --trace is not given",
    )


def _add_fuzz(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fuzz = sub.add_parser("fuzz", help="run many seeds; save and summarise failures")
    fuzz.add_argument(
        "--seeds",
        type=seed_range,
        default=range(0, 300),
        metavar="A:B",
        help="seeds A (inclusive) to B (exclusive) (0:300)",
    )
    fuzz.add_argument(
        "--workers", type=whole(1), default=None, help="parallel processes (all cores)"
    )
    fuzz.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local processes, or a Dask cluster (extra [dask])",
    )
    fuzz.add_argument(
        "--scheduler",
        metavar="ADDR",
        help="Dask scheduler address; without it a local cluster starts",
    )
    fuzz.add_argument(
        "--time-budget",
        type=seconds,
        default=None,
        metavar="S",
        help="stop starting new seeds after S seconds of wall time",
    )
    fuzz.add_argument(
        "--out",
        default="reports",
        metavar="DIR",
        help="failing traces and reports go under DIR (reports)",
    )
    _add_sim_options(fuzz, steps=3_000, client_rate=0.1)
    fuzz.set_defaults(swarm=True)
    fuzz.add_argument(
        "--no-swarm",
        dest="swarm",
        action="store_false",
        help="use the options as given for every seed; by default each "
        "seed draws a profile (a broad mix, or one favouring elections, "
        "membership changes or snapshots) and from it its own cluster size, "
        "drop, duplicate, partition, crash (lossy too), client, membership "
        "and snapshot rates, fewest voters, delays and batch size, may turn "
        "pre-vote off, and may divide both timeouts by ten; an option you "
        "give (e.g. --drop 0.9) holds for every seed, and swarm draws the "
        "rest",
    )


def _add_replay(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay",
        help="re-run the events of a trace",
        description="Re-run the events of a trace and hold the verdict against the recorded "
        "one. A trace whose server's process died in its last event (a native crash) is "
        "re-run in a process of its own.",
    )
    replay.add_argument("trace", metavar="TRACE")
    replay.add_argument(
        "--node-factory",
        default=None,
        metavar="MODULE:CALLABLE",
        help="replay against another implementation",
    )
    replay.add_argument(
        "--story",
        action="store_true",
        help="first print the trace step by step: each event and what it changed in the "
        "servers, and why; the decisive steps marked, and the verdict's cause",
    )
    story = replay.add_argument_group("story options (with --story)")
    story.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="the story as text for people or as one JSON document for programs (text)",
    )
    story.add_argument(
        "--node", type=whole(1), default=None, metavar="N", help="only the steps involving node N"
    )
    story.add_argument(
        "--message-type",
        default=None,
        metavar="KIND",
        help="only the steps that deliver, drop or copy a message of type KIND "
        "(e.g. AppendEntries)",
    )
    story.add_argument(
        "--no-ticks",
        dest="ticks",
        action="store_false",
        help="leave out the ticks that changed nothing (decisive steps always stay)",
    )


def _add_shrink(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shrink = sub.add_parser("shrink", help="cut a failing trace down to what makes it fail")
    shrink.add_argument("trace", metavar="TRACE")
    shrink.add_argument(
        "-o", "--output", required=True, metavar="SMALLER", help="where to write the shrunk trace"
    )
    shrink.add_argument(
        "--node-factory",
        default=None,
        metavar="MODULE:CALLABLE",
        help="shrink against another implementation",
    )
    shrink.add_argument(
        "--max-seconds",
        type=seconds,
        default=None,
        metavar="S",
        help=f"stop improving after S seconds of wall time ({SHRINK_SECONDS:g}; "
        "none when only --max-replays is given)",
    )
    shrink.add_argument(
        "--max-replays",
        type=whole(1),
        default=None,
        metavar="N",
        help="stop improving after N candidate replays; given alone, the "
        "same trace always shrinks to the same result (20000 for a safety "
        "violation; 200 for a liveness failure, each of whose replays runs "
        "its liveness phase to the stuck bound)",
    )


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure events per second with every invariant on")
    bench.add_argument("--json", action="store_true", help="print JSON for machines")
    bench.add_argument(
        "--events",
        type=whole(1000),
        default=None,
        help="events per workload (default: each workload's own)",
    )
    bench.add_argument(
        "--long", action="store_true", help="also compare a 10,000- and a 200,000-event run"
    )
    bench.add_argument(
        "--memory",
        action="store_true",
        help="also run the first workload for 10^4, 10^5 and 10^6 events, each in a fresh "
        "process: peak memory (maximum resident set) and events/s as the run grows",
    )
    bench.add_argument(
        "--by-kind",
        action="store_true",
        help="also time each event of one 10^6-event run of the first workload, by kind "
        "(delivery, tick, client command...): its first 10,000 events against its last "
        "100,000, and their events/s at the same mix of events",
    )
    bench.add_argument(
        "--workload",
        action="append",
        default=None,
        choices=[w.name for w in (*WORKLOADS, *PEER_WORKLOADS)],
        metavar="NAME",
        help="only this workload (repeatable): "
        + ", ".join(w.name for w in (*WORKLOADS, *PEER_WORKLOADS))
        + "; the peer-* ones are the seed's own simulator's workloads, not run by default",
    )


def _add_zoo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    zoo = sub.add_parser("zoo", help="run every bug-zoo mutant and tabulate what caught it")
    zoo.add_argument(
        "--seeds",
        type=seed_range,
        default=range(0, 1000),
        metavar="A:B",
        help="seeds tried in order until the first finding or the time budget (0:1000)",
    )
    zoo.add_argument(
        "--mutant",
        action="append",
        default=None,
        metavar="NAME",
        help="only this mutant (repeatable)",
    )
    zoo.add_argument(
        "--time-budget",
        type=seconds,
        default=60.0,
        metavar="S",
        help="wall seconds per mutant for the random seeds (60)",
    )
    zoo.add_argument(
        "--stateful",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also let the Hypothesis state machine hunt each mutant (on)",
    )
    zoo.add_argument(
        "--shrink",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="shrink each safety finding, 10000 replays at most (on)",
    )
    zoo.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="write each finding's trace under DIR (NAME.jsonl) and, for "
        "safety findings, the shrunk one (NAME.shrunk.jsonl), for "
        "`virtraft replay`",
    )
    zoo.add_argument("--json", action="store_true", help="print JSON for machines")


def _add_lincheck(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lincheck = sub.add_parser(
        "lincheck",
        help="decide whether a history of key-value operations is linearizable",
        description="Read a history (JSON, see docs/linearizability.md: from virtraft's "
        "clients or any system's) and search for a linear order of its operations, key by "
        "key. Exit 0: linearizable; 1: not, with the operation that has no legal place; "
        "3: the search budget ran out; 2: the file cannot be read.",
    )
    lincheck.add_argument("history", metavar="HISTORY", help="the history file (JSON)")
    lincheck.add_argument(
        "--max-steps",
        type=whole(1),
        default=2_000_000,
        metavar="N",
        help="search steps over all keys before the verdict is 'unknown' (2000000)",
    )
    lincheck.add_argument("--json", action="store_true", help="print JSON for machines")
