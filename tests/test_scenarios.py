"""Named scenarios (issue: scenarios and liveness, items 1-3): every shipped
scenario ends as its file states, the expectations can fail, a malformed file
is one clear line, and a scenario run is an ordinary, replayable run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtraft.check.checker import Checker
from virtraft.cli.commands import main
from virtraft.run.factory import load_factory
from virtraft.scenario.schema import (
    SCENARIO_DIR,
    ScenarioError,
    list_scenarios,
    load_scenario,
    read_scenario,
)
from virtraft.scenario.script import ScenarioOutcome, run_scenario
from virtraft.sim.events import ChangeMembership, ClientRequest, Heal, Partition
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import read_trace, write_trace
from virtraft.trace.replay import replay_events

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted(path.stem for path in SCENARIO_DIR.glob("*.toml"))
# The issue's list, by the names we gave them.
REQUIRED = {
    "figure8",
    "leader_isolated",
    "majority_minority_split",
    "partial_connectivity",
    "partial_connectivity_no_prevote",
    "flapping_link",
    "rolling_restarts",
    "membership_churn_under_partitions",
    "snapshot_catch_up",
    "majority_crash_recovery",
    "removed_node_campaigns",
}
# The bug zoo's mutant that commits an old term's entry by counting replicas.
FIG8_MUTANT = "virtraft.zoo.mutants:fig8_commit_old_term"


@pytest.fixture(scope="module", autouse=True)
def importable_tests():
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))


_outcomes: dict[tuple[str, int], ScenarioOutcome] = {}


def outcome_of(name: str, seed: int = 0) -> ScenarioOutcome:
    """Each scenario runs once per seed for the whole module."""
    key = (name, seed)
    if key not in _outcomes:
        _outcomes[key] = run_scenario(load_scenario(name), seed)
    return _outcomes[key]


def virtraft(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "virtraft", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_with(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """A shipped scenario with one line changed, written to tmp_path."""
    text = (SCENARIO_DIR / f"{name}.toml").read_text()
    assert old in text, f"{name}.toml no longer has {old!r}"
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


# -------------------------------------------------------------- the shipped set


def test_at_least_ten_scenarios_ship_including_the_issues_list():
    infos = list_scenarios()
    names = [info.name for info in infos]
    assert names == sorted(names) == SHIPPED
    assert len(names) >= 10
    assert set(names) >= REQUIRED
    for info in infos:
        assert info.summary and "\n" not in info.summary
        assert info.expects in ("pass", "liveness fails")
        assert info.path == f"scenarios/{info.name}.toml"
    expects = {info.name: info.expects for info in infos}
    assert expects["partial_connectivity_no_prevote"] == "liveness fails"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_ends_as_its_file_states(name):
    outcome = outcome_of(name)
    run = outcome.run
    details = [(e.description, e.detail) for e in outcome.expectations if not e.passed]
    assert outcome.as_stated, (run.violation, run.liveness, details)
    assert outcome.expectations, "every scenario states at least one expectation"
    if outcome.expected_failure is None:
        assert not outcome.failed
        assert run.violation is None and run.liveness.verdict == "ok"
        assert all(e.passed for e in outcome.expectations)
    else:
        assert outcome.failed


def test_the_no_prevote_twin_fails_liveness_where_prevote_and_check_quorum_succeed():
    ok, stuck = outcome_of("partial_connectivity"), outcome_of("partial_connectivity_no_prevote")
    assert ok.run.liveness.verdict == "ok"
    assert stuck.run.violation is None
    assert stuck.run.liveness.verdict == "failed"
    assert "did not commit" in stuck.run.liveness.reason
    # The two files differ in the Raft options, not in the network they face.
    assert ok.scenario.options.node.prevote and ok.scenario.options.node.check_quorum
    node = stuck.scenario.options.node
    assert not node.prevote and not node.check_quorum
    assert [p.action for p in ok.scenario.phases if p.action] == [
        p.action for p in stuck.scenario.phases if p.action
    ]
    # Without pre-vote the servers cut off from the old leader run their terms up.
    sim = stuck.run.sim
    leader = sim.leader()
    assert leader is not None
    assert max(sim.nodes[n].term for n in sim.node_ids) > leader.term + 3


def test_figure8_is_where_counting_old_replicas_breaks_safety():
    """Raft §5.4.2: the same script, with servers that commit an earlier term's
    entry by counting replicas, ends with the checker reporting it."""
    outcome = run_scenario(load_scenario("figure8"), 0, factory=FIG8_MUTANT)
    violation = outcome.run.violation
    assert violation is not None
    assert violation.invariant in ("LeaderCompleteness", "StateMachineSafety", "CommittedNeverLost")
    assert outcome.failed and not outcome.as_stated


def test_flapping_link_expectation_fails_without_prevote(tmp_path):
    """The "no leader change" expectation is not vacuous: without pre-vote the
    returning follower deposes the leader."""
    path = copy_with(tmp_path, "flapping_link", "[cluster]", "[raft]\nprevote = false\n\n[cluster]")
    outcome = run_scenario(load_scenario(str(path)), 0)
    failed = [e for e in outcome.expectations if not e.passed]
    assert failed and all("leader stays the same" in e.description for e in failed)
    assert "gave way" in failed[0].detail
    assert outcome.failed and not outcome.as_stated


@pytest.mark.parametrize(
    "name, old, new, failing",
    [
        # Raft §5.4.1: 1 and 2 missed entries the others committed; they cannot win.
        ("majority_minority_split", "among = [3]\n", "among = [1, 2]\n", "a leader among 1, 2"),
        # Two servers of five cannot commit.
        (
            "majority_crash_recovery",
            'expect = "no_leader"\n',
            'expect = "commit_within"\nwithin_ms = 3000\n',
            "a new command commits",
        ),
        # Three of five survive: they elect a leader.
        (
            "majority_crash_recovery",
            "nodes = [1, 2, 3]\n\n",
            "nodes = [1, 2]\n\n",
            "no node is leader",
        ),
        # 300 ms is too soon for the isolated leader to be replaced.
        ("leader_isolated", "within_ms = 3000\n", "within_ms = 300\n", "a new leader"),
        # Without compaction the follower is caught up by AppendEntries alone.
        (
            "snapshot_catch_up",
            'action = "snapshot"\nnodes = "all"\n',
            'action = "client"\ncount = 1\n',
            "by a snapshot transfer",
        ),
    ],
)
def test_an_expectation_that_does_not_hold_fails_the_run(tmp_path, name, old, new, failing):
    outcome = run_scenario(load_scenario(str(copy_with(tmp_path, name, old, new))), 0)
    failed = [e.description for e in outcome.expectations if not e.passed]
    assert failed and failing in failed[0]
    assert outcome.failed and not outcome.as_stated


def test_removed_node_keeps_campaigning_while_the_leader_stays():
    sim = outcome_of("removed_node_campaigns").run.sim
    leader = sim.leader()
    assert leader is not None
    voters = {n for n, voting in leader.members if voting}
    (removed,) = [n for n in sim.node_ids if n not in voters]
    assert sim.nodes[removed].term > leader.term + 3, "its elections really ran"
    assert sim.stats.refused_messages > 0, "the others refused the stranger's messages"


def test_snapshot_catch_up_goes_through_install_snapshot():
    outcome = outcome_of("snapshot_catch_up")
    assert outcome.run.sim.stats.snapshots_installed >= 1
    caught_up = [e for e in outcome.expectations if "snapshot transfer" in e.description]
    assert caught_up and caught_up[0].passed


def test_membership_churn_really_changes_the_configuration():
    sim = outcome_of("membership_churn_under_partitions").run.sim
    changes = [e for e in sim.events if isinstance(e, ChangeMembership)]
    assert {e.change.value for e in changes} >= {"add_nonvoting", "promote", "remove"}
    leader = sim.leader()
    assert leader is not None
    assert any(n > 5 for n, voting in leader.members if voting), "a new member votes"


# ------------------------------------------------------------ a run is a run


def test_scripted_actions_are_ordinary_events_in_the_trace():
    outcome = outcome_of("majority_minority_split")
    events = outcome.run.sim.events
    partitions = [e for e in events if isinstance(e, Partition)]
    assert [p.shape for p in partitions] == ["groups 1,2 | 3,4,5", "groups 1,2,3 | 4,5"]
    assert (1, 3) in partitions[0].cut_links() and (1, 2) not in partitions[0].cut_links()
    assert any(isinstance(e, Heal) for e in events)
    lines = outcome.trace_lines()
    assert json.loads(lines[0])["scenario"] == "majority_minority_split"
    verdict = json.loads(lines[-1])
    assert verdict["scenario"]["as_stated"] is True
    assert len(verdict["scenario"]["expectations"]) == len(outcome.expectations)


def test_same_scenario_and_seed_give_the_same_trace():
    scenario = load_scenario("membership_churn_under_partitions")
    first = run_scenario(scenario, 3).trace_lines()
    assert run_scenario(scenario, 3).trace_lines() == first
    assert run_scenario(scenario, 4).trace_lines() != first


@pytest.mark.parametrize("name", ["leader_isolated", "partial_connectivity_no_prevote"])
def test_a_scenario_trace_replays_to_the_same_verdict(tmp_path, name):
    outcome = outcome_of(name)
    path = tmp_path / "t.jsonl"
    write_trace(path, outcome.trace_lines())
    trace = read_trace(path)
    sim = Simulation(trace.options, trace.seed, load_factory(trace.factory), checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    assert (violation, diverged, why) == (None, None, None)
    original = outcome.run.sim
    assert sim.step == original.step and sim.clock_ms == original.clock_ms
    assert [(n.term, n.commit_index, n.last_index) for n in sim.views()] == [
        (n.term, n.commit_index, n.last_index) for n in original.views()
    ]
    done = virtraft("replay", str(path))
    assert done.returncode == (1 if outcome.failed else 0), done.stderr
    assert "safety: ok" in done.stdout


# ----------------------------------------------------------------- the CLI


def test_cli_lists_scenarios_with_their_expectation(capsys):
    assert main(["scenarios"]) == 0
    out = capsys.readouterr().out
    for name in ("figure8", "leader_isolated", "snapshot_catch_up", "rolling_restarts"):
        assert name in out
    assert "liveness fails" in out


def test_cli_runs_a_passing_scenario_with_exit_0(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    assert main(["run", "--scenario", "leader_isolated", "--seed", "2", "--trace", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "Expectations" in out and "safety: ok" in out and "liveness: ok" in out
    assert json.loads(trace.read_text().splitlines()[0])["scenario"] == "leader_isolated"


def test_python_dash_m_runs_the_expected_failure_with_exit_1(tmp_path):
    done = virtraft("run", "--scenario", "partial_connectivity_no_prevote", "--out", str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert "liveness: failed" in done.stdout
    assert "(as stated)" in done.stdout
    assert list(tmp_path.glob("partial_connectivity_no_prevote-seed-0.jsonl"))


def test_a_stated_failure_that_does_not_happen_is_not_as_stated(tmp_path):
    path = copy_with(
        tmp_path, "partial_connectivity", 'summary = "', 'expect_failure = "liveness"\nsummary = "'
    )
    outcome = run_scenario(load_scenario(str(path)), 0)
    assert not outcome.failed and not outcome.as_stated


def test_cli_malformed_scenario_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\nsummary = "s"\n[run]\nduration_ms = 10\n'
        '[[phases]]\nat_ms = "soon"\naction = "heal"\n'
    )
    assert main(["run", "--scenario", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{bad}: phases[1].at_ms: expected a whole number of ms >= 0, got 'soon'" in err


def test_unknown_scenario_name_lists_the_known_ones():
    with pytest.raises(ScenarioError) as info:
        load_scenario("no_such_scenario")
    message = str(info.value)
    assert "no_such_scenario" in message and "leader_isolated" in message


# ------------------------------------------------------------ malformed files

HEAD = 'name = "x"\nsummary = "s"\n[run]\nduration_ms = 100\n'


@pytest.mark.parametrize(
    "text, field, expected",
    [
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "explode"\n',
            "phases[1].action",
            "expected one of: partition, flap, heal",
        ),
        ('summary = "s"\n[run]\nduration_ms = 10\n', "name", "it is missing"),
        (
            HEAD + '[[phases]]\nat_ms = -5\naction = "heal"\n',
            "phases[1].at_ms",
            "expected a whole number of ms >= 0, got -5",
        ),
        (HEAD + '[raft]\nprevote = "yes"\n', "raft.prevote", "expected true or false, got 'yes'"),
        (HEAD + "[raft]\npre_vote = true\n", "raft.pre_vote", "unknown key; expected one of"),
        (HEAD + "colour = 1\n", "colour", "unknown key"),
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "heal"\nnode = 3\n',
            "phases[1].node",
            "unknown key",
        ),
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "crash"\nnode = "S5"\n',
            "phases[1].node",
            "a label set by an earlier phase, got 'S5'",
        ),
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "crash"\nnode = 6\n',
            "phases[1].node",
            "a node id 1..5",
        ),
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "partition"\nisolate = 1\nbridge = 2\n',
            "phases[1].bridge",
            "exactly one partition shape",
        ),
        (
            HEAD + '[[phases]]\nat_ms = 5\naction = "heal"\n[[phases]]\nat_ms = 3\n'
            'action = "heal"\n',
            "phases[2].at_ms",
            "expected at_ms >= 5",
        ),
        (
            HEAD + '[[phases]]\nat_ms = 5\nexpect = "leader_within"\n',
            "phases[1].within_ms",
            "it is missing",
        ),
        (
            HEAD + "[faults]\ndrop_probability = 1.5\n",
            "faults.drop_probability",
            "a probability in [0, 1], got 1.5",
        ),
        (
            HEAD + "[raft]\nrequest_timeout_ms = 2000\n",
            "raft.request_timeout_ms",
            "less than election_timeout_ms",
        ),
        ('expect_failure = "sometimes"\n' + HEAD, "expect_failure", "liveness, expectation"),
        ('name = "x"\nsummary = "s"\n', "run.duration_ms", "or steps"),
        ('name = "x\nsummary', "not valid TOML", "line 1"),
    ],
)
def test_malformed_file_names_file_field_and_expectation(tmp_path, text, field, expected):
    path = tmp_path / "broken.toml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as info:
        read_scenario(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert field in message and expected in message
    assert "\n" not in message


def test_shipped_file_whose_name_disagrees_is_refused(tmp_path, monkeypatch):
    import virtraft.scenario.schema as scenario_module

    (tmp_path / "alpha.toml").write_text('name = "beta"\nsummary = "s"\n[run]\nsteps = 10\n')
    monkeypatch.setattr(scenario_module, "SCENARIO_DIR", tmp_path)
    with pytest.raises(ScenarioError, match=r"name: expected 'alpha'"):
        list_scenarios()


# ------------------------------------------------------------ script details


def test_phase_shapes_steps_and_waiting(tmp_path):
    path = tmp_path / "details.toml"
    path.write_text(
        HEAD.replace("duration_ms = 100", "steps = 3000")
        + """
