"""Forget what is gone (issue 17): a removed server lingers, then leaves the
simulation for good; partitions are stored as their shape, not their links."""

from __future__ import annotations

import itertools
import json

import pytest

from virtraft.run.seed import run_seed
from virtraft.sim import partitions
from virtraft.sim.events import (
    ChangeMembership,
    Partition,
    Tick,
    event_from_json,
    event_to_json,
)
from virtraft.sim.options import SimOptions

CHURN = SimOptions(
    servers=5,
    steps=30_000,
    drop_probability=0.04,
    partition_rate=0.0173,
    client_rate=0.10,
    snapshot_rate=0.0456,
    member_rate=0.01,
    liveness=False,
)


def test_removed_servers_are_forgotten_and_never_act_again() -> None:
    """Membership churn adds a server and removes one again and again: with
    forgetting the simulation keeps about the configuration's size, without
    it every id ever added; a forgotten server is never ticked again."""
    kept = run_seed(3, CHURN.replace(removed_linger_ms=None)).sim
    forgetting = run_seed(3, CHURN).sim
    assert len(kept.node_ids) > CHURN.max_servers + 5, "the run really churned"
    assert len(forgetting.node_ids) <= CHURN.max_servers + 2
    events = forgetting.events
    removed_at = {
        e.node: i
        for i, e in enumerate(events)
        if isinstance(e, ChangeMembership) and e.change.value == "remove"
    }
    gone = [node for node in removed_at if node not in forgetting.nodes]
    assert gone
    # A removed server lingers (it is ticked after its removal was asked
    # for, and may campaign), then its operator shuts it down: it is gone.
    lingered = [
        node
        for node in gone
        if any(isinstance(e, Tick) and e.node == node for e in events[removed_at[node] :])
    ]
    assert lingered


def test_a_trace_from_before_forgetting_keeps_every_server() -> None:
    """A trace header without the option reads as no forgetting, as it ran."""
    data = SimOptions().to_json()
    del data["removed_linger_ms"]
    assert SimOptions.from_json(data).removed_linger_ms is None
    assert SimOptions.from_json(SimOptions().to_json()).removed_linger_ms == 3_000


def _old_cut(group: list[int], nodes: list[int]) -> set[tuple[int, int]]:
    """The links a split cut before partitions kept their shape."""
    inside = set(group)
    return {(a, b) for a in nodes for b in nodes if a != b and ((a in inside) != (b in inside))}


NODES = [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("node", NODES)
def test_isolate_and_bridge_cut_the_links_they_always_did(node: int) -> None:
    assert set(partitions.isolate(node, NODES).cut_links()) == _old_cut([node], NODES)
    others = [n for n in NODES if n != node]
    bridge = {(a, b) for a in others for b in others if a != b}
    assert set(partitions.bridge(node, NODES).cut_links()) == bridge


def test_splits_and_groups_cut_the_links_they_always_did() -> None:
    for size in (1, 2):
        for minority in itertools.combinations(NODES, size):
            cut = partitions.split(list(minority), NODES).cut_links()
            assert set(cut) == _old_cut(list(minority), NODES)
            assert len(cut) == len(set(cut))
    for labels in itertools.product(range(3), repeat=len(NODES)):
        group_of = dict(zip(NODES, labels, strict=True))
        made = partitions.groups(group_of, NODES, "random")
        old = {(a, b) for a in NODES for b in NODES if group_of[a] != group_of[b]}
        assert (made is None) == (not old)
        if made is not None:
            assert set(made.cut_links()) == old


def test_a_partition_is_stored_as_its_shape_and_read_back() -> None:
    """90 servers split in two is two groups in the trace, not 4,050 links."""
    nodes = list(range(1, 91))
    event = partitions.split(list(range(1, 45)), nodes)
    line = json.dumps(event_to_json(event))
    assert len(line) < 1_000
    back = event_from_json(json.loads(line))
    assert back == event
    assert len(back.cut_links()) == 2 * 44 * 46
    # A partition of links only reads as it always did (no groups field).
    one_way = partitions.one_way(1, 2)
    assert "groups" not in event_to_json(one_way)
    assert event_from_json(event_to_json(one_way)) == one_way
    assert Partition("p", ((1, 2),), groups=((1, 3), (2, 3))).cut_links() == ((1, 2), (2, 1))
