"""The linearizability checker (issue: linearizable reads and writes): it
agrees with a brute-force search on small random histories, rejects the
classic anomalies, keeps its budget, and reads history files strictly."""

from __future__ import annotations

import json
import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from virtraft.check.history import HistoryError, Operation, read_history, write_history
from virtraft.check.linearizability import brute_force, check_history
from virtraft.cli.commands import main


def op(client, kind, key, invoke, complete, status="ok", **fields) -> Operation:
    done = math.inf if complete is None else complete
    return Operation(client, kind, key, invoke, done, status, **fields)


VALUES = st.sampled_from([None, 1, 2])


@st.composite
def histories(draw):
    """Up to 7 operations on up to 2 keys, with random overlaps and outputs:
    some linearizable, many not."""
    count = draw(st.integers(1, 7))
    operations = []
    for client in range(count):
        kind = draw(st.sampled_from(["read", "write", "cas"]))
        key = draw(st.sampled_from(["x", "y"]))
        invoke = draw(st.integers(0, 20))
        status = draw(st.sampled_from(["ok", "ok", "ok", "fail", "unknown"]))
        complete = None if status == "unknown" else invoke + draw(st.integers(0, 10))
        fields = {}
        if kind in ("write", "cas"):
            fields["value"] = draw(st.sampled_from([1, 2]))
        if kind == "cas":
            fields["expected"] = draw(VALUES)
            fields["output"] = draw(st.booleans())
        if kind == "read":
            fields["output"] = draw(VALUES)
        operations.append(op(client, kind, key, invoke, complete, status, **fields))
    return operations


@given(histories())
def test_the_search_agrees_with_every_order(history):
    assert (check_history(history).verdict == "ok") == brute_force(history)


def test_a_sequential_history_that_follows_the_store_is_linearizable():
    history = [
        op(1, "write", "x", 0, 1, value=1),
        op(1, "read", "x", 2, 3, output=1),
        op(2, "cas", "x", 4, 5, expected=1, value=2, output=True),
        op(2, "cas", "x", 6, 7, expected=1, value=3, output=False),
        op(3, "read", "x", 8, 9, output=2),
        op(3, "read", "y", 8, 9, output=None),
    ]
    outcome = check_history(history)
    assert outcome.verdict == "ok" and outcome.operations == 6 and outcome.keys == 2


def test_a_stale_read_is_rejected_and_named():
    history = [
        op(1, "write", "x", 0, 10, value=1),
        op(1, "write", "x", 20, 30, value=2),
        op(2, "read", "x", 40, 50, output=1),  # a deposed leader's old value
    ]
    outcome = check_history(history)
    assert outcome.verdict == "violation"
    [failure] = outcome.failures
    assert failure.stuck == history[2]
    assert [o.value for o in failure.longest] == [1, 2]


def test_a_lost_write_is_rejected():
    history = [op(1, "write", "x", 0, 10, value=1), op(2, "read", "x", 20, 30, output=None)]
    assert check_history(history).verdict == "violation"


def test_a_doubled_write_is_rejected():
    """A retried write applied twice: its second application undoes a later write."""
    history = [
        op(1, "write", "x", 0, 10, value=1),
        op(2, "write", "x", 20, 30, value=2),
        op(3, "read", "x", 40, 50, output=2),
        op(3, "read", "x", 60, 70, output=1),
    ]
    assert check_history(history).verdict == "violation"


def test_an_unknown_write_may_take_effect_late_or_never():
    late = [
        op(1, "write", "x", 0, None, "unknown", value=1),
        op(2, "read", "x", 50, 60, output=None),
        op(2, "read", "x", 70, 80, output=1),
    ]
    assert check_history(late).verdict == "ok"
    never = [op(1, "write", "x", 0, None, "unknown", value=1), op(2, "read", "x", 50, 60)]
    assert check_history(never).verdict == "ok"
    failed = [op(1, "write", "x", 0, 5, "fail", value=1), op(2, "read", "x", 50, 60, output=1)]
    assert check_history(failed).verdict == "violation"


def test_operations_that_touch_in_time_are_concurrent():
    history = [op(1, "write", "x", 0, 10, value=1), op(2, "read", "x", 10, 20, output=None)]
    assert check_history(history).verdict == "ok"


def test_a_budget_gives_unknown_not_a_guess():
    rng = random.Random(3)
    history = [op(c, "write", "x", 0, 100, value=rng.randint(1, 50)) for c in range(18)] + [
        op(99, "read", "x", 200, 210, output=77)
    ]
    outcome = check_history(history, max_steps=500)
    assert outcome.verdict == "unknown" and outcome.undecided == ("x",)


def test_a_long_register_history_is_decided():
    """5,000 operations over 10 keys from a sequential store with overlapping
    clients: linearizable, and the same history with one read changed is not."""
    rng = random.Random(7)
    state: dict[str, int | None] = {}
    history = []
    for i in range(5000):
        key = f"k{rng.randrange(10)}"
        start = i * 10 - rng.randint(0, 15)
        end = i * 10 + rng.randint(1, 15)  # applied at i * 10, inside its interval
        if rng.random() < 0.5:
            state[key] = i
            history.append(op(i % 7, "write", key, start, end, value=i))
        else:
            history.append(op(i % 7, "read", key, start, end, output=state.get(key)))
    assert check_history(history).verdict == "ok"
    reads = [i for i, o in enumerate(history) if o.op == "read" and o.output is not None]
    broken = list(history)
    target = reads[len(reads) // 2]
    broken[target] = op(
        0, "read", history[target].key, history[target].invoke, history[target].complete, output=-1
    )
    assert check_history(broken).verdict == "violation"


def test_history_files_round_trip_and_bad_ones_say_why(tmp_path):
    history = [
        op(1, "cas", "x", 0, 3, expected=None, value=1, output=True),
        op(2, "write", "x", 1, None, "unknown", value=2),
    ]
    path = tmp_path / "h.json"
    write_history(str(path), history)
    assert read_history(str(path)) == history
    for bad, why in [
        ({"operations": [{"op": "read", "key": "x", "invoke": 0}]}, "status"),
        (
            {
                "operations": [
                    {"op": "read", "key": "x", "invoke": 5, "complete": 1, "status": "ok"}
                ]
            },
            "before",
        ),
        ({"format": "other"}, "not a virtraft-history"),
        (
            {
                "operations": [
                    {
                        "op": "cas",
                        "key": "x",
                        "invoke": 0,
                        "complete": 1,
                        "status": "ok",
                        "output": 1,
                    }
                ]
            },
            "boolean",
        ),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(HistoryError, match=why):
            read_history(str(path))


def test_the_command_line_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    write_history(str(good), [op(1, "write", "x", 0, 1, value=1)])
    write_history(
        str(bad), [op(1, "write", "x", 0, 1, value=1), op(2, "read", "x", 5, 6, output=2)]
    )
    assert main(["lincheck", str(good)]) == 0
    assert main(["lincheck", str(bad)]) == 1
    assert "no legal place" in capsys.readouterr().out
    assert main(["lincheck", str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["verdict"] == "violation"
    (tmp_path / "broken.json").write_text("{")
    assert main(["lincheck", str(tmp_path / "broken.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("virtraft: error:") and len(err.strip().splitlines()) == 1
