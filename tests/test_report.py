"""The HTML report: what it draws must agree with the trace it replays.

The violating traces come from mutants defined here (a server that votes
twice in a term, one that grants votes to any log), run through the
simulator directly; the report gets the mutant's factory as an object, so
nothing needs to import this module by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from html.parser import HTMLParser
from pathlib import Path

import pytest

from raftcore import RaftServer
from raftcore.messages import RequestVote
from virtraft.adapter import NodeFactory, NodeOptions
from virtraft.check.checker import Checker, Violation
from virtraft.cli.commands import main
from virtraft.nodes import raftcore as raftcore_node
from virtraft.report.campaign import write_campaign_index
from virtraft.report.diagram import WINDOW_STEPS
from virtraft.report.html import render_report, write_report
from virtraft.report.observe import replay_trace
from virtraft.run.campaign import SeedResult
from virtraft.run.liveness import Liveness
from virtraft.run.seed import run_seed, verdict_of
from virtraft.sim.events import Deliver, Event
from virtraft.sim.options import SimOptions
from virtraft.sim.scheduler import Scheduler
from virtraft.sim.seeds import scheduler_rng
from virtraft.sim.simulation import Simulation
from virtraft.trace.format import read_trace, trace_lines, write_trace


class DoubleVote(RaftServer):
    """Raft §5.2 broken: grants a vote without looking at `voted_for`."""

    def _may_grant_vote(self, msg: RequestVote) -> bool:
        return msg.term == self.current_term and self._candidate_log_is_up_to_date(
            msg.last_log_index, msg.last_log_term
        )


class AnyLog(RaftServer):
    """Raft §5.4.1 broken: any candidate's log counts as up to date."""

    def _candidate_log_is_up_to_date(self, last_index: int, last_term: int) -> bool:
        return True


double_vote = raftcore_node.factory(DoubleVote)
any_log = raftcore_node.factory(AnyLog)

FAULTY = SimOptions(
    servers=5,
    steps=2000,
    drop_probability=0.1,
    crash_rate=0.003,
    partition_rate=0.005,
    liveness=False,
    node=NodeOptions(prevote=False),
)


# ------------------------------------------------------------------ helpers


def run(
    factory: NodeFactory, seed: int, options: SimOptions
) -> tuple[Simulation, Violation | None]:
    sim = Simulation(options, seed, factory, checker=Checker())
    scheduler = Scheduler(scheduler_rng(seed), options)
    for _ in range(options.steps):
        violation = sim.apply(scheduler.next_event(sim))
        if violation is not None:
            return sim, violation
    return sim, None


def as_trace(
    tmp_path: Path,
    sim: Simulation,
    violation: Violation | None,
    spec: str,
    events: Iterable[Event] | None = None,
) -> Path:
    liveness = Liveness("skipped", "safety was violated" if violation else "switched off")
    lines = trace_lines(
        sim.seed,
        sim.options,
        spec,
        sim.events if events is None else events,
        verdict_of(sim, violation, liveness),
    )
    path = tmp_path / f"seed-{sim.seed}.jsonl"
    write_trace(path, lines)
    return path


def find_violation(
    factory: NodeFactory,
    options: SimOptions,
    seeds: Iterable[int],
) -> tuple[Simulation, Violation]:
    for seed in seeds:
        sim, violation = run(factory, seed, options)
        if violation is not None:
            return sim, violation
    raise AssertionError("no seed in the range violated an invariant")


