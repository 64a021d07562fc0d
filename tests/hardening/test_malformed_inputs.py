"""Every malformed input ends with one line on stderr and exit 2 (hardening
issue, item 2): each input found to end in a traceback, a hang or a wrong
verdict, one test each. The broad sweep is test_malformed_traces.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.hardening.util import cli, small_trace_lines


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return small_trace_lines()


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def replace_line(lines: list[str], index: int, text: str) -> list[str]:
    out = list(lines)
    out[index] = text
    return out


def with_header(lines: list[str], **changes) -> list[str]:
    header = json.loads(lines[0])
    header.update(changes)
    return replace_line(lines, 0, json.dumps(header))


def replay_and_report(trace: Path, *needles: str) -> None:
    """Both commands refuse the trace with one line naming every needle."""
    cli("replay", str(trace)).one_line_error(*needles)
    cli("report", str(trace), "-o", str(trace.with_suffix(".html"))).one_line_error(*needles)


# ------------------------------------------------------------ JSON values


def test_json_nested_1000_deep(lines, tmp_path):
    deep = "[" * 1000 + "]" * 1000
    replay_and_report(write(tmp_path / "t.jsonl", replace_line(lines, 3, deep)), ":4:", "nested")


def test_json_nested_deep_enough_to_parse_but_not_to_walk(lines, tmp_path):
    verdict = json.loads(lines[-1])
    verdict["stats"]["deep"] = "@"
    text = json.dumps(verdict).replace('"@"', "[" * 500 + "]" * 500)
    trace = write(tmp_path / "t.jsonl", replace_line(lines, len(lines) - 1, text))
    replay_and_report(trace, f":{len(lines)}:", "nested")


def test_an_integer_longer_than_4300_digits(lines, tmp_path):
    tick = next(i for i, line in enumerate(lines) if '"e":"tick"' in line)
    event = json.loads(lines[tick])
    text = json.dumps(event).replace(f'"ms": {event["ms"]}', '"ms": ' + "9" * 5000)
    assert text != json.dumps(event)
    replay_and_report(
        write(tmp_path / "t.jsonl", replace_line(lines, tick, text)), f":{tick + 1}:", "digits"
    )


@pytest.mark.parametrize("where", ["factory", "versions", "note"])
def test_a_lone_surrogate_in_the_header(lines, tmp_path, where):
    value = {"virtraft": "\ud800"} if where == "versions" else "a\ud800b"
    trace = write(tmp_path / "t.jsonl", with_header(lines, **{where: value}))
    assert "\\ud800" in trace.read_text()
    replay_and_report(trace, ":1:", "surrogate")


def test_a_lone_surrogate_in_an_event_and_in_the_verdict(lines, tmp_path):
    client = next(i for i, line in enumerate(lines) if '"e":"client"' in line)
    event = json.loads(lines[client])
    event["key"] = "\udc80"
    trace = write(tmp_path / "e.jsonl", replace_line(lines, client, json.dumps(event)))
    replay_and_report(trace, f":{client + 1}:", "surrogate")
    verdict = json.loads(lines[-1])
    verdict["liveness"]["reason"] = "\ud800"
    trace = write(tmp_path / "v.jsonl", replace_line(lines, len(lines) - 1, json.dumps(verdict)))
    replay_and_report(trace, f":{len(lines)}:", "surrogate")


def test_a_surrogate_pair_is_text(lines, tmp_path):
    trace = write(tmp_path / "t.jsonl", with_header(lines, note="\U0001f600"))
    assert "\\ud83d\\ude00" in trace.read_text()
    ran = cli("replay", str(trace))
    assert ran.code == 0, ran.err


# ------------------------------------------------------------------ events


@pytest.mark.parametrize("kind", [["tick"], {"tick": 1}, 3, None, True])
def test_an_event_whose_kind_is_not_a_string(lines, tmp_path, kind):
    event = json.loads(lines[1])
    event["e"] = kind
    trace = write(tmp_path / "t.jsonl", replace_line(lines, 1, json.dumps(event)))
    replay_and_report(trace, ":2:", '"e"', "string")


# ------------------------------------------------------------------ header


@pytest.mark.parametrize("value", [True, 1.0, "1", [1], None])
def test_a_format_that_is_not_the_integer_1(lines, tmp_path, value):
    trace = write(tmp_path / "t.jsonl", with_header(lines, format=value))
    replay_and_report(trace, ":1:", "trace format")


# ------------------------------------------------------------------- files


def run_with_timeout(seconds: float, *argv: str):
    """cli(*argv), or None when it has not returned after `seconds`."""
    import threading

    result = []
    worker = threading.Thread(target=lambda: result.append(cli(*argv)), daemon=True)
    worker.start()
    worker.join(seconds)
    return result[0] if result else None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("command", ["replay", "report", "shrink"])
def test_a_fifo_is_refused_not_waited_on(tmp_path, command):
    fifo = tmp_path / "trace.jsonl"
    os.mkfifo(fifo)
    extra = [] if command == "replay" else ["-o", str(tmp_path / "out")]
    ran = run_with_timeout(10, command, str(fifo), *extra)
    if ran is None:  # set the blocked reader free before failing
        with open(fifo, "w"):
            pass
        pytest.fail(f"{command} waits on a FIFO")
    ran.one_line_error("not a regular file")


def test_a_directory_is_refused(tmp_path):
    cli("replay", str(tmp_path)).one_line_error(str(tmp_path))


# ----------------------------------------------------------------- verdict

VIOLATION = {
    "invariant": "VoteOnce",
    "step": 3,
    "nodes": [1, 2],
    "message": "two votes",
    "witness": {"term": 1},
}


def with_verdict(lines: list[str], **changes) -> list[str]:
    verdict = json.loads(lines[-1])
    verdict.update(changes)
    return replace_line(lines, len(lines) - 1, json.dumps(verdict))


@pytest.mark.parametrize(
    "field, value",
    [
        ("nodes", True),
        ("nodes", 7),
        ("nodes", 2.5),
        ("nodes", [[1]]),
        ("nodes", {"a": 1}),
        ("step", "3"),
        ("step", None),
        ("invariant", ["VoteOnce"]),
        ("message", {}),
        ("witness", [1]),
    ],
)
def test_a_recorded_violation_with_a_field_of_the_wrong_type(lines, tmp_path, field, value):
    trace = write(
        tmp_path / "t.jsonl",
        with_verdict(lines, safety="violation", violation={**VIOLATION, field: value}),
    )
    replay_and_report(trace, f":{len(lines)}:", f"verdict.violation.{field}")


@pytest.mark.parametrize(
    "field, value",
    [
        ("verdict", ["failed"]),
        ("reason", 3),
        ("leader_at_ms", "soon"),
        ("committed_at_ms", {}),
    ],
)
def test_a_recorded_liveness_verdict_with_a_field_of_the_wrong_type(lines, tmp_path, field, value):
    liveness = {**json.loads(lines[-1])["liveness"], field: value}
    trace = write(tmp_path / "t.jsonl", with_verdict(lines, liveness=liveness))
    replay_and_report(trace, f":{len(lines)}:", f"verdict.liveness.{field}")


@pytest.mark.parametrize(
    "field, value",
    [
        ("steps", "150"),
        ("clock_ms", -1),
        ("stats", [1]),
        ("safety", False),
    ],
)
def test_a_verdict_field_of_the_wrong_type(lines, tmp_path, field, value):
    trace = write(tmp_path / "t.jsonl", with_verdict(lines, **{field: value}))
    replay_and_report(trace, f":{len(lines)}:", f"verdict.{field}")


def test_header_versions_must_be_an_object_of_strings(lines, tmp_path):
    trace = write(tmp_path / "t.jsonl", with_header(lines, versions={"python": [3, 11]}))
    replay_and_report(trace, ":1:", "header.versions")


# ----------------------------------------------------------------- options


@pytest.mark.parametrize("name", ["reorder", "liveness"])
@pytest.mark.parametrize("value", [None, 1, 0.0, "yes", [], {}])
def test_a_switch_in_the_options_must_be_true_or_false(lines, tmp_path, name, value):
    header = json.loads(lines[0])
    header["options"][name] = value
    trace = write(tmp_path / "t.jsonl", replace_line(lines, 0, json.dumps(header)))
    replay_and_report(trace, ":1:", name, "true or false")


# ----------------------------------------------------- one line, printable


@pytest.mark.parametrize(
    "text",
    [
        "two\nlines",
        "carriage\rreturn",
        "\x1b[2Jclear",
        "\x1b]8;;http://example.com\x1b\\link\x1b]8;;\x1b\\",
    ],
)
def test_text_from_a_trace_reaches_stderr_as_one_printable_line(lines, tmp_path, text):
    trace = write(
        tmp_path / "t.jsonl",
        with_verdict(lines, safety="violation", violation={**VIOLATION, "invariant": text}),
    )
    line = cli("replay", str(trace)).one_line_error("replay ended without the recorded")
    assert line.isprintable()
    assert text.split("\x1b")[-1].split("\n")[-1].split("\r")[-1] in line


def test_a_path_with_a_newline_is_one_line(tmp_path):
    missing = tmp_path / "no\nsuch\x1b[1m.jsonl"
    line = cli("replay", str(missing)).one_line_error("cannot read")
    assert line.isprintable()


# ----------------------------------------------------- the console, stdout

MARKUP = "[/x] [node 3] [bold]"
LINK = "\x1b]8;;http://example.com\x1b\\here\x1b]8;;\x1b\\"


@pytest.fixture
def wide(monkeypatch):
    """A console wide enough that rich wraps none of these lines."""
    monkeypatch.setenv("COLUMNS", "500")


def test_markup_and_escapes_in_a_recorded_reason_print_as_text(lines, tmp_path, wide):
    liveness = {**json.loads(lines[-1])["liveness"], "verdict": "failed", "reason": MARKUP + LINK}
    trace = write(tmp_path / "t.jsonl", with_verdict(lines, liveness=liveness))
    ran = cli("replay", str(trace))
    assert ran.code == 1, ran.err
    assert MARKUP in ran.out
    assert LINK not in ran.out and "\\x1b]8;;" in ran.out


def test_a_trace_path_that_looks_like_markup(lines, tmp_path, wide):
    (tmp_path / "[").mkdir()
    trace = write(tmp_path / "[" / "x] [node 3].jsonl", lines)
    ran = cli("replay", str(trace))
    assert ran.code == 0, ran.err
    assert "[/x] [node 3].jsonl" in ran.out
    report = tmp_path / "[/y].html"
    ran = cli("report", str(trace), "-o", str(report))
    assert ran.code == 0, ran.err
    assert f"wrote {report}" in ran.out


def test_the_story_prints_text_of_the_trace_as_text(lines, tmp_path, wide):
    client = next(i for i, line in enumerate(lines) if '"e":"client"' in line)
    event = json.loads(lines[client])
    event["key"] = MARKUP + LINK
    trace = write(tmp_path / "t.jsonl", replace_line(lines, client, json.dumps(event)))
    ran = cli("replay", str(trace), "--story")
    assert ran.code in (0, 2), ran.err
    assert "Traceback" not in ran.err
    assert MARKUP in ran.out
    assert LINK not in ran.out


# --------------------------------------------------------- node factories

BROKEN_FACTORIES = {
    "syntax": ("def make(:\n", "invalid syntax"),
    "raises": ("raise RuntimeError('no config file')\n", "RuntimeError: no config file"),
    "none": ("def make(*args):\n    return None\n", "returned None for node 1"),
    "number": ("def make(*args):\n    return 42\n", "returned an object of type int for node 1"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_FACTORIES))
def test_a_broken_node_factory(tmp_path, monkeypatch, lines, kind):
    source, needle = BROKEN_FACTORIES[kind]
    name = f"hardening_broken_{kind}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    spec = f"{name}:make"
    cli("run", "--steps", "10", "--node-factory", spec).one_line_error(needle)
    trace = write(tmp_path / "t.jsonl", lines)
    monkeypatch.delitem(sys.modules, name, raising=False)
    cli("replay", str(trace), "--node-factory", spec).one_line_error(needle)


# ------------------------------------------------------- numbers too large

HUGE = "100000000000000000000"  # 1e20


@pytest.mark.parametrize(
    "argv, option",
    [
        (["run", "--steps", "300", "--tick-ms-max", HUGE], "--tick-ms-max"),
        (["run", "--steps", "300", "--delay-max-ms", HUGE], "--delay-max-ms"),
        (["run", "--steps", "300", "--election-timeout-ms", HUGE], "--election-timeout-ms"),
        (["fuzz", "--seeds", f"0:{HUGE}", "--steps", "10", "--workers", "1"], "--seeds"),
        (["zoo", "--seeds", f"5:{HUGE}"], "--seeds"),
    ],
)
def test_a_huge_number_on_the_command_line(argv, option):
    ran = cli(*argv)
    assert "NodeException" not in ran.out
    ran.one_line_error(option)


@pytest.mark.parametrize("name", ["tick_ms_max", "delay_ms_max", "liveness_bound_ms"])
def test_a_huge_time_in_a_trace(lines, tmp_path, name):
    header = json.loads(lines[0])
    header["options"][name] = int(HUGE)
    trace = write(tmp_path / "t.jsonl", replace_line(lines, 0, json.dumps(header)))
    replay_and_report(trace, ":1:", name, "at most")


# -------------------------------------------------------- Dask scheduler


@pytest.mark.parametrize(
    "address, needle",
    [
        ("not a url", "missing port"),
        ("foo://bar:1", "unknown address scheme"),
        ("tcp://127.0.0.1:1", "Timed out"),
    ],
)
def test_a_scheduler_that_cannot_be_reached(monkeypatch, address, needle):
    pytest.importorskip("distributed")
    import time

    from virtraft.run import campaign as fuzz

    monkeypatch.setattr(fuzz, "CONNECT_SECONDS", 1, raising=False)
    started = time.monotonic()
    ran = cli(
        "fuzz",
        "--seeds",
        "0:2",
        "--steps",
        "10",
        "--executor",
        "dask",
        "--scheduler",
        address,
        "--quiet",
    )
    assert time.monotonic() - started < 15
    ran.one_line_error("Dask scheduler", repr(address), needle)


# --------------------------------------------------------------- scenarios

SCENARIO = """\
name = "huge"
summary = "asks for too much"

[run]
duration_ms = {duration_ms}
max_steps = {max_steps}

[[phases]]
at_ms = {at_ms}
action = "client"
count = {count}
"""
FITS = {"duration_ms": 2000, "max_steps": 100000, "at_ms": 100, "count": 2}


@pytest.mark.parametrize(
    "field, value",
    [
        ("count", 10_000_000),
        ("duration_ms", 10**15),
        ("max_steps", 10**12),
        ("at_ms", 10**15),
    ],
)
def test_a_scenario_asking_for_too_much_is_refused(tmp_path, field, value):
    import threading

    path = tmp_path / "huge.toml"
    path.write_text(SCENARIO.format(**{**FITS, field: value}))
    result = []
    worker = threading.Thread(
        target=lambda: result.append(cli("run", "--scenario", str(path))), daemon=True
    )
    worker.start()
    worker.join(20)
    assert result, "the scenario ran instead of being refused"
    result[0].one_line_error(field, "at most")


def test_a_scenario_within_the_bounds_runs(tmp_path):
    path = tmp_path / "fits.toml"
    path.write_text(SCENARIO.format(**FITS))
    ran = cli("run", "--scenario", str(path))
    assert ran.code == 0, ran.err
