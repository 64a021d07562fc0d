"""The space-time diagram: one lane per node, one arrow per delivered message.

Each arrow runs from its send step to its delivery step; roles and terms
are shaded, faults and commits marked, and the violation highlighted. Long
runs are drawn in full detail only in a window of `WINDOW_STEPS` steps
around the violation (or the end); a band above the diagram (the overview)
summarises roles and terms over the whole run. Everything is inline SVG, so
the page opens offline.
"""

from __future__ import annotations

import dataclasses
import html
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virtraft.adapter import MessageRole
from virtraft.report.observe import Replay, Segment
from virtraft.sim.events import Heal
from virtraft.trace.format import Trace

WINDOW_STEPS = 600  # steps drawn in full detail
WINDOW_AFTER_STEPS = 40  # of them, how many after the violation (when the trace has them)
OVERVIEW_WIDTH_PX = 1200

LANE_H = 40
LANE_GAP = 10
AXIS_H = 34
NET_H = 22
DIAGRAM_TOP = AXIS_H + NET_H + 10
LABEL_W = 96

# One meaning per colour: roles are warm and pale, messages saturated by
# Raft role, and each kind of mark its own; red is only the violation and
# magenta only the decisive steps. The legend lists every one.
ROLE_COLORS = {
    "leader": "#f2b33d",
    "candidate": "#f6a5c0",
    "precandidate": "#fbd5e2",
    "follower": "#dce6f2",
    "down": "#b0b0b0",
}
MARK_COLORS = {
    "violation": "#d62728",
    "decisive": "#e6007e",
    "partition": "#607d8b",
    "heal": "#17becf",
    "lost": "#555555",
    "crash": "#000000",
    "commit": "#2ca02c",
    "member": "#9e9d24",
    "snapshot": "#6d4c41",
    "client": "#5c6bc0",
    "dup": "#c0ca33",
}
MESSAGE_COLORS = {
    MessageRole.VOTE: "#7d3cb5",
    MessageRole.VOTE_RESPONSE: "#b88ddb",
    MessageRole.APPEND: "#1f66b0",
    MessageRole.APPEND_RESPONSE: "#59a5d8",
    MessageRole.SNAPSHOT: "#d35400",
    MessageRole.SNAPSHOT_RESPONSE: "#e8a06a",
}
EXTRA_COLORS = ("#2e8b57", "#8b6914", "#b03060", "#008b8b", "#556b2f", "#6a5acd", "#444444")

esc = html.escape


