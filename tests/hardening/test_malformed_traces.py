"""Malformed traces, by the hundred, through `replay` and `report` (hardening
issue, item 2).

From one small valid trace the corpus below makes every truncation (at each
line and in the middle of each), seeded bit flips, every field of the
header, of one event of each kind and of the verdict set to each JSON type,
huge integers, deep nesting, lone surrogates, console markup and terminal
escapes. Each input must end in exit 2 with exactly one line on stderr, or
in a verdict (exit 0 or 1, nothing on stderr) when it is still a valid
trace; never a traceback, never more than 30 s. The bulk runs in this
process; a handful runs through the real command.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hardening.util import REPO, cli, small_trace_lines, subprocess_env
from virtraft.trace.format import TraceError, read_trace

SECONDS_EACH = 30.0
WRONG_TYPES: tuple[Any, ...] = (None, True, 7, 2.5, "text", [1, 2], {"a": 1})
# Spliced into the JSON text as they are (json.dumps cannot write them).
RAW = "\0raw:"
HUGE = (10**30, -(2**64), RAW + "9" * 4299, RAW + "9" * 5000, RAW + "1e400", RAW + "NaN")
STRINGS = (
    RAW + '"\\ud800"',
    RAW + '"a\\udc80b"',
    "[/x]",
    "[node 3]",
    "[bold]oops",
    "\x1b[2J\x1b[31mred",
    "\x1b]8;;http://example.com\x1b\\link\x1b]8;;\x1b\\",
    "two\nlines",
    "\r",
    "\x00",
    "\u2028",
    "",
)
DEPTHS = (40, 500, 1000, 100_000)
FLIPS = 120
# What no input may make a command write to the terminal.
INJECTED = ("\x1b]8;;http://example.com", "\x1b[2J")


def _put(record: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    """The JSON text of `record` with the field at `path` set to `value`."""
    record = json.loads(json.dumps(record))
    target = record
    for key in path[:-1]:
        target = target[key]
    if isinstance(value, str) and value.startswith(RAW):
        target[path[-1]] = "\0slot"
        return json.dumps(record).replace('"\\u0000slot"', value[len(RAW) :])
    target[path[-1]] = value
    return json.dumps(record)


def _label(value: Any) -> str:
    """How an input's name shows a value: short, and without the RAW mark."""
    raw = isinstance(value, str) and value.startswith(RAW)
    text = value[len(RAW) :] if raw else repr(value)
    return text if len(text) <= 24 else f"{text[:21]}... ({len(text)} characters)"


def _without(record: dict[str, Any], path: tuple[str, ...]) -> str:
    record = json.loads(json.dumps(record))
    target = record
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return json.dumps(record)


