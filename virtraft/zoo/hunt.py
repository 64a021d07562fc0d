"""`virtraft zoo`: run every bug-zoo mutant and tabulate what caught it.

A mutant (virtraft/zoo/mutants.py) is raftcore with one documented Raft
mistake put back. For each one the zoo reports whether random seeds (the
very runs `virtraft fuzz` makes with the command lines in `PROFILES`) and
the Hypothesis state machine (`virtraft.run.stateful`) caught it, with which
invariant, after how many events and wall seconds, and how short the
shrinker makes the failing trace. Exit code 0 when every safety mutant was
caught by an invariant it names, every liveness mutant failed the liveness
verdict, no slow control (correct, converging late) was reported stuck, and
the harmless control was never flagged; 1 otherwise.

Every mutant is hunted with the default `virtraft fuzz` command line: what
a mistake needs (five servers for a vote-counting one, three and one entry
per message for Figure 8, membership changes, snapshots, lossy crashes) is
what swarm testing draws, seed by seed (`virtraft.sim.options.options_swarm`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import shlex
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from rich.console import Console
from rich.table import Table
from rich.text import Text

from virtraft.cli.parser import UsageError, build_parser, sim_options
from virtraft.report.terminal import shown
from virtraft.run.seed import (
    LINEARIZABILITY,
    RunResult,
    linearizability_failed,
    linearizability_violation,
    run_seed,
)
from virtraft.run.shrink import shrink_events, shrink_liveness
from virtraft.run.stateful import MACHINE_OPTIONS, InvariantViolated, machine_for
from virtraft.sim.options import SimOptions
from virtraft.trace.format import write_trace

MUTANTS_MODULE = "virtraft.zoo.mutants"

# `virtraft fuzz` arguments (after the seeds) for each way of hunting: every
# mutant, safety or liveness, is hunted with the default command line, the
# one a user runs (swarm draws a profile per seed, see `SWARM_PROFILES`).
PROFILES: dict[str, tuple[str, ...]] = {
    "default": (),
    # The default command line with three clients whose history is checked:
    # for what clients were told (the linearizability verdict).
    "clients": ("--clients", "3"),
    # The same, reads served from leader leases.
    "leases": ("--clients", "3", "--lease-read"),
    # A leader cut off from the majority stays leader (no check-quorum) and
    # elections are frequent: reads it serves without confirming are stale.
    "isolated": (
        "--clients",
        "3",
        "--no-check-quorum",
        "--election-timeout-ms",
        "100",
        "--request-timeout-ms",
        "20",
        "--partition-rate",
        "0.02",
        "--no-liveness",
    ),
}
# The same with reads served from leader leases: a lease that is never
# confirmed lets the cut-off leader answer stale reads.
PROFILES["isolated-leases"] = (*PROFILES["isolated"], "--lease-read")
SAFETY_PROFILES = ("default",)
LIVENESS_PROFILES = ("default",)
LINEARIZABILITY_PROFILES = ("clients", "leases", "isolated", "isolated-leases")

# The stateful machine's budget per mutant and cluster size.
STATEFUL_EXAMPLES = 300
STATEFUL_STEPS = 100
STATEFUL_SERVERS = (3, 5)
# Entries per AppendEntries by cluster size, where not the fuzz profile's.
STATEFUL_ENTRIES_PER_MSG = {3: 1}
# Shrinking is bounded by replays, not seconds, so the table is the same on
# any machine.
SHRINK_REPLAYS = 10_000


class ZooError(Exception):
    """The zoo cannot run (the mutants cannot be found, an unknown name)."""


# ------------------------------------------------------------------ loading


def load_mutants() -> ModuleType:
    """The mutants ship with the package, as data for this command and the tests."""
    return importlib.import_module(MUTANTS_MODULE)


def profile_options(profile: str) -> SimOptions:
    """The options `virtraft fuzz` builds from the profile's command line."""
    args = build_parser().parse_args(["fuzz", *PROFILES[profile]])
    return sim_options(args)


def _swarm(profile: str) -> bool:
    return bool(build_parser().parse_args(["fuzz", *PROFILES[profile]]).swarm)


def fuzz_command(profile: str, spec: str, seeds: str) -> str:
    return shlex.join(
        [
            "virtraft",
            "fuzz",
            "--seeds",
            seeds,
            "--workers",
            "1",
            "--node-factory",
            spec,
            *PROFILES[profile],
        ]
    )


# ------------------------------------------------------------------ results


