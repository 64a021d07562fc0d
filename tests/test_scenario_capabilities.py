"""A scenario that needs what the implementation lacks says so and is
skipped, neither failing nor passing silently (issue: capabilities at the
door). The minimal node offers nothing optional: no membership, no
snapshots, and it honours no Raft option."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from virtraft.cli.commands import main
from virtraft.scenario.schema import SCENARIO_DIR, load_scenario, read_scenario
from virtraft.scenario.script import run_scenario

REPO = Path(__file__).resolve().parents[1]
MINIMAL = "tests.adapters.minimal:factory"
SHIPPED = sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))


@pytest.fixture(scope="module", autouse=True)
def importable_tests():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


def needed(name: str) -> set[str]:
    """What a shipped file asks for, read from the TOML itself: membership
    actions need membership; snapshot actions and via_snapshot expectations
    need snapshots; a power cut needs a disk that loses writes; every option
    in [raft] must be honoured."""
    data = tomllib.loads((SCENARIO_DIR / f"{name}.toml").read_text())
    needs = set(data.get("raft", {}))
    for phase in data.get("phases", []):
        if phase.get("action") in ("add_member", "remove_member"):
            needs.add("membership")
        if phase.get("action") == "snapshot" or phase.get("via_snapshot"):
            needs.add("snapshots")
        if phase.get("action") == "crash" and phase.get("power_cut"):
            needs.add("lossy_disk")
    return needs


def test_some_shipped_scenarios_need_membership_and_snapshots():
    assert any("membership" in needed(name) for name in SHIPPED)
    assert any("snapshots" in needed(name) for name in SHIPPED)
    assert any(not needed(name) for name in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_ends_as_stated_or_is_skipped_with_the_minimal_node(name):
    outcome = run_scenario(load_scenario(name), 0, factory=MINIMAL)
    needs = needed(name)
    if not needs:
        details = [(e.description, e.detail) for e in outcome.expectations if not e.passed]
        assert outcome.skipped is None
        assert outcome.status == "as stated", (outcome.run.liveness, details)
        return
    assert outcome.status == "skipped"
    reason = outcome.skipped
    assert reason is not None and reason.startswith(f"{MINIMAL} lacks what this scenario needs")
    for need in needs:
        assert need in reason
    # Skipped is neither a pass nor a failure, and nothing ran.
    assert not outcome.failed and not outcome.as_stated
    assert outcome.run.sim.events == [] and not outcome.expectations
    assert outcome.verdict()["scenario"]["skipped"] == reason


def test_the_full_node_runs_what_the_minimal_node_skips():
    outcome = run_scenario(load_scenario("snapshot_catch_up"), 0)
    assert outcome.skipped is None and outcome.status == "as stated"
    assert "skipped" not in outcome.verdict()["scenario"]


def test_cli_prints_why_it_skipped_and_exits_0(tmp_path, capsys):
    code = main(
        [
            "run",
            "--scenario",
            "membership_churn_under_partitions",
            "--node-factory",
            MINIMAL,
            "--out",
            str(tmp_path),
        ]
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    assert f"skipped: {MINIMAL} lacks what this scenario needs: membership (phase 3" in out
    assert not list(tmp_path.iterdir()), "nothing ran, so there is no trace"


@pytest.mark.parametrize(
    "phase, needs",
    [
        ('action = "snapshot"\nnode = 2\n', ["snapshots"]),
        (
            'action = "restart"\nnode = 2\nexpect = "node_caught_up"\nwithin_ms = 10\n'
            "via_snapshot = true\n",
            ["snapshots"],
        ),
        ('action = "restart"\nnode = 2\nexpect = "node_caught_up"\nwithin_ms = 10\n', []),
        ('action = "add_member"\n', ["membership"]),
        ('action = "remove_member"\nnode = 2\n', ["membership"]),
        ('action = "crash"\nnode = 2\n', []),
    ],
)
def test_what_a_phase_needs(tmp_path, phase, needs):
    path = tmp_path / "x.toml"
    path.write_text('name = "x"\nsummary = "s"\n[run]\nsteps = 10\n[[phases]]\nat_ms = 5\n' + phase)
    assert [need.capability for need in read_scenario(path).needs()] == needs


def test_a_raft_option_the_file_sets_is_needed(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text(
        'name = "x"\nsummary = "s"\n[raft]\nprevote = false\n'
        "election_timeout_ms = 500\n[run]\nsteps = 10\n"
    )
    needs = read_scenario(path).needs()
    assert [(n.capability, n.option) for n in needs] == [
        ("options", "election_timeout_ms"),
        ("options", "prevote"),
    ]
