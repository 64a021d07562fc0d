"""A scenario passes only when it checked what it says (issue: scenarios,
"a scenario passes only when it checked what it says"): every phase must
have run and every expectation must have been decided, or the run fails and
names the phase that did not run and why."""

from __future__ import annotations

from pathlib import Path

from virtraft.cli.commands import main
from virtraft.scenario.schema import read_scenario
from virtraft.scenario.script import run_scenario

HEAD = 'name = "unfinished"\nsummary = "s"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unfinished.toml"
    path.write_text(HEAD + text)
    return path


# The second phase is due at 60 s; 300 events reach a fraction of that.
UNREACHED = """
[run]
duration_ms = 1000
max_steps = 300

[[phases]]
at_ms = 0
action = "client"

[[phases]]
at_ms = 60000
action = "crash"
node = "leader"
expect = "new_leader_within"
within_ms = 3000
"""


def test_a_phase_max_steps_never_reaches_fails_the_run_and_is_named(tmp_path, capsys):
    path = write(tmp_path, UNREACHED)
    assert main(["run", "--scenario", str(path)]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "phase 2 at 60000 ms: crash leader" in out
    assert "did not run" in out and "max_steps (300)" in out


def test_the_outcome_says_which_phase_did_not_run_and_why(tmp_path):
    outcome = run_scenario(read_scenario(write(tmp_path, UNREACHED)), 0)
    failed = [e for e in outcome.expectations if not e.passed]
    assert [e.description for e in failed] == ["phase 2 at 60000 ms: crash leader"]
    assert failed[0].detail.startswith("did not run: the run reached max_steps (300) at ")
    assert "due at 60000 ms" in failed[0].detail
    assert outcome.failed and not outcome.as_stated


def test_a_window_the_run_never_closed_is_undecided(tmp_path):
    """`no_leader` until the script ends: a run cut short by max_steps did not
    reach the end, so the window is undecided, not held."""
    path = write(
        tmp_path,
        """
[run]
duration_ms = 60000
max_steps = 50

[[phases]]
at_ms = 0
expect = "no_leader"
""",
    )
    outcome = run_scenario(read_scenario(path), 0)
    (only,) = outcome.expectations
    assert not only.passed and only.detail.startswith("undecided when the run reached max_steps")
    assert outcome.failed


def test_a_flap_cut_short_did_not_finish(tmp_path):
    path = write(
        tmp_path,
        """
[run]
duration_ms = 1000
max_steps = 2000

[[phases]]
at_ms = 0
action = "flap"
isolate = 1
times = 100
down_ms = 1000
up_ms = 1000
""",
    )
    outcome = run_scenario(read_scenario(path), 0)
    (only,) = outcome.expectations
    assert only.description.startswith("phase 1 at 0 ms: flap isolate 1 100x")
    assert not only.passed and only.detail.startswith("did not finish: the run reached max_steps")
    assert outcome.failed


def test_phases_after_one_that_could_not_happen_are_named(tmp_path):
    path = write(
        tmp_path,
        """
[run]
duration_ms = 1000

[[phases]]
at_ms = 0
action = "crash"
nodes = [1, 2, 3]

[[phases]]
at_ms = 100
action = "crash"
node = "leader"
wait_ms = 500

[[phases]]
at_ms = 200
action = "heal"
""",
    )
    outcome = run_scenario(read_scenario(path), 0)
    failed = {e.description: e.detail for e in outcome.expectations if not e.passed}
    assert failed["phase 2 at 100 ms: crash leader"].startswith("could not happen within 500 ms")
    assert failed["phase 3 at 200 ms: heal"] == "did not run: phase 2 before it could not happen"
    assert outcome.failed


def test_a_scenario_whose_phases_all_ran_passes(tmp_path):
    path = write(tmp_path, UNREACHED.replace("max_steps = 300", "max_steps = 1000000"))
    assert main(["run", "--scenario", str(path)]) == 0