[[phases]]
at_step = 10
expect = "leader_within"
within_ms = 4000

[[phases]]
at_step = 2000
action = "partition"
one_way = ["leader", "follower"]

[[phases]]
at_step = 2100
action = "partition"
clog = ["leader", 5]
expect = "no_leader_change"
for_ms = 300

[[phases]]
at_step = 2200
action = "partition"
groups = [[1, 2], [3]]

[[phases]]
at_step = 2200
action = "client"
count = 3

[[phases]]
at_step = 2300
action = "crash"
nodes = [1, 2, 3]

[[phases]]
at_step = 2310
action = "crash"
node = "leader"
wait_ms = 3000

[[phases]]
at_step = 2320
action = "heal"
"""
    )
    outcome = run_scenario(read_scenario(path), 0)
    sim = outcome.run.sim
    partitions = [e for e in sim.events if isinstance(e, Partition)]
    one_way, clog, groups = partitions
    assert one_way.shape.startswith("one-way") and len(one_way.down) == 1 and not one_way.held
    assert clog.shape.startswith("clog") and not clog.down and len(clog.held) == 2
    # A node in no group is cut off from every other node, 4 from 5 too.
    assert (1, 2) not in groups.cut_links()
    assert {(1, 3), (3, 4), (4, 5), (5, 4), (2, 5)} <= set(groups.cut_links())
    assert sum(isinstance(e, ClientRequest) for e in sim.events) >= 3
    by_phase = {e.description.split(":")[0]: e for e in outcome.expectations}
    assert by_phase["phase 1 at step 10"].passed
    assert by_phase["phase 3 at step 2100"].passed
    # With a majority down there is no leader to crash: the phase fails after
    # waiting, and the phase after it never runs.
    stuck = by_phase["phase 7 at step 2310"]
    assert not stuck.passed and "could not happen within 3000 ms" in stuck.detail
    assert "1 phases after it did not run" in stuck.detail
    assert outcome.failed and not outcome.as_stated
