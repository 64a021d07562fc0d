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
from pathlib import Path

import pytest

from tests.adapters.common import (
    assert_clean_seed_holds,
    assert_replays_to_its_verdict,
    failing_clean_seeds,
    findings,
    trace_bytes,
)
from virtraft.adapter import FactoryError, NodeOptions
from virtraft.check.checker import Checker
from virtraft.nodes import willemt_build
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.replay import replay_events

FINDINGS = findings("willemt")
FACTORY = "virtraft.nodes.willemt:factory"

needs_library = pytest.mark.skipif(
    not os.environ.get(willemt_build.ENV_SRC),
    reason="VIRTRAFT_WILLEMT_SRC is not set (a checkout of github.com/willemt/raft)",
)


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
    assert_clean_seed_holds(seed, FACTORY)


@needs_library
@pytest.mark.slow
def test_a_clean_network_finds_nothing_in_300_seeds() -> None:
    assert failing_clean_seeds(FACTORY) == []


@needs_library
def test_the_same_seed_gives_the_same_trace_bytes_under_any_hash_seed(tmp_path) -> None:
    first = trace_bytes(tmp_path, "0", FACTORY)
    assert first == trace_bytes(tmp_path, "4242", FACTORY)
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
    assert_replays_to_its_verdict(path)


def test_findings_are_shipped() -> None:
    assert FINDINGS, "tests/findings/ holds the shrunk willemt/raft findings"