@dataclass(frozen=True, slots=True)
class Finding:
    """What caught a mutant: an invariant (or "liveness"), where and how fast."""

    verdict: str
    profile: str
    seed: int | None
    events: int  # events applied until the violation (or the liveness verdict)
    seconds: float  # wall seconds from the start of the hunt until it was found
    runs: int  # seeds (or examples) run until then
    command: str
    cpu_seconds: float = 0.0  # CPU seconds of the hunt's process until then


@dataclass(frozen=True, slots=True)
class MutantReport:
    name: str
    kind: str
    expected: tuple[str, ...] | None
    source: str
    fuzz: Finding | None
    fuzz_runs: int
    fuzz_seconds: float
    stateful: Finding | None
    stateful_note: str
    shrunk_events: int | None
    shrink_note: str
    ok: bool
    why: str

    def json(self) -> dict[str, Any]:
        out = asdict(self)
        out["expected"] = list(self.expected) if self.expected else None
        return out


def hunt_seeds(
    spec: str, seeds: Sequence[int], profiles: Sequence[str], budget_s: float
) -> tuple[Finding | None, int, float, RunResult | None]:
    """Run seeds (each under every profile in turn) until the first finding
    (a safety violation or a failed liveness verdict) or the time budget."""
    options = {p: profile_options(p) for p in profiles}
    swarm = {p: _swarm(p) for p in profiles}
    started = time.perf_counter()
    cpu_started = time.process_time()
    runs = 0
    for seed in seeds:
        for profile in profiles:
            if time.perf_counter() - started >= budget_s:
                return None, runs, time.perf_counter() - started, None
            result = run_seed(seed, options[profile], factory=spec, swarm=swarm[profile])
            runs += 1
            verdict = None
            if result.violation is not None:
                verdict = result.violation.invariant
            elif result.liveness.verdict == "failed":
                verdict = "liveness"
            elif linearizability_failed(result.linearizability):
                verdict = LINEARIZABILITY
            if verdict is None:
                continue
            seconds = time.perf_counter() - started
            events = result.violation.step if result.violation is not None else result.sim.step
            finding = Finding(
                verdict,
                profile,
                seed,
                events,
                round(seconds, 2),
                runs,
                fuzz_command(profile, spec, f"{seed}:{seed + 1}"),
                round(time.process_time() - cpu_started, 2),
            )
            return finding, runs, seconds, result
    return None, runs, time.perf_counter() - started, None


def stateful_options(servers: int) -> SimOptions:
    """The machine's options in the zoo: its defaults on `servers` servers,
    with pre-vote and entries per message as in the fuzz profile of that
    size (else no pre-vote), one entry per message with three servers (a
    follower catches up one probe at a time, as in the Figure 8 story: an
    old entry reaches it without the new leader's no-op; swarm draws such
    runs for fuzz), and lossy crashes on."""
    node = dataclasses.replace(
        MACHINE_OPTIONS.node,
        prevote=False,
        max_entries_per_msg=STATEFUL_ENTRIES_PER_MSG.get(
            servers, MACHINE_OPTIONS.node.max_entries_per_msg
        ),
    )
    for profile in SAFETY_PROFILES:
        fuzz = profile_options(profile)
        if fuzz.servers == servers:
            node = dataclasses.replace(
                node,
                prevote=fuzz.node.prevote,
                max_entries_per_msg=fuzz.node.max_entries_per_msg,
            )
    # Crashes may be power cuts (the machine's `reboot(power_cut=True)`), as
    # swarm draws them for fuzz: what a server synced is all it keeps.
    return MACHINE_OPTIONS.replace(servers=servers, node=node, lossy_crash_probability=0.5)


