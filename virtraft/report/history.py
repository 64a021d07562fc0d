"""The clients' history in the report, as Porcupine's visualizer draws it.

One panel per key: a lane per client, each operation a bar from its
invocation to its completion over virtual time, coloured by what the client
was told (ok, fail, unknown: an unknown bar runs on to the end of the run,
thin, as its effect may land anywhere there). For a key with no linear
order, the shortest prefix that has none is marked: its span is shaded, the
operations of the longest legal order the search found carry their place in
it, and the operation that fits after none of them is outlined in red.
Clicking a bar scrolls the space-time diagram to the step the operation was
invoked at (or completed at, with the Alt key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape as esc

from virtraft.check.linearizability import Linearizability, check_history
from virtraft.sim.clients import Record

WIDTH = 1200.0
LEFT = 70.0
LANE_H = 16
LANE_GAP = 6
COLOURS = {"ok": "#3a9d5d", "fail": "#9aa0a6", "unknown": "#e8a33d"}

CSS = """
.history svg{background:#fff;border:1px solid #ddd;margin:4px 0 12px}
.history .op{cursor:pointer}
.history .op:hover{stroke:#000;stroke-width:1.5}
.history .stuck{stroke:#d93025;stroke-width:3}
.history .order{font:10px sans-serif;fill:#fff;pointer-events:none}
.history .prefix{fill:#fce8e6}
.history text.lane{font:11px sans-serif;fill:#444}
"""

_JS = """
(function(){document.querySelectorAll('.history .op').forEach(function(b){
b.addEventListener('click',function(e){
var step=parseInt(b.getAttribute(e.altKey?'data-done':'data-step'));
var d=document.getElementById('diagram'),s=document.getElementById('diagram-scroll');
if(!d||!s||isNaN(step))return;
var first=+d.getAttribute('data-first-step'),last=+d.getAttribute('data-last-step');
var pps=(+d.getAttribute('width')-24)/(last-first+1);
s.scrollLeft=Math.max(0,12+(step-first+0.5)*pps-s.clientWidth/2);
s.scrollIntoView({block:'center'});});});})();
"""


def history_section(records: Sequence[Record] | None, end_ms: int) -> str:
    """The report's history section (an HTML fragment with its own style and
    script), or '' for a run without clients."""
    if records is None:
        return ""
    verdict = check_history([r.operation for r in records])
    out = [f"<style>{CSS}</style>", '<section class="history"><h2>Client history</h2>']
    out.append(
        f'<p class="note">{esc(_summary(verdict, len(records)))} Bars run from an '
        "operation's invocation to its completion (green ok, grey failed, orange "
        "unknown); click one to find its step in the diagram.</p>"
    )
    failing = {f.key: f for f in verdict.failures}
    keys = sorted({r.operation.key for r in records})
    span = max(
        [end_ms, 1] + [r.operation.complete for r in records if math.isfinite(r.operation.complete)]
    )
    for key in keys:
        ops = [r for r in records if r.operation.key == key]
        out.append(_panel(key, ops, span, failing.get(key)))
    out.append(f"</section><script>{_JS}</script>")
    return "".join(out)


def _summary(verdict: Linearizability, count: int) -> str:
    words = {"ok": "linearizable", "violation": "not linearizable", "unknown": "undecided"}
    return f"{count} operations: {words.get(verdict.verdict, verdict.verdict)} ({verdict.reason})."


def _panel(key: str, ops: Sequence[Record], span: float, failure: object | None) -> str:
    clients = sorted({r.operation.client for r in ops}, key=str)
    lane = {c: i for i, c in enumerate(clients)}
    height = 24 + len(clients) * (LANE_H + LANE_GAP)
    scale = (WIDTH - LEFT - 10) / span

    def x(ms: float) -> float:
        return LEFT + min(ms, span) * scale

    order: dict[object, int] = {}
    stuck = None
    parts = []
    if failure is not None:
        order = {op: i for i, op in enumerate(failure.longest, start=1)}  # type: ignore[attr-defined]
        stuck = failure.stuck  # type: ignore[attr-defined]
        end = stuck.complete if math.isfinite(stuck.complete) else span
        parts.append(
            f'<rect class="prefix" x="{LEFT:.1f}" y="0" width="{x(end) - LEFT:.1f}" '
            f'height="{height}"><title>the shortest prefix with no linear order: up to '
            f"the completion of {esc(stuck.text())}</title></rect>"
        )
    for client, row in lane.items():
        y = 18 + row * (LANE_H + LANE_GAP)
        parts.append(f'<text class="lane" x="4" y="{y + 12}">client {esc(str(client))}</text>')
    for record in ops:
        op = record.operation
        y = 18 + lane[op.client] * (LANE_H + LANE_GAP)
        x0 = x(op.invoke)
        unknown = not math.isfinite(op.complete)
        x1 = x(span if unknown else op.complete)
        h = LANE_H // 3 if unknown else LANE_H
        css = "op stuck" if op == stuck else "op"
        done = record.complete_step if record.complete_step is not None else ""
        steps = f"step {record.invoke_step}" + (f" to {done}" if done != "" else "")
        nodes = ", ".join(map(str, record.nodes)) or "none"
        parts.append(
            f'<rect class="{css}" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 2):.1f}" '
            f'height="{h}" fill="{COLOURS[op.status]}" data-step="{record.invoke_step}" '
            f'data-done="{done or record.invoke_step}"><title>{esc(op.text())}; {steps}; '
            f"taken by node(s) {nodes}</title></rect>"
        )
        if op in order:
            parts.append(f'<text class="order" x="{x0 + 2:.1f}" y="{y + 11}">{order[op]}</text>')
    title = f"key {key}" + (": no linear order" if failure is not None else "")
    return (
        f"<h3>{esc(title)}</h3>"
        f'<svg width="{WIDTH:.0f}" height="{height}" viewBox="0 0 {WIDTH:.0f} {height}" '
        f'role="img" aria-label="history of key {esc(key)}">{"".join(parts)}</svg>'
    )
