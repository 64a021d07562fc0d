"""Self-contained HTML reports: what a person opens when a run failed.

`write_report` replays a trace (the recorded events, not the RNG; see
`report.observe`) and lays out the page: the verdict and how to reproduce
it, the space-time diagram (`report.diagram`), the events before the
violation in words, each node's final log, the fault timeline and the run's
statistics. The page is one file with inline CSS, SVG and a few lines of
JS, so it opens offline and can be attached to a bug report as it is.

Stable markup, for tests and for anyone scripting over reports:
each lane is `<g class="lane" data-node="N">`, each delivered message an
element with class `msg` (plus `m-<Type>`), a dropped message `dropped`, a
commit `commit`, and the violation one element with class `violation`
(id `violation`). Long runs are drawn in full detail only in a window of
`WINDOW_STEPS` steps around the violation (or the end); a band above the
diagram summarises roles and terms over the whole run.
"""

from __future__ import annotations

import html
import json
import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virtraft.adapter import NodeFactory
from virtraft.report.cause import Cause, explain_trace
from virtraft.report.diagram import Focus, diagram_section, focus_of, message_colors, message_css
from virtraft.report.history import history_section
from virtraft.report.navigate import StateLog, data_script, decisive_steps, page_data, script
from virtraft.report.observe import LOG_ENTRIES, NodeFinal, Replay, event_text, replay_trace
from virtraft.run.factory import DEFAULT_FACTORY
from virtraft.sim.events import Tick
from virtraft.sim.options import SimOptions
from virtraft.trace.format import Trace, read_trace

__all__ = ["render_report", "write_report"]

LOG_ROWS_MAX = 400  # rows of the log table at most
FAULT_ROWS = 1500  # rows of the fault timeline (the last ones, if there are more)
RECENT_EVENTS = 40  # events listed in words before the violation or the end

esc = html.escape

