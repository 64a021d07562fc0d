"""The PySyncObj adapter (`virtraft.nodes.pysyncobj`).

These run the installed `pysyncobj` package (extra `virtraft[pysyncobj]`)
and skip without it. The findings under tests/findings/pysyncobj-*.jsonl
replay to their recorded verdict (docs/findings.md tells each story).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("pysyncobj", reason="pysyncobj is not installed (extra [pysyncobj])")

from pysyncobj import syncobj as library  # noqa: E402

from tests.adapters.common import (
    assert_clean_seed_holds,
    assert_replays_to_its_verdict,
    failing_clean_seeds,
    findings,
    trace_bytes,
)
from virtraft.adapter import MembershipChange, NodeOptions, Redirect, Role, Submitted  # noqa: E402
from virtraft.nodes.pysyncobj import Message, factory  # noqa: E402

FINDINGS = findings("pysyncobj")
FACTORY = "virtraft.nodes.pysyncobj:factory"


class Cluster:
    """Three PySyncObj nodes wired by hand: each message is delivered at
    once, in order, so a test says exactly what happens."""

    def __init__(self, size: int = 3) -> None:
        members = tuple((i, True) for i in range(1, size + 1))
        self.queue: list[tuple[int, int, object]] = []
        self.nodes = {
            i: factory(i, members, self._sender(i), random.Random(i), NodeOptions())
            for i in range(1, size + 1)
        }

    def _sender(self, src: int):  # type: ignore[no-untyped-def]
        return lambda dst, message: self.queue.append((src, dst, message))

    def flush(self, down: frozenset[int] = frozenset()) -> None:
        for _ in range(10_000):
            if not self.queue:
                return
            src, dst, message = self.queue.pop(0)
            if dst in self.nodes and dst not in down and src not in down:
                self.nodes[dst].deliver(src, message)
        raise AssertionError("messages never stopped")

    def run(self, ms: int, down: frozenset[int] = frozenset()) -> None:
        for _ in range(ms // 10):
            for i, node in self.nodes.items():
                if i not in down:
                    node.tick(10)
            self.flush(down)

    def leader(self):  # type: ignore[no-untyped-def]
        leaders = [n for n in self.nodes.values() if n.alive and n.role is Role.LEADER]
        assert len(leaders) == 1, [n.node_id for n in leaders]
        return leaders[0]


def test_a_cluster_elects_a_leader_and_commits_a_command_in_virtual_time() -> None:
    cluster = Cluster()
    cluster.run(3000)
    leader = cluster.leader()
    follower = next(n for n in cluster.nodes.values() if n is not leader)
    assert follower.submit(7, ("k", 1)) == Redirect(leader.node_id)
    submitted = leader.submit(7, ("k", 1))
    assert isinstance(submitted, Submitted)
    assert leader.is_committed(submitted) is None
    cluster.run(500)
    assert leader.is_committed(submitted) is True
    for node in cluster.nodes.values():
        assert node.entry(submitted.index) == (submitted.term, 7)
        assert node._obj.kv == {"k": 1}


def test_calls_leave_the_library_clock_and_random_as_they_were() -> None:
    before = (library.monotonicTime, library.random, library.os, library.createJournal)
    cluster = Cluster()
    cluster.run(2000)
    assert (library.monotonicTime, library.random, library.os, library.createJournal) == before


def test_a_restart_keeps_term_vote_and_log_and_nothing_else() -> None:
    cluster = Cluster()
    cluster.run(3000)
    leader = cluster.leader()
    submitted = leader.submit(1, ("a", 5))
    assert isinstance(submitted, Submitted)
    cluster.run(500)
    node = next(n for n in cluster.nodes.values() if n is not leader)
    term, vote, last = node.term, node.voted_for, node.last_index
    node.crash()
    assert not node.alive
    # Crashed, the view is the disk: the journal and its meta record.
    assert (node.term, node.voted_for, node.last_index) == (term, vote, last)
    assert node.commit_index == 0
    node.restart()
    assert (node.term, node.voted_for, node.last_index) == (term, vote, last)
    assert node._obj.kv == {}  # not applied yet: the state machine is rebuilt
    cluster.run(500)
    assert node._obj.kv == {"a": 5}


def test_a_snapshot_compacts_the_log_and_a_restart_loads_it() -> None:
    cluster = Cluster()
    cluster.run(3000)
    leader = cluster.leader()
    for command in range(1, 6):
        leader.submit(command, (f"k{command}", command))
    cluster.run(500)
    node = next(n for n in cluster.nodes.values() if n is not leader)
    assert node.take_snapshot()
    cluster.run(100)  # the library dumps at one tick and compacts at the next
    assert node.snapshot_index == node.last_applied
    assert node.entry(2) is None
    node.crash()
    node.restart()
    cluster.run(300)
    assert node._obj.kv == {f"k{c}": c for c in range(1, 6)}


def test_a_new_server_joins_as_a_voter_and_catches_up() -> None:
    cluster = Cluster()
    cluster.run(3000)
    leader = cluster.leader()
    leader.submit(1, ("x", 1))
    members = (*leader.members, (4, False))
    cluster.nodes[4] = factory(4, members, cluster._sender(4), random.Random(4), NodeOptions())
    result = leader.change_membership(MembershipChange.ADD_NONVOTING, 4)
    assert isinstance(result, Submitted)
    assert (4, True) in leader.members
    assert not isinstance(leader.change_membership(MembershipChange.DEMOTE, 4), Submitted)
    cluster.run(1000)
    assert cluster.nodes[4]._obj.kv == {"x": 1}
    assert cluster.nodes[2].members == ((1, True), (2, True), (3, True), (4, True))


def test_messages_are_plain_data_with_a_stable_key() -> None:
    cluster = Cluster()
    cluster.run(3000)
    assert cluster.queue == []
    cluster.leader().tick(1000)
    assert cluster.queue
    _, _, message = cluster.queue[0]
    assert isinstance(message, Message)
    assert message.kind == "append_entries"
    assert factory.messages.key(message) == factory.messages.key(
        Message(message.kind, bytes(message.body))
    )
    assert factory.messages.text(message).startswith("append_entries(")


@pytest.mark.parametrize("seed", range(8))
def test_a_clean_network_finds_nothing(seed: int) -> None:
    assert_clean_seed_holds(seed, FACTORY)


@pytest.mark.slow
def test_a_clean_network_finds_nothing_in_300_seeds() -> None:
    assert failing_clean_seeds(FACTORY) == []


def test_the_same_seed_gives_the_same_trace_bytes_under_any_hash_seed(tmp_path) -> None:
    first = trace_bytes(tmp_path, "0", FACTORY)
    assert first == trace_bytes(tmp_path, "4242", FACTORY)
    # The run is a faulty one: what the bytes agree on includes crashes and
    # restarts from the disk, dropped messages, membership changes, and
    # dumps taken and sent to a follower (where the library iterates sets of
    # nodes, and pickles them).
    stats = json.loads(first.splitlines()[-1])["stats"]
    assert stats["crashes"] > 0 and stats["restarts"] > 0, stats
    assert stats["network"]["dropped"] > 0, stats
    assert stats["membership_changes"] > 0, stats
    assert stats["snapshots_taken"] > 0 and stats["snapshots_installed"] > 0, stats


@pytest.mark.parametrize("path", FINDINGS, ids=[p.stem for p in FINDINGS])
def test_each_finding_replays_to_its_verdict(path: Path) -> None:
    assert_replays_to_its_verdict(path)


def test_findings_are_shipped() -> None:
    assert FINDINGS, "tests/findings/ holds the shrunk PySyncObj findings"
