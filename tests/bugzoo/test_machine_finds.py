"""The Hypothesis machine finds what fuzz finds (issue #13, item 7).

`virtraft zoo` with the machine on fails a safety mutant the machine
misses (`hunt.stateful_miss`), so every safety mutant must be found by
`hunt.hunt_stateful`, the zoo's own hunt: derandomized, at most
`STATEFUL_EXAMPLES` examples of `STATEFUL_STEPS` steps on three servers,
then as many on five, with lossy crashes on (`hunt.stateful_options`). And
raftcore must come through that same budget unflagged.

The table records where each was found when last measured (the cluster
size and the examples run until then, over both sizes): the derandomized
stream shifts with the code (Hypothesis also draws constants from the
loaded modules), so a test asserts a find within the zoo's budget, not the
exact count. Mutants that needed more than `FAST_EXAMPLES` run only with
`-m slow` (VIRTRAFT_SLOW=1), to keep this table cheap in CI.

Rerun the measurement: `python -m virtraft zoo --mutant NAME --seeds 0:1
--no-shrink` (one random seed; the stateful column: cluster size, example,
events, CPU seconds), or with `--json`.
"""

from __future__ import annotations

import json

import pytest

from virtraft.cli import commands as cli
from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.zoo import hunt as zoo

mutants = zoo.load_mutants()
MUTANTS = mutants.MUTANTS
SAFETY = [name for name, cls in MUTANTS.items() if cls.kind == "safety"]
HARMLESS = [name for name, cls in MUTANTS.items() if cls.kind == "harmless"]
NO_BUDGET = float("inf")  # the random seeds' wall budget: none are run

# name -> (cluster size it was found on, examples run until then).
MACHINE_FINDS: dict[str, tuple[int, int]] = {
    "grant_vote_twice": (3, 5),
    "forget_vote_on_leader_contact": (3, 46),
    "vote_not_persisted": (3, 30),
    "candidate_vote_not_recorded": (3, 1),
    "stale_vote_response_counted": (3, 88),
    "no_step_down_on_higher_term_vote_response": (3, 5),
    "duplicate_votes_counted": (3, 368),
    "up_to_date_by_length_only": (3, 8),
    "fig8_commit_old_term": (3, 243),
    "prev_log_term_not_checked": (3, 8),
    "truncate_on_stale_append_entries": (3, 7),
    "follower_commit_beyond_verified": (3, 8),
    "commit_index_goes_back": (3, 7),
    "reply_before_sync": (3, 11),
    "two_membership_changes_at_once": (3, 304),
    "snapshot_install_loses_entries": (3, 121),
    "snapshot_lowers_term": (3, 59),
}
# Found within this many examples: cheap enough for every CI run.
FAST_EXAMPLES = 100


def _cases() -> list[object]:
    return [
        name
        if MACHINE_FINDS[name][1] <= FAST_EXAMPLES
        else pytest.param(name, marks=pytest.mark.slow)
        for name in MACHINE_FINDS
    ]


def test_the_table_covers_every_safety_mutant() -> None:
    assert sorted(MACHINE_FINDS) == sorted(SAFETY)


@pytest.mark.parametrize("name", _cases())
def test_the_machine_finds_the_mutant_within_the_zoos_budget(name: str) -> None:
    """The zoo's own row for the mutant, with no random seeds: only the
    machine hunts."""
    report = zoo.run_mutant(
        name, MUTANTS[name], mutants.factory_spec(name), range(0), NO_BUDGET, shrink=False
    )
    found = report.stateful
    budget = zoo.STATEFUL_EXAMPLES * len(zoo.STATEFUL_SERVERS)
    assert found is not None, f"{name}: not found in {budget} examples"
    assert found.verdict in MUTANTS[name].expected_invariant, found


def test_the_zoo_fails_a_safety_mutant_the_machine_misses(monkeypatch, capsys) -> None:
    """Fuzz catches it on seed 0; a machine that finds nothing still fails
    the row, and the zoo exits 1."""
    monkeypatch.setattr(zoo, "hunt_stateful", lambda spec: None)
    argv = ["zoo", "--mutant", "commit_index_goes_back", "--seeds", "0:1", "--no-shrink"]
    argv += ["--json"]
    assert cli.main(argv) == cli.EXIT_VIOLATION
    (row,) = json.loads(capsys.readouterr().out)["mutants"]
    assert row["fuzz"]["verdict"] == "CommitMonotonic"
    assert row["why"] == "the state machine missed it within its budget"
    assert cli.main([*argv[:-1], "--no-stateful", "--json"]) == cli.EXIT_OK


def test_raftcore_is_never_flagged_over_the_same_budget() -> None:
    assert zoo.hunt_stateful(DEFAULT_FACTORY) is None


def test_the_harmless_control_is_never_flagged() -> None:
    """A server that asks twice for the same vote (Raft §5.1: RPCs are
    retried, and idempotent); a fifth of the budget, as a negative control."""
    spec = mutants.factory_spec(HARMLESS[0])
    assert zoo.hunt_stateful(spec, examples=zoo.STATEFUL_EXAMPLES // 5) is None
