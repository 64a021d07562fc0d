"""The canonical/raft adapter (`virtraft.nodes.canonical`).

These run the installed library (Debian's libraft-dev) and skip, with the
reason, when it or its header or cffi is missing; .ci/run installs it. The
findings under tests/findings/canonical-*.jsonl replay to their recorded
verdict (docs/findings.md tells each story).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from pathlib import Path

import pytest

from tests.adapters.common import (
    CLEAN,
    assert_clean_seed_holds,
    assert_replays_to_its_verdict,
    findings,
    trace_bytes,
)
from virtraft.adapter import MembershipChange, NodeOptions, Role, Submitted
from virtraft.check.checker import Checker
from virtraft.nodes import canonical_build
from virtraft.nodes.canonical import (
    COMMAND,
    AppendEntries,
    Entry,
    RequestVote,
    RequestVoteResult,
    sync_io,
)
from virtraft.run.factory import load_factory
from virtraft.run.seed import continue_with_liveness, run_seed
from virtraft.sim.events import CompleteIO
from virtraft.sim.options import SimOptions
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import read_trace
from virtraft.trace.replay import replay_events

FINDINGS = findings("canonical")
FACTORY = "virtraft.nodes.canonical:factory"
MISSING = canonical_build.installed()

needs_library = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


@needs_library
@pytest.mark.parametrize("seed", range(6))
def test_a_clean_network_finds_nothing(seed: int) -> None:
    assert_clean_seed_holds(seed, FACTORY)


# canonical/raft 0.15 fails these 20 of 300 clean seeds, every one by the
# heartbeat's stale suffix (docs/findings.md): a follower answers a success
# with the end of its own log, an old leader's suffix included, the leader
# takes it as matched, then counts it for a commit (CommittedNeverLost) or
# ignores the follower's rejections of that suffix as stale for good
# (CoreCaughtUp). With only that answer corrected (`clamped_acks`) each holds.
STALE_SUFFIX_SEEDS = {
    23: "CoreCaughtUp",
    24: "CoreCaughtUp",
    53: "CoreCaughtUp",
    69: "CoreCaughtUp",
    83: "CommittedNeverLost",
    88: "CommittedNeverLost",
    94: "CoreCaughtUp",
    115: "CoreCaughtUp",
    124: "CoreCaughtUp",
    133: "CoreCaughtUp",
    150: "CoreCaughtUp",
    182: "CoreCaughtUp",
    221: "CoreCaughtUp",
    227: "CommittedNeverLost",
    248: "CommittedNeverLost",
    252: "CommittedNeverLost",
    283: "CommittedNeverLost",
    287: "CommittedNeverLost",
    289: "CoreCaughtUp",
    299: "CommittedNeverLost",
}
CLAMPED = "virtraft.nodes.canonical:clamped_acks"


def _verdict_of(result) -> str | None:  # type: ignore[no-untyped-def]
    """The name of what failed in a run, None when it held."""
    if result.violation is not None:
        return result.violation.invariant
    return result.liveness.name if result.liveness.verdict == "failed" else None


def _verdict(seed: int, factory: str) -> str | None:
    """The name of what failed in a clean run of `seed`, None when it held."""
    return _verdict_of(run_seed(seed, CLEAN, factory=factory))


@needs_library
@pytest.mark.parametrize("seed", [23, 83])
def test_a_clean_failure_is_the_stale_suffix_and_goes_with_the_answer_corrected(
    seed: int,
) -> None:
    assert _verdict(seed, FACTORY) == STALE_SUFFIX_SEEDS[seed]
    assert _verdict(seed, CLAMPED) is None


@needs_library
def test_the_segfault_below_the_snapshot_goes_with_the_covered_entries_cut() -> None:
    # Swarm seed 22: spare 6 snapshots, then gets an AppendEntries from
    # index 1 again; the library appends it past its log's end and faults.
    swarm = run_seed(22, SimOptions(), factory=FACTORY, swarm=True)
    assert swarm.violation is not None
    assert "SIGSEGV" in swarm.violation.message
    corrected = run_seed(22, SimOptions(), factory="virtraft.nodes.canonical:corrected", swarm=True)
    assert not corrected.failed


CORRECTED = "virtraft.nodes.canonical:corrected"
SNAPSHOTS = SimOptions(steps=3000, snapshot_rate=0.01)
# The snapshots campaign (`fuzz --seeds 0:100 --snapshot-rate 0.01`) fails
# these seeds, each by a shipped finding (docs/findings.md): the door that
# corrects the finding holds the seed (the stale suffix: clamped_acks; an
# AppendEntries inside the snapshot: corrected), or, for the lone voter (no
# door corrects it), a server leads the term it was already in without
# having run for it. Seed 83, the pre-vote answer's term, is
# PRE_VOTE_SEEDS's and its shrunk trace's.
SNAPSHOT_SEEDS = {
    2: ("CoreCaughtUp", CLAMPED),
    10: ("LogMatching", None),
    14: ("CommittedNeverLost", CLAMPED),
    16: ("ElectionSafety", None),
    18: ("CommittedNeverLost", CLAMPED),
    29: ("CommittedNeverLost", CLAMPED),
    32: ("CommittedNeverLost", CLAMPED),
    45: ("NodeException", CORRECTED),
    71: ("CoreCaughtUp", CLAMPED),
}


def _snapshots_run(seed: int, factory: str, on_step=None):  # type: ignore[no-untyped-def]
    keep = frozenset({"snapshot_rate"})
    return run_seed(seed, SNAPSHOTS, factory=factory, swarm=True, keep=keep, on_step=on_step)


@needs_library
@pytest.mark.parametrize("seed", sorted(SNAPSHOT_SEEDS))
def test_a_failing_snapshots_seed_is_a_shipped_finding(seed: int) -> None:
    verdict, door = SNAPSHOT_SEEDS[seed]
    seen: dict[int, tuple[Role, int]] = {}
    self_elected: list[tuple[int, int]] = []

    def watch(sim: Simulation) -> None:
        # Leader from follower, pre-candidate or down, in the same term: the
        # lone voter's shortcut (convertToCandidate or raft_start), not an election.
        for node_id, node in sim.nodes.items():
            now = (node.role, node.term)
            before = seen.get(node_id)
            ran = before is None or before[0] in (Role.LEADER, Role.CANDIDATE)
            if now[0] is Role.LEADER and not ran and before[1] == now[1]:  # type: ignore[index]
                self_elected.append((node_id, now[1]))
            seen[node_id] = now

    result = _snapshots_run(seed, FACTORY, watch)
    watch(result.sim)  # the failing step itself
    assert _verdict_of(result) == verdict
    if door is None:
        assert self_elected
        assert _verdict_of(_snapshots_run(seed, CORRECTED)) == verdict
    else:
        assert _verdict_of(_snapshots_run(seed, door)) is None


@needs_library
def test_a_lost_snapshot_is_sent_again_within_the_liveness_phase() -> None:
    # Seed 5 of `fuzz --partition-rate 0.02` (swarm divides the timeouts by
    # ten): leader 2's InstallSnapshot to 1 is lost; with the library's
    # install-snapshot timeout left at 30 s, 1 stayed behind past the
    # liveness phase's 20 s (CoreCaughtUp). Scaled with the election timeout
    # (INSTALL_SNAPSHOT_TIMEOUTS), the snapshot goes again and 1 catches up.
    options = SimOptions(steps=3000, partition_rate=0.02)
    result = run_seed(5, options, factory=FACTORY, swarm=True, keep=frozenset({"partition_rate"}))
    assert result.sim.options.node.election_timeout_ms == 100
    assert result.sim.stats.snapshots_installed > 0
    assert not result.failed, (result.violation, result.liveness)


@needs_library
@pytest.mark.slow
def test_a_clean_network_finds_only_the_stale_suffix_in_300_seeds() -> None:
    failing = {seed: _verdict(seed, FACTORY) for seed in range(300)}
    assert {s: v for s, v in failing.items() if v is not None} == STALE_SUFFIX_SEEDS
    assert [seed for seed in STALE_SUFFIX_SEEDS if _verdict(seed, CLAMPED)] == []


@needs_library
def test_disk_completions_are_events_of_their_own() -> None:
    result = run_seed(3, CLEAN, factory=FACTORY)
    completions = [e for e in result.events if isinstance(e, CompleteIO)]
    assert len(completions) > 50
    # With a synchronous disk there are none, and the run still commits.
    synchronous = run_seed(3, CLEAN, factory="virtraft.nodes.canonical:sync_io")
    assert not any(isinstance(e, CompleteIO) for e in synchronous.events)
    assert synchronous.sim.stats.max_commit_index > 10


@needs_library
def test_the_same_seed_gives_the_same_trace_bytes_under_any_hash_seed(tmp_path) -> None:
    first = trace_bytes(tmp_path, "0", FACTORY, 2000)
    assert first == trace_bytes(tmp_path, "4242", FACTORY, 2000)
    assert len(first.splitlines()) > 100
    assert b'"e": "io"' in first or b'"e":"io"' in first


def _node():  # type: ignore[no-untyped-def]
    from virtraft.nodes.canonical import factory

    sent: list[tuple[int, object]] = []
    members = ((1, True), (2, True), (3, True))
    return factory(
        1, members, lambda dst, m: sent.append((dst, m)), random.Random(1), NodeOptions()
    )


@needs_library
def test_a_founder_boots_from_its_bootstrapped_disk_and_restarts_from_it_alone() -> None:
    node = _node()
    assert node.members == ((1, True), (2, True), (3, True))
    assert (node.term, node.last_index, node.commit_index) == (1, 1, 1)
    assert node.entry_kind(1) == "configuration"
    node.crash()
    assert not node.alive and node.term == 1 and node.last_index == 1
    node.restart()
    assert node.alive and node.last_index == 1 and node.members[0] == (1, True)


@needs_library
def test_a_fatal_signal_in_the_library_is_an_exception_and_the_process_lives() -> None:
    from virtraft.nodes.canonical import NativeFault

    node = _node()
    with pytest.raises(NativeFault, match="SIGSEGV inside the library"):
        node._call(node._lib.vr_poke, 2)  # a NULL dereference in C
    assert not node.alive
    assert _node().alive


def _routed_by_hand(ids: tuple[int, ...], options: NodeOptions):  # type: ignore[no-untyped-def]
    """Servers `ids` of the three voters 1-3, on a synchronous disk, whose
    sends collect as (src, dst, message) in one outbox the test routes."""
    members = ((1, True), (2, True), (3, True))
    outbox: list[tuple[int, int, object]] = []

    def server(i: int):  # type: ignore[no-untyped-def]
        send = functools.partial(lambda src, dst, m: outbox.append((src, dst, m)), i)
        return sync_io(i, members, send, random.Random(i), options)

    return {i: server(i) for i in ids}, outbox


@needs_library
def test_a_pre_vote_answer_hides_a_higher_term_and_two_servers_never_elect() -> None:
    # docs/findings.md, "A pre-vote answer carries the request's term": swarm
    # seed 270 ends with this pair, 2 cut off. Server 1 is in term 4 with the
    # shorter log, server 3 in term 2 with the longer one; 1 refuses 3's
    # pre-vote for its term but answers with 3's term, so 3 never learns
    # term 4, and 3 refuses 1's pre-vote for its log. Raft would elect 3.
    servers, outbox = _routed_by_hand((1, 3), NodeOptions())
    one, three = servers[1], servers[3]
    one.deliver(2, RequestVote(4, 2, 1, 1, disrupt_leader=False, pre_vote=False))
    command = (7).to_bytes(8, "little") + bytes(8) + b"k"
    three.deliver(2, AppendEntries(2, 1, 1, 1, (Entry(2, COMMAND, command),)))
    assert (one.term, one.last_index, three.term, three.last_index) == (4, 1, 2, 2)
    outbox.clear()
    answers_to_three = []
    for _ in range(6000):  # 60 s of virtual time, 60 election timeouts
        for s in servers.values():
            s.tick(10)
        while outbox:
            src, dst, message = outbox.pop(0)
            if dst in servers:
                if dst == 3 and isinstance(message, RequestVoteResult):
                    answers_to_three.append(message)
                servers[dst].deliver(src, message)
    assert answers_to_three
    assert all(m.term == 3 and not m.vote_granted for m in answers_to_three)
    assert one.term == 4 and three.term == 2
    assert one.leader_hint() is None and three.leader_hint() is None


# The campaigns' seeds that end with every server stuck in pre-vote: the
# servers with the longest logs are in a lower term, and the others' refusals
# carry the request's term, not theirs (docs/findings.md).
PRE_VOTE_SEEDS = {
    "swarm seed 270": (270, SimOptions(steps=3000), frozenset()),
    "snapshots seed 83": (
        83,
        SimOptions(steps=3000, snapshot_rate=0.01),
        frozenset({"snapshot_rate"}),
    ),
}


@needs_library
@pytest.mark.parametrize("name", sorted(PRE_VOTE_SEEDS))
def test_a_stuck_pre_vote_seed_elects_at_once_with_the_answers_own_term(name: str) -> None:
    # The same servers, as the safety phase left them, run the same liveness
    # phase twice: as the library is, no leader for the whole phase; with a
    # refused pre-vote answered with the responder's higher term (the
    # `prevote_own_term` door) from the phase's first step, a leader at once.
    seed, options, keep = PRE_VOTE_SEEDS[name]
    stuck = run_seed(seed, options, factory=FACTORY, swarm=True, keep=keep)
    assert (stuck.violation, stuck.liveness.name) == (None, "LeaderElected")
    assert stuck.sim.options.node.prevote
    phase = stuck.liveness.phase
    assert phase is not None
    sim = Simulation(stuck.sim.options, seed, load_factory(FACTORY), checker=Checker())
    violation, diverged, _why = replay_events(sim, list(stuck.events)[: phase["first_step"] - 1])
    assert (violation, diverged) == (None, None)
    for node in sim.nodes.values():
        node.own_prevote_term = True  # type: ignore[attr-defined]
    liveness, violation = continue_with_liveness(sim, seed)
    assert violation is None and liveness.verdict == "ok", liveness
    assert liveness.leader_at_ms is not None
    assert liveness.leader_at_ms - phase["stable_until_ms"] < phase["bound_ms"]


PRE_VOTE_TRACES = [p for p in FINDINGS if p.stem.startswith("canonical-pre-vote-answer")]


@needs_library
@pytest.mark.parametrize("path", PRE_VOTE_TRACES, ids=[p.stem for p in PRE_VOTE_TRACES])
def test_a_shipped_pre_vote_trace_is_the_answers_term(path: Path) -> None:
    # Each shrunk pre-vote trace (swarm seed 270; snapshots seed 83, six
    # servers) ends with the servers holding the most up-to-date logs in a
    # lower term than every other server, which refuses their pre-votes with
    # the request's term. After the same shrunk safety phase, the
    # `prevote_own_term` door elects a leader in the same liveness phase.
    trace = read_trace(path)
    first = trace.verdict["liveness"]["phase"]["first_step"]
    stuck = Simulation(trace.options, trace.seed, load_factory(FACTORY), checker=Checker())
    assert replay_events(stuck, trace.events)[:2] == (None, None)
    alive = [n for n in stuck.nodes.values() if n.alive]
    newest = max((n.entry(n.last_index), n.last_index) for n in alive)
    ahead = [n for n in alive if (n.entry(n.last_index), n.last_index) == newest]
    behind = [n for n in alive if n not in ahead]
    assert ahead and behind
    assert max(n.term for n in ahead) < min(n.term for n in behind)
    sim = Simulation(trace.options, trace.seed, load_factory(FACTORY), checker=Checker())
    assert replay_events(sim, trace.events[: first - 1])[:2] == (None, None)
    for node in sim.nodes.values():
        node.own_prevote_term = True  # type: ignore[attr-defined]
    liveness, violation = continue_with_liveness(sim, trace.seed)
    assert violation is None and liveness.verdict == "ok", liveness


@needs_library
def test_a_server_outside_its_own_configuration_never_votes_and_a_majority_never_elects() -> None:
    # docs/findings.md, "Servers their own configurations leave out neither
    # vote nor campaign", its voting half: leader 1 removes itself (an entry
    # only it holds), 3 then leads term 4 and commits its own entry at that
    # index with 2, and crashes.
    # 1 and 2, a majority of the committed configuration, never elect: 2's
    # log is the more up to date, 1 follows its terms and refuses every vote.
    servers, outbox = _routed_by_hand((1, 2, 3), NodeOptions(prevote=False))
    answers: list[tuple[int, RequestVoteResult]] = []

    def run(ms: int, ticking: tuple[int, ...], cut: int = 0) -> None:
        for _ in range(ms // 10):
            for i in ticking:
                servers[i].tick(10)
            while outbox:
                src, dst, message = outbox.pop(0)
                if cut in (src, dst) or not servers[dst].alive:
                    continue
                if src == 1 and isinstance(message, RequestVoteResult):
                    answers.append((servers[1].term, message))
                servers[dst].deliver(src, message)

    one = servers[1]
    while one.role is not Role.LEADER:
        run(10, (1,))
    assert one.term == 2
    assert one.change_membership(MembershipChange.REMOVE, 1) == Submitted(2, 2)
    while not any(servers[i].role is Role.LEADER for i in (2, 3)):
        run(10, (1, 2, 3), cut=1)
    leader = next(i for i in (2, 3) if servers[i].role is Role.LEADER)
    assert isinstance(servers[leader].submit(1, ("k", 1)), Submitted)
    run(200, (1, 2, 3), cut=1)
    voter = servers[5 - leader]
    assert voter.commit_index == 2 and voter.entry(2)[0] > 2  # type: ignore[index]
    assert (one.members, one.entry(2)) == (((2, True), (3, True)), (2, 0))
    servers[leader].crash()
    answers.clear()
    run(60_000, (1, 5 - leader))  # 60 election timeouts
    assert voter.role is Role.CANDIDATE and one.role is Role.FOLLOWER
    assert len(answers) > 20 and one.term == voter.term
    assert all(not m.vote_granted and m.term == term for term, m in answers)


@needs_library
def test_membership_seed_68_is_two_servers_out_of_their_own_configurations() -> None:
    # The seed's end: 1 removed itself and 3 demoted itself, each by an
    # uncommitted entry only it holds; 2, a voter everywhere, is refused by both.
    options = SimOptions(steps=3000, member_rate=0.01)
    result = run_seed(68, options, factory=FACTORY, swarm=True, keep=frozenset({"member_rate"}))
    assert (result.violation, result.liveness.name) == (None, "LeaderElected")
    assert not result.sim.options.node.prevote
    nodes = result.sim.nodes
    assert nodes[2].role is Role.CANDIDATE
    assert nodes[1].members == ((2, True), (3, True))
    assert nodes[3].members == ((1, True), (2, True), (3, False))
    assert nodes[2].members == ((1, True), (2, True), (3, True))
    assert nodes[2].entry(nodes[2].last_index)[0] > nodes[1].entry(nodes[1].last_index)[0]  # type: ignore[index]


@needs_library
def test_a_crash_loses_the_writes_that_had_not_completed() -> None:
    options = SimOptions(steps=1500, crash_rate=0.01)
    for seed in range(5):
        result = run_seed(seed, options, factory=FACTORY)
        assert result.violation is None, result.violation


@needs_library
@pytest.mark.parametrize("path", FINDINGS, ids=[p.stem for p in FINDINGS])
def test_each_finding_replays_to_its_verdict(path: Path) -> None:
    assert_replays_to_its_verdict(path)


def test_a_missing_library_is_said_in_one_line(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(canonical_build, "HEADER", tmp_path / "raft.h")
    why = canonical_build.installed()
    assert why is not None and "apt-get install libraft-dev" in why
    from virtraft.adapter import FactoryError

    with pytest.raises(FactoryError, match="cannot be built: .*raft.h is missing"):
        canonical_build.build()


@needs_library
@pytest.mark.parametrize("path", FINDINGS, ids=[p.stem for p in FINDINGS])
def test_each_finding_has_a_report_with_its_disk_completions(path: Path) -> None:
    # A campaign writes a report for every failing seed, replayed through its
    # node factory: a disk completion (an event only asynchronous disks have)
    # must be a kind the page knows. Without the factory the page is not
    # replayed and lists only some of the events.
    from virtraft.report.diagram import WINDOW_STEPS
    from virtraft.report.html import render_report

    trace = read_trace(path)
    assert any(isinstance(e, CompleteIO) for e in trace.events)
    if len(trace.events) > WINDOW_STEPS:
        # A long trace is drawn in detail only near its end (a liveness
        # phase's ticks); its completions come at its start: the page of
        # that start.
        trace = dataclasses.replace(trace, events=trace.events[:WINDOW_STEPS])
    page = render_report(trace, trace_path=str(path), factory=load_factory(FACTORY))
    assert "was not replayed" not in page
    assert "CompleteIO" in page
