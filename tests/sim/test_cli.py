"""The command line, as a user meets it (issue: simulator, checker, traces and CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from virtraft.cli.commands import main

REPO = Path(__file__).resolve().parents[2]
ACCEPTANCE = [
    "run",
    "--seed",
    "1",
    "--servers",
    "5",
    "--steps",
    "20000",
    "--drop",
    "0.05",
    "--dup",
    "0.05",
    "--partition-rate",
    "0.01",
    "--crash-rate",
    "0.001",
    "--client-rate",
    "0.3",
    "--member-rate",
    "0.001",
    "--snapshot-rate",
    "0.002",
]


def virtraft(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m virtraft` from the repository root, like a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "virtraft", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_acceptance_run_exercises_every_fault_and_passes(tmp_path, capsys):
    trace = tmp_path / "t.jsonl"
    assert main([*ACCEPTANCE, "--trace", str(trace)]) == 0
    verdict = json.loads(trace.read_text().splitlines()[-1])
    stats = verdict["stats"]
    assert verdict["safety"] == "ok" and verdict["liveness"]["verdict"] == "ok"
    assert stats["max_commit_index"] > 100
    assert stats["leader_changes"] >= 2
    assert stats["crashes"] > 0 and stats["restarts"] > 0
    assert stats["membership_changes"] > 0
    assert stats["snapshots_installed"] > 0
    out = capsys.readouterr().out
    assert "safety: ok" in out and "snapshots taken / installed" in out


def test_same_seed_same_bytes_under_any_hash_seed(tmp_path):
    paths = []
    for hash_seed in ("0", "1"):
        path = tmp_path / f"t{hash_seed}.jsonl"
        done = virtraft(
            *ACCEPTANCE[:-12],
            "--steps",
            "4000",
            "--drop",
            "0.05",
            "--dup",
            "0.05",
            "--partition-rate",
            "0.01",
            "--crash-rate",
            "0.002",
            "--member-rate",
            "0.002",
            "--snapshot-rate",
            "0.005",
            "--trace",
            str(path),
            env={"PYTHONHASHSEED": hash_seed},
        )
        assert done.returncode == 0, done.stderr
        paths.append(path)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    replayed = virtraft("replay", str(paths[0]))
    assert replayed.returncode == 0, replayed.stderr
    assert "as recorded" in replayed.stdout


def _one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def good_trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "good.jsonl"
    assert main(["run", "--seed", "2", "--steps", "500", "--trace", str(path)]) == 0
    return path


def test_truncated_trace_is_refused(good_trace, tmp_path):
    broken = tmp_path / "truncated.jsonl"
    broken.write_text("\n".join(good_trace.read_text().splitlines()[:40]) + "\n")
    _one_line_error(virtraft("replay", str(broken)), "truncated")


def test_unknown_event_is_refused(good_trace, tmp_path):
    lines = good_trace.read_text().splitlines()
    lines[5] = json.dumps({"e": "teleport", "node": 1, "step": 5})
    broken = tmp_path / "unknown.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    _one_line_error(virtraft("replay", str(broken)), "teleport", ":6:")


def test_garbage_and_missing_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\x01not json\n")
    _one_line_error(virtraft("replay", str(garbage)), "not valid JSON")
    _one_line_error(virtraft("replay", str(tmp_path / "nope.jsonl")), "cannot read")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--drop", "1.5"], "probability"),
        (["run", "--frobnicate"], "unrecognized"),
        (["run", "--servers", "0"], "less than 1"),
        (["fuzz", "--seeds", "9:3"], "A:B"),
        (["run", "--node-factory", "nowhere"], "module:callable"),
        (["run", "--node-factory", "no_such_module_xyz:make"], "cannot import"),
        (["run", "--steps", "10", "--node-factory", "json:dumps"], "could not build node 1"),
        (["run", "--steps", "10", "--trace", "/nonexistent-dir/x.jsonl"], "cannot write"),
        (["fuzz", "--time-budget", "-1"], "positive"),
        (["run", "--crash-rate", "0.2"], "add up to"),
        (["run", "--scenario", "no_such_scenario"], "no_such_scenario"),
    ],
)
def test_bad_arguments_end_with_one_line_and_exit_2(args, needle):
    _one_line_error(virtraft(*args), needle)


def test_a_server_exception_is_a_finding_with_a_trace(tmp_path):
    done = virtraft(
        "run",
        "--seed",
        "0",
        "--steps",
        "3000",
        "--node-factory",
        "tests.sim.factories:exploding",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 1, done.stderr
    assert "NodeException" in done.stdout and "ZeroDivisionError" in done.stdout
    assert "Traceback" not in done.stderr
    traces = list(tmp_path.glob("seed-0.jsonl"))
    assert traces, "the failing run's trace is saved"
    replayed = virtraft("replay", str(traces[0]), "--node-factory", "tests.sim.factories:exploding")
    assert replayed.returncode == 1, replayed.stderr


def test_python_dash_m_matches_the_console_script():
    done = virtraft("--help")
    assert done.returncode == 0
    for command in ("run", "fuzz", "replay", "shrink", "report", "bench", "scenarios", "zoo"):
        assert command in done.stdout


def test_fuzz_saves_each_failing_seed_and_exits_1(tmp_path):
    done = virtraft(
        "fuzz",
        "--seeds",
        "0:12",
        "--steps",
        "1500",
        "--workers",
        "2",
        "--node-factory",
        "tests.sim.factories:votes_for_anyone",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 1, done.stderr
    saved = sorted(tmp_path.glob("fuzz-0-12/seed-*.jsonl"))
    assert saved
    assert "VoteOnce" in done.stdout
    assert "reproduce the first with: virtraft run --seed" in done.stdout


def test_unknown_option_in_a_trace_header_is_refused(good_trace, tmp_path):
    lines = good_trace.read_text().splitlines()
    header = json.loads(lines[0])
    header["options"]["warp_drive"] = True
    lines[0] = json.dumps(header)
    broken = tmp_path / "option.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    _one_line_error(virtraft("replay", str(broken)), "warp_drive")


def test_replay_refuses_a_trace_whose_violation_moved(tmp_path):
    done = virtraft(
        "fuzz",
        "--seeds",
        "20:30",
        "--steps",
        "3000",
        "--workers",
        "1",
        "--node-factory",
        "tests.sim.factories:votes_for_anyone",
        "--out",
        str(tmp_path),
    )
    assert done.returncode == 1
    trace = sorted(tmp_path.glob("fuzz-20-30/seed-*.jsonl"))[0]
    lines = trace.read_text().splitlines()
    verdict = json.loads(lines[-1])
    verdict["violation"]["step"] -= 1
    lines[-1] = json.dumps(verdict)
    moved = tmp_path / "moved.jsonl"
    moved.write_text("\n".join(lines) + "\n")
    _one_line_error(
        virtraft("replay", str(moved), "--node-factory", "tests.sim.factories:votes_for_anyone"),
        "recorded",
        "at step",
    )
