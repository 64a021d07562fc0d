"""Swarm draws only what the user did not fix (`fuzz --drop 0.9` holds)."""

from __future__ import annotations

import random

import pytest

from virtraft.adapter import NodeOptions
from virtraft.sim.options import SWARM_FIELDS, OptionsError, SimOptions, options_swarm


def test_a_kept_field_keeps_its_value_and_changes_no_other_draw() -> None:
    base = SimOptions(drop_probability=0.9)
    free = options_swarm(random.Random(7), base)
    kept = options_swarm(random.Random(7), base, frozenset({"drop_probability"}))
    assert free.drop_probability != 0.9
    assert kept.drop_probability == 0.9
    assert kept.replace(drop_probability=free.drop_probability) == free


@pytest.mark.parametrize("seed", range(30))
def test_a_kept_timer_keeps_both_in_order(seed: int) -> None:
    base = SimOptions(node=NodeOptions(election_timeout_ms=300, request_timeout_ms=250))
    drawn = options_swarm(random.Random(seed), base, frozenset({"node.request_timeout_ms"}))
    assert drawn.node.request_timeout_ms == 250
    assert drawn.node.election_timeout_ms == 300


def test_every_swarm_field_can_be_kept() -> None:
    base = SimOptions()
    kept = options_swarm(random.Random(1), base, frozenset(SWARM_FIELDS))
    assert kept == base


def test_keeping_a_field_swarm_does_not_draw_is_refused() -> None:
    with pytest.raises(OptionsError, match="steps"):
        options_swarm(random.Random(1), SimOptions(), frozenset({"steps"}))