def _fields(
    record: dict[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every field, and the fields of nested objects (not of the run's
    statistics, which are counts like any other)."""
    for key, value in record.items():
        yield (*prefix, key), value
        if isinstance(value, dict) and key != "stats":
            yield from _fields(value, (*prefix, key))


def corpus(lines: list[str]) -> list[tuple[str, bytes]]:
    """The malformed inputs, in a fixed order; each is (name, file content)."""
    out: list[tuple[str, bytes]] = []

    def add(name: str, content: list[str] | bytes) -> None:
        if isinstance(content, list):
            content = "".join(line + "\n" for line in content).encode()
        out.append((name, content))

    def with_line(index: int, text: str) -> list[str]:
        changed = list(lines)
        changed[index] = text
        return changed

    for k in range(len(lines)):
        add(f"truncated after line {k}", lines[:k])
        add(f"truncated inside line {k + 1}", [*lines[:k], lines[k][: len(lines[k]) // 2]])
    text = "".join(line + "\n" for line in lines).encode()
    rng = random.Random(20240611)
    for i in range(FLIPS):
        flipped = bytearray(text)
        position = rng.randrange(len(flipped))
        flipped[position] ^= 1 << rng.randrange(8)
        add(f"bit flip {i} at byte {position}", bytes(flipped))

    header, verdict = json.loads(lines[0]), json.loads(lines[-1])
    first: dict[str, int] = {}
    for index in range(1, len(lines) - 1):
        first.setdefault(json.loads(lines[index])["e"], index)
    violation = {
        "invariant": "VoteOnce",
        "step": 3,
        "nodes": [1, 2],
        "message": "two votes",
        "witness": {"term": 1},
    }
    failed = {
        "verdict": "failed",
        "reason": "no leader",
        "leader_at_ms": None,
        "committed_at_ms": None,
    }
    records: list[tuple[str, int, dict[str, Any], tuple[str, ...]]] = [
        ("header", 0, header, ()),
        *(
            (f"{kind} event", index, json.loads(lines[index]), ())
            for kind, index in sorted(first.items())
        ),
        ("verdict", len(lines) - 1, verdict, ()),
        # Only the inner fields of these two: their top level is the verdict's.
        ("violating verdict", len(lines) - 1, {**verdict, "violation": violation}, ("violation",)),
        ("failing verdict", len(lines) - 1, {**verdict, "liveness": failed}, ("liveness",)),
    ]
    for what, index, record, within in records:
        for path, value in _fields(record):
            if path[: len(within)] != within or path == within:
                continue
            where = f"{what} {'.'.join(path)}"
            for wrong in WRONG_TYPES:
                add(f"{where} = {_label(wrong)}", with_line(index, _put(record, path, wrong)))
            add(f"{where} missing", with_line(index, _without(record, path)))
            if type(value) is int:
                for huge in HUGE:
                    add(f"{where} = {_label(huge)}", with_line(index, _put(record, path, huge)))
            if isinstance(value, str) or value is None:
                for string in STRINGS:
                    add(f"{where} = {_label(string)}", with_line(index, _put(record, path, string)))
            if isinstance(value, dict | list) or path[-1] in ("type", "e"):
                for depth in DEPTHS:
                    nested = RAW + "[" * depth + "]" * depth
                    add(
                        f"{where} nested {depth} deep", with_line(index, _put(record, path, nested))
                    )

    middle = len(lines) // 2
    add("empty file", b"")
    add("blank lines only", b"\n\n\n")
    add("a byte order mark first", b"\xef\xbb\xbf" + text)
    add("CRLF line ends", text.replace(b"\n", b"\r\n"))
    add("not UTF-8", text.replace(b'"tick"', b'"ti\xff\xfeck"', 1))
    add("a surrogate as UTF-8 bytes", text.replace(b'"k', b'"\xed\xa0\x80', 1))
    add("a NUL byte", text.replace(b"tick", b"ti\x00ck", 1))
    add("two headers", [lines[0], *lines])
    add("a verdict in the middle", [*lines[:middle], lines[-1], *lines[middle:]])
    add("a blank line in the middle", [*lines[:middle], "", *lines[middle:]])
    add("events swapped", [lines[0], *lines[middle:-1], *lines[1:middle], lines[-1]])
    for bad in ("[1, 2]", "12", '"text"', "null", "{}", "[" * 100_000 + "]" * 100_000):
        add(f"a line {bad[:12]!r}", [*lines[:middle], bad, *lines[middle:]])
    return out


def _valid(path: Path) -> bool:
    try:
        read_trace(path)
    except TraceError:
        return False
    return True


COMMANDS = ("replay", "report")


def _argv(command: str, trace: Path) -> list[str]:
    if command == "report":
        return [command, str(trace), "-o", str(trace.with_suffix(".html"))]
    return [command, str(trace)]


def _judge(command: str, trace: Path, code: int, out: str, err: str, seconds: float) -> str | None:
    """What is wrong with how `command` ended on `trace`, or None."""
    if "Traceback" in err:
        return "a traceback"
    if seconds > SECONDS_EACH:
        return f"took {seconds:.0f} s"
    if any(raw in out or raw in err for raw in INJECTED):
        return "an escape sequence from the trace reached the terminal"
    lines = [line for line in err.splitlines() if line.strip()]
    if code == 2:
        return None if len(lines) == 1 else f"exit 2 with {len(lines)} lines on stderr"
    if code in (0, 1):
        if lines:
            return f"exit {code} with stderr {err[:100]!r}"
        return None if _valid(trace) else f"exit {code} for an invalid trace"
    return f"exit {code!r}"


@pytest.fixture(scope="module")
def lines() -> list[str]:
    return small_trace_lines()


def test_the_base_trace_is_valid_and_replays(lines, tmp_path):
    trace = tmp_path / "base.jsonl"
    trace.write_text("".join(line + "\n" for line in lines))
    assert cli("replay", str(trace)).code == 0
    kinds = {json.loads(line)["e"] for line in lines[1:-1]}
    assert len(kinds) == 11, kinds  # every kind of event


def test_malformed_traces_end_in_a_verdict_or_one_line(lines, tmp_path, capsys, record_property):
    inputs = corpus(lines)
    assert len(inputs) >= 500
    assert len(dict(inputs)) == len(inputs), "every input has a name of its own"
    trace = tmp_path / "t.jsonl"
    codes: Counter[tuple[str, str]] = Counter()
    problems: list[str] = []
    started = time.monotonic()
    for name, content in inputs:
        trace.write_bytes(content)
        for command in COMMANDS:
            began = time.monotonic()
            try:
                ran = cli(*_argv(command, trace))
            except Exception as exc:  # what main() let escape: a traceback for a user
                codes[command, "raised"] += 1
                problems.append(f"{command} [{name}]: raised {type(exc).__name__}: {exc!s:.200}")
                continue
            problem = _judge(command, trace, ran.code, ran.out, ran.err, time.monotonic() - began)
            codes[command, f"exit {ran.code}"] += 1
            if problem is not None:
                problems.append(f"{command} [{name}]: {problem}: {ran.err.strip()[-300:]}")
    seen = ", ".join(f"{command} {code}: {n}" for (command, code), n in sorted(codes.items()))
    summary = (
        f"{len(inputs)} malformed traces, {len(inputs) * len(COMMANDS)} runs in "
        f"{time.monotonic() - started:.1f} s; {seen}"
    )
    record_property("malformed_traces", summary)
    with capsys.disabled():
        print(f"\n{summary}")
    assert not problems, f"{len(problems)} of {len(inputs) * len(COMMANDS)} runs:\n" + "\n".join(
        problems[:40]
    )


# One of each kind, through `python -m virtraft` in a child process.
IN_A_CHILD = (
    "truncated inside line 5",
    "header factory = None",
    "tick event e = [1, 2]",
    "header seed = 999999999999999999999... (5000 characters)",
    "header options nested 1000 deep",
    "failing verdict liveness.reason = '[/x]'",
    'header versions.virtraft = "\\ud800"',
    "partition event shape = '\\x1b]8;;http://examp... (52 characters)",
)


@pytest.mark.parametrize("name", IN_A_CHILD)
def test_a_handful_through_the_real_command(lines, tmp_path, name):
    found = dict(corpus(lines))
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(found[name])
    for command in COMMANDS:
        began = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "virtraft", *_argv(command, trace)],
            cwd=REPO,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=SECONDS_EACH,
        )
        problem = _judge(
            command, trace, done.returncode, done.stdout, done.stderr, time.monotonic() - began
        )
        assert problem is None, (command, name, problem, done.stderr)
