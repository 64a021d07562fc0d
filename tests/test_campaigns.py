"""Campaigns and the bench (issue: speed with every invariant on).

A campaign's per-seed results must not depend on how it ran: one process,
two, or a Dask cluster. The speed-ups behind the bench must not change a
single byte of any trace. No test here asserts on wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from raftcore import (
    AppendEntries,
    AppendEntriesResponse,
    Entry,
    InstallSnapshot,
    InstallSnapshotResponse,
    RequestVote,
    RequestVoteResponse,
)
from virtraft.check.checker import read_scalars
from virtraft.cli.commands import main
from virtraft.nodes.raftcore import message_key
from virtraft.run import bench
from virtraft.run.campaign import FULL_COLLECTION_EVERY, CampaignSpec, run_campaign
from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.run.seed import run_seed
from virtraft.sim.events import MESSAGE_EVENTS
from virtraft.sim.options import SimOptions

REPO = Path(__file__).resolve().parents[1]
MUTANT = "virtraft.zoo.mutants:commit_index_goes_back"  # fails on most seeds

SMALL = SimOptions(steps=1000, drop_probability=0.05, duplicate_probability=0.05)


def outcomes(results):
    return [r.outcome() for r in results]


@pytest.mark.parametrize("factory", [DEFAULT_FACTORY, MUTANT])
def test_two_workers_give_the_same_per_seed_results_as_one(factory, tmp_path):
    spec = CampaignSpec(SMALL, factory, True, str(tmp_path / "out"))
    seeds = range(20)
    serial = run_campaign(seeds, spec, workers=1)
    parallel = run_campaign(seeds, spec, workers=2)
    assert [r.seed for r in serial] == list(seeds)
    assert outcomes(parallel) == outcomes(serial)
    if factory == MUTANT:  # the comparison covered violations, not only clean runs
        assert sum(r.safety == "violation" for r in serial) >= 5


def test_a_dask_campaign_gives_the_same_per_seed_results_as_local(tmp_path):
    pytest.importorskip("distributed")
    options = SimOptions(steps=800)
    local = run_campaign(range(6), CampaignSpec(options, MUTANT, True, str(tmp_path / "local")))
    spec = CampaignSpec(options, MUTANT, True, str(tmp_path / "dask"))
    remote = run_campaign(range(6), spec, workers=2, executor="dask")
    assert outcomes(remote) == outcomes(local)
    # A Dask worker may be on another machine: the client writes the traces.
    assert sum(r.trace is not None for r in remote) >= 2
    for r_local, r_remote in zip(local, remote, strict=True):
        assert (r_local.trace is None) == (r_remote.trace is None)
        if r_remote.trace is not None:
            assert Path(r_remote.trace).read_bytes() == Path(r_local.trace).read_bytes()


def test_a_dask_campaign_submits_in_batches_and_keeps_its_time_budget(tmp_path):
    """A huge range is not submitted at once, and the budget stops it."""
    pytest.importorskip("distributed")
    spec = CampaignSpec(SimOptions(steps=200, liveness=False), DEFAULT_FACTORY, False, None)
    results = run_campaign(range(200_000), spec, workers=1, executor="dask", time_budget_s=10.0)
    assert 0 < len(results) < 200_000
    # Seeds go out in order, a batch at a time: what ran is a prefix of the range.
    assert [r.seed for r in results] == list(range(len(results)))


def test_same_seed_same_trace_bytes_under_any_hash_seed(tmp_path):
    args = [
        "--seed",
        "3",
        "--steps",
        "3000",
        "--drop",
        "0.05",
        "--dup",
        "0.05",
        "--partition-rate",
        "0.005",
        "--crash-rate",
        "0.002",
        "--member-rate",
        "0.003",
        "--snapshot-rate",
        "0.005",
        "--delay-max-ms",
        "20",
    ]
    traces = []
    for hash_seed in ("0", "1"):
        trace = tmp_path / f"hash-{hash_seed}.jsonl"
        done = subprocess.run(
            [sys.executable, "-m", "virtraft", "run", *args, "--trace", str(trace)],
            cwd=REPO,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in (0, 1), done.stderr
        traces.append(trace.read_bytes())
    assert traces[0] == traces[1]
    assert traces[0].count(b'"e":"member"') > 0  # the run did change the membership


MESSAGES = [
    RequestVote(7, 2, 41, 6, True),
    RequestVoteResponse(7, False, True),
    AppendEntries(3, 1, 16, 3, (), 15),
    AppendEntries(3, 1, 16, 3, (Entry(3, 5), Entry(3, 0)), 15),
    AppendEntriesResponse(3, True, 17, 0, 12345678901234567890),
    InstallSnapshot(4, 1, 90, 3, ((1, True), (2, False)), 0, b"abc", False),
    InstallSnapshotResponse(4, 90, 3, True),
]


def _fields(m):
    """What a message key digests: the tuple of its identifying fields (the
    definition traces have used from the start; keys are stored in traces)."""
    if isinstance(m, RequestVote):
        return (1, m.term, m.candidate_id, m.last_log_index, m.last_log_term, m.prevote)
    if isinstance(m, RequestVoteResponse):
        return (2, m.term, m.vote_granted, m.prevote)
    if isinstance(m, AppendEntries):
        last = m.entries[-1] if m.entries else None
        return (
            3,
            m.term,
            m.leader_id,
            m.prev_log_index,
            m.prev_log_term,
            len(m.entries),
            m.leader_commit,
            last.term if last else -1,
            last.id if last else -1,
        )
    if isinstance(m, AppendEntriesResponse):
        return (4, m.term, m.success, m.match_index, m.rejected_index, m.hint_index)
    if isinstance(m, InstallSnapshot):
        return (5, m.term, m.leader_id, m.last_index, m.last_term, m.offset, len(m.data), m.done)
    return (6, m.term, m.last_index, m.next_offset, m.done)


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_message_keys_are_the_digest_of_the_field_tuple(message):
    import zlib

    assert message_key(message) == zlib.crc32(repr(_fields(message)).encode())


def test_the_network_forgets_every_envelope_that_left_it():
    """Memory stays flat: an event names its envelope by id, and the network
    keeps only the envelopes still in flight."""
    options = SimOptions(
        steps=3000,
        drop_probability=0.1,
        duplicate_probability=0.1,
        partition_rate=0.01,
        crash_rate=0.003,
        delay_ms_max=50,
        liveness=False,
    )
    sim = run_seed(5, options).sim
    network = sim.network
    refs = [e.ref for e in sim.events if isinstance(e, MESSAGE_EVENTS)]
    assert len(refs) > 1000 and all(type(ref) is int for ref in refs)
    in_flight = [
        *network.pool,
        *(item[2] for item in network._future),
        *(env for envs in network._held.values() for env in envs),
    ]
    assert all(network.envelope(env.id) is env for env in in_flight)
    assert len(network._flying) == len(in_flight) == network.in_flight
    delivered = {e.ref for e in sim.events if e.kind in ("deliver", "drop")}
    assert all(network.envelope(ref) is None for ref in delivered)


def test_the_raftcore_node_reads_in_one_call_what_its_properties_say():
    """The checker reads a view's scalars in one call when it offers them:
    they must be exactly the properties, crashed nodes and new members too."""
    options = SimOptions(
        steps=2000,
        drop_probability=0.05,
        partition_rate=0.01,
        crash_rate=0.01,
        member_rate=0.01,
        snapshot_rate=0.01,
        liveness=False,
    )
    seen = set()

    def compare(sim):
        for node in sim.views():
            assert node.scalars() == read_scalars(node)
            seen.add(node.alive)

    run_seed(2, options, on_step=compare)
    assert seen == {True, False}


def test_bench_json_has_every_number_the_issue_asks_for(capsys):
    assert main(["bench", "--json", "--events", "1000"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [w["name"] for w in report["workloads"]]
    assert names == [w.name for w in bench.WORKLOADS]
    assert "long" not in report
    for w in report["workloads"]:
        assert w["events"] == 1000
        for run in (w["checked"], w["unchecked"]):
            assert run["events"] == 1000  # exactly the events asked for: none failed
            assert run["violation"] is None
            assert run["delivered"] <= run["events"]
            for key in ("events_per_s", "delivered_per_s", "committed_per_s", "seconds"):
                assert run[key] > 0
        # Checked and unchecked runs are the same run: same seed, same events.
        assert w["checked"]["delivered"] == w["unchecked"]["delivered"]
        assert w["checked"]["checker_records"] > 0
        assert w["unchecked"]["checker_records"] is None
        assert w["checker_overhead"] > 0
        assert w["peak_memory_mb"] > 0
        assert SimOptions.from_json(w["options"]).liveness is False


def test_bench_long_compares_a_short_and_a_long_run(monkeypatch):
    monkeypatch.setattr(bench, "LONG_SHORT_EVENTS", 1000)
    monkeypatch.setattr(bench, "LONG_LONG_EVENTS", 3000)
    report = bench.run_bench(events=1000, long=True, workloads=bench.WORKLOADS[:1])
    long = report["long"]
    assert (long["short"]["events"], long["long"]["events"]) == (1000, 3000)
    ratio = long["long"]["events_per_s"] / long["short"]["events_per_s"]
    assert long["ratio"] == pytest.approx(ratio, rel=0.01)
    assert long["within_tolerance"] == (abs(1 - long["ratio"]) <= bench.LONG_TOLERANCE)


def test_same_mix_ratio_weights_each_window_by_the_early_mix():
    early = {
        "tick": {"share": 0.5, "us_per_event": 4.0},
        "deliver": {"share": 0.5, "us_per_event": 16.0},
    }
    # Late: deliveries cost 20us (ticks the same), and a kind the early window never saw.
    late = {
        "tick": {"share": 0.2, "us_per_event": 4.0},
        "deliver": {"share": 0.7, "us_per_event": 20.0},
        "snapshot": {"share": 0.1, "us_per_event": 99.0},
    }
    # Early mix: 0.5*4 + 0.5*16 = 10us early, 0.5*4 + 0.5*20 = 12us late.
    assert bench.same_mix_ratio(early, late) == pytest.approx(10 / 12)
    # The same costs under another mix: 1.0, however the shares moved.
    assert bench.same_mix_ratio(early, {**early, "tick": {"share": 0.9, "us_per_event": 4.0}}) == 1


def test_bench_by_kind_times_every_event_of_both_windows(monkeypatch):
    monkeypatch.setattr(bench, "BY_KIND_EARLY", 500)
    monkeypatch.setattr(bench, "BY_KIND_LATE", 1000)
    report = bench.bench_by_kind(bench.WORKLOADS[0], events=3000)
    early, late = report["early"], report["late"]
    assert report["events"] == 3000
    assert (early["first"], early["last"], early["events"]) == (2, 500, 499)
    assert (late["first"], late["last"], late["events"]) == (2001, 3000, 1000)
    for window in (early, late):
        assert sum(k["share"] for k in window["kinds"].values()) == pytest.approx(1, abs=1e-3)
        assert all(k["us_per_event"] > 0 for k in window["kinds"].values())
        assert "deliver" in window["kinds"] and "tick" in window["kinds"]
    assert report["same_mix_ratio"] > 0


def test_bench_by_kind_prints_both_windows(monkeypatch, capsys):
    monkeypatch.setattr(bench, "BY_KIND_EVENTS", 3000)
    monkeypatch.setattr(bench, "BY_KIND_EARLY", 500)
    monkeypatch.setattr(bench, "BY_KIND_LATE", 1000)
    assert main(["bench", "--events", "1000", "--workload", "static-5", "--by-kind"]) == 0
    out = capsys.readouterr().out
    assert "static-5, 3,000 events, each timed" in out
    assert "2-500" in out and "2,001-3,000" in out
    assert "deliver" in out and "late over early at the early mix" in out


def test_bench_memory_runs_each_length_in_a_settled_fresh_process(monkeypatch):
    # Each length runs in a spawned child, which starts with the collector's
    # defaults: unsettled, its full passes walk the growing heap, and a long
    # run's events/s is not the figure every other run of the bench gives.
    counts = (1_000, 2_000, 3_000)
    monkeypatch.setattr(bench, "MEMORY_EVENTS", counts)
    report = bench.bench_memory(bench.WORKLOADS[0], counts)
    assert [run["events"] for run in report["runs"]] == list(counts)
    for run in report["runs"]:
        assert run["full_collection_every"] == FULL_COLLECTION_EVERY
        assert run["peak_rss_mb"] >= run["rss_before_mb"] > 0
    longest, middle, short = report["runs"][2], report["runs"][1], report["runs"][0]
    assert report["peak_ratio"] == round(longest["peak_rss_mb"] / middle["peak_rss_mb"], 3)
    assert report["rate_ratio"] == round(longest["events_per_s"] / short["events_per_s"], 3)


def test_bench_prints_a_table(capsys):
    assert main(["bench", "--events", "1000"]) == 0
    out = capsys.readouterr().out
    for workload in bench.WORKLOADS:
        assert workload.name in out
    assert "overhead" in out


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_keeps_the_finished_seeds(workers):
    from virtraft.run.campaign import CampaignInterrupted

    spec = CampaignSpec(SimOptions(steps=300, liveness=False), DEFAULT_FACTORY, False, None)
    seen = []

    def on_result(result):
        seen.append(result.seed)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(CampaignInterrupted) as stopped:
        run_campaign(range(50), spec, workers=workers, on_result=on_result)
    kept = stopped.value.results
    assert len(kept) >= 3 and len(kept) < 50
    assert [r.seed for r in kept] == sorted(r.seed for r in kept)
