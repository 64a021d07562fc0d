"""The story says why: role changes with their reason, votes with both logs,
the decisive steps marked; text readable at 80 columns (nothing wider,
nothing cut), one JSON document for programs, filters by node, by message
type and without idle ticks; `shrink` says what to run next, and `run`
prints the cause of its failure.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

from rich.console import Console

from tests.sim.test_refusals import OPTIONS, SEED
from tests.test_cause import HUNT_PROFILES
from virtraft.cli.commands import main
from virtraft.report.cause import explain_run, explain_trace
from virtraft.report.story import DECISIVE, StoryFilter, print_story, story_rows
from virtraft.run.factory import load_factory
from virtraft.run.seed import run_seed
from virtraft.sim.options import SimOptions
from virtraft.trace.format import read_trace
from virtraft.zoo.mutants import factory_spec

DATA = Path(__file__).parent / "data" / "causes"
REFUSING = "tests.sim.test_refusals:clean_refusal"


def _explained(name: str):
    trace = read_trace(DATA / f"{name}.shrunk.jsonl")
    return trace, explain_trace(trace, load_factory(factory_spec(name)))


def _render(name: str, width: int = 80, **kw) -> tuple[str, object]:
    trace, explained = _explained(name)
    console = Console(width=width, record=True, file=io.StringIO())
    print_story(console, trace, explained=explained, **kw)
    return console.export_text(), explained


def _squeeze(text: str) -> str:
    """Text without the layout: whitespace and the table's rules."""
    return re.sub(r"[\s─│▶]+", "", text)


def test_the_story_fits_80_columns_and_cuts_nothing_that_matters() -> None:
    for name in ("fig8_commit_old_term", "up_to_date_by_length_only", "duplicate_votes_counted"):
        text, explained = _render(name)
        assert max(len(line) for line in text.splitlines()) <= 80
        assert "…" not in text  # rich cut nothing
        flat = _squeeze(text)
        for line in explained.cause.lines():  # every fact of the cause is there, whole
            assert _squeeze(line) in flat, line
        for row in story_rows(explained):
            for change in row.changes:
                assert _squeeze(change) in flat, change


def test_the_decisive_steps_are_marked() -> None:
    text, explained = _render("fig8_commit_old_term")
    marked = [
        int(m.group(1)) for m in re.finditer(rf"^ {DECISIVE}\s+(\d+)\s", text, flags=re.MULTILINE)
    ]
    assert marked == list(explained.cause.steps)
    assert len(marked) >= 2  # the old-term commit and the election that lost it


def test_a_vote_shows_both_logs_and_the_rule() -> None:
    text, explained = _render("up_to_date_by_length_only", width=200)
    (vote,) = [v for d in explained.cause.decisive for v in d.votes if not v.up_to_date]
    line = (
        f"node {vote.voter} voted for node {vote.candidate} in term {vote.term}: its log ends "
        f"(term {vote.voter_last[0]}, index {vote.voter_last[1]}), the candidate's "
        f"(term {vote.candidate_last[0]}, index {vote.candidate_last[1]}) (§5.4.1 FORBIDS it)"
    )
    assert line in text


def test_role_changes_say_why() -> None:
    text, _ = _render("stale_vote_response_counted", width=200)
    assert "became candidate in term 1 (election timeout: votes for itself)" in text
    assert re.search(r"became follower in term \d+ \(stepped down: a higher term", text)
    assert "became leader in term 3 (won the election: recorded votes of nodes 1)" in text


def test_json_is_one_document_with_the_cause() -> None:
    trace, explained = _explained("fig8_commit_old_term")
    buffer = io.StringIO()
    console = Console(width=80, file=buffer)
    print_story(console, trace, explained=explained, as_json=True)
    doc = json.loads(buffer.getvalue())
    assert doc["violation"]["invariant"] == "LeaderCompleteness"
    assert doc["cause"]["steps"] == list(explained.cause.steps)
    assert [r["step"] for r in doc["rows"] if r["decisive"]] == list(explained.cause.steps)
    assert len(doc["rows"]) == len(trace.events)


def test_filters_keep_what_they_say_and_every_decisive_step() -> None:
    _trace, explained = _explained("fig8_commit_old_term")
    rows = story_rows(explained)
    steps = set(explained.cause.steps)
    one = [r for r in rows if StoryFilter(node=1).keeps(r)]
    assert one and len(one) < len(rows)
    assert all(1 in r.nodes or r.step in steps for r in one)
    assert steps <= {r.step for r in one}
    appends = [r for r in rows if StoryFilter(message_type="appendentries").keeps(r)]
    assert all(r.message == "AppendEntries" or r.decisive for r in appends)
    assert any(r.message == "AppendEntries" and not r.decisive for r in appends)


def test_no_ticks_leaves_out_the_ticks_that_changed_nothing() -> None:
    result = run_seed(3, SimOptions(servers=3, steps=400, liveness=False), swarm=False)
    rows = story_rows(explain_run(result))
    quiet = [r for r in rows if StoryFilter(ticks=False).keeps(r)]
    assert all(r.kind != "tick" or r.changes for r in quiet)
    assert any(r.kind == "tick" for r in quiet)  # a tick that started an election stays
    assert len(quiet) < len(rows)


def test_story_options_need_story(capsys) -> None:
    path = str(DATA / "grant_vote_twice.shrunk.jsonl")
    spec = factory_spec("grant_vote_twice")
    assert main(["replay", path, "--node-factory", spec, "--node", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "need --story" in err


def test_replay_story_json_on_the_command_line(capsys) -> None:
    path = str(DATA / "grant_vote_twice.shrunk.jsonl")
    spec = factory_spec("grant_vote_twice")
    code = main(["replay", path, "--node-factory", spec, "--story", "--format", "json"])
    assert code == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["cause"]["invariant"] == "VoteOnce"


def test_shrink_says_what_next_and_why(tmp_path, capsys) -> None:
    name = "fig8_commit_old_term"
    source = DATA / f"{name}.shrunk.jsonl"
    out = tmp_path / "small.jsonl"
    spec = factory_spec(name)
    words = ["-o", str(out), "--node-factory", spec, "--max-replays", "5"]
    code = main(["shrink", str(source), *words])
    assert code == 1
    text = capsys.readouterr().out
    assert "cause: index 1 (term 1, id 0) was committed at step" in text
    assert f"virtraft replay {out} --story --node-factory {spec}" in text
    assert f"virtraft report {out} -o {out.with_suffix('.html')} --node-factory {spec}" in text


def test_run_prints_the_cause_of_its_failure(tmp_path, capsys) -> None:
    spec = factory_spec("fig8_commit_old_term")
    args = [a for a in HUNT_PROFILES["replication"].split() if a != "--no-swarm"]
    code = main(["run", "--seed", "9", "--node-factory", spec, *args, "--out", str(tmp_path)])
    assert code == 1
    text = capsys.readouterr().out
    assert "cause: index 6 (term 10, id 68) was committed at step 1723 by node 3" in text
    assert "§5.4.2 (Figure 8)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_refusal_gives_the_servers_reason() -> None:
    """A message the server refuses (an exception in its `refusals`) is told
    with the server's own words."""
    result = run_seed(SEED, OPTIONS.replace(steps=1500), factory=REFUSING)
    assert result.sim.stats.refused_messages > 0
    rows = story_rows(explain_run(result))
    refused = [c for r in rows for c in r.changes if "refused it: " in c]
    assert len(refused) == result.sim.stats.refused_messages
    assert all("InvalidMessage: vote response of term" in c for c in refused)
