"""The bug zoo: each mutant of raftcore is caught, and by what it says.

Every safety mutant runs through the runs `virtraft fuzz` makes with the
zoo's command line (virtraft.zoo.hunt.PROFILES: the default one), seed after seed from 0, until
the first finding; the finding must be an invariant the mutant's docstring
names. Liveness mutants must fail the liveness verdict; the harmless
control, and raftcore itself, must not be flagged on the same seeds (the
Hypothesis machine's table is test_machine_finds.py). Everything is
derandomized: no outcome depends on wall time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex

import pytest
from rich.console import Console

from raftcore import RaftServer
from virtraft.check.checker import INVARIANTS
from virtraft.cli import commands as cli
from virtraft.nodes.raftcore import RaftcoreNode
from virtraft.run.factory import DEFAULT_FACTORY, load_factory
from virtraft.zoo import hunt as zoo

mutants = zoo.load_mutants()
MUTANTS = mutants.MUTANTS
SAFETY = [name for name, cls in MUTANTS.items() if cls.kind == "safety"]
LIVENESS = [name for name, cls in MUTANTS.items() if cls.kind == "liveness"]
SLOW = [name for name, cls in MUTANTS.items() if cls.kind == "slow"]
HARMLESS = [name for name, cls in MUTANTS.items() if cls.kind == "harmless"]

# Seeds 0.. are tried in order; the first finding ends the hunt. The bound
# only keeps a regression from running long: every mutant is caught far
# sooner (see the README's table).
SEED_BOUND = 400
CONTROL_SEEDS = range(0, 40)
NO_BUDGET = float("inf")  # never stop on wall time: outcomes stay deterministic


# ---------------------------------------------------------------- the zoo


def test_the_zoo_has_what_the_issue_asks_for() -> None:
    assert len(MUTANTS) >= 15
    assert len(SAFETY) >= 12
    assert len(LIVENESS) >= 10
    assert len(SLOW) >= 2
    assert len(HARMLESS) == 1


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_mutant_overrides_one_method_of_raftserver(name: str) -> None:
    cls = MUTANTS[name]
    # A mutant of the state machine overrides one method of the node instead.
    base = RaftcoreNode if name in mutants.NODE_MUTANTS else RaftServer
    overridden = [
        attr for attr, value in vars(cls).items() if callable(value) and hasattr(base, attr)
    ]
    assert overridden == [cls.mutated]
    assert callable(getattr(base, cls.mutated))


@pytest.mark.parametrize("name", list(MUTANTS))
def test_a_mutant_names_its_source_and_what_catches_it(name: str) -> None:
    cls = MUTANTS[name]
    doc = inspect.getdoc(cls) or ""
    assert cls.kind in ("safety", "liveness", "slow", "harmless", "linearizability")
    # A source: the paper or dissertation, or an issue/fix in another project.
    assert any(mark in doc for mark in ("Figure", "§", "#", "Guide")), doc
    if cls.kind == "safety":
        assert cls.expected_invariant
        for invariant in cls.expected_invariant:
            assert invariant in INVARIANTS
            assert invariant in doc  # the docstring names every invariant it accepts
    elif cls.kind == "linearizability":
        assert cls.expected_invariant == ("Linearizability",)
        assert "Caught by: Linearizability" in doc
    else:
        assert cls.expected_invariant is None


@pytest.mark.parametrize("name", list(MUTANTS))
def test_every_mutant_has_a_node_factory_spec(name: str) -> None:
    spec = mutants.factory_spec(name)
    assert spec == f"virtraft.zoo.mutants:{name}"
    assert load_factory(spec) is getattr(mutants, name)


# ------------------------------------------------------------- random seeds


@pytest.mark.parametrize("name", SAFETY)
def test_safety_mutant_is_caught_by_fuzz_with_its_invariant(name: str) -> None:
    cls = MUTANTS[name]
    finding, runs, _seconds, result = zoo.hunt_seeds(
        mutants.factory_spec(name), range(SEED_BOUND), zoo.SAFETY_PROFILES, NO_BUDGET
    )
    assert finding is not None, f"{name} not caught in {runs} runs"
    assert finding.verdict in cls.expected_invariant, finding
    assert result is not None and result.violation is not None
    assert result.violation.invariant == finding.verdict
    if runs > 1:  # at least one whole seed ran before: it cost CPU time
        assert finding.cpu_seconds > 0, finding


def test_shrinking_cuts_the_median_counterexample_below_a_tenth(tmp_path) -> None:
    """Issue #4: shrinking every safety mutant's first counterexample leaves
    the median under a tenth of its length, and each shrunk trace replays,
    through the CLI, to the very violation it records."""
    reports = [
        zoo.run_mutant(
            name,
            MUTANTS[name],
            mutants.factory_spec(name),
            range(SEED_BOUND),
            NO_BUDGET,
            stateful=False,
            out_dir=tmp_path,
        )
        for name in SAFETY
    ]
    assert all(r.ok and r.shrunk_events is not None for r in reports), [
        (r.name, r.why, r.shrink_note) for r in reports
    ]
    ratio = zoo.median_shrink_ratio(reports)
    assert ratio is not None and ratio < 0.1, ratio
    for r in reports:
        shrunk = tmp_path / f"{r.name}.shrunk.jsonl"
        assert len(shrunk.read_text().splitlines()) - 2 == r.shrunk_events
        assert (
            cli.main(
                ["replay", str(shrunk), "--node-factory", mutants.factory_spec(r.name), "--quiet"]
            )
            == cli.EXIT_VIOLATION
        ), r.name
        verdict = json.loads(shrunk.read_text().splitlines()[-1])
        assert verdict["violation"]["invariant"] == r.fuzz.verdict


@pytest.mark.parametrize("name", ["fig8_commit_old_term", "grant_vote_twice"])
def test_the_reported_fuzz_command_reproduces_the_finding(name: str, tmp_path) -> None:
    """`virtraft fuzz` itself, with the command line the zoo prints."""
    finding, _, _, _ = zoo.hunt_seeds(
        mutants.factory_spec(name), range(SEED_BOUND), zoo.SAFETY_PROFILES, NO_BUDGET
    )
    assert finding is not None
    words = shlex.split(finding.command)
    assert words[:2] == ["virtraft", "fuzz"]
    code = cli.main([*words[1:], "--out", str(tmp_path), "--quiet"])
    assert code == cli.EXIT_VIOLATION
    traces = list(tmp_path.rglob(f"seed-{finding.seed}.jsonl"))
    assert len(traces) == 1
    verdict = json.loads(traces[0].read_text().splitlines()[-1])
    assert verdict["violation"]["invariant"] == finding.verdict


# The first seed of the default `virtraft fuzz` command line on which each
# liveness mutant is reported stuck, and the liveness verdict that names it
# (found by measurement: `virtraft zoo --mutant NAME`), so that the test runs
# one seed. A (None, reason) entry: no seed is known; the test hunts a few
# seeds and is expected to fail, strictly, so that a phase that catches the
# mutant makes it fail until its seed is recorded here.
LIVENESS_SEEDS: dict[str, tuple[int, str] | tuple[None, str]] = {
    "election_timer_never_reset": (2, "CommandCommitted"),
    "vote_only_for_longer_logs": (0, "LeaderElected"),
    "rejection_never_backs_off": (0, "CommandCommitted"),
    "full_window_never_probed": (3, "CommandCommitted"),
    "laggard_never_sent_snapshot": (1, "CommandCommitted"),
    "compacted_prefix_rejected": (181, "CommandCommitted"),
    "snapshot_send_never_retried": (57, "CoreCaughtUp"),
    "heartbeat_commit_ignored": (0, "CoreCaughtUp"),
    "check_quorum_never_steps_down": (32, "LeaderElected"),
    "precandidate_keeps_leader": (1, "LeaderElected"),
}
UNCAUGHT_HUNT_SEEDS = range(20)


def _liveness_cases() -> list:
    cases = []
    for name, (seed, verdict) in LIVENESS_SEEDS.items():
        if seed is not None:
            cases.append(pytest.param(name, range(seed, seed + 1), verdict, id=name))
        else:
            marks = pytest.mark.xfail(strict=True, reason=verdict)
            cases.append(pytest.param(name, UNCAUGHT_HUNT_SEEDS, None, id=name, marks=marks))
    return cases


def test_every_liveness_mutant_has_a_seed_or_a_reason() -> None:
    assert set(LIVENESS_SEEDS) == set(LIVENESS)


@pytest.mark.parametrize(("name", "seeds", "verdict"), _liveness_cases())
def test_liveness_mutant_is_reported_stuck(name: str, seeds: range, verdict: str | None) -> None:
    finding, runs, _, result = zoo.hunt_seeds(
        mutants.factory_spec(name), seeds, zoo.LIVENESS_PROFILES, NO_BUDGET
    )
    assert finding is not None, f"{name}: liveness held in {runs} runs"
    assert finding.verdict == "liveness"
    assert result is not None and result.violation is None
    assert result.liveness.verdict == "failed"
    assert result.liveness.name == verdict


@pytest.mark.parametrize("name", SLOW)
def test_slow_control_is_never_reported_stuck(name: str) -> None:
    """A slow control converges, late: no seed may fail the liveness verdict
    (a slow verdict, once there is one, is a warning, not a failure)."""
    finding, runs, _, _ = zoo.hunt_seeds(
        mutants.factory_spec(name), CONTROL_SEEDS, zoo.LIVENESS_PROFILES, NO_BUDGET
    )
    assert finding is None, finding
    assert runs == len(CONTROL_SEEDS)


@pytest.mark.parametrize("spec", [mutants.factory_spec(n) for n in HARMLESS] + [DEFAULT_FACTORY])
def test_harmless_control_and_raftcore_are_never_flagged(spec: str) -> None:
    profiles = tuple(dict.fromkeys((*zoo.SAFETY_PROFILES, *zoo.LIVENESS_PROFILES)))
    finding, runs, _, _ = zoo.hunt_seeds(spec, CONTROL_SEEDS, profiles, NO_BUDGET)
    assert finding is None, finding
    assert runs == len(CONTROL_SEEDS) * len(profiles)


# ------------------------------------------------------------ virtraft zoo


def _zoo_args(**overrides) -> argparse.Namespace:
    args = argparse.Namespace(
        seeds=range(0, 50),
        mutant=None,
        time_budget=NO_BUDGET,
        json=True,
        stateful=False,
        shrink=False,
        out=None,
    )
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_zoo_reports_each_mutant_and_exits_zero_when_all_are_caught(capsys) -> None:
    names = ["commit_index_goes_back", "vote_only_for_longer_logs", HARMLESS[0]]
    code = zoo.main(_zoo_args(mutant=names, seeds=range(0, 10)), Console(quiet=True))
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["ok"] is True
    rows = {row["name"]: row for row in out["mutants"]}
    assert set(rows) == set(names)
    assert rows["commit_index_goes_back"]["fuzz"]["verdict"] == "CommitMonotonic"
    assert rows["vote_only_for_longer_logs"]["fuzz"]["verdict"] == "liveness"
    assert rows[HARMLESS[0]]["fuzz"] is None


def test_zoo_exits_one_when_a_safety_mutant_escapes(capsys) -> None:
    """No time at all: nothing is caught, and the zoo says so."""
    code = zoo.main(
        _zoo_args(mutant=["fig8_commit_old_term"], time_budget=0.0), Console(quiet=True)
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["mutants"][0]["fuzz"] is None
    assert out["mutants"][0]["why"] == "not caught within the budget"


def test_zoo_refuses_an_unknown_mutant() -> None:
    assert cli.main(["zoo", "--mutant", "no_such_bug"]) == cli.EXIT_USAGE


def test_zoo_table_through_the_cli(capsys) -> None:
    code = cli.main(["zoo", "--mutant", "commit_index_goes_back", "--seeds", "0:20"])
    out = capsys.readouterr().out
    assert code == 0
    assert "commit_index_goes_back" in out and "CommitMonotonic" in out
