"""Campaigns keep their work, and flags mean what they say.

Ctrl-C in `fuzz` still prints the summary of the seeds that finished and
writes their campaign index; `--workers` above the cores is capped with a
note; an explicit fault flag holds under the default swarm.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from virtraft.cli.commands import main
from virtraft.cli.parser import reproduce_command, swarm_keeps
from virtraft.run.campaign import default_workers

from .util import cli

MUTANT = "tests.sim.factories:votes_for_anyone"


def test_ctrl_c_in_fuzz_prints_the_summary_and_writes_the_index(tmp_path: Path) -> None:
    """A real SIGINT: the finished seeds are summed up, failing ones indexed."""
    command = [
        sys.executable,
        "-m",
        "virtraft",
        "fuzz",
        "--seeds",
        "0:100000",
        "--workers",
        "1",
        "--node-factory",
        MUTANT,
        "--out",
        str(tmp_path),
    ]
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    campaign = tmp_path / "fuzz-0-100000"
    for _ in range(1200):  # until a failing seed is on disk (a bound, not a timing)
        if any(campaign.glob("seed-*.html")) or child.poll() is not None:
            break
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "Traceback" not in err
    assert "Campaign" in out and "interrupted after" in out
    assert (tmp_path / "fuzz-0-100000" / "index.html").is_file()


def test_workers_above_the_cores_are_capped_with_a_note(capsys, tmp_path: Path) -> None:
    cores = default_workers()
    code = main(
        [
            "fuzz",
            "--seeds",
            "0:2",
            "--steps",
            "50",
            "--workers",
            str(cores + 7),
            "--no-liveness",
            "--out",
            str(tmp_path),  # a campaign always writes its index
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert f"--workers {cores + 7} is more than the {cores} cores" in out
    assert f"workers={cores}," in out


def test_an_explicit_fault_flag_holds_under_swarm(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    ran = cli(
        "run",
        "--seed",
        "3",
        "--steps",
        "200",
        "--swarm",
        "--drop",
        "0.9",
        "--election-timeout-ms",
        "500",
        "--trace",
        str(trace),
        "--quiet",
    )
    assert ran.code == 0, ran.err
    options = json.loads(trace.read_text().splitlines()[0])["options"]
    assert options["drop_probability"] == 0.9
    assert options["node"]["election_timeout_ms"] == 500
    assert options["node"]["request_timeout_ms"] == 200  # kept with its partner timer
    # Without the flag, the same seed draws its own drop rate.
    cli("run", "--seed", "3", "--steps", "200", "--swarm", "--trace", str(trace), "--quiet")
    assert json.loads(trace.read_text().splitlines()[0])["options"]["drop_probability"] != 0.9


def test_fuzz_keeps_the_flags_given_and_its_reproduce_command_names_them() -> None:
    argv = ["fuzz", "--drop=0.9", "--no-prevote", "--seeds", "0:5"]
    assert swarm_keeps(argv) == {"drop_probability", "node.prevote"}
    from virtraft.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    args.swarm_keep = swarm_keeps(argv)
    command = reproduce_command(args, 4)
    assert "--drop 0.9" in command and "--no-prevote" in command and "--swarm" in command
