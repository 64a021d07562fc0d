"""The willemt/raft adapter (`virtraft.nodes.willemt`).

These run the C library when VIRTRAFT_WILLEMT_SRC names a checkout of
github.com/willemt/raft and skip otherwise, so CI passes without it; the
errors for a missing or wrong tree are tested always. The findings under
tests/findings/ replay to their recorded verdict (docs/findings.md tells
each story).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from virtraft.adapter import FactoryError, NodeOptions
from virtraft.check.checker import Checker
from virtraft.nodes import willemt_build
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import read_trace
from virtraft.trace.replay import replay_events

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = sorted((ROOT / "tests" / "findings").glob("willemt-*.jsonl"))
FACTORY = "virtraft.nodes.willemt:factory"

needs_library = pytest.mark.skipif(
    not os.environ.get(willemt_build.ENV_SRC),
    reason="VIRTRAFT_WILLEMT_SRC is not set (a checkout of github.com/willemt/raft)",
)

# A clean network: no drops, copies, partitions, crashes, membership
# changes or snapshots; only clients, delays and reordering.
CLEAN = SimOptions(steps=3000)


def test_a_missing_source_tree_is_one_clear_factory_error(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv(willemt_build.ENV_SRC, raising=False)
    with pytest.raises(FactoryError, match="VIRTRAFT_WILLEMT_SRC is not set"):
        willemt_build.source_tree()
    monkeypatch.setenv(willemt_build.ENV_SRC, str(tmp_path))
    with pytest.raises(FactoryError, match="is not a willemt/raft source tree: it lacks src/"):
        willemt_build.source_tree()


@needs_library
@pytest.mark.parametrize("seed", range(20))
def test_a_clean_network_finds_nothing(seed: int) -> None:
    result = run_seed(seed, CLEAN, factory=FACTORY)
    assert result.violation is None, result.violation
    assert result.liveness.verdict == "ok", result.liveness


@needs_library
@pytest.mark.slow
def test_a_clean_network_finds_nothing_in_300_seeds() -> None:
    failed = [seed for seed in range(300) if run_seed(seed, CLEAN, factory=FACTORY).failed]
    assert failed == []


def _trace_bytes(tmp_path: Path, hash_seed: str) -> bytes:
    out = tmp_path / f"trace-{hash_seed}.jsonl"
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "virtraft",
            "--quiet",
            "run",
            "--seed",
            "7",
            "--steps",
            "3000",
            "--member-rate",
            "0.004",
            "--snapshot-rate",
            "0.004",
            "--crash-rate",
            "0.002",
            "--drop",
            "0.05",
            "--node-factory",
            FACTORY,
            "--trace",
            str(out),
        ],
        env=env,
        check=False,
        cwd=ROOT,
        timeout=300,
    )
    return out.read_bytes()


@needs_library
def test_the_same_seed_gives_the_same_trace_bytes_under_any_hash_seed(tmp_path) -> None:
    first = _trace_bytes(tmp_path, "0")
    assert first == _trace_bytes(tmp_path, "4242")
    assert len(first.splitlines()) > 100


def _node():  # type: ignore[no-untyped-def]
    from virtraft.nodes.willemt import factory

    sent: list[tuple[int, object]] = []
    members = ((1, True), (2, True), (3, True))
    return factory(
        1, members, lambda dst, m: sent.append((dst, m)), random.Random(1), NodeOptions()
    )


@needs_library
def test_a_failed_assert_in_the_library_is_an_exception_and_the_process_lives() -> None:
    from virtraft.nodes.willemt import NativeFault

    node = _node()
    assert node.commit_index == 3  # the founders' committed configuration
    # raft_set_commit_idx asserts that the commit index never goes down.
    with pytest.raises(NativeFault, match=r"raft_set_commit_idx: Assertion `me->commit_idx"):
        node._done(node._lib.vr_set_commit_idx(node._me, 1))
    # The broken server is never called again; its view is its disk.
    assert not node.alive
    assert node.describe()["fault"].endswith("failed")
    assert node.term == 1 and node.last_index == 3
    assert _node().alive  # the next server still works


@needs_library
def test_a_fatal_signal_in_the_library_is_an_exception_and_the_process_lives() -> None:
    from virtraft.nodes.willemt import NativeFault

    node = _node()
    with pytest.raises(NativeFault, match="SIGSEGV inside the library"):
        node._done(node._lib.vr_poke(2))  # a NULL dereference in C
    assert _node().alive


@needs_library
def test_an_assert_during_an_event_is_a_node_exception_finding() -> None:
    # Snapshots finished in the background meet commits that moved meanwhile:
    # raft_end_snapshot asserts (willemt/raft PR #84). Any such seed will do.
    options = SimOptions(steps=3000, snapshot_rate=0.02)
    for seed in range(40):
        result = run_seed(seed, options, factory=FACTORY)
        violation = result.violation
        if violation is not None and violation.invariant == "NodeException":
            assert "NativeFault" in violation.message
            assert "Assertion" in violation.message
            sim = Simulation(result.options, seed, result.sim.factory, checker=Checker())
            replayed, diverged, _ = replay_events(sim, result.events)
            assert diverged is None
            assert replayed is not None
            assert (replayed.invariant, replayed.step) == (violation.invariant, violation.step)
            return
    pytest.fail("no seed hit the assertion")


@needs_library
@pytest.mark.parametrize("path", FINDINGS, ids=[p.stem for p in FINDINGS])
def test_each_finding_replays_to_its_verdict(path: Path) -> None:
    trace = read_trace(path)
    from virtraft.run.factory import load_factory

    sim = Simulation(trace.options, trace.seed, load_factory(trace.factory), checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    assert diverged is None, why
    recorded = trace.verdict["violation"]
    if recorded is None:  # a liveness finding: the same end, without a leader
        assert violation is None
        assert trace.verdict["liveness"]["verdict"] == "failed"
        assert sim.step == trace.verdict["steps"]
        assert sim.leader() is None
        return
    assert violation is not None
    assert (violation.invariant, violation.step) == (recorded["invariant"], recorded["step"])
    assert violation.message == recorded["message"]


def test_findings_are_shipped() -> None:
    assert FINDINGS, "tests/findings/ holds the shrunk willemt/raft findings"
