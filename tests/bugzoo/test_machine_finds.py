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
--no-shrink` (the stateful column: cluster size, example, events).
"""

from __future__ import annotations

import pytest

from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.zoo import hunt as zoo

mutants = zoo.load_mutants()
MUTANTS = mutants.MUTANTS
SAFETY = [name for name, cls in MUTANTS.items() if cls.kind == "safety"]
HARMLESS = [name for name, cls in MUTANTS.items() if cls.kind == "harmless"]

# name -> (cluster size it was found on, examples run until then).
MACHINE_FINDS: dict[str, tuple[int, int]] = {
    "grant_vote_twice": (3, 5),
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
    found = zoo.hunt_stateful(mutants.factory_spec(name))
    budget = zoo.STATEFUL_EXAMPLES * len(zoo.STATEFUL_SERVERS)
    assert found is not None, f"{name}: not found in {budget} examples"
    assert zoo.stateful_miss(found, MUTANTS[name].expected_invariant) is None, found
    assert found.runs <= budget


def test_raftcore_is_never_flagged_over_the_same_budget() -> None:
    assert zoo.hunt_stateful(DEFAULT_FACTORY) is None


def test_the_harmless_control_is_never_flagged() -> None:
    """A server that asks twice for the same vote (Raft §5.1: RPCs are
    retried, and idempotent); a fifth of the budget, as a negative control."""
    spec = mutants.factory_spec(HARMLESS[0])
    assert zoo.hunt_stateful(spec, examples=zoo.STATEFUL_EXAMPLES // 5) is None