# The style of every page: the report and the campaign index.
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d1d1f;
background:#fafafa}
main{padding:16px 24px;max-width:1700px}
h1{font-size:22px;margin:4px 0 8px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}
.headline{font-size:18px;font-weight:600;padding:10px 14px;border-radius:6px;margin:8px 0}
.bad{background:#fde2e0;color:#8b1a10}.warn{background:#fff1cc;color:#6b4b00}
.good{background:#e3f4e1;color:#1d5e1a}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:2px 8px;
text-align:left;vertical-align:top}th{background:#f0f0f0}
table.kv th{width:13em;background:#f6f6f6}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:#f2f2f2;padding:8px 10px;border-radius:4px;overflow-x:auto;margin:4px 0}
.note{color:#555;font-size:13px}
.diagram-wrap{display:flex;border:1px solid #ddd;background:#fff}
svg text{font-size:10px;fill:#333}
.tick{font-size:10px}.labels .tick{text-anchor:start}.ms{fill:#777}
.grid{stroke:#eee;stroke-width:1}
.lane-label,.bandlabel{font-size:12px;font-weight:600}
.lane-line{stroke:#b5b5b5;stroke-width:1}
.role{opacity:.75}
.role-leader{fill:#f2b33d}.role-candidate{fill:#f6a5c0}.role-precandidate{fill:#fbd5e2}
.role-follower{fill:#dce6f2}.role-down{fill:#b0b0b0}
.term{font-size:9px;fill:#222}
.msg{stroke-width:1.1;opacity:.85}.msg.carries{stroke-width:2.2}.msg.prevote{stroke-dasharray:4 2}
.msg.to-down{stroke-dasharray:1 2;opacity:.6}.msg:hover{stroke-width:3.5;opacity:1}
.dropped line{stroke:#555;stroke-dasharray:3 2;stroke-width:1}
.dropped path,.lost path{stroke:#555;stroke-width:1.6;fill:none}
.commit{fill:#2ca02c;stroke:#fff;stroke-width:.8}
.mark{font-size:13px;text-anchor:middle}.mark.crash{fill:#000;font-weight:700}
.mark.restart{fill:#000;font-weight:700}.mark.member{fill:#9e9d24}
.mark.snapshot,.mark.install{fill:#6d4c41}.mark.client{fill:#5c6bc0;font-size:11px}
.mark.dup{fill:#c0ca33;font-size:11px}
.partition line{stroke:#607d8b;stroke-width:1.2;stroke-dasharray:6 3}
.heal line{stroke:#17becf;stroke-width:1.2;stroke-dasharray:6 3}
.partitioned{fill:#cfd8dc;opacity:.9}.netlabel{font-size:10px;fill:#37474f}
.phase line{stroke:#1a5276;stroke-width:1.5;stroke-dasharray:2 2}.phase text{fill:#1a5276}
.vband{fill:#d62728;opacity:.22}.vnode{fill:none;stroke:#d62728;stroke-width:2.5}
.vtext{font-size:12px;font-weight:700;fill:#d62728;paint-order:stroke;stroke:#fff;
stroke-width:3px}
.window{fill:none;stroke:#1a5276;stroke-width:1.5}
.overview-violation{stroke:#d62728;stroke-width:2}
.decisive-band{fill:#e6007e;opacity:.18}.msg.decisive{stroke-width:3}
.sel-line{stroke:#111;stroke-width:1.5;stroke-dasharray:1 2}.msg.selected{stroke-width:4;opacity:1}
.bg{fill:#fff}.ev{cursor:pointer}.diagram-scroll{overflow-x:auto;flex:1;min-width:0}
#diagram-labels{flex:none}
.controls{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center;margin:6px 0;
font-size:13px}.controls input[type=number]{width:6em}
.navgrid{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:12px}
.events-box{max-height:520px;overflow:auto;border:1px solid #ddd;background:#fff}
#events{margin:0;width:100%}#events tr[data-step]{cursor:pointer}
#events tr.decisive td{background:#fce4f1}#events tr.violation-row td{background:#f8d7d7}
#events tr.selected td{outline:2px solid #111;outline-offset:-2px}
#detail{border:1px solid #ddd;background:#fff;padding:4px 10px;max-height:520px;overflow:auto}
#detail h3{margin:4px 0;font-size:15px}table.state td.changed{background:#fff3b0;font-weight:700}
table.state td.f-log{white-space:nowrap;font-family:ui-monospace,Menlo,Consolas,monospace;
font-size:12px}
table.state tr.acts th{background:#e8eef7}.why{color:#a0005a}
#plots svg text{font-size:10px}.plot-label{font-size:11px;font-weight:600}
.rate{fill:#7f7f7f}.series{stroke-width:1.5}
.decisive-list a{color:#a0005a}
.legend span{display:inline-block;margin:0 14px 4px 0;font-size:12px}
.swatch{display:inline-block;width:22px;height:10px;vertical-align:middle;margin-right:4px;
border-radius:2px}
.logs td{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;white-space:nowrap}
.logs tr.diverge td.idx{background:#f9d6d2;font-weight:700}
.logs td.differs{background:#f5b7b1;font-weight:700}
.logs td.uncommitted{color:#777;font-style:italic}
.logs td.compacted{color:#999}.logs tr.gap td{text-align:center;color:#999}
tr.in-window td{background:#eef5fb}.recent td:nth-child(-n+2){white-space:nowrap}
details{margin:6px 0}summary{cursor:pointer;color:#1a5276}
"""


def render_report(
    trace: Trace, *, trace_path: str = "TRACE", factory: NodeFactory | None = None
) -> str:
    """The report as HTML text. `factory` overrides the trace's factory spec
    (for a node factory that is not importable by name)."""
    states = StateLog()
    replay = replay_trace(trace, factory, watch=states)
    focus = focus_of(trace, replay)
    kinds = sorted({a.kind for a in replay.arrows} | {loss.kind for loss in replay.losses})
    colors = message_colors(kinds, replay.roles)
    # The cause replays the trace once more, following the entries the
    # violation names; only a failing trace has one.
    cause = explain_trace(trace, factory).cause if focus.violation else None
    decisive = decisive_steps(focus.violation, replay.steps, cause)
    data = page_data(
        trace,
        replay,
        states,
        focus=(focus.start, focus.end, focus.step),
        violation=focus.violation,
        decisive=decisive,
        roles_of={k: str(r.value) for k, r in replay.roles.items()},
    )
    parts = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>virtraft report: seed {trace.seed} — {esc(_headline(trace, focus)[0])}</title>",
        f"<style>{CSS}{message_css(colors)}</style></head><body><main>",
        _header(trace, replay, focus, trace_path, decisive, cause),
        '<section id="navigator">',
        _controls(replay, kinds),
        diagram_section(trace, replay, focus, colors),
        _plots_and_events(),
        "</section>",
        history_section(replay.history, replay.ms(replay.steps)),
        f"<noscript>{_recent_section(trace, replay, focus)}</noscript>",
        _logs_section(replay),
        _faults_section(replay, focus),
        _stats_section(trace),
        "</main>",
        data_script(data) if replay.problem is None else "",
        f"<script>{script()}</script>" if replay.problem is None else "",
        "</body></html>\n",
    ]
    return "".join(parts)


def _controls(replay: Replay, kinds: Sequence[str]) -> str:
    """The window, zoom and pan, and the filters by node and message type."""
    if replay.problem is not None:
        return ""
    nodes = "".join(
        f'<label><input type="checkbox" class="f-node" data-node="{n}" checked> {n}</label>'
        for n in replay.nodes
    )
    types = "".join(
        f'<label><input type="checkbox" class="f-kind" data-kind="{esc(k)}" checked> '
        f"{esc(k)}</label>"
        for k in kinds
    )
    return (
        '<div class="controls" id="controls"><span>steps <input type="number" id="win-start" '
        f'min="1" max="{replay.steps}"> – <input type="number" id="win-end" min="1" '
        f'max="{replay.steps}"> <button type="button" id="win-apply">show</button></span>'
        '<span><button type="button" id="zoom-in" title="zoom in (+)">zoom in</button> '
        '<button type="button" id="zoom-out" title="zoom out (-)">zoom out</button> '
        '<button type="button" id="pan-left">◀ earlier</button> '
        '<button type="button" id="pan-right">later ▶</button> '
        '<button type="button" id="whole-run">whole run</button></span>'
        f"<span>nodes: {nodes}</span><span>messages: {types}</span>"
        '<label><input type="checkbox" id="hide-ticks"> hide ticks</label>'
        '<label><input type="checkbox" id="hide-heartbeats"> hide heartbeats '
        "(AppendEntries without entries)</label></div>"
        '<p class="note">Drag the diagram to pan, ctrl+wheel to zoom; click an event '
        "(an arrow, a mark, a row) for every node's state before and after it; ← and → "
        "step through the events the filters show.</p>"
    )


def _plots_and_events() -> str:
    """Places the script fills: the plots over virtual time, the window's
    events and the selected event's detail."""
    return (
        "<h2>Over virtual time</h2>"
        '<p class="note">Each node\'s term and commit index, who led, and the messages '
        "delivered per second of virtual time; the box marks the diagram's window (click "
        "to move it).</p>"
        '<div id="plots"></div>'
        "<h2>Events in the window</h2>"
        '<p class="note" id="events-note"></p>'
        '<div class="navgrid"><div class="events-box"><table id="events" class="recent">'
        '</table></div><div id="detail"></div></div>'
    )


def _headline(trace: Trace, focus: Focus) -> tuple[str, str]:
    violation = focus.violation
    if violation is not None:
        return f"Safety violation: {violation.get('invariant')}", "bad"
    liveness = trace.verdict.get("liveness") or {}
    if isinstance(liveness, dict) and liveness.get("verdict") == "failed":
        return "Liveness failure", "warn"
    return "No failure", "good"


def _header(
    trace: Trace,
    replay: Replay,
    focus: Focus,
    trace_path: str,
    decisive: Sequence[tuple[int, str]],
    cause: Cause | None = None,
) -> str:
    headline, css = _headline(trace, focus)
    out = [
        f"<h1>virtraft report — seed {trace.seed}</h1>",
        f'<div class="headline {css}">{esc(headline)}</div>',
    ]
    rows: list[tuple[str, str]] = [
        ("trace", f"<code>{esc(trace_path)}</code>"),
        ("seed", str(trace.seed)),
        ("node factory", f"<code>{esc(trace.factory)}</code>"),
        ("options", esc(_options_summary(trace.options))),
        (
            "events",
            f"{len(trace.events)} ({replay.steps} replayed, "
            f"{replay.ms(replay.steps)} ms of virtual time)",
        ),
    ]
    versions = trace.header.get("versions")
    if isinstance(versions, dict):
        rows.append(
            ("recorded with", esc(", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))
        )
    out.append(kv_table(rows))
    out.append("<h2>Verdict</h2>")
    out.append(_verdict_html(trace, replay, focus))
    if cause is not None:
        out.append(f'<p class="cause"><b>cause:</b> {esc(cause.summary)}</p>')
    if decisive and replay.problem is None:
        links = "".join(
            f'<li><a class="goto" href="#step-{step}" data-step="{step}">step {step}</a> '
            f"({replay.ms(step)} ms): {esc(why)}</li>"
            for step, why in decisive
        )
        out.append(
            '<p class="note">Decisive steps, highlighted in magenta in the diagram and the '
            f'table (click one to see it):</p><ul class="decisive-list">{links}</ul>'
        )
    quoted = shlex.quote(trace_path)
    named = esc(_factory_option(trace.factory))
    out.append(
        "<h2>Reproduce</h2><pre>"
        f"virtraft replay {esc(quoted)}{named}\n"
        f"virtraft shrink {esc(quoted)} -o small.jsonl{named}\n"
        f"virtraft report {esc(quoted)} -o report.html{named}</pre>"
        '<p class="note">replay runs the recorded events (not the random stream), so it '
        "reproduces the run exactly; shrink removes events while the same invariant "
        "still fails.</p>"
    )
    out.append(
        "<details><summary>all options</summary><pre>"
        f"{esc(json.dumps(trace.options.to_json(), indent=1, sort_keys=True))}"
        "</pre></details>"
    )
    return "".join(out)


def _factory_option(spec: str) -> str:
    """` --node-factory SPEC` for a trace recorded with another factory than the default."""
    return "" if spec == DEFAULT_FACTORY else f" --node-factory {shlex.quote(spec)}"


def _options_summary(options: SimOptions) -> str:
    default = SimOptions().to_json()
    mine = options.to_json()
    parts = [f"{options.servers} servers", f"{options.steps} safety steps"]
    for name, value in mine.items():
        if name in ("servers", "steps", "node"):
            continue
        if value != default.get(name):
            parts.append(f"{name}={value}")
    for name, value in mine["node"].items():
        if value != default["node"].get(name):
            parts.append(f"node.{name}={value}")
    if len(parts) == 2:
        parts.append("otherwise defaults")
    return ", ".join(parts)


def kv_table(rows: Sequence[tuple[str, str]]) -> str:
    """Rows of (label, already-escaped HTML)."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv">{body}</table>'


def _witness_rows(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        rows = []
        for key, item in value.items():
            rows += _witness_rows(item, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for i, item in enumerate(value):
            rows += _witness_rows(item, f"{prefix}[{i}]")
        return rows
    if isinstance(value, list):
        text = ", ".join(v if isinstance(v, str) else json.dumps(v) for v in value)
    else:
        text = json.dumps(value) if not isinstance(value, str) else value
    return [(prefix or "value", f'<span class="mono">{esc(text)}</span>')]


def _verdict_html(trace: Trace, replay: Replay, focus: Focus) -> str:
    out = []
    violation = focus.violation
    recorded = trace.verdict.get("violation")
    if violation is not None:
        step = violation.get("step")
        nodes = violation.get("nodes") or []
        at_ms = f" ({replay.ms(step)} ms)" if isinstance(step, int) else ""
        rows = [
            (
                "safety",
                f"<b>{esc(str(violation.get('invariant')))}</b> violated at step "
                f"{esc(str(step))}{at_ms}",
            ),
            ("what", esc(str(violation.get("message", "")))),
            ("nodes", esc(", ".join(f"node {n}" for n in dict.fromkeys(nodes)))),
        ]
        rows += [(f"witness: {k}", v) for k, v in _witness_rows(violation.get("witness") or {})]
        out.append(kv_table(rows))
    else:
        out.append(kv_table([("safety", "ok: no invariant was violated")]))
    out.append(_replay_agreement(replay, recorded))
    liveness = trace.verdict.get("liveness") or {}
    if isinstance(liveness, dict) and liveness:
        verdict = str(liveness.get("verdict", "?"))
        words = {"ok": "ok", "failed": "FAILED", "skipped": "skipped"}.get(verdict, verdict)
        text = f"{words}: {liveness.get('reason', '')}"
        extra = []
        if liveness.get("leader_at_ms") is not None:
            extra.append(f"leader at {liveness['leader_at_ms']} ms")
        if liveness.get("committed_at_ms") is not None:
            extra.append(f"command committed at {liveness['committed_at_ms']} ms")
        if extra:
            text += f" ({', '.join(extra)})"
        out.append(kv_table([("liveness", esc(text))]))
    return "".join(out)


def _replay_agreement(replay: Replay, recorded: Any) -> str:
    if replay.problem is not None:
        return (
            f'<p class="headline warn">The trace was not replayed ({esc(replay.problem)}); '
            "the page shows only what the events say: no roles, terms or messages.</p>"
        )
    notes = []
    if replay.diverged is not None:
        step, why = replay.diverged
        notes.append(
            f"The replay diverges at step {step}: {why}. Everything after it is "
            "missing from this page."
        )
    found = replay.violation
    if found is not None and isinstance(recorded, dict):
        if (recorded.get("invariant"), recorded.get("step")) == (found.invariant, found.step):
            notes.append("The replay reproduces the recorded violation.")
        else:
            notes.append(
                f"The replay found {found.invariant} at step {found.step}; the trace "
                f"recorded {recorded.get('invariant')} at step {recorded.get('step')}."
            )
    elif found is not None:
        notes.append(
            f"The replay found {found.invariant} at step {found.step}; the trace "
            "recorded no violation."
        )
    elif isinstance(recorded, dict):
        notes.append(
            f"The replay did not reproduce the recorded {recorded.get('invariant')} "
            f"(step {recorded.get('step')}): the code has changed since the trace was "
            "written, or it was checked with other invariants."
        )
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _recent_section(trace: Trace, replay: Replay, focus: Focus) -> str:
    """The events just before the violation (or the end) in words; runs of
    ticks that changed nothing are folded into one row."""
    last = min(focus.step if focus.step is not None else replay.steps, len(trace.events))
    if last < 1:
        return ""
    events = trace.events
    notes = replay.notes

    def quiet(step: int) -> bool:
        return isinstance(events[step - 1], Tick) and step not in notes

    rows: list[str] = []
    step = last
    lowest = max(1, last - RECENT_EVENTS * 25)
    while step >= lowest and len(rows) < RECENT_EVENTS:
        css = ' class="in-window"' if step == focus.step else ""
        if quiet(step):
            run_end = step
            while step - 1 >= lowest and quiet(step - 1):
                step -= 1
            if run_end > step:
                ticked = sorted({events[i - 1].node for i in range(step, run_end + 1)})
                rows.append(
                    f"<tr{css}><td>{step}–{run_end}</td><td>{replay.ms(step)}–"
                    f'{replay.ms(run_end)}</td><td class="mono">{run_end - step + 1} ticks '
                    f"(nodes {', '.join(map(str, ticked))})</td><td>nothing</td></tr>"
                )
                step -= 1
                continue
        outcome = "; ".join(notes.get(step, ()))
        rows.append(
            f"<tr{css}><td>{step}</td><td>{replay.ms(step)}</td>"
            f'<td class="mono">{esc(event_text(events[step - 1], replay, step))}</td>'
            f"<td>{esc(outcome)}</td></tr>"
        )
        step -= 1
    rows.reverse()
    title = "before the violation" if focus.step is not None else "at the end"
    return (
        f"<h2>What happened {title} (steps {step + 1}–{last})</h2>"
        '<table class="recent"><tr><th>step</th><th>ms</th><th>event</th>'
        f"<th>what changed</th></tr>{''.join(rows)}</table>"
    )


def _logs_section(replay: Replay) -> str:
    finals = replay.finals
    if not finals:
        return ""
    out = [
        "<h2>Final logs</h2>",
        f'<p class="note">The last {LOG_ENTRIES} entries of each node (above its snapshot), '
        "as (term, entry id, type). A red index marks an index where nodes hold different "
        "entries; red cells differ from the most common entry there. Grey italics: not yet "
        "committed on that node.</p>",
    ]
    head = "".join(
        f"<th>node {f.node}<br><small>{esc(f.role)} · term {f.term} · commit "
        f"{f.commit_index}<br>last {f.last_index} · snapshot {f.snapshot_index}"
        f"{'@t' + str(f.snapshot_term) if f.snapshot_index else ''}</small></th>"
        for f in finals
    )
    indices = sorted(
        {i for f in finals for i in f.entries}
        | {i for f in finals for i in range(f.shown_from, f.last_index + 1)}
    )
    if len(indices) > LOG_ROWS_MAX:  # nodes far apart: keep the page small
        out.append(
            f'<p class="note">Only the highest {LOG_ROWS_MAX} of {len(indices)} '
            "indices are shown.</p>"
        )
        indices = indices[-LOG_ROWS_MAX:]
    rows = []
    previous = None
    for index in indices:
        if previous is not None and index > previous + 1:
            rows.append(
                f'<tr class="gap"><td colspan="{len(finals) + 1}">⋯ indices '
                f"{previous + 1}–{index - 1} not shown ⋯</td></tr>"
            )
        previous = index
        rows.append(_log_row(finals, index))
    if not rows:
        rows.append(
            f'<tr><td colspan="{len(finals) + 1}">every log is empty or compacted</td></tr>'
        )
    out.append(f'<table class="logs"><tr><th>index</th>{head}</tr>{"".join(rows)}</table>')
    return "".join(out)


def _log_row(finals: Sequence[NodeFinal], index: int) -> str:
    """One index of every node's log; entries that differ from the most
    common one there are marked."""
    held = [f.entries.get(index) for f in finals]
    values = Counter((c.term, c.entry_id) for c in held if c is not None)
    common = values.most_common(1)[0][0] if values else None
    diverge = len(values) > 1
    cells = []
    for f, cell in zip(finals, held, strict=True):
        if cell is None:
            text = "(snapshot)" if index <= f.snapshot_index else ""
            cells.append(f'<td class="compacted">{text}</td>')
            continue
        classes = []
        if diverge and (cell.term, cell.entry_id) != common:
            classes.append("differs")
        if index > f.commit_index:
            classes.append("uncommitted")
        css = f' class="{" ".join(classes)}"' if classes else ""
        kind = f" {esc(cell.type)}" if cell.type else ""
        cells.append(f"<td{css}>t{cell.term} #{cell.entry_id}{kind}</td>")
    css = ' class="diverge"' if diverge else ""
    return f'<tr{css} data-index="{index}"><td class="idx">{index}</td>{"".join(cells)}</tr>'


def _faults_section(replay: Replay, focus: Focus) -> str:
    faults = replay.faults
    out = ["<h2>Fault timeline</h2>"]
    if not faults:
        out.append('<p class="note">No partitions, crashes, membership changes or snapshots.</p>')
        return "".join(out)
    shown = faults[-FAULT_ROWS:]
    if len(shown) < len(faults):
        out.append(f'<p class="note">The last {len(shown)} of {len(faults)} entries.</p>')
    out.append('<p class="note">Highlighted rows fall inside the detailed diagram.</p>')
    rows = []
    for row in shown:
        css = ' class="in-window"' if focus.start <= row.step <= focus.end else ""
        rows.append(
            f"<tr{css}><td>{row.step}</td><td>{row.ms}</td><td>{esc(row.what)}</td>"
            f"<td>{esc(row.detail)}</td></tr>"
        )
    out.append(
        f"<table><tr><th>step</th><th>ms</th><th>kind</th><th>what</th></tr>{''.join(rows)}</table>"
    )
    return "".join(out)


def _stats_section(trace: Trace) -> str:
    stats = trace.verdict.get("stats")
    if not isinstance(stats, dict):
        return ""
    return "<h2>Run statistics (recorded)</h2>" + kv_table(_witness_rows(stats))


def write_report(
    trace_path: str,
    out_path: str,
    *,
    trace: Trace | None = None,
    factory: NodeFactory | None = None,
) -> None:
    """Replay `trace_path` (or the already-read `trace`) and write the HTML report."""
    if trace is None:
        trace = read_trace(trace_path)
    text = render_report(trace, trace_path=trace_path, factory=factory)
    out = Path(out_path)
    if out.parent != Path(""):
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
