"""Lossy crashes: a power cut loses the writes a server had not synced.

The disk (virtraft/nodes/disk.py) buffers writes until the server syncs; a
process crash keeps them, a power cut (`Crash(node, keep)`) keeps only a
prefix. raftcore syncs before it replies (Raft Figure 2: "updated on stable
storage before responding to RPCs"), so it stays safe; the zoo's
`reply_before_sync` does not, and only lossy crashes show it.
"""

from __future__ import annotations

import random

import pytest

from raftcore import Entry, EntryType, RequestVote, RequestVoteResponse
from virtraft.adapter import NodeOptions
from virtraft.cli import commands as cli
from virtraft.nodes.disk import Disk
from virtraft.nodes.raftcore import factory
from virtraft.run.seed import run_seed
from virtraft.sim.events import Crash, EventError, event_from_json, event_to_json
from virtraft.sim.options import OptionsError, SimOptions
from virtraft.zoo import mutants

MEMBERS = ((1, True), (2, True), (3, True))


def _entry(term: int, command: int) -> Entry:
    return Entry(term, command, EntryType.NORMAL, ("k", command))


def test_a_power_cut_loses_the_writes_after_the_last_sync() -> None:
    disk = Disk()
    disk.store_term(1, 2)
    disk.append(_entry(1, 1), 1)
    disk.sync()
    disk.store_term(2, None)
    disk.append(_entry(2, 2), 2)
    assert disk.lose_unsynced(0.0) == 2
    assert (disk.term, disk.voted_for, disk.last_index) == (1, 2, 1)
    assert [e.id for e in disk.log()] == [1]


def test_a_power_cut_keeps_a_prefix_of_the_unsynced_writes_in_order() -> None:
    disk = Disk()
    disk.store_term(3, 1)
    disk.append(_entry(3, 7), 1)
    disk.append(_entry(3, 8), 2)
    disk.pop(2)
    assert disk.lose_unsynced(0.5) == 2  # the term and the first entry reach the disk
    assert (disk.term, disk.voted_for) == (3, 1)
    assert [e.id for e in disk.log()] == [7]
    assert disk.unsynced == []


def test_a_process_crash_loses_nothing_written() -> None:
    node = factory()(1, MEMBERS, lambda dst, msg: None, random.Random(1), NodeOptions())
    node.disk.store_term(4, None)  # a write the server has not synced
    node.crash()
    assert node.disk.term == 4
    assert node.term == 4


def _vote_then_power_cut(server_class: type) -> tuple[list[object], tuple[int, int | None]]:
    sent: list[object] = []
    node = factory(server_class)(
        1, MEMBERS, lambda dst, msg: sent.append(msg), random.Random(1), NodeOptions()
    )
    node.deliver(2, RequestVote(5, 2, 0, 0, False))
    node.lose_unsynced(0.0)
    node.crash()
    return sent, (node.disk.term, node.disk.voted_for)


def test_raftcore_syncs_its_vote_before_granting_it() -> None:
    sent, durable = _vote_then_power_cut(mutants.RaftServer)
    assert sent == [RequestVoteResponse(5, True)]
    assert durable == (5, 2)


def test_a_server_that_replies_before_syncing_forgets_the_vote_it_granted() -> None:
    sent, durable = _vote_then_power_cut(mutants.ReplyBeforeSync)
    assert sent == [RequestVoteResponse(5, True)]
    assert durable == (0, None)  # the term and the vote it answered with are gone


LOSSY = SimOptions(
    servers=3,
    steps=3000,
    crash_rate=0.01,
    lossy_crash_probability=1.0,
    client_rate=0.2,
    drop_probability=0.05,
    liveness=False,
    node=NodeOptions(election_timeout_ms=100, request_timeout_ms=20, prevote=False),
)


@pytest.mark.parametrize("seed", range(20))
def test_raftcore_stays_safe_when_every_crash_is_a_power_cut(seed: int) -> None:
    result = run_seed(seed, LOSSY)
    assert result.sim.stats.lossy_crashes > 0
    assert result.violation is None, result.violation


def test_replying_before_syncing_is_caught_only_with_lossy_crashes() -> None:
    spec = mutants.factory_spec("reply_before_sync")
    expected = mutants.ReplyBeforeSync.expected_invariant
    caught = [run_seed(seed, LOSSY, factory=spec).violation for seed in range(20)]
    assert any(v is not None and v.invariant in expected for v in caught), caught
    clean = LOSSY.replace(lossy_crash_probability=0.0)
    assert all(run_seed(seed, clean, factory=spec).violation is None for seed in range(20))


def test_a_power_cut_is_recorded_in_the_trace_and_a_process_crash_as_before() -> None:
    assert event_to_json(Crash(2)) == {"e": "crash", "node": 2}
    assert event_to_json(Crash(2, 0.25)) == {"e": "crash", "node": 2, "keep": 0.25}
    assert event_from_json({"e": "crash", "node": 2, "keep": 0.25}) == Crash(2, 0.25)
    assert event_from_json({"e": "crash", "node": 2}) == Crash(2)
    with pytest.raises(EventError, match="keep"):
        event_from_json({"e": "crash", "node": 2, "keep": 1.5})


def test_the_lossy_option_is_a_probability() -> None:
    with pytest.raises(OptionsError, match="lossy_crash_probability"):
        SimOptions(lossy_crash_probability=1.5)


@pytest.mark.parametrize("flags", [["--lossy-crash", "2"], ["--min-voters", "0"]])
def test_bad_new_flags_end_in_one_line_and_exit_2(flags, capsys) -> None:
    assert cli.main(["run", *flags, "--quiet"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
