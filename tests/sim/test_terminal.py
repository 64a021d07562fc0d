"""Data is never console markup (issue: data is never console markup).

A path, a verdict's reason or a server's exception text printed through
rich as markup crashes it on `[/x]` (a MarkupError; under `fuzz` the
summary is lost) and swallows `[node 3]`; an escape sequence in it reaches
the terminal raw. Each is printed as it is, with control characters written
as escapes. The server below raises such a text once it leads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from raftcore import RaftServer
from virtraft.cli.commands import main
from virtraft.nodes.raftcore import factory
from virtraft.report.terminal import shown, visible

REPO = Path(__file__).resolve().parents[2]
ESC = "\x1b"
# Markup that ends a style nobody opened, a word rich takes for a style, an
# OSC 8 hyperlink and a colour change.
EVIL = f"bad [/x] [node 3] {ESC}]8;;http://x{ESC}\\link{ESC}]8;;{ESC}\\ {ESC}[31mred"
EVIL_SHOWN = r"bad [/x] [node 3] \x1b]8;;http://x\x1b\link\x1b]8;;\x1b\ \x1b[31mred"


class MarkupServer(RaftServer):
    """Raises an exception whose text is markup and escape sequences, from
    inside periodic() once it is leader: a finding with that text."""

    def periodic(self, msec: int) -> None:
        if self.is_leader:
            raise RuntimeError(EVIL)
        super().periodic(msec)


raises_markup = factory(MarkupServer)
FACTORY = "tests.sim.test_terminal:raises_markup"


def virtraft(*args: str) -> subprocess.CompletedProcess:
    """`python -m virtraft` as a user runs it, but wide enough that rich
    wraps no line we look for, and with no colour forced on."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["COLUMNS"] = "1000"
    return subprocess.run(
        [sys.executable, "-m", "virtraft", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_shown(done: subprocess.CompletedProcess, code: int, *texts: str) -> None:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert ESC not in done.stdout and ESC not in done.stderr
    for text in texts:
        assert text in done.stdout, text


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("healthy") / "t.jsonl"
    assert main(["run", "--seed", "2", "--steps", "300", "--trace", str(path), "--quiet"]) == 0
    return path


def test_visible_writes_control_characters_as_escapes():
    assert visible(EVIL) == EVIL_SHOWN
    assert visible("a\x00b\x07c\rd\x7fe\x9bf") == r"a\x00b\x07c\x0dd\x7fe\x9bf"
    assert visible("two\nlines\tand a tab") == "two\nlines\tand a tab"


def test_shown_text_is_printed_as_it_is():
    console = Console(width=200, record=True, color_system=None)
    console.print(shown(":smile: [bold]not bold[/] [/x] [node 3]"))
    assert console.export_text() == ":smile: [bold]not bold[/] [/x] [node 3]\n"


def test_a_server_exception_text_is_shown_as_it_is_by_run_and_replay(tmp_path):
    done = virtraft(
        "run", "--seed", "0", "--steps", "3000", "--node-factory", FACTORY, "--out", str(tmp_path)
    )
    assert_shown(done, 1, "NodeException", f"RuntimeError: {EVIL_SHOWN}")
    trace = tmp_path / "seed-0.jsonl"
    named = ("--node-factory", FACTORY)
    assert_shown(
        virtraft("replay", str(trace), *named),
        1,
        f"RuntimeError: {EVIL_SHOWN}",
        "same violation as recorded",
    )
    assert_shown(
        virtraft("replay", "--story", str(trace), *named), 1, f"RuntimeError: {EVIL_SHOWN}"
    )


def test_a_server_exception_text_keeps_the_fuzz_summary(tmp_path):
    out = tmp_path / "[" / "x] [node 3]"
    done = virtraft(
        "fuzz",
        "--seeds",
        "0:2",
        "--steps",
        "3000",
        "--workers",
        "1",
        "--node-factory",
        FACTORY,
        "--out",
        str(out),
    )
    assert_shown(
        done,
        1,
        "Failing seeds",
        EVIL_SHOWN,
        "reproduce the first with:",
        "shrink the shortest with:",
        str(out / "fuzz-0-2" / "seed-0.jsonl"),
    )
    assert (out / "fuzz-0-2" / "index.html").is_file()


def test_a_trace_path_with_markup_and_controls_is_shown_as_it_is(tmp_path, healthy):
    folder = tmp_path / "["
    folder.mkdir()
    trace = folder / f"x] [node 3] {ESC}[31mred.jsonl"
    shutil.copy(healthy, trace)
    shown_path = visible(trace)
    assert "[/x] [node 3] \\x1b[31mred.jsonl" in shown_path
    assert_shown(
        virtraft("replay", str(trace)), 0, f"events from {shown_path}", "safety: ok, as recorded"
    )
    assert_shown(virtraft("replay", "--story", str(trace)), 0, "Step by step")
    html = folder / f"x] [node 3] {ESC}]8;;http://x{ESC}\\.html"
    assert_shown(virtraft("report", str(trace), "-o", str(html)), 0, f"wrote {visible(html)}")
    assert html.is_file()


def test_an_error_line_shows_controls_as_escapes(tmp_path):
    missing = f"{tmp_path}/[/x] {ESC}]8;;http://x{ESC}\\.jsonl"  # as given, not normalised
    done = virtraft("replay", missing)
    assert done.returncode == 2
    assert ESC not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and r"[/x] \x1b]8;;http://x\x1b\.jsonl" in lines[0], done.stderr
    done = virtraft("run", f"{ESC}[31m")  # argparse names the stray argument
    assert done.returncode == 2 and ESC not in done.stderr
    assert r"unrecognized arguments: \x1b[31m" in done.stderr


def test_a_recorded_liveness_reason_is_shown_as_it_is(tmp_path, healthy):
    lines = healthy.read_text().splitlines()
    verdict = json.loads(lines[-1])
    verdict["liveness"] = {"verdict": "failed", "reason": EVIL}
    lines[-1] = json.dumps(verdict)
    trace = tmp_path / "reason.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    assert_shown(virtraft("replay", str(trace)), 1, f"liveness (recorded): failed ({EVIL_SHOWN})")


def test_the_zoo_table_shows_its_texts_as_they_are():
    from virtraft.zoo.hunt import MutantReport, print_table

    report = MutantReport(
        name="m [/x]",
        kind="safety",
        expected=("VoteOnce",),
        source="",
        fuzz=None,
        fuzz_runs=3,
        fuzz_seconds=1.0,
        stateful=None,
        stateful_note="not found",
        shrunk_events=None,
        shrink_note="n/a",
        ok=False,
        why=EVIL,
    )
    console = Console(width=1000, record=True, color_system=None)
    print_table(console, [report])
    text = console.export_text()
    assert "m [/x]" in text and f"NO: {EVIL_SHOWN}" in text and ESC not in text


def test_the_bench_table_shows_a_violation_as_it_is():
    from virtraft.report.summary import print_bench

    run = {"events_per_s": 10, "delivered_per_s": 5, "committed_per_s": 1, "violation": EVIL}
    report = {
        "seed": 1,
        "python": "3",
        "repeat": 1,
        "workloads": [
            {
                "name": "w [node 3]",
                "description": "d [/x]",
                "events": 10,
                "peak_memory_mb": 1.0,
                "checker_overhead": 1.5,
                "checked": run,
                "unchecked": {**run, "violation": None},
            }
        ],
    }
    console = Console(width=1000, record=True, color_system=None)
    print_bench(console, report)
    text = console.export_text()
    assert "w [node 3]: d [/x]" in text
    assert f"w [node 3] stopped early: {EVIL_SHOWN}" in text and ESC not in text