def stateful_settings(examples: int, steps: int) -> settings:
    """Hypothesis settings for a hunt: derandomized (the same table on every
    run), generation only (the zoo asks whether, not how short)."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        derandomize=True,
        database=None,
        deadline=None,
        report_multiple_bugs=False,
        print_blob=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


def hunt_stateful(
    spec: str,
    servers: Sequence[int] = STATEFUL_SERVERS,
    examples: int = STATEFUL_EXAMPLES,
    steps: int = STATEFUL_STEPS,
) -> Finding | None:
    """Let the Hypothesis machine look for a violation (no shrinking: the
    zoo only asks whether and how soon it finds one). The finding's `runs`
    counts the examples run until the failing one, that one included (over
    every cluster size tried); `events` is the failing example's length."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    made = 0
    for count in servers:
        base = machine_for(spec, stateful_options(count))

        class Counted(base):  # type: ignore[valid-type, misc]
            made: ClassVar[int] = 0  # examples run (machines built)

            def __init__(self) -> None:
                type(self).made += 1
                super().__init__()

        try:
            run_state_machine_as_test(Counted, settings=stateful_settings(examples, steps))
        except InvariantViolated as exc:
            failure = Counted.last_failure
            events = failure.events if failure is not None else exc.violation.step
            # Hypothesis runs the failing example once more to report it.
            return Finding(
                exc.violation.invariant,
                f"stateful, {count} servers",
                None,
                events,
                round(time.perf_counter() - started, 2),
                made + max(1, Counted.made - 1),
                "",
                round(time.process_time() - cpu_started, 2),
            )
        made += Counted.made
    return None


def stateful_miss(found: Finding | None, expected: tuple[str, ...]) -> str | None:
    """Why the machine's hunt fails a safety mutant (None: it does not): it
    found nothing within its budget, or an invariant the docstring does not
    name."""
    if found is None:
        return "the state machine missed it within its budget"
    if found.verdict not in expected:
        return f"the state machine caught it by {found.verdict}, which its docstring does not name"
    return None


def shrink_finding(name: str, spec: str, result: RunResult, out_dir: Path | None) -> int:
    """Shrink the finding's trace (the shrinker proves its result with a
    strict replay); write it under `out_dir` if given."""
    violation = result.violation or linearizability_violation(result.sim, result.linearizability)
    if violation is None:  # a liveness failure: its own shrinker
        outcome = shrink_liveness(
            result.seed,
            result.options,
            spec,
            result.events,
            result.liveness.to_json(),
            max_seconds=float("inf"),
        )
    else:
        outcome = shrink_events(
            result.seed,
            result.options,
            spec,
            result.events,
            violation.invariant,
            max_seconds=float("inf"),
            max_replays=SHRINK_REPLAYS,
        )
    if out_dir is not None:
        write_trace(out_dir / f"{name}.shrunk.jsonl", outcome.trace_lines(f"{name}.jsonl"))
    return outcome.after


def run_mutant(
    name: str,
    cls: type,
    spec: str,
    seeds: Sequence[int],
    budget_s: float,
    *,
    stateful: bool = True,
    shrink: bool = True,
    out_dir: Path | None = None,
) -> MutantReport:
    kind: str = cls.kind
    expected = cls.expected_invariant
    source = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    if kind == "harmless":
        profiles: Sequence[str] = tuple(dict.fromkeys((*SAFETY_PROFILES, *LIVENESS_PROFILES)))
    elif kind in ("liveness", "slow"):
        profiles = LIVENESS_PROFILES
    elif kind == "linearizability":
        profiles = LINEARIZABILITY_PROFILES
    else:
        profiles = SAFETY_PROFILES
    finding, runs, seconds, result = hunt_seeds(spec, seeds, profiles, budget_s)
    found_stateful = None
    stateful_note = {
        "liveness": "n/a (liveness)",
        "slow": "n/a (slow)",
        "linearizability": "n/a (no history)",
    }.get(kind, "")
    if stateful and kind not in ("liveness", "slow", "linearizability"):
        found_stateful = hunt_stateful(spec)
        if found_stateful is None:
            stateful_note = "not found"
    elif not stateful:
        stateful_note = "skipped"
    if out_dir is not None and result is not None:
        write_trace(out_dir / f"{name}.jsonl", result.trace_lines())
    shrunk, shrink_note = None, "n/a" if shrink else "skipped"
    if (
        shrink
        and result is not None
        and (
            result.violation is not None
            or result.failed
            or linearizability_failed(result.linearizability)
        )
    ):
        shrunk, shrink_note = shrink_finding(name, spec, result, out_dir), ""
    if kind == "harmless":
        ok = finding is None and found_stateful is None
        why = "silent, as it must be" if ok else "a harmless mutant was flagged"
    elif kind == "liveness":
        ok = finding is not None and finding.verdict == "liveness"
        why = "liveness verdict failed" if ok else "the liveness verdict never failed"
    elif kind == "slow":
        # A slow control converges, late: a failed liveness verdict calls it stuck.
        ok = finding is None
        why = "never reported stuck" if ok else f"reported stuck ({finding.verdict})"
    else:
        assert expected
        ok = finding is not None and finding.verdict in expected
        if finding is None:
            why = "not caught within the budget"
        elif ok:
            why = f"caught by {finding.verdict}"
        else:
            why = f"caught by {finding.verdict}, which its docstring does not name"
        # With the machine on, what fuzz finds it must find too (issue #13).
        hunted = stateful and kind == "safety"
        machine_why = stateful_miss(found_stateful, expected) if hunted else None
        if ok and machine_why is not None:
            ok, why = False, machine_why
    return MutantReport(
        name,
        kind,
        expected,
        source,
        finding,
        runs,
        round(seconds, 2),
        found_stateful,
        stateful_note,
        shrunk,
        shrink_note,
        ok,
        why,
    )


