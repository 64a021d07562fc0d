"""A scenario's crash may be a power cut (`power_cut = true`, `keep`): the
writes a server had not synced are lost. raftcore syncs before it replies
and passes `power_cut_followers`; the zoo's `reply_before_sync` loses what
it acknowledged there, and an invariant names it (Raft Figure 2: "updated
on stable storage before responding to RPCs")."""

from __future__ import annotations

from pathlib import Path

import pytest

from virtraft.check.checker import Checker
from virtraft.run.factory import load_factory
from virtraft.scenario.actions import CrashAction
from virtraft.scenario.fields import ScenarioError
from virtraft.scenario.schema import SCENARIO_DIR, load_scenario, read_scenario
from virtraft.scenario.script import run_scenario
from virtraft.sim.events import Crash
from virtraft.sim.simulation import Simulation
from virtraft.zoo import mutants

NAME = "power_cut_followers"
REPLY_BEFORE_SYNC = mutants.factory_spec("reply_before_sync")


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = (SCENARIO_DIR / f"{NAME}.toml").read_text()
    assert old in text
    path = tmp_path / f"{NAME}.toml"
    path.write_text(text.replace(old, new))
    return path


def test_the_file_reads_power_cuts_and_needs_a_disk_that_loses_writes() -> None:
    scenario = load_scenario(NAME)
    crashes = [p.action for p in scenario.phases if isinstance(p.action, CrashAction)]
    assert [(c.power_cut, c.keep) for c in crashes] == [(True, 0.0), (True, 0.0), (False, 0.0)]
    assert "power cut" in crashes[0].describe() and "power cut" not in crashes[2].describe()
    assert [n.capability for n in scenario.needs()] == ["lossy_disk", "lossy_disk"]


def test_raftcore_keeps_what_it_acknowledged_through_the_power_cut() -> None:
    outcome = run_scenario(load_scenario(NAME), 0)
    assert outcome.run.violation is None
    assert outcome.as_stated and all(e.passed for e in outcome.expectations)
    assert outcome.run.sim.stats.lossy_crashes == 2


def test_a_power_cut_loses_the_unsynced_writes_of_a_server_that_replied_first() -> None:
    outcome = run_scenario(load_scenario(NAME), 0, factory=REPLY_BEFORE_SYNC)
    violation = outcome.run.violation
    assert violation is not None
    assert violation.invariant in mutants.ReplyBeforeSync.expected_invariant
    assert not outcome.as_stated
    # Replayed event by event: the server cut off had writes waiting for a
    # sync (the term and entries it acknowledged), and the cut lost them.
    events = outcome.run.sim.events
    sim = Simulation(outcome.run.options, 0, load_factory(REPLY_BEFORE_SYNC), checker=Checker())
    cut = next(e for e in events if isinstance(e, Crash) and e.keep is not None)
    for event in events[: events.index(cut)]:
        assert sim.apply(event) is None
    disk = sim.nodes[cut.node].disk  # type: ignore[attr-defined]
    before = (len(disk.unsynced), sim.nodes[cut.node].term, sim.nodes[cut.node].last_index)
    sim.apply(cut)
    assert before[0] > 0 and before[1] >= 1 and before[2] > 0
    assert disk.unsynced == [] and (disk.term, disk.last_index) == (0, 0)


def test_the_same_script_with_process_crashes_lets_the_mutant_pass(tmp_path) -> None:
    """It is the lost writes that catch the mutant, not the crashes."""
    path = _with(tmp_path, "power_cut = true", "power_cut = false")
    outcome = run_scenario(read_scenario(path), 0, factory=REPLY_BEFORE_SYNC)
    assert outcome.run.violation is None
    assert outcome.as_stated


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        (
            "power_cut = true\nlabel",
            'power_cut = "yes"\nlabel',
            "power_cut: expected true or false",
        ),
        (
            "power_cut = true\nlabel",
            "power_cut = true\nkeep = 2\nlabel",
            "keep: expected the share",
        ),
        ("power_cut = true\nlabel", "keep = 0.5\nlabel", "keep: expected it only with power_cut"),
    ],
)
def test_a_bad_power_cut_field_is_one_line(tmp_path, old: str, new: str, words: str) -> None:
    with pytest.raises(ScenarioError, match=words) as error:
        read_scenario(_with(tmp_path, old, new))
    assert "\n" not in str(error.value)
