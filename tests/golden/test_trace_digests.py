"""Behaviour is pinned: the recorded runs give the recorded trace bodies.

A refactor keeps these digests; a change of behaviour records them again on
purpose (see trace_digests.py) and says so in its commit.
"""

import json

import pytest

from tests.golden import trace_digests


@pytest.fixture(scope="module")
def recorded() -> dict[str, str]:
    return json.loads(trace_digests.RECORDED.read_text())


def test_every_recorded_run_still_exists(recorded: dict[str, str]) -> None:
    assert sorted(recorded) == sorted(trace_digests.runs())


def test_trace_bodies_unchanged(recorded: dict[str, str]) -> None:
    now = trace_digests.compute()
    changed = {k: (recorded[k], now[k]) for k in recorded if now[k] != recorded[k]}
    assert not changed, f"{len(changed)} runs changed: {sorted(changed)[:10]}"