# ------------------------------------------------------------------ output


def _fuzz_cell(report: MutantReport) -> str:
    f = report.fuzz
    if f is None:
        return f"no ({report.fuzz_runs} runs)"
    return f"{f.verdict}, seed {f.seed} ({f.profile})"


def median_shrink_ratio(reports: Sequence[MutantReport]) -> float | None:
    """Shrunk length over the length of the trace it came from, the median."""
    ratios = [
        r.shrunk_events / r.fuzz.events
        for r in reports
        if r.shrunk_events is not None and r.fuzz is not None and r.fuzz.events
    ]
    return statistics.median(ratios) if ratios else None


def print_table(console: Console, reports: Sequence[MutantReport]) -> None:
    table = Table(title="Bug zoo", title_justify="left")
    for column in (
        "mutant",
        "kind",
        "expected",
        "random seeds",
        "events",
        "seconds",
        "stateful",
        "shrunk",
        "ok",
    ):
        table.add_column(
            column, justify="right" if column in ("events", "seconds", "shrunk") else "left"
        )
    for r in reports:
        f = r.fuzz
        s = r.stateful
        stateful = (
            f"{s.verdict}, {s.profile.split(', ')[-1]}, example {s.runs}, {s.events} events,"
            f" {s.cpu_seconds:.1f} s CPU"
            if s is not None
            else r.stateful_note
        )
        table.add_row(
            shown(r.name),
            shown(r.kind),
            shown(", ".join(r.expected) if r.expected else "-"),
            shown(_fuzz_cell(r)),
            str(f.events) if f else "-",
            f"{f.seconds:.2f}" if f else f"{r.fuzz_seconds:.1f}",
            shown(stateful),
            shown(r.shrunk_events if r.shrunk_events is not None else r.shrink_note),
            Text("yes", style="green")
            if r.ok
            else Text.assemble(("NO", "red"), ": ", shown(r.why)),
        )
    console.print(table)
    ratio = median_shrink_ratio(reports)
    if ratio is not None:
        console.print(f"Shrinking left {ratio:.1%} of a failing trace's events (the median).")
    console.print(
        shown(
            "Command lines (after `virtraft fuzz --seeds A:B --node-factory "
            f"{MUTANTS_MODULE}:NAME`):"
        )
    )
    for profile, words in PROFILES.items():
        console.print(shown(f"  {profile}: {shlex.join(words) or '(defaults)'}"))


def main(args: argparse.Namespace, console: Console) -> int:
    """`virtraft zoo [--seeds A:B] [--mutant NAME]... [--time-budget S] [--json]`."""
    try:
        module = load_mutants()
    except ZooError as exc:
        raise UsageError(str(exc)) from None
    mutants: dict[str, type] = module.MUTANTS
    names = list(args.mutant) if args.mutant else list(mutants)
    unknown = [n for n in names if n not in mutants]
    if unknown:
        raise UsageError(f"no mutant {unknown[0]!r}; known: {', '.join(mutants)}")
    out_dir = Path(args.out) if args.out else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {out_dir}: {exc.strerror}") from None
    reports = []
    for name in names:
        report = run_mutant(
            name,
            mutants[name],
            module.factory_spec(name),
            args.seeds,
            args.time_budget,
            stateful=args.stateful,
            shrink=args.shrink,
            out_dir=out_dir,
        )
        reports.append(report)
        if not args.json:
            console.print(Text.assemble(shown(name), ": ", shown(report.why)))
    ok = all(r.ok for r in reports)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "seeds": [args.seeds.start, args.seeds.stop],
                    "time_budget_s": args.time_budget,
                    "median_shrink_ratio": median_shrink_ratio(reports),
                    "profiles": {p: list(w) for p, w in PROFILES.items()},
                    "mutants": [r.json() for r in reports],
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        print_table(console, reports)
    return 0 if ok else 1