class Page(HTMLParser):
    """Every element's tag and attributes, and the page's text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _tag, a in self.elements if name in a.get("class", "").split()]

    def by_id(self, ident: str) -> dict[str, str]:
        found = [a for _tag, a in self.elements if a.get("id") == ident]
        assert len(found) == 1, ident
        return found[0]

    @property
    def words(self) -> str:
        return " ".join(self.text)


def delivers_in(events: tuple[Event, ...], first: int, last: int) -> int:
    return sum(1 for step in range(first, last + 1) if isinstance(events[step - 1], Deliver))


def assert_offline(text: str, page: Page) -> None:
    """Nothing in the page may make a browser fetch anything."""
    assert "http://" not in text and "https://" not in text
    for _tag, attrs in page.elements:
        assert "src" not in attrs
        href = attrs.get("href")
        if href is not None:
            assert ":" not in href and not href.startswith("//"), href


# -------------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def double_vote_run() -> tuple[Simulation, Violation]:
    return find_violation(double_vote, FAULTY, range(30))


def test_violation_report_draws_every_lane_message_and_the_violation(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    path = as_trace(tmp_path, sim, violation, "tests.test_report:double_vote")
    trace = read_trace(path)
    text = render_report(trace, trace_path=str(path), factory=double_vote)
    page = Page(text)

    lanes = page.with_class("lane")
    assert sorted(int(a["data-node"]) for a in lanes) == sim.node_ids

    diagram = page.by_id("diagram")
    first, last = int(diagram["data-first-step"]), int(diagram["data-last-step"])
    assert first <= violation.step <= last
    arrows = page.with_class("msg")
    assert len(arrows) == delivers_in(trace.events, first, last)
    assert arrows, "a violating run exchanges messages"
    for arrow in arrows:  # a message arrives after it was sent
        assert float(arrow["x2"]) > float(arrow["x1"])

    markers = page.with_class("violation")
    assert len(markers) == 1
    assert markers[0]["data-invariant"] == violation.invariant
    assert int(markers[0]["data-step"]) == violation.step
    assert violation.invariant in page.words
    assert violation.message in page.words
    assert f"virtraft replay {path}" in page.words
    assert f"virtraft shrink {path} -o small.jsonl" in page.words
    assert_offline(text, page)


def test_every_delivery_is_an_arrow_from_its_send(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    trace = read_trace(as_trace(tmp_path, sim, violation, "unused:spec"))
    replay = replay_trace(trace, double_vote)
    assert replay.violation == violation
    assert replay.diverged is None
    delivered = [(step, e) for step, e in enumerate(trace.events, 1) if isinstance(e, Deliver)]
    assert [(a.step, a.src, a.dst, a.kind) for a in replay.arrows] == [
        (step, e.src, e.dst, e.msg) for step, e in delivered
    ]
    assert all(0 < a.send_step < a.step for a in replay.arrows)


def test_diverging_logs_are_highlighted(tmp_path):
    """Raft §5.4.1 broken lets a short log win; the final logs then disagree
    at some index, and the table must mark exactly those indices."""
    sim = violation = None
    for seed in range(40):
        sim, violation = run(any_log, seed, FAULTY)
        if violation is not None and _diverging(sim):
            break
    else:
        raise AssertionError("no seed produced diverging logs")
    path = as_trace(tmp_path, sim, violation, "tests.test_report:any_log")
    page = Page(render_report(read_trace(path), factory=any_log))
    marked = {int(attrs["data-index"]) for attrs in page.with_class("diverge")}
    assert marked == _diverging(sim)
    assert page.with_class("differs")


def test_healthy_trace_has_no_violation_marker(tmp_path):
    result = run_seed(4, SimOptions(servers=3, steps=300, liveness=False))
    assert result.violation is None
    path = tmp_path / "ok.jsonl"
    write_trace(path, result.trace_lines())
    out = tmp_path / "ok.html"
    write_report(str(path), str(out))
    text = out.read_text()
    page = Page(text)
    assert page.with_class("violation") == []
    assert len(page.with_class("lane")) == 3
    assert len(page.with_class("msg")) == delivers_in(result.sim.events, 1, result.sim.step)
    assert "No failure" in page.words
    assert_offline(text, page)


def test_long_run_report_is_small_and_drawn_in_a_window(tmp_path):
    options = SimOptions(
        steps=20_000,
        drop_probability=0.05,
        duplicate_probability=0.05,
        partition_rate=0.005,
        crash_rate=0.002,
        snapshot_rate=0.005,
        member_rate=0.001,
    )
    result = run_seed(1, options)
    path = tmp_path / "long.jsonl"
    write_trace(path, result.trace_lines())
    out = tmp_path / "long.html"
    write_report(str(path), str(out))
    data = out.read_bytes()
    assert len(data) < 5_000_000
    text = data.decode()
    page = Page(text)
    diagram = page.by_id("diagram")
    first, last = int(diagram["data-first-step"]), int(diagram["data-last-step"])
    assert last == result.sim.step
    assert last - first + 1 == WINDOW_STEPS
    assert len(page.with_class("msg")) == delivers_in(result.sim.events, first, last)
    nodes = {int(a["data-node"]) for a in page.with_class("lane")}
    assert set(result.sim.node_ids) <= nodes
    assert "full detail" in page.words
    assert_offline(text, page)


def test_text_from_the_trace_is_escaped(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    path = as_trace(tmp_path, sim, violation, "evil:<script>alert(1)</script>")
    text = render_report(read_trace(path), factory=double_vote)
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_factory_that_cannot_load_still_gives_a_page(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    path = as_trace(tmp_path, sim, violation, "no_such_module_for_reports:factory")
    out = tmp_path / "r.html"
    write_report(str(path), str(out))
    page = Page(out.read_text())
    assert "could not load the node factory" in page.words
    assert len(page.with_class("lane")) == sim.options.servers
    assert page.with_class("msg") == []
    assert violation.invariant in page.words  # the recorded verdict is still shown


def test_a_diverging_trace_says_where(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    events = [Deliver(1, 2, "RequestVote", 12345), *sim.events]
    path = as_trace(tmp_path, sim, violation, "x:y", events)
    page = Page(render_report(read_trace(path), factory=double_vote))
    assert "diverges at step 1" in page.words
    assert page.with_class("violation") == []


def test_campaign_index_links_failing_seeds(tmp_path, double_vote_run):
    sim, violation = double_vote_run
    trace_path = as_trace(tmp_path, sim, violation, "tests.test_report:double_vote")
    write_report(str(trace_path), str(trace_path.with_suffix(".html")), factory=double_vote)
    failing = SeedResult(
        sim.seed,
        "violation",
        violation.invariant,
        violation.step,
        violation.message,
        "skipped",
        "safety was violated",
        sim.step,
        "0123456789abcdef",
        str(trace_path),
    )
    passing = SeedResult(
        sim.seed + 1000, "ok", None, None, None, "ok", "fine", 400, "fedcba9876543210", None
    )
    index = write_campaign_index(str(tmp_path), [passing, failing])
    assert Path(index) == tmp_path / "index.html"
    text = Path(index).read_text()
    page = Page(text)
    reports = [a["href"] for a in page.with_class("report")]
    assert reports and set(reports) == {f"seed-{sim.seed}.html"}
    for href in reports + [a["href"] for a in page.with_class("trace")]:
        assert (tmp_path / href).is_file()
    assert str(passing.seed) in page.words and passing.digest in page.words
    assert_offline(text, page)


# ---------------------------------------------------------------- internals


def _diverging(sim: Simulation) -> set[int]:
    """Indices in some node's last 50 entries where the nodes' logs disagree."""
    views = sim.views()
    shown = {
        i
        for v in views
        for i in range(max(v.snapshot_index + 1, v.last_index - 49, 1), v.last_index + 1)
    }
    held = {i: {e for v in views if (e := v.entry(i)) is not None} for i in shown}
    return {index for index, entries in held.items() if len(entries) > 1}


def test_notes_say_when_a_log_grows_and_when_it_is_rewritten(tmp_path):
    """The step-by-step story (and the report) say how each log changed; an
    independent replay must agree with every such note: an append starts
    right after the old end, a rewrite ends where the log now ends."""
    import re

    from virtraft.run.factory import DEFAULT_FACTORY, load_factory

    factory = load_factory(DEFAULT_FACTORY)
    for seed in range(40):
        result = run_seed(seed, FAULTY.replace(steps=1500))
        path = tmp_path / f"seed-{seed}.jsonl"
        write_trace(path, result.trace_lines())
        trace = read_trace(path)
        notes = replay_trace(trace, factory).notes
        if any("rewrote its log" in text for texts in notes.values() for text in texts):
            break
    else:
        raise AssertionError("no seed rewrote a log")
    grew = re.compile(r"node (\d+) appended index(?:es)? (?:(\d+)-)?(\d+) \(term (\d+)\)")
    rewritten = re.compile(
        r"node (\d+) rewrote its log: it now ends at index (\d+) "
        r"\(term (\d+)\)"
    )
    sim = Simulation(trace.options, trace.seed, factory, checker=Checker())
    appended = rewrote = 0
    for step, event in enumerate(trace.events, start=1):
        before = {n: sim.nodes[n].last_index for n in sim.node_ids}
        sim.apply(event)
        for text in notes.get(step, []):
            if m := grew.fullmatch(text):
                node, first, last, term = (int(g) if g else None for g in m.groups())
                assert before[node] + 1 == (first or last), (step, text)
                assert sim.nodes[node].last_index == last
                assert sim.nodes[node].entry(last)[0] == term
                appended += 1
            elif m := rewritten.fullmatch(text):
                node, last, term = map(int, m.groups())
                assert sim.nodes[node].last_index == last
                assert sim.nodes[node].entry(last)[0] == term
                rewrote += 1
    assert appended > 0 and rewrote > 0


def test_the_story_prints_bracketed_text_as_it_is(tmp_path):
    """Event and message text is data, never console markup."""
    from rich.console import Console

    from virtraft.report.story import print_story
    from virtraft.sim.events import Heal, Partition, Tick

    options = SimOptions(servers=3, liveness=False)
    events = [Tick(1, 5), Partition("[a, b] marked", ((1, 2),)), Heal()]
    sim = Simulation(options, 0, raftcore_node.default_factory, checker=Checker())
    for event in events:
        sim.apply(event)
    path = tmp_path / "t.jsonl"
    write_trace(
        path,
        trace_lines(
            0,
            options,
            "virtraft.nodes.raftcore:default_factory",
            sim.events,
            verdict_of(sim, None, Liveness("skipped", "-")),
        ),
    )
    console = Console(width=200, record=True)
    print_story(console, read_trace(path))
    assert "[a, b] marked" in console.export_text()


def test_a_clean_fuzz_writes_its_index_and_says_where(tmp_path, capsys):
    code = main(
        ["fuzz", "--seeds", "0:2", "--steps", "200", "--workers", "1", "--out", str(tmp_path)]
    )
    assert code == 0
    index = tmp_path / "fuzz-0-2" / "index.html"
    assert "campaign index:" in capsys.readouterr().out
    page = Page(index.read_text())
    assert "2 seeds: 0 safety violations, 0 liveness failures" in page.words
    seeds = [a for tag, a in page.elements if tag == "tr" and "data-signature" in a]
    assert len(seeds) == 2
    assert_offline(index.read_text(), page)


def test_campaign_headline_counts_agree_in_number(tmp_path):
    one = SeedResult(
        7, "violation", "VoteOnce", 12, "node 3 voted twice", "skipped", "", 12, "ab", None
    )
    text = Path(write_campaign_index(str(tmp_path), [one])).read_text()
    assert "1 seed: 1 safety violation, 0 liveness failures" in Page(text).words
