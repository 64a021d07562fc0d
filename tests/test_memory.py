"""What keeps a long run's memory small gives back exactly what it was given:
the checker's per-index records (`IndexRecords`) and a server's durable log
(`EntryRun`) against a plain dict, and the run's event log (`EventLog`)
against a plain list, across chunk seams."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from virtraft.adapter import MembershipChange
from virtraft.check.model import FAR, IndexRecords
from virtraft.nodes.disk import EntryRun
from virtraft.run.seed import run_seed
from virtraft.sim.eventlog import CHUNK, EventLog
from virtraft.sim.events import (
    ChangeMembership,
    ClientInvoke,
    Crash,
    Deliver,
    Heal,
    Partition,
    Restart,
    TakeSnapshot,
    Tick,
)
from virtraft.sim.options import SimOptions
from virtraft.trace.format import trace_lines

_INDEX = st.one_of(st.integers(0, 40), st.integers(FAR - 3, FAR + 80), st.just(4 * FAR))
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _INDEX, st.integers(0, 5)),
        st.tuples(st.just("above"), _INDEX, st.just(0)),
        st.tuples(st.just("through"), _INDEX, st.just(0)),
    ),
    max_size=60,
)


_RUN_INDEX = st.one_of(st.integers(0, 12), st.integers(60, 200))


@given(
    st.lists(
        st.tuples(st.sampled_from(["set", "del", "del_front", "del_back"]), _RUN_INDEX),
        max_size=300,
    )
)
def test_an_entry_run_holds_what_a_dict_holds(ops: list[tuple[str, int]]) -> None:
    run = EntryRun()
    model: dict[int, object] = {}
    for step, (op, index) in enumerate(ops):
        if op == "del_front" and model:
            index = min(model)
        elif op == "del_back" and model:
            index = max(model)
        if op == "set":
            run[index] = model[index] = ("entry", step)  # type: ignore[assignment]
        elif index in model:
            del run[index], model[index]
        else:
            try:
                del run[index]
            except KeyError:
                pass
            else:
                raise AssertionError(f"deleted {index}, which it did not hold")
        assert len(run) == len(model)
    for index in range(-2, 205):
        assert run.get(index) == model.get(index), index


@given(_OPS)
def test_index_records_hold_what_a_dict_holds(ops: list[tuple[str, int, int]]) -> None:
    records = IndexRecords(2)
    model: dict[int, tuple[int, int]] = {}
    for op, index, value in ops:
        if op == "put":
            records.put(index, (value, index))
            model[index] = (value, index)
        elif op == "above":
            records.keep_above(index)
            model = {i: r for i, r in model.items() if i > index}
        else:
            records.keep_through(index)
            model = {i: r for i, r in model.items() if i <= index}
        assert len(records) == len(model)
    for index in [*range(-2, 45), *range(FAR - 5, FAR + 85), 4 * FAR]:
        assert records.get(index) == model.get(index)
        assert records.first_value(index) == (model[index][0] if index in model else None)
    held = sorted(model)
    for low, high in ((0, 4 * FAR), (10, 20), (FAR, FAR + 40)):
        inside = [i for i in held if low <= i <= high]
        want = (inside[0], model[inside[0]]) if inside else None
        assert records.lowest_in(low, high) == want


def test_the_event_log_gives_back_the_events_and_the_trace_bytes() -> None:
    """A swarm run long enough to seal a few chunks: its events read back
    equal (envelope ids included) one by one, sliced across a seam and
    whole, and the trace written from the log is the one written from the
    objects; a log is not a list of the same events by accident only."""
    result = run_seed(3, SimOptions(steps=3 * CHUNK + 100, liveness=False), swarm=True)
    log = result.sim.events
    assert isinstance(log, EventLog) and log.sealed_bytes() > 0
    objects = list(log)
    assert len(objects) == len(log) > 3 * CHUNK
    refs = [getattr(e, "ref", None) for e in objects]
    assert refs == [getattr(log[i], "ref", None) for i in range(len(log))]
    assert any(type(r) is int for r in refs)
    assert log[CHUNK - 2 : 2 * CHUNK + 3] == objects[CHUNK - 2 : 2 * CHUNK + 3]
    assert log[-1] == objects[-1] and log == objects and log != objects[:-1]
    copy = EventLog(objects)
    assert copy == log
    args = (result.seed, result.options, result.factory)
    assert trace_lines(*args, log, result.verdict()) == trace_lines(
        *args, objects, result.verdict()
    )
    # Sealed, an event costs a small share of what it costs as an object.
    assert log.sealed_bytes() < 20 * (len(log) - len(log._tail))


def test_every_kind_of_event_survives_sealing() -> None:
    """Membership changes (an enum marshal cannot store), power cuts (a
    float), partitions (nested links), client operations (None fields) and a
    message event whose ref is not an envelope id come back equal; the ref
    that is not an id comes back as a trace has it (none)."""
    odd = Deliver(1, 2, "AppendEntries", 99, ref="not an id")
    kinds = [
        ChangeMembership(1, MembershipChange.REMOVE, 4),
        Crash(2, keep=0.25),
        Crash(3),
        Partition("split", ((1, 2), (2, 1)), ((3, 4),)),
        Heal(flush=True),
        ClientInvoke(1, "cas", "k", 5, 4),
        ClientInvoke(2, "read", "k"),
        TakeSnapshot(3),
        Restart(2),
        Tick(1, 7),
        odd,
    ]
    events = [kinds[i % len(kinds)] for i in range(CHUNK + 5)]
    log = EventLog(events)
    assert log.sealed_bytes() > 0
    assert list(log) == events
    assert log[events.index(odd)].ref is None
    assert [getattr(e, "ref", None) for e in log[: len(kinds)]] == [None] * len(kinds)


def test_an_entry_run_compacted_from_the_front_keeps_the_rest() -> None:
    """Compaction polls from the front, one entry at a time, past the bulk cut."""
    run = EntryRun()
    for index in range(1, 1001):
        run[index] = ("entry", index)  # type: ignore[assignment]
    for index in range(1, 901):
        del run[index]
        assert run.get(index) is None and run.get(index + 1) == ("entry", index + 1)
    assert len(run) == 100
    run[1001] = ("entry", 1001)  # type: ignore[assignment]
    assert [run.get(i) for i in (900, 901, 1000, 1001, 1002)] == [
        None,
        ("entry", 901),
        ("entry", 1000),
        ("entry", 1001),
        None,
    ]