def _num(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _css_name(kind: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", kind) or "_"


@dataclass(frozen=True, slots=True)
class Focus:
    """Which violation the page shows and where the detailed window is."""

    violation: dict[str, Any] | None
    step: int | None
    start: int
    end: int


def _shown_violation(trace: Trace, replay: Replay) -> dict[str, Any] | None:
    if replay.violation is not None:
        return dataclasses.asdict(replay.violation)
    recorded = trace.verdict.get("violation")
    return recorded if isinstance(recorded, dict) else None


def focus_of(trace: Trace, replay: Replay) -> Focus:
    """The violation to show (the replay's, else the recorded one) and the
    window of steps around it that the diagram draws in detail."""
    violation = _shown_violation(trace, replay)
    total = replay.steps
    step = violation.get("step") if violation else None
    if not isinstance(step, int) or not 1 <= step <= total:
        step = None
    if total <= WINDOW_STEPS:
        return Focus(violation, step, 1, max(total, 1))
    end = total
    if step is not None:
        end = min(total, max(step + WINDOW_AFTER_STEPS, WINDOW_STEPS))
    return Focus(violation, step, end - WINDOW_STEPS + 1, end)


def message_colors(kinds: Sequence[str], roles: dict[str, MessageRole]) -> dict[str, str]:
    """A colour per message kind: by its Raft role when the implementation
    says what it is, else one of the extra colours."""
    colors = {k: MESSAGE_COLORS[roles[k]] for k in kinds if roles.get(k) in MESSAGE_COLORS}
    extra = iter(EXTRA_COLORS * (1 + len(kinds) // len(EXTRA_COLORS)))
    for kind in sorted(set(kinds) - set(colors)):
        colors[kind] = next(extra)
    return colors


class _Svg:
    """Geometry of the detailed diagram: step s is drawn at the middle of its column."""

    def __init__(self, replay: Replay, focus: Focus) -> None:
        self.replay = replay
        self.start = focus.start
        self.end = focus.end
        n = self.end - self.start + 1
        self.pps = min(24.0, max(4.0, 1400.0 / n))
        self.left = 12.0
        self.width = self.left * 2 + n * self.pps
        self.row = {node: i for i, node in enumerate(replay.nodes)}
        self.height = DIAGRAM_TOP + len(replay.nodes) * (LANE_H + LANE_GAP) + 8

    def x(self, step: float) -> float:
        return self.left + (step - self.start + 0.5) * self.pps

    def clamp_x(self, step: float) -> float:
        return min(max(self.x(step), 0.0), self.width)

    def top(self, node: int) -> float:
        return DIAGRAM_TOP + self.row[node] * (LANE_H + LANE_GAP)

    def y(self, node: int) -> float:
        return self.top(node) + LANE_H / 2

    def visible(self, step: int) -> bool:
        return self.start <= step <= self.end


def _tick_every(pps: float, span: int) -> int:
    for every in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        if every * pps >= 70:
            return every
    return max(1, span)


def _diagram(trace: Trace, replay: Replay, focus: Focus, colors: dict[str, str]) -> str:
    g = _Svg(replay, focus)
    out: list[str] = []
    add = out.append
    add(
        f'<svg class="diagram" id="diagram" data-first-step="{g.start}" '
        f'data-last-step="{g.end}" width="{_num(g.width)}" height="{g.height}" '
        f'viewBox="0 0 {_num(g.width)} {g.height}" role="img" '
        f'aria-label="space-time diagram, steps {g.start} to {g.end}">'
    )
    add("<defs>")
    add(
        f'<clipPath id="clip"><rect x="0" y="0" width="{_num(g.width)}" '
        f'height="{g.height}"/></clipPath>'
    )
    for kind, color in sorted(colors.items()):
        add(
            f'<marker id="ah-{_css_name(kind)}" viewBox="0 0 8 8" refX="7.5" refY="4" '
            f'markerWidth="5" markerHeight="5" orient="auto"><path d="M0,0L8,4L0,8z" '
            f'fill="{color}"/></marker>'
        )
    add("</defs>")
    add('<g clip-path="url(#clip)">')
    _axis(g, add)
    _network_row(replay, g, add)
    for node in replay.nodes:
        _lane(replay, g, node, add)
    _phase_line(trace, replay, g, add)
    _marks(replay, g, add)
    _messages(replay, g, add)
    if focus.violation is not None and focus.step is not None and g.visible(focus.step):
        _violation_marker(replay, g, focus, add)
    add("</g></svg>")
    return "".join(out)


def _axis(g: _Svg, add: Callable[[str], None]) -> None:
    every = _tick_every(g.pps, g.end - g.start + 1)
    first = ((g.start + every - 1) // every) * every
    add('<g class="axis">')
    for step in range(first, g.end + 1, every):
        x = _num(g.x(step))
        add(
            f'<line x1="{x}" y1="{AXIS_H - 6}" x2="{x}" y2="{g.height}" class="grid"/>'
            f'<text x="{x}" y="12" class="tick" text-anchor="middle">{step}</text>'
            f'<text x="{x}" y="25" class="tick ms" text-anchor="middle">{g.replay.ms(step)} ms'
            "</text>"
        )
    add("</g>")


def partition_spans(replay: Replay) -> list[tuple[int, int, str]]:
    """(from step, to step, words) for every stretch of a partitioned network."""
    spans = []
    open_at: tuple[int, str] | None = None
    for row in replay.faults:
        if row.what in ("partition", "heal"):
            if open_at is not None:
                spans.append((open_at[0], row.step, open_at[1]))
                open_at = None
            if row.what == "partition":
                open_at = (row.step, row.detail)
    if open_at is not None:
        spans.append((open_at[0], replay.steps + 1, open_at[1]))
    return spans


def _network_row(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    y = AXIS_H + 4
    add(f'<g class="network"><text x="{_num(g.left)}" y="{y + 14}" class="netlabel">network</text>')
    for start, end, text in partition_spans(replay):
        if end < g.start or start > g.end:
            continue
        x1 = g.clamp_x(start)
        x2 = g.clamp_x(end)
        add(
            f'<rect class="partitioned" x="{_num(x1)}" y="{y}" width="{_num(max(x2 - x1, 1))}" '
            f'height="{NET_H - 4}"><title>{esc(text)} (steps {start}–{end})</title></rect>'
        )
        if x2 - x1 > 60:
            add(
                f'<text class="netlabel" x="{_num(x1 + 3)}" y="{y + 13}">'
                f"{esc(text[: max(8, int((x2 - x1) / 6))])}</text>"
            )
    add("</g>")


def _lane(replay: Replay, g: _Svg, node: int, add: Callable[[str], None]) -> None:
    top = g.top(node)
    y = g.y(node)
    add(f'<g class="lane" data-node="{node}">')
    for seg in replay.segments.get(node, ()):
        if seg.end <= g.start - 1 or seg.start > g.end:
            continue
        x1 = g.clamp_x(seg.start)
        x2 = g.clamp_x(seg.end)
        if x2 <= x1:
            continue
        add(
            f'<rect class="role role-{_css_name(seg.state)}" x="{_num(x1)}" y="{_num(top)}" '
            f'width="{_num(x2 - x1)}" height="{LANE_H}"><title>node {node} {esc(seg.state)}, '
            f"term {seg.term}, steps {seg.start}–{seg.end - 1} "
            f"({replay.ms(seg.start)}–{replay.ms(seg.end - 1)} ms)</title></rect>"
        )
        if x2 - x1 >= 22:
            add(
                f'<text class="term" x="{_num(x1 + 2)}" y="{_num(top + 10)}">'
                f"{'t' + str(seg.term) if seg.state != 'down' else 'down'}</text>"
            )
        elif x2 - x1 >= 10 and seg.state == "leader":
            add(f'<text class="term" x="{_num(x1 + 1)}" y="{_num(top + 10)}">{seg.term}</text>')
    add(f'<line class="lane-line" x1="0" y1="{_num(y)}" x2="{_num(g.width)}" y2="{_num(y)}"/>')
    add("</g>")


def _phase_line(trace: Trace, replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    """Where the liveness phase begins: the first event after the safety steps."""
    step = trace.options.steps + 1
    events = trace.events
    if step > replay.steps or not g.visible(step) or not isinstance(events[step - 1], Heal):
        return
    x = _num(g.x(step) - g.pps / 2)
    add(
        f'<g class="phase"><line x1="{x}" y1="{AXIS_H}" x2="{x}" y2="{g.height}"/>'
        f'<text x="{x}" y="{g.height - 2}" dx="3">liveness phase →</text></g>'
    )


_MARK_SHAPES = {
    "crash": ("✕", "crash"),
    "restart": ("↻", "restart"),
    "member": ("◆", "member"),
    "snapshot": ("▣", "snapshot"),
    "install": ("▤", "install"),
    "client": ("▾", "client"),
    "dup": ("+", "dup"),
}


def _marks(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    for mark in replay.marks:
        if not g.visible(mark.step):
            continue
        x = _num(g.x(mark.step))
        title = f"<title>step {mark.step} ({replay.ms(mark.step)} ms): {esc(mark.text)}</title>"
        if mark.kind in ("partition", "heal"):
            add(
                f'<g class="{mark.kind}"><line x1="{x}" y1="{AXIS_H}" x2="{x}" '
                f'y2="{g.height}"/>{title}</g>'
            )
            continue
        if mark.node is None or mark.node not in g.row:
            continue
        top = g.top(mark.node)
        if mark.kind == "commit":
            add(
                f'<circle class="commit" cx="{x}" cy="{_num(top + LANE_H - 6)}" r="3">'
                f"{title}</circle>"
            )
            continue
        symbol, css = _MARK_SHAPES.get(mark.kind, ("•", "other"))
        yy = top + (13 if mark.kind in ("client", "dup") else LANE_H - 2)
        add(f'<text class="mark {css}" x="{x}" y="{_num(yy)}">{symbol}{title}</text>')


def _messages(replay: Replay, g: _Svg, add: Callable[[str], None]) -> None:
    for arrow in replay.arrows:
        if not g.visible(arrow.step):
            continue
        kind = _css_name(arrow.kind)
        classes = f"msg m-{kind}"
        if arrow.entries:
            classes += " carries"
        if arrow.prevote:
            classes += " prevote"
        if arrow.to_down:
            classes += " to-down"
        if arrow.send_step < g.start:
            classes += " early"
        add(
            f'<line class="{classes}" x1="{_num(g.x(arrow.send_step))}" '
            f'y1="{_num(g.y(arrow.src))}" x2="{_num(g.x(arrow.step))}" '
            f'y2="{_num(g.y(arrow.dst))}" marker-end="url(#ah-{kind})">'
            f"<title>{esc(arrow.kind)} {arrow.src}→{arrow.dst}, sent step {arrow.send_step} "
            f"({arrow.sent_ms} ms), delivered step {arrow.step} ({replay.ms(arrow.step)} ms)"
            f"{' to a down node' if arrow.to_down else ''}: {esc(arrow.text)}</title></line>"
        )
    for loss in replay.losses:
        if not g.visible(loss.step):
            continue
        if loss.src not in g.row or loss.dst not in g.row:
            continue
        y_src = g.y(loss.src)
        y_mid = (y_src + g.y(loss.dst)) / 2
        x2 = g.x(loss.step)
        if loss.how == "cut":
            title = f"{loss.kind} {loss.src}→{loss.dst} sent on a cut link at step {loss.step}"
            add(
                f'<g class="lost"><path d="M{_num(x2 - 2)},{_num(y_src - 7)}l4,4m0,-4l-4,4"/>'
                f"<title>{esc(title)}</title></g>"
            )
            continue
        send = loss.send_step if loss.send_step is not None else loss.step
        title = (
            f"{loss.kind} {loss.src}→{loss.dst} sent at step {send}, dropped at step "
            f"{loss.step} ({replay.ms(loss.step)} ms)"
        )
        add(
            f'<g class="dropped"><line x1="{_num(g.x(send))}" y1="{_num(y_src)}" '
            f'x2="{_num(x2)}" y2="{_num(y_mid)}"/><path d="M{_num(x2 - 3)},{_num(y_mid - 3)}'
            f'l6,6m0,-6l-6,6"/><title>{esc(title)}</title></g>'
        )


def _violation_marker(replay: Replay, g: _Svg, focus: Focus, add: Callable[[str], None]) -> None:
    violation = focus.violation
    assert violation is not None and focus.step is not None
    x = g.x(focus.step)
    name = str(violation.get("invariant", "violation"))
    message = str(violation.get("message", ""))
    words = f"{name} at step {focus.step}: {message}"
    short = words if len(words) <= 110 else words[:109] + "…"
    anchor_end = x > g.width - 420
    tx = x - 8 if anchor_end else x + 8
    add(
        f'<g class="violation" id="violation" data-step="{focus.step}" '
        f'data-invariant="{esc(name)}">'
    )
    add(
        f'<rect class="vband" x="{_num(x - max(g.pps, 6) / 2)}" y="{AXIS_H}" '
        f'width="{_num(max(g.pps, 6))}" height="{g.height - AXIS_H}"/>'
    )
    for node in violation.get("nodes") or ():
        if isinstance(node, int) and node in g.row:
            add(f'<circle class="vnode" cx="{_num(x)}" cy="{_num(g.y(node))}" r="7"/>')
    add(
        f'<text class="vtext" x="{_num(tx)}" y="{AXIS_H + 15}" '
        f'text-anchor="{"end" if anchor_end else "start"}">{esc(short)}</text>'
    )
    add(f"<title>{esc(words)}</title></g>")


def _overview(trace: Trace, replay: Replay, focus: Focus) -> str:
    """The whole run in one band per lane: the dominant role per pixel column,
    terms where they change, and a bracket around the detailed window."""
    total = replay.steps + 1  # steps 0..steps
    width = OVERVIEW_WIDTH_PX
    columns = min(total, width)
    per = total / columns
    px = width / columns
    lane_h = 14
    top = 20
    height = top + len(replay.nodes) * (lane_h + 4) + 18
    out = [
        f'<svg class="overview" width="{width + LABEL_W}" height="{height}" '
        f'viewBox="0 0 {width + LABEL_W} {height}" role="img" '
        f'aria-label="whole run, steps 1 to {replay.steps}">'
    ]
    add = out.append
    for start, end, text in partition_spans(replay):
        x1 = LABEL_W + start / per * px
        x2 = LABEL_W + end / per * px
        add(
            f'<rect class="partitioned" x="{_num(x1)}" y="4" width="{_num(max(x2 - x1, 1))}" '
            f'height="10"><title>{esc(text)} (steps {start}–{end})</title></rect>'
        )
    add('<text x="2" y="13" class="netlabel">network</text>')
    for i, node in enumerate(replay.nodes):
        y = top + i * (lane_h + 4)
        add(
            f'<g class="band" data-node="{node}"><text x="2" y="{y + 11}" class="bandlabel">'
            f"node {node}</text>"
        )
        cells = _dominant(replay.segments.get(node, []), columns, per)
        _band(node, cells, y, lane_h, per, px, add)
        add("</g>")
    wx1 = LABEL_W + focus.start / per * px
    wx2 = LABEL_W + (focus.end + 1) / per * px
    add(
        f'<rect class="window" id="overview-window" data-left="{LABEL_W}" '
        f'data-px-per-step="{px / per:.6f}" x="{_num(wx1)}" y="1" '
        f'width="{_num(max(wx2 - wx1, 2))}" height="{height - 16}"><title>drawn in detail '
        "below (click the band to move it)</title></rect>"
    )
    if focus.step is not None:
        vx = _num(LABEL_W + focus.step / per * px)
        add(f'<line class="overview-violation" x1="{vx}" y1="1" x2="{vx}" y2="{height - 16}"/>')
    for step, x, anchor in ((1, LABEL_W, "start"), (replay.steps, LABEL_W + width, "end")):
        add(  # anchored inwards at the edges: never clipped
            f'<text class="tick" x="{_num(x)}" y="{height - 3}" '
            f'text-anchor="{anchor}">step {step} · {replay.ms(step)} ms</text>'
        )
    add("</svg>")
    return "".join(out)


def _band(
    node: int,
    cells: Sequence[tuple[str, int] | None],
    y: int,
    lane_h: int,
    per: float,
    px: float,
    add: Callable[[str], None],
) -> None:
    """One node's overview band: a rectangle per run of equal columns, and
    its term where there is room for the label."""
    columns = len(cells)
    last_label_x = -1e9
    run_start = 0
    for c in range(1, columns + 1):
        if c < columns and cells[c] == cells[run_start]:
            continue
        state, term = cells[run_start] if cells[run_start] else ("", 0)
        if state:
            x1 = LABEL_W + run_start * px
            add(
                f'<rect class="role role-{_css_name(state)}" x="{_num(x1)}" y="{y}" '
                f'width="{_num((c - run_start) * px)}" height="{lane_h}"><title>node '
                f"{node} {esc(state)} term {term}, steps ≈{int(run_start * per)}–"
                f"{int(c * per)}</title></rect>"
            )
            if state != "down" and x1 - last_label_x >= 34:
                add(f'<text class="term" x="{_num(x1 + 1)}" y="{y + 10}">t{term}</text>')
                last_label_x = x1
        run_start = c


def _dominant(
    segments: Sequence[Segment], columns: int, per: float
) -> list[tuple[str, int] | None]:
    """For each column (covering `per` steps), the (role, term) that held longest."""
    weights: list[Counter[tuple[str, int]]] = [Counter() for _ in range(columns)]
    for seg in segments:
        s, e = float(seg.start), float(seg.end)
        c = int(s / per)
        while c < columns and c * per < e:
            lo, hi = max(s, c * per), min(e, (c + 1) * per)
            if hi > lo:
                weights[c][(seg.state, seg.term)] += hi - lo
            c += 1
    cells: list[tuple[str, int] | None] = []
    for counter in weights:
        if not counter:
            cells.append(None)
            continue
        best = max(counter.items(), key=lambda kv: (kv[1], kv[0][0] == "leader", kv[0][1]))
        cells.append(best[0])
    return cells


def _labels_svg(replay: Replay, g_height: int) -> str:
    out = [
        f'<svg class="labels" width="{LABEL_W}" height="{g_height}" '
        f'viewBox="0 0 {LABEL_W} {g_height}">'
    ]
    out.append(
        '<text x="4" y="12" class="tick">step</text>'
        '<text x="4" y="25" class="tick ms">virtual time</text>'
    )
    for i, node in enumerate(replay.nodes):
        y = DIAGRAM_TOP + i * (LANE_H + LANE_GAP) + LANE_H / 2 + 4
        out.append(
            f'<text class="lane-label" data-node="{node}" x="4" y="{_num(y)}">node {node}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _legend(colors: dict[str, str], kinds: Sequence[str]) -> str:
    roles = "".join(
        f'<span><i class="swatch" style="background:{c}"></i>{esc(r)}</span>'
        for r, c in ROLE_COLORS.items()
    )
    msgs = "".join(
        f'<span><i class="swatch" style="background:{colors[k]};height:3px"></i>{esc(k)}</span>'
        for k in kinds
    )
    m = MARK_COLORS

    def item(color: str, text: str) -> str:
        symbol, words = text.split(" ", 1)
        return f'<span><b style="color:{color}">{symbol}</b> {words}</span>'

    marks = "".join(
        [
            "<span>thick arrow: carries entries</span><span>dashed: pre-vote</span>",
            "<span>dotted: to a down node</span>",
            item(m["violation"], "▮ violation (the only red)"),
            item(m["decisive"], "▮ decisive step"),
            item(m["lost"], "✕ dropped or lost on a cut link"),
            item(m["crash"], "✕ crash"),
            item(m["crash"], "↻ restart"),
            item(m["commit"], "● commit index advanced"),
            item(m["member"], "◆ membership change"),
            item(m["snapshot"], "▣ snapshot taken · ▤ installed"),
            item(m["client"], "▾ client command"),
            item(m["dup"], "+ duplicated"),
            item(m["partition"], "▬ partition (band and dashed line)"),
            item(m["heal"], "┆ heal"),
        ]
    )
    return (
        f'<div class="legend"><div>roles: {roles}</div><div>messages: {msgs}</div>'
        f"<div>{marks}</div></div>"
    )


def diagram_section(trace: Trace, replay: Replay, focus: Focus, colors: dict[str, str]) -> str:
    """The page's diagram section: the overview band for a long run, the
    legend, and the detailed diagram scrolled to the violation."""
    kinds = sorted({a.kind for a in replay.arrows} | {loss.kind for loss in replay.losses})
    out = ["<h2>Space-time diagram</h2>"]
    whole = focus.start <= 1 and focus.end >= replay.steps
    if whole:
        out.append(
            f'<p class="note">All {replay.steps} steps, left to right; one lane per '
            "node; an arrow per delivered message, from its send to its delivery. "
            "Hover over anything for details; click an event for every node's state.</p>"
        )
    else:
        where = (
            f"ending {focus.end - focus.step} steps after the violation"
            if focus.step is not None
            else "ending at the last step"
        )
        out.append(
            f'<p class="note">The run has {replay.steps} steps. The band below summarises '
            f"all of them (each lane coloured by the role it held longest in each pixel "
            f"column, with terms); the diagram under it draws steps {focus.start}–{focus.end} "
            f"in full detail at first ({where}): click the band, or use the controls, to "
            "move, zoom out to the whole run or into a few steps. Arrows of messages sent "
            "before the window start off its left edge.</p>"
        )
    out.append(f'<div class="diagram-wrap">{_overview(trace, replay, focus)}</div>')
    out.append(_legend(colors, kinds))
    g = _Svg(replay, focus)
    focus_x = _num(g.x(focus.step)) if focus.step is not None else _num(g.width)
    out.append(
        f'<div class="diagram-wrap"><div id="diagram-labels">{_labels_svg(replay, g.height)}</div>'
        f'<div class="diagram-scroll" id="diagram-scroll" data-focus-x="{focus_x}">'
        f"{_diagram(trace, replay, focus, colors)}</div></div>"
    )
    return "".join(out)


def message_css(colors: dict[str, str]) -> str:
    """The stroke colour of each message kind's arrows, as CSS rules."""
    return "".join(
        f".m-{_css_name(k)}{{stroke:{c}}}marker.m-{_css_name(k)} path{{fill:{c};stroke:none}}"
        for k, c in sorted(colors.items())
    )
