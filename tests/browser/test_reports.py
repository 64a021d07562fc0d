"""The report and the campaign index in a real browser (headless Chromium).

What is clicked: an event row and a message arrow (every node's state
before and after, and the message carried), zoom in, pan, the whole run,
the filters by node and message type and "hide ticks", the decisive-step
link in the verdict; in the campaign index the filter, a column's sort and
a link to a failing seed's report. Expected values come from the trace and
the checker's witness, never from the page itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from virtraft.report.campaign import write_campaign_index
from virtraft.report.html import write_report
from virtraft.run.campaign import SeedResult
from virtraft.run.factory import load_factory
from virtraft.run.seed import RunResult, run_seed
from virtraft.sim.events import Deliver, Tick
from virtraft.sim.options import SimOptions
from virtraft.trace.format import read_trace, write_trace

MUTANT = "virtraft.zoo.mutants:grant_vote_twice"
ELECTIONS = SimOptions.from_json(
    {
        **SimOptions().to_json(),
        "servers": 5,
        "steps": 3000,
        "drop_probability": 0.1,
        "client_rate": 0.15,
        "liveness": False,
        "node": {
            **SimOptions().to_json()["node"],
            "prevote": False,
            "election_timeout_ms": 100,
            "request_timeout_ms": 20,
        },
    }
)


def wait_ready(driver, path: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def wait_report(driver, path: Path) -> float:
    """Open a report; the ms since navigation began when its script was done."""
    from selenium.webdriver.support.ui import WebDriverWait

    wait_ready(driver, path)
    ready = WebDriverWait(driver, 60).until(
        lambda d: d.find_element("tag name", "body").get_attribute("data-ready-ms")
    )
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []  # no script errors
    return float(ready)


def click(driver, element) -> None:
    """A click as the page receives it (SVG lines are too thin to aim at)."""
    driver.execute_script(
        "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", element
    )


def window(driver) -> tuple[int, int]:
    diagram = driver.find_element("id", "diagram")
    return int(diagram.get_attribute("data-first-step")), int(
        diagram.get_attribute("data-last-step")
    )


def css(driver, selector: str) -> list:
    return driver.find_elements("css selector", selector)


@pytest.fixture(scope="module")
def violating(tmp_path_factory) -> tuple[RunResult, Path]:
    for seed in range(40):
        result = run_seed(seed, ELECTIONS, factory=MUTANT)
        if result.violation is not None and result.violation.step > 20:
            break
    else:
        raise AssertionError("no seed made the double-voting mutant vote twice")
    base = tmp_path_factory.mktemp("violating")
    trace = base / f"seed-{result.seed}.jsonl"
    write_trace(trace, result.trace_lines())
    write_report(str(trace), str(trace.with_suffix(".html")), factory=load_factory(MUTANT))
    return result, trace


def test_click_an_event_and_see_every_nodes_state(browser, violating):
    result, trace = violating
    violation = result.violation
    wait_report(browser, trace.with_suffix(".html"))
    assert css(browser, "#violation")
    row = css(browser, f'#events tr[data-step="{violation.step}"]')
    assert row, "the violation's step is in the first window's table"
    click(browser, row[0])
    assert f"Step {violation.step} " in browser.find_element("id", "detail-title").text
    witness = violation.witness
    voter = witness["node"]
    cells = {
        when: browser.find_element(
            "css selector", f'#detail-state tr[data-node="{voter}"][data-when="{when}"] td.f-vote'
        ).text
        for when in ("before", "after")
    }
    assert cells == {"before": str(witness["first_vote"]), "after": str(witness["second_vote"])}
    rows = css(browser, "#detail-state tr[data-node]")
    assert len(rows) == 2 * len(result.sim.node_ids)
    assert css(browser, f'#events tr.selected[data-step="{violation.step}"]')
    assert css(browser, "#events tr.decisive")


def test_click_a_message_and_see_what_it_carried(browser, violating):
    result, trace = violating
    wait_report(browser, trace.with_suffix(".html"))
    arrow = css(browser, "line.msg")[-1]
    step = int(arrow.get_attribute("data-step"))
    click(browser, arrow)
    event = result.sim.events[step - 1]
    assert isinstance(event, Deliver)
    message = browser.find_element("id", "detail-message").text
    assert f"{event.msg} {event.src}→{event.dst}" in message
    assert f"Step {step} " in browser.find_element("id", "detail-title").text


def delivered(events, first: int, last: int) -> int:
    return sum(isinstance(events[s - 1], Deliver) for s in range(first, last + 1))


def test_zoom_pan_and_the_whole_run(browser, violating):
    result, trace = violating
    events = result.sim.events
    wait_report(browser, trace.with_suffix(".html"))
    first, last = window(browser)
    assert (first, last) == (1, result.sim.step)
    browser.find_element("id", "zoom-in").click()
    a, b = window(browser)
    assert b - a + 1 < last - first + 1
    assert len(css(browser, "line.msg")) == delivered(events, a, b)
    browser.find_element("id", "pan-left").click()
    c, d = window(browser)
    assert d - c == b - a and c <= a
    browser.find_element("id", "whole-run").click()
    assert window(browser) == (1, result.sim.step)
    assert len(css(browser, "line.msg")) == delivered(events, 1, result.sim.step)


def test_filters_by_node_type_and_ticks(browser, violating):
    result, trace = violating
    events = result.sim.events
    wait_report(browser, trace.with_suffix(".html"))
    browser.find_element("css selector", 'input.f-node[data-node="1"]').click()
    assert not css(browser, '.lane[data-node="1"]')
    for row in css(browser, "#events tr[data-step]"):
        event = events[int(row.get_attribute("data-step")) - 1]
        if isinstance(event, Tick):
            assert event.node != 1
    browser.find_element("css selector", 'input.f-node[data-node="1"]').click()
    assert css(browser, '.lane[data-node="1"]')
    kind = min(e.msg for e in events if isinstance(e, Deliver))
    assert len(css(browser, f"line.m-{kind}")) == sum(
        isinstance(e, Deliver) and e.msg == kind for e in events
    )
    browser.find_element("css selector", f'input.f-kind[data-kind="{kind}"]').click()
    assert not css(browser, f"line.m-{kind}")
    for row in css(browser, "#events tr[data-step]"):
        event = events[int(row.get_attribute("data-step")) - 1]
        assert not (isinstance(event, Deliver) and event.msg == kind)
    browser.find_element("id", "hide-ticks").click()
    rows = css(browser, "#events tr[data-step]")
    assert rows
    for row in rows:  # only the ticks that changed something stay
        if isinstance(events[int(row.get_attribute("data-step")) - 1], Tick):
            assert row.find_elements("css selector", "td")[3].text


def test_the_decisive_step_link_selects_it(browser, violating):
    result, trace = violating
    wait_report(browser, trace.with_suffix(".html"))
    browser.find_element("id", "zoom-in").click()
    browser.find_element("id", "pan-left").click()
    browser.find_element("id", "pan-left").click()
    link = browser.find_element("css selector", f'a.goto[data-step="{result.violation.step}"]')
    link.click()
    first, last = window(browser)
    assert first <= result.violation.step <= last
    assert css(browser, "#violation")
    assert f"Step {result.violation.step} " in browser.find_element("id", "detail-title").text


def test_campaign_index_filters_sorts_and_links_a_report(browser, violating, tmp_path):
    result, trace = violating
    violation = result.violation
    failing = SeedResult(
        result.seed,
        "violation",
        violation.invariant,
        violation.step,
        violation.message,
        "skipped",
        "safety was violated",
        result.sim.step,
        "0123456789abcdef",
        str(trace),
    )
    passing = [
        SeedResult(s, "ok", None, None, None, "ok", "fine", 400, f"fedcba98765432{s:02d}", None)
        for s in range(100, 104)
    ]
    index = Path(write_campaign_index(str(tmp_path), [*passing, failing]))
    wait_ready(browser, index)
    assert "1 safety violation," in browser.find_element("id", "headline").text
    shown = lambda: [r for r in css(browser, "#seeds tbody tr") if r.is_displayed()]  # noqa: E731
    assert len(shown()) == 5
    browser.find_element("css selector", "a.group").click()  # the invariant's group
    assert [r.find_element("css selector", "td").text for r in shown()] == [str(result.seed)]
    browser.find_element("id", "seed-filter").clear()
    browser.find_element("id", "failed-only").click()
    browser.find_element("css selector", "#seeds th").click()
    browser.find_element("css selector", "#seeds th").click()  # seed, descending
    seeds = [int(r.find_element("css selector", "td").text) for r in shown()]
    assert seeds == sorted(seeds, reverse=True)
    browser.find_element("css selector", "a.report").click()
    wait_report(browser, trace.with_suffix(".html"))
    assert browser.current_url.endswith(trace.with_suffix(".html").name)
    assert css(browser, "#violation")


def expected_tail(node) -> str:
    """A node's last six entries as the page writes them (index:term#id kind)."""
    last = node.last_index
    parts = []
    for index in range(max(node.snapshot_index + 1, last - 5, 1), last + 1):
        entry = node.entry(index)
        if entry is not None:
            kind = node.entry_kind(index)
            kind = "" if kind == "normal" else kind
            parts.append(f"{index}:t{entry[0]}#{entry[1]}" + (f" {kind}" if kind else ""))
    return " ".join(parts) or "(empty)"


