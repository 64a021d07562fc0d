"""The campaign index: every seed's outcome on one page, failures first.

The index links each failing seed's report and trace by a relative path, so
a campaign's output directory can be moved or archived as it is. The
report beside each failing trace is written by `write_seed_report`, which
`virtraft fuzz` hands to the campaign as its `on_failure` hook.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from virtraft.report.html import CSS, kv_table, write_report
from virtraft.run.campaign import SeedResult
from virtraft.run.factory import load_factory

esc = html.escape


def write_seed_report(trace_path: str, factory: str) -> None:
    """Write a failing seed's report beside its trace (seed-N.html beside
    seed-N.jsonl), where the campaign index looks for it, replayed with the
    campaign's own node factory."""
    write_report(
        trace_path, trace_path.removesuffix(".jsonl") + ".html", factory=load_factory(factory)
    )


def write_campaign_index(out_dir: str, results: Sequence[SeedResult]) -> str:
    """Write out_dir/index.html: every seed's outcome, with relative links to the
    failing seeds' reports (seed-N.html beside seed-N.jsonl). Returns its path."""
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
    out = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        f"<title>virtraft campaign: {len(failed)} of {len(results)} seeds failed</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>virtraft campaign</h1>",
        f'<div class="headline {"bad" if failed else "good"}">{len(results)} seeds: '
        f"{safety} safety violations, {liveness} liveness failures{lin_text}</div>",
    ]
    invariants = Counter(r.invariant for r in results if r.invariant)
    if invariants:
        out.append(kv_table([(name, str(count)) for name, count in invariants.most_common()]))
    if failed:
        out.append("<h2>Failing seeds</h2>")
        out.append(_seed_table(failed, base))
    out.append("<h2>Every seed</h2>")
    table = _seed_table(results, base)
    if len(results) > 300:
        table = f"<details><summary>show all {len(results)} seeds</summary>{table}</details>"
    out.append(table)
    out.append("</main></body></html>\n")
    path.write_text("".join(out), encoding="utf-8")
    return str(path)


def _seed_table(results: Sequence[SeedResult], base: Path) -> str:
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
        what = r.message if named else (r.liveness_reason if r.failed else "")
        css = ' class="in-window"' if r.failed else ""
        rows.append(
            f"<tr{css}><td>{r.seed}</td><td>{esc(r.safety)}</td><td>{esc(r.invariant or '')}"
            f"</td><td>{'' if r.step is None else r.step}</td><td>{esc(r.liveness)}</td>"
            f'<td>{r.steps}</td><td class="mono">{esc(r.digest)}</td>'
            f"<td>{' · '.join(links)}</td><td>{esc(what or '')}</td></tr>"
        )
    return (
        "<table><tr><th>seed</th><th>safety</th><th>invariant</th><th>step</th>"
        "<th>liveness</th><th>steps</th><th>digest</th><th>files</th><th>what happened</th>"
        f"</tr>{''.join(rows)}</table>"
    )


def _relative(target: Path, base: Path) -> str:
    """A link from index.html to `target`, with forward slashes (a URL path)."""
    rel = os.path.relpath(target.resolve(), base.resolve())
    return "/".join(rel.split(os.sep))
