"""The campaign index: every seed's outcome on one page, failures first.

The index links each failing seed's report and trace by a relative path, so
a campaign's output directory can be moved or archived as it is. The
report beside each failing trace is written by `write_seed_report`, which
`virtraft fuzz` hands to the campaign as its `on_failure` hook.
"""

from __future__ import annotations

import html
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from virtraft.report.html import CSS, kv_table, write_report
from virtraft.run.campaign import SeedResult
from virtraft.run.factory import load_factory
from virtraft.run.seed import resolve_options
from virtraft.sim.options import SimOptions

esc = html.escape


def write_seed_report(trace_path: str, factory: str) -> None:
    """Write a failing seed's report beside its trace (seed-N.html beside
    seed-N.jsonl), where the campaign index looks for it, replayed with the
    campaign's own node factory."""
    write_report(
        trace_path, trace_path.removesuffix(".jsonl") + ".html", factory=load_factory(factory)
    )


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 safety violation`, `2 safety violations`: counts that agree in number."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def signature(result: SeedResult) -> str:
    """What a failure is, numbers aside: seeds that fail the same way share it."""
    if result.safety != "ok":
        what = f"{result.invariant}: {result.message or ''}"
    else:
        what = f"liveness: {result.liveness_reason}"
    return _NUMBER.sub("N", what)


_NUMBER = re.compile(r"\d+")


def write_campaign_index(
    out_dir: str,
    results: Sequence[SeedResult],
    *,
    options: SimOptions | None = None,
    swarm: bool = False,
    keep: frozenset[str] = frozenset(),
    factory: str | None = None,
    note: str = "",
) -> str:
    """Write out_dir/index.html: every seed's outcome and options, failures
    grouped by invariant and by signature, with relative links to the
    failing seeds' reports (seed-N.html beside seed-N.jsonl). Written for
    clean and interrupted campaigns alike. Returns its path."""
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    path = base / "index.html"
    results = sorted(results, key=lambda r: r.seed)
    failed = [r for r in results if r.failed]
    safety = sum(1 for r in results if r.safety != "ok")
    liveness = sum(1 for r in results if r.safety == "ok" and r.liveness == "failed")
    checked = [r for r in results if r.linearizability != "skipped"]
    lin = sum(r.linearizable_failed for r in checked)
    lin_text = f", {lin} not linearizable" if checked else ""
    drawn = _seed_options(results, options, swarm, keep, factory)
    slow = [r for r in results if r.slow]
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>virtraft campaign: {len(failed)} of {plural(len(results), 'seed')} failed</title>",
        f"<style>{CSS}{_CSS}</style></head><body><main>",
        "<h1>virtraft campaign</h1>",
        f'<div class="headline {"bad" if failed else "good"}" id="headline">'
        f"{plural(len(results), 'seed')}: {plural(safety, 'safety violation')}, "
        f"{plural(liveness, 'liveness failure')} (stuck), "
        f"{len(slow)} slow (progress past its bound: a warning){lin_text}</div>",
    ]
    if note:
        out.append(f'<p class="headline warn">{esc(note)}</p>')
    head = []
    if options is not None:
        head.append(("options", esc(options_words(options, SimOptions()))))
        head.append(("swarm", "yes: each seed draws its own options (below)" if swarm else "no"))
    if factory:
        head.append(("node factory", f"<code>{esc(factory)}</code>"))
    if head:
        out.append(kv_table(head))
    if failed:
        out.append("<h2>Failures by invariant</h2>")
        out.append(
            _groups(
                Counter(r.invariant or r.liveness_name or "liveness" for r in failed), "invariant"
            )
        )
        out.append("<h2>Failures by signature</h2>")
        out.append(_groups(Counter(signature(r) for r in failed), "signature"))
    if slow:
        out.append("<h2>Slow seeds</h2>")
        out.append(
            kv_table(
                [
                    (f"seed {r.seed}", esc(f"{r.liveness_name}: {r.liveness_took_ms} ms"))
                    for r in slow
                ]
            )
        )
    out.append("<h2>Every seed</h2>")
    out.append(
        '<p class="controls"><label>filter <input type="search" id="seed-filter" '
        'placeholder="seed, invariant, words…"></label> <label><input type="checkbox" '
        'id="failed-only"> failing seeds only</label> <span id="seed-count"></span> '
        '<span class="note">Click a column\'s head to sort by it; click a group above to '
        "filter by it.</span></p>"
    )
    out.append(_seed_table(results, base, drawn))
    out.append(f"</main><script>{_JS}</script></body></html>\n")
    path.write_text("".join(out), encoding="utf-8")
    return str(path)


def _seed_options(
    results: Sequence[SeedResult],
    options: SimOptions | None,
    swarm: bool,
    keep: frozenset[str],
    factory: str | None,
) -> dict[int, str]:
    """Each seed's options as words, where they differ from the campaign's
    (the swarm's draw); drawn again from the seed, exactly as the run did."""
    if options is None or not swarm:
        return {}
    make = load_factory(factory) if factory else None
    return {
        r.seed: options_words(resolve_options(r.seed, options, swarm, keep, make), options)
        for r in results
    }


def _groups(counts: Counter[str], column: str) -> str:
    rows = "".join(
        f'<tr><td><a href="#" class="group" data-filter="{esc(name)}">{esc(name)}</a></td>'
        f"<td>{count}</td></tr>"
        for name, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    return f'<table class="groups"><tr><th>{column}</th><th>seeds</th></tr>{rows}</table>'


def _seed_table(results: Sequence[SeedResult], base: Path, drawn: dict[int, str]) -> str:
    rows = []
    for r in results:
        links = []
        if r.trace:
            trace = Path(r.trace)
            report = trace.with_suffix(".html")
            if report.exists():
                links.append(f'<a class="report" href="{esc(_relative(report, base))}">report</a>')
            links.append(f'<a class="trace" href="{esc(_relative(trace, base))}">trace</a>')
        named = r.safety != "ok" or r.linearizable_failed
        what = r.message if named else (r.liveness_reason if r.failed or r.slow else "")
        css = ' class="failed"' if r.failed else ""
        rows.append(
            f'<tr{css} data-signature="{esc(signature(r)) if r.failed else ""}">'
            f"<td>{r.seed}</td><td>{esc(r.safety)}</td><td>{esc(r.invariant or '')}"
            f"</td><td>{'' if r.step is None else r.step}</td><td>{esc(r.liveness)}</td>"
            f'<td>{r.steps}</td><td class="mono">{esc(r.digest)}</td>'
            f"<td>{' · '.join(links)}</td><td>{esc(what or '')}</td>"
            f'<td class="opts">{esc(drawn.get(r.seed, ""))}</td></tr>'
        )
    return (
        '<table id="seeds"><thead><tr><th data-sort="num">seed</th><th>safety</th>'
        '<th>invariant</th><th data-sort="num">step</th><th>liveness</th>'
        '<th data-sort="num">steps</th><th>digest</th><th>files</th><th>what happened</th>'
        f"<th>options drawn</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def options_words(options: SimOptions, base: SimOptions) -> str:
    """The fields of `options` that differ from `base`, as name=value."""
    mine, theirs = options.to_json(), base.to_json()
    parts = [
        f"{name}={value}"
        for name, value in mine.items()
        if name != "node" and value != theirs.get(name)
    ]
    parts += [
        f"node.{name}={value}"
        for name, value in mine["node"].items()
        if value != theirs["node"].get(name)
    ]
    return ", ".join(parts) or "as the campaign's"


_CSS = """
#seeds th{cursor:pointer}#seeds th.sorted-up:after{content:" ▲"}
#seeds th.sorted-down:after{content:" ▼"}#seeds tr.failed td{background:#fdecea}
#seeds td.opts{font-size:12px;color:#444;max-width:40em}
"""

# Sorting by a column, filtering by words or by a group; no network.
_JS = """
(function(){var t=document.getElementById('seeds');if(!t)return;
var body=t.tBodies[0],f=document.getElementById('seed-filter'),
only=document.getElementById('failed-only'),count=document.getElementById('seed-count');
function apply(){var q=(f.value||'').toLowerCase(),n=0;
Array.prototype.forEach.call(body.rows,function(r){var ok=(!only.checked||
r.classList.contains('failed'))&&(!q||r.textContent.toLowerCase().indexOf(q)>=0||
(r.getAttribute('data-signature')||'').toLowerCase()===q);r.style.display=ok?'':'none';
if(ok)n++;});count.textContent=n+' of '+body.rows.length+' seeds shown';}
f.addEventListener('input',apply);only.addEventListener('change',apply);
document.querySelectorAll('a.group').forEach(function(a){a.addEventListener('click',
function(e){e.preventDefault();f.value=a.getAttribute('data-filter');only.checked=true;
apply();t.scrollIntoView();});});
Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){th.addEventListener(
'click',function(){var up=!th.classList.contains('sorted-up'),num=th.getAttribute(
'data-sort')==='num';Array.prototype.forEach.call(th.parentNode.cells,function(c){
c.classList.remove('sorted-up','sorted-down');});th.classList.add(up?'sorted-up':
'sorted-down');var rows=Array.prototype.slice.call(body.rows);rows.sort(function(a,b){
var x=a.cells[i].textContent,y=b.cells[i].textContent,d=num?(Number(x||-1)-Number(y||-1)):
x.localeCompare(y);return up?d:-d;});rows.forEach(function(r){body.appendChild(r);});});});
apply();})();
"""


def _relative(target: Path, base: Path) -> str:
    """A link from index.html to `target`, with forward slashes (a URL path)."""
    rel = os.path.relpath(target.resolve(), base.resolve())
    return "/".join(rel.split(os.sep))
