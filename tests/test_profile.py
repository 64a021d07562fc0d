"""`virtraft run --profile` and the bench's peer workloads (issue: speed)."""

from __future__ import annotations

import json

import pytest

from virtraft.cli.commands import main
from virtraft.run import bench
from virtraft.run.profile import OTHER, component_of, profiled
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions


@pytest.mark.parametrize(
    ("filename", "component"),
    [
        ("/x/raftcore/server.py", "raftcore (the server)"),
        ("/x/virtraft/nodes/raftcore.py", "node adapters"),
        ("/x/virtraft/check/invariants.py", "checker"),
        ("/x/virtraft/sim/network.py", "simulator: network"),
        ("/x/virtraft/sim/simulation.py", "simulator: apply and events"),
        ("/x/virtraft/trace/format.py", "trace"),
        ("/usr/lib/python3.11/random.py", None),
        ("~", None),
    ],
)
def test_each_file_belongs_to_its_component(filename, component):
    assert component_of(filename) == component


def test_the_shares_add_up_and_follow_what_ran():
    options = SimOptions(servers=3, steps=3000, liveness=False)
    _, checked = profiled(lambda: run_seed(1, options))
    _, unchecked = profiled(lambda: run_seed(1, options, check=False))
    assert sum(s.fraction for s in checked.shares) == pytest.approx(1.0)
    checked_names = {s.component: s.fraction for s in checked.shares}
    assert checked_names["raftcore (the server)"] > 0.1
    assert checked_names["checker"] > 0.02
    # Library time (random.choice, dict.get) is charged to whoever called it.
    assert checked_names.get(OTHER, 0.0) < 0.1
    assert "checker" not in {s.component for s in unchecked.shares if s.seconds > 0}


def test_run_profile_prints_the_components(capsys):
    main(["run", "--seed", "1", "--steps", "2000", "--no-liveness", "--profile"])
    out = capsys.readouterr().out
    assert "raftcore (the server)" in out and "checker" in out and "hottest" in out


def test_bench_runs_a_peer_workload_by_name(capsys):
    assert main(["bench", "--json", "--events", "1000", "--workload", "peer-w2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [w["name"] for w in report["workloads"]] == ["peer-w2"]
    peer = next(w for w in bench.PEER_WORKLOADS if w.name == "peer-w2")
    assert report["workloads"][0]["options"]["snapshot_rate"] == peer.options.snapshot_rate


def test_bench_refuses_an_unknown_workload(capsys):
    assert main(["bench", "--workload", "nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and len(err.strip().splitlines()) == 1