def test_a_20000_step_report_is_interactive(browser, tmp_path, record_property):
    """The issue asks for interactive within 2 s; the time is recorded (with
    the page's size), not asserted: CI machines vary."""
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
    page = tmp_path / "long.html"
    write_report(str(path), str(page), trace=read_trace(path))
    ready_ms = wait_report(browser, page)
    steps = result.sim.step
    select_ms = browser.execute_script(
        "var t = performance.now(); virtraftReport.select(10000);"
        f"virtraftReport.setWindow(1, {steps}); return performance.now() - t;"
    )
    assert window(browser) == (1, steps)
    assert "Step 10000 " in browser.find_element("id", "detail-title").text
    # The last step's state, rebuilt from the page's deltas, is the run's final state.
    browser.execute_script(f"virtraftReport.select({steps})")
    for node_id in result.sim.node_ids:
        node = result.sim.nodes[node_id]
        if not node.alive:
            continue
        row = f'#detail-state tr[data-node="{node_id}"][data-when="after"]'
        cell = browser.find_element("css selector", f"{row} td.f-log").text
        assert cell == expected_tail(node), node_id
        term = browser.find_element("css selector", f"{row} td.f-term").text
        assert term == str(node.term)
        commit = browser.find_element("css selector", f"{row} td.f-commit").text
        assert commit == str(node.commit_index)
    record_property("report_bytes", page.stat().st_size)
    record_property("ready_ms", ready_ms)
    record_property("select_and_whole_run_ms", select_ms)
    print(
        f"\n20,000-step report: {page.stat().st_size} bytes, interactive {ready_ms:.0f} ms "
        f"after navigation began; selecting a step and drawing the whole run {select_ms:.0f} ms"
    )
