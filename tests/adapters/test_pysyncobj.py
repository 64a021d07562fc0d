"""The PySyncObj adapter (`virtraft.nodes.pysyncobj`).

These run the installed `pysyncobj` package (extra `virtraft[pysyncobj]`)
and skip without it. The findings under tests/findings/pysyncobj-*.jsonl
replay to their recorded verdict (docs/findings.md tells each story), and
those shrunk through a corrected door fail the released library too, but
for the two that need the door's restart corrections (they diverge there).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("pysyncobj", reason="pysyncobj is not installed (extra [pysyncobj])")

from pysyncobj import pickle as _pickle  # noqa: E402
from pysyncobj import syncobj as library  # noqa: E402

from tests.adapters.common import (
    ROOT,
    assert_clean_seed_holds,
    assert_replays_to_its_verdict,
    failing_clean_seeds,
    findings,
    trace_bytes,
)
from virtraft.adapter import MembershipChange, NodeOptions, Redirect, Role, Submitted  # noqa: E402
from virtraft.check.checker import Checker  # noqa: E402
from virtraft.cli.commands import main as cli_main  # noqa: E402
from virtraft.nodes.pysyncobj import (  # noqa: E402
    Message,
    corrected,
    corrected_snapshots,
    corrected_terms,
    factory,
)
from virtraft.sim.simulation import Simulation  # noqa: E402
from virtraft.trace.format import read_trace  # noqa: E402
from virtraft.trace.replay import replay_events  # noqa: E402

FINDINGS = findings("pysyncobj")
FACTORY = "virtraft.nodes.pysyncobj:factory"


class Cluster:
    """Three PySyncObj nodes wired by hand: each message is delivered at
    once, in order, so a test says exactly what happens."""

    def __init__(self, size: int = 3, make=factory) -> None:  # type: ignore[no-untyped-def]
        members = tuple((i, True) for i in range(1, size + 1))
        self.queue: list[tuple[int, int, object]] = []
        self.nodes = {
            i: make(i, members, self._sender(i), random.Random(i), NodeOptions())
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


UNADDED_SERVER = "pysyncobj-unadded-server-campaigns-for-ever"


def test_an_unadded_server_keeps_a_follower_behind_leader_after_leader() -> None:
    # Finding 10 (swarm seed 159, shrunk through `corrected_snapshots`):
    # node 0 appended "add 7" as leader of term 1 and crashed; its restart
    # lists node 7 (correction 7, as its log does), so node 7's vote
    # requests reach it, and it ends behind with commit index 1 while
    # leader 4 of term 19 and the others hold 18 or more.
    trace = read_trace(ROOT / "tests" / "findings" / f"{UNADDED_SERVER}.jsonl")
    sim = Simulation(trace.options, trace.seed, corrected_snapshots, checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    assert (violation, diverged) == (None, None), why
    leader = sim.leader()
    assert leader is not None and (leader.node_id, leader.term) == (4, 19)
    assert sim.nodes[0].commit_index == 1
    assert min(sim.nodes[n].commit_index for n in (1, 2, 3, 4)) >= 18
    assert 7 not in {node for node, _voting in leader.members}
    assert 7 in {node for node, _voting in sim.nodes[0].members}
    assert dict(sim.nodes[0].corrections) == {"restart_configuration": 1}


# Shrunk through `corrected_snapshots`, these need its restart corrections:
# the released library's restart forgets the configuration (finding 7) or
# clears the journal (finding 6), and the run goes elsewhere.
NEEDS_THE_DOOR = {
    "pysyncobj-unadded-server-campaigns-for-ever": 879,
    "pysyncobj-restart-takes-configuration-from-its-dump": 29,
}


@pytest.mark.parametrize("stem", sorted(NEEDS_THE_DOOR))
def test_a_finding_that_needs_the_doors_restart_diverges_on_the_released_library(
    stem: str,
) -> None:
    trace = read_trace(ROOT / "tests" / "findings" / f"{stem}.jsonl")
    assert trace.factory == "virtraft.nodes.pysyncobj:corrected_snapshots"
    sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    violation, diverged, _why = replay_events(sim, trace.events)
    assert (violation, diverged) == (None, NEEDS_THE_DOOR[stem])


# Findings shrunk through a corrected door (so the shrink could not drift
# to a finding the door corrects): the door each was shrunk through and,
# for those a door corrects as well, that door, the correction and the
# server it acts at. Finding 5 was shrunk through `corrected`; findings 8
# and 11 through `corrected_snapshots`; no door corrects 11.
SHRUNK_THROUGH_DOORS = {
    "pysyncobj-late-snapshot-replaces-longer-log": (
        "corrected",
        (corrected_snapshots, "older_snapshot", 2),
    ),
    "pysyncobj-stale-term-ack-commits-on-a-minority": (
        "corrected_snapshots",
        (corrected_terms, "earlier_term_ack", 2),
    ),
    "pysyncobj-applied-membership-entry-undoes-a-later-one": ("corrected_snapshots", None),
}
CORRECTED_TOO = sorted(stem for stem, (_, door) in SHRUNK_THROUGH_DOORS.items() if door)


@pytest.mark.parametrize("stem", sorted(SHRUNK_THROUGH_DOORS))
def test_a_finding_shrunk_through_a_corrected_door_fails_the_released_library(stem: str) -> None:
    # The same events end in the same violation without the door.
    trace = read_trace(ROOT / "tests" / "findings" / f"{stem}.jsonl")
    assert trace.factory == f"virtraft.nodes.pysyncobj:{SHRUNK_THROUGH_DOORS[stem][0]}"
    sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    assert diverged is None, why
    assert violation is not None
    recorded = trace.verdict["violation"]
    assert (violation.invariant, violation.step) == (recorded["invariant"], recorded["step"])


@pytest.mark.parametrize("stem", CORRECTED_TOO)
def test_a_finding_shrunk_through_a_corrected_door_holds_with_it_corrected_too(stem: str) -> None:
    # Finding 5 through `corrected_snapshots`: node 2 drops the older dump's
    # last chunk and keeps its log and commit index. Finding 8 through
    # `corrected_terms`: leader 2 of term 3 drops node 1's reply of term 1.
    _, (door, correction, node) = SHRUNK_THROUGH_DOORS[stem]
    trace = read_trace(ROOT / "tests" / "findings" / f"{stem}.jsonl")
    sim = Simulation(trace.options, trace.seed, door, checker=Checker())
    violation, diverged, why = replay_events(sim, trace.events)
    assert (violation, diverged) == (None, None), why
    assert sim.nodes[node].corrections.get(correction) == 1


def test_a_replay_tells_apart_equal_replies_noted_with_different_terms(tmp_path: Path) -> None:
    """Swarm seed 1176 through `corrected_terms`: from step 251 two
    `next_node_idx` replies with one body, noted with terms 1 and 4, are in
    flight on one link, and the run delivers the term-4 one. The digest
    covers the noted term, so the replay delivers that one too (with the
    body's digest alone it took the older, which the door drops, and
    diverged at step 332)."""
    path = str(tmp_path / "seed-1176.jsonl")
    door = ["--node-factory", "virtraft.nodes.pysyncobj:corrected_terms"]
    assert cli_main(["run", "--seed", "1176", "--swarm", *door, "--trace", path, "--quiet"]) == 1
    assert cli_main(["replay", path, *door]) == 1  # the recorded violation; 2 if it diverged


def test_findings_are_shipped() -> None:
    assert FINDINGS, "tests/findings/ holds the shrunk PySyncObj findings"


# ------------------------------------------------- the corrected door
# `corrected` corrects findings 1, 2, 3, 4 and 6 where messages, calls and
# the disk cross the door. Each test below shows one correction at work
# (the released library fails the same steps), and the clean runs show
# that none of them changes a run that does not need it.

BOTH = pytest.mark.parametrize("make", [factory, corrected], ids=["released", "corrected"])


def _led(make, size: int = 3):  # type: ignore[no-untyped-def]
    """`size` servers through `make`, run until one leads."""
    cluster = Cluster(size, make)
    cluster.run(3000)
    return cluster, cluster.leader()


def _messages_to(cluster: Cluster, dst: int, kind: str) -> list[tuple[int, int, object]]:
    held = [m for m in cluster.queue if m[1] == dst and m[2].kind == kind]  # type: ignore[attr-defined]
    cluster.queue = [m for m in cluster.queue if m not in held]
    return held


@BOTH
def test_a_copied_vote_is_one_vote_through_the_corrected_door(make) -> None:  # type: ignore[no-untyped-def]
    # Finding 1: of five servers, candidate 1 has its own vote and node 2's,
    # delivered twice; only the released library takes that for a majority.
    cluster = Cluster(5, make)
    for _ in range(1000):
        cluster.nodes[1].tick(10)
        if cluster.nodes[1].role is Role.CANDIDATE:
            break
    assert cluster.nodes[1].role is Role.CANDIDATE
    (request,) = _messages_to(cluster, 2, "request_vote")
    cluster.queue = []
    cluster.nodes[2].deliver(1, request[2])
    (vote,) = _messages_to(cluster, 1, "response_vote")
    cluster.nodes[1].deliver(2, vote[2])
    cluster.nodes[1].deliver(2, vote[2])
    leads = cluster.nodes[1].role is Role.LEADER
    assert leads is (make is factory)


@BOTH
def test_a_stale_heartbeat_keeps_the_log_through_the_corrected_door(make) -> None:  # type: ignore[no-untyped-def]
    # Finding 2: a heartbeat the leader sent before entry i existed arrives
    # after node 2 has entry i; only the released library cuts it off.
    cluster, leader = _led(make)
    follower = next(i for i in cluster.nodes if i != leader.node_id)
    leader.tick(1000)
    stale = _messages_to(cluster, follower, "append_entries")
    assert stale
    submitted = leader.submit(1, ("k", 1))
    assert isinstance(submitted, Submitted)
    cluster.run(1000)
    node = cluster.nodes[follower]
    assert node.last_index >= submitted.index
    for src, _, message in stale:
        node.deliver(src, message)
    kept = node.last_index >= submitted.index
    assert kept is (make is corrected)


@BOTH
def test_a_second_membership_change_waits_through_the_corrected_door(make) -> None:  # type: ignore[no-untyped-def]
    # Finding 3: the library accepts a second change while the first is in flight.
    cluster, leader = _led(make)
    first = leader.change_membership(MembershipChange.REMOVE, 3)
    assert isinstance(first, Submitted)
    second = leader.change_membership(MembershipChange.ADD_NONVOTING, 4)
    assert isinstance(second, Submitted) is (make is factory)


@BOTH
def test_a_restart_between_dump_and_compaction_keeps_the_entries_after_it(make) -> None:  # type: ignore[no-untyped-def]
    # Finding 6: the leader dumps at one tick and would compact at the next;
    # it crashes in between, with an entry after the dump.
    cluster, leader = _led(make)
    leader.submit(1, ("a", 1))
    cluster.run(300)
    assert leader.take_snapshot()
    leader.tick(10)  # the dump is written
    assert leader.snapshot_index == leader.last_applied
    submitted = leader.submit(2, ("b", 2))
    assert isinstance(submitted, Submitted)
    leader.crash()
    leader.restart()
    leader.tick(10)  # the library loads its dump at the first tick
    kept = leader.last_index == submitted.index
    assert kept is (make is corrected)


@BOTH
def test_a_restart_keeps_the_configuration_of_its_log_through_the_corrected_door(make) -> None:  # type: ignore[no-untyped-def]
    # Finding 7: node 3 is removed; a follower restarted with its first node
    # list counts node 3 as a voter again on the released library.
    cluster, leader = _led(make)
    assert isinstance(leader.change_membership(MembershipChange.REMOVE, 3), Submitted)
    cluster.run(500)
    follower = next(n for i, n in cluster.nodes.items() if i not in (3, leader.node_id))
    assert follower.members == ((1, True), (2, True))
    follower.crash()
    follower.restart()
    forgot = (3, True) in follower.members
    assert forgot is (make is factory)


@pytest.mark.parametrize(
    "make", [factory, corrected_snapshots, corrected_terms], ids=["released", "snapshots", "terms"]
)
def test_an_acknowledgement_from_an_earlier_term_is_not_counted_through_the_corrected_door(
    make,  # type: ignore[no-untyped-def]
) -> None:
    # Finding 8: leader A's term-1 entries reach only B, whose reply is held;
    # A crashes, a leader of term 2 (B down too) overwrites them on every
    # log, and A leads term 3 with entries of its own up to the held reply's
    # index. The reply (no term in it) arrives: the library counts B as
    # holding them, and with D's real acknowledgement commits an entry two
    # of five servers hold.
    cluster, a = _led(make, size=5)
    b, c, d, e = (i for i in cluster.nodes if i != a.node_id)
    for command in range(3):
        assert isinstance(a.submit(command, (f"k{command}", command)), Submitted)
    a.tick(250)
    for src, _, message in _messages_to(cluster, b, "append_entries"):
        cluster.nodes[b].deliver(src, message)
    ((_, _, held),) = _messages_to(cluster, a.node_id, "next_node_idx")
    assert "term" not in _pickle.loads(held.body)  # the library's reply has none
    stale_match = a.last_index
    cluster.queue = []
    a.crash()
    for _ in range(300):
        cluster.run(10, down=frozenset({a.node_id, b}))
        if any(cluster.nodes[i].role is Role.LEADER for i in (c, d, e)):
            break
    a.restart()
    cluster.run(500)  # the term-2 leader overwrites A's and B's entries
    assert {n.last_index for n in cluster.nodes.values()} == {stale_match - 2}
    deposed = next(i for i in (c, d, e) if cluster.nodes[i].role is Role.LEADER)
    cluster.nodes[deposed].crash()
    for _ in range(1000):
        a.tick(10)
        cluster.flush(down=frozenset({deposed}))
        if a.role is Role.LEADER:
            break
    assert a.role is Role.LEADER and a.term == 3
    assert isinstance(a.submit(9, ("x", 9)), Submitted)
    assert a.last_index == stale_match
    a.tick(250)
    follower = next(i for i in (c, d, e) if i != deposed)
    for src, _, message in _messages_to(cluster, follower, "append_entries"):
        cluster.nodes[follower].deliver(src, message)
    for src, _, message in _messages_to(cluster, a.node_id, "next_node_idx"):
        a.deliver(src, message)
    cluster.queue = []
    assert a.commit_index < stale_match
    a.deliver(b, held)
    a.tick(10)
    holders = [i for i, n in cluster.nodes.items() if n.entry(stale_match) == a.entry(stale_match)]
    assert sorted(holders) == sorted([a.node_id, follower])
    counted = a.commit_index == stale_match
    assert counted is (make is not corrected_terms)
    assert getattr(a, "corrections", {}).get("earlier_term_ack", 0) == (not counted)


def _events(tmp_path: Path, seed: int, factory_name: str) -> list[str]:
    out = tmp_path / f"{seed}-{factory_name.rsplit(':', 1)[1]}.jsonl"
    cli_main(["run", "--seed", str(seed), "--steps", "3000", "--quiet", "--trace", str(out),
              "--node-factory", factory_name])  # fmt: skip
    return out.read_text().splitlines()[1:-1]


@pytest.mark.parametrize("door", ["corrected", "corrected_snapshots", "corrected_terms"])
@pytest.mark.parametrize("seed", range(3))
def test_the_corrected_door_leaves_a_clean_run_unchanged(
    tmp_path: Path, seed: int, door: str
) -> None:
    corrected_events = _events(tmp_path, seed, f"virtraft.nodes.pysyncobj:{door}")
    released_events = _events(tmp_path, seed, FACTORY)
    if door == "corrected_terms":  # its replies' digests cover the term it notes beside them
        corrected_events = _without_reply_keys(corrected_events)
        released_events = _without_reply_keys(released_events)
    assert corrected_events == released_events


def _without_reply_keys(lines: list[str]) -> list[dict[str, object]]:
    events = [json.loads(line) for line in lines]
    for event in events:
        if event.get("msg") == "next_node_idx":
            del event["key"]
    return events


def test_a_leader_that_lists_a_forgotten_server_is_not_asked_to_change_it() -> None:
    """Swarm seed 220: node 0's removal committed and the simulation forgot
    it, then leader 4 listed it again (its restart took the start-up list,
    finding 7). The scheduler drew a change naming node 0 and the harness
    raised instead of running on; now a change names only servers it runs."""
    from virtraft.run.factory import load_factory
    from virtraft.run.seed import resolve_options, run_seed
    from virtraft.sim.options import SimOptions

    base = SimOptions(steps=3000)  # as `virtraft fuzz` runs it
    options = resolve_options(220, base, True, factory=load_factory(FACTORY))
    assert options.first_node_id == 0 and options.member_rate > 0
    result = run_seed(220, options, factory=FACTORY)
    # It raised at step 2186; now it runs on to a verdict of the library's.
    assert len(result.events) > 2186
