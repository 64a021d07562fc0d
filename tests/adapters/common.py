"""What the tests of every shipped adapter share: the clean network, a run's
trace bytes under a given PYTHONHASHSEED, and a shipped finding replayed to
the verdict it records. Each adapter's test module names its factory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from virtraft.check.checker import Checker
from virtraft.run.factory import load_factory
from virtraft.run.liveness import rejudge, rejudges
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import read_trace
from virtraft.trace.replay import replay_events

ROOT = Path(__file__).resolve().parents[2]

# A clean network: no drops, copies, partitions, crashes, membership changes
# or snapshots; only clients, delays and reordering (and a disk's latency,
# for an adapter whose disk completes later). A sound adapter finds nothing.
CLEAN = SimOptions(steps=3000)


def findings(prefix: str) -> list[Path]:
    """The shrunk findings shipped for one implementation."""
    return sorted((ROOT / "tests" / "findings").glob(f"{prefix}-*.jsonl"))


def assert_clean_seed_holds(seed: int, factory: str) -> None:
    result = run_seed(seed, CLEAN, factory=factory)
    assert result.violation is None, result.violation
    assert result.liveness.verdict == "ok", result.liveness


def failing_clean_seeds(factory: str, seeds: range = range(300)) -> list[int]:
    return [seed for seed in seeds if run_seed(seed, CLEAN, factory=factory).failed]


def trace_bytes(tmp_path: Path, hash_seed: str, factory: str, steps: int = 3000) -> bytes:
    """The trace of one faulty run (membership, snapshots, crashes, drops),
    recorded by `virtraft run` in a process of its own under `hash_seed`."""
    out = tmp_path / f"trace-{hash_seed}.jsonl"
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
    args = ["--quiet", "run", "--seed", "7", "--steps", str(steps), "--member-rate", "0.004"]
    args += ["--snapshot-rate", "0.004", "--crash-rate", "0.002", "--drop", "0.05"]
    args += ["--node-factory", factory, "--trace", str(out)]
    subprocess.run(
        [sys.executable, "-m", "virtraft", *args], env=env, check=False, cwd=ROOT, timeout=300
    )
    return out.read_bytes()


def assert_replays_to_its_verdict(path: Path) -> None:
    """A shipped finding replays to the violation it records; a liveness
    finding is judged again from its events, as `virtraft replay` judges
    it, to the verdict it records (a stall with a leader, too)."""
    trace = read_trace(path)
    sim = Simulation(trace.options, trace.seed, load_factory(trace.factory), checker=Checker())
    recorded = trace.verdict["violation"]
    if recorded is None:
        liveness = trace.verdict["liveness"]
        assert liveness["verdict"] == "failed"
        assert rejudges(liveness), "a shipped liveness finding records how it was judged"
        judged, violation, diverged, why = rejudge(sim, trace.events, liveness)
        assert (violation, diverged) == (None, None), why
        assert judged is not None
        assert (judged.verdict, judged.name) == ("failed", liveness["name"])
        assert sim.step == trace.verdict["steps"]
        return
    violation, diverged, why = replay_events(sim, trace.events)
    assert diverged is None, why
    assert violation is not None
    assert (violation.invariant, violation.step) == (recorded["invariant"], recorded["step"])
    assert violation.message == recorded["message"]
