"""The HTML report: one self-contained file that opens from disk, with no server and nothing
fetched from elsewhere (styles, script and the score plot are all inline).

It holds a sortable table of the ideas in recommended order, a scatter plot of the judge's
scores, each idea's rationales, lint flags and novelty evidence (with links to the papers),
and the duplicate groups that were merged.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from ideagen.schema import RATING_FIELDS

if TYPE_CHECKING:
    from rich.table import Table

    from ideagen.evolve.archive import Archive
    from ideagen.results import IdeaOutcome, ResultsSummary
    from ideagen.review.pipeline import ReviewedIdea, ReviewResult
    from ideagen.store import ArchiveEntry, SpendSummary

STATUS_LABELS = {"novel": "novel", "not_novel": "not novel", "unknown": "unknown"}
POINT_COLORS = {"ready": "#2a7d4f", "flagged": "#c77c02", "not_novel": "#b3261e"}

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
  max-width: 1200px; padding: 1.5em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta { color: #555; }
.banner { background: #fff4d6; border: 1px solid #e0b100; padding: .7em 1em; border-radius: 6px;
  margin: 1em 0; }
.summary span { display: inline-block; margin-right: 1.5em; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .35em .5em; text-align: left;
  vertical-align: top; }
th { background: #f4f4f6; position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; white-space: nowrap; }
th button::after { content: " \\2195"; color: #999; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: #333; }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: #333; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.orig { color: #888; font-size: 12px; }
.tag { display: inline-block; padding: 0 .45em; border-radius: 4px; font-size: 12px;
  margin: 1px 2px 1px 0; background: #eee; }
.tag.novel { background: #dcf2e3; } .tag.not_novel { background: #f9d9d6; }
.tag.unknown { background: #eceff3; } .tag.flag { background: #fde7c3; }
.tag.conflict { background: #fff0a8; }
details { border: 1px solid #e4e4e4; border-radius: 6px; padding: .5em .8em; margin: .5em 0; }
details summary { cursor: pointer; font-weight: 600; }
.rationale dt { font-weight: 600; } .rationale dd { margin: 0 0 .4em 1em; }
.evidence li { margin-bottom: .3em; }
#filter { padding: .3em .5em; width: 20em; margin-bottom: .6em; }
svg text { font: 11px system-ui, sans-serif; fill: #333; }
"""

SCRIPT = """
(function () {
  var table = document.getElementById('ideas');
  var body = table.tBodies[0];
  function key(row, column, numeric) {
    var cell = row.cells[column];
    var value = cell.getAttribute('data-sort');
    if (value === null) { value = cell.textContent.trim(); }
    if (numeric) { var n = parseFloat(value); return isNaN(n) ? -Infinity : n; }
    return value.toLowerCase();
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
    var button = th.querySelector('button');
    if (!button) { return; }
    button.addEventListener('click', function () {
      var numeric = th.getAttribute('data-type') === 'number';
      var ascending = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) {
        other.removeAttribute('aria-sort');
      });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, column, numeric), y = key(b, column, numeric);
        var order = x < y ? -1 : x > y ? 1 : 0;
        if (order === 0) { order = key(a, 0, true) - key(b, 0, true); }
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  var filter = document.getElementById('filter');
  filter.addEventListener('input', function () {
    var needle = filter.value.toLowerCase();
    Array.prototype.forEach.call(body.rows, function (row) {
      row.hidden = needle !== '' && row.textContent.toLowerCase().indexOf(needle) < 0;
    });
  });
})();
"""


def render_report(result: ReviewResult) -> str:
    """The whole report as one HTML document."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>ideagen review: {_e(result.source.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Review of {_e(result.source.name)}</h1>",
        _header(result),
        "<h2>Scores</h2>",
        score_plot_svg(result),
        "<h2>Ideas in recommended order</h2>",
        _table(result),
        "<h2>Details</h2>",
        "".join(_details(item) for item in result.ideas),
        "<h2>Duplicate groups</h2>",
        _duplicates(result),
        "<h2>Run before</h2>",
        _earlier(result),
        "<h2>Cost</h2>",
        _costs(result),
        f"<script>{SCRIPT}</script>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _link(url: str | None, text: str) -> str:
    if url and url.startswith(("https://", "http://")):
        return f'<a href="{_e(url)}" rel="noreferrer">{_e(text)}</a>'
    return _e(text)


def _header(result: ReviewResult) -> str:
    merged = sum(len(item.duplicates) for item in result.ideas)
    flagged = sum(1 for item in result.ideas if item.lint)
    not_novel = sum(1 for item in result.ideas if item.novelty.status == "not_novel")
    judged = sum(1 for item in result.ideas if item.judge is not None)
    lines = [
        f'<p class="meta">Source: <code>{_e(result.source)}</code> · judge: '
        f"{_e(result.provider)} / {_e(result.model_name)} · novelty: {_e(result.novelty_mode)}"
        f" · unknown novelty written as <code>novel: "
        f"{'true' if result.unknown_as_novel else 'false'}</code>"
        f"{' · ranked by pairwise tournament' if result.tournament else ''}</p>",
        '<p class="summary">'
        f"<span><b>{result.input_count}</b> ideas read</span>"
        f"<span><b>{merged}</b> merged as duplicates</span>"
        f"<span><b>{len(result.ideas)}</b> reviewed</span>"
        f"<span><b>{judged}</b> scored by the judge</span>"
        f"<span><b>{flagged}</b> with lint flags</span>"
        f"<span><b>{not_novel}</b> not novel</span></p>",
    ]
    if result.weak_model:
        lines.append(
            '<p class="banner" id="low-confidence"><b>Low-confidence scores.</b> The judge was '
            f"the small local model ({_e(result.model_name)}). Its ratings and novelty verdicts "
            "are weak signals; rerun with a stronger provider (--provider anthropic or openai) "
            "before spending money on these ideas.</p>"
        )
    for warning in result.warnings:
        lines.append(f'<p class="banner">{_e(warning)}</p>')
    return "\n".join(lines)


def _status(item: ReviewedIdea) -> str:
    if item.novelty.status == "not_novel":
        return "not_novel"
    return "flagged" if item.lint else "ready"


def _table(result: ReviewResult) -> str:
    ranked = result.tournament is not None
    headers = [("#", "number"), ("Name", "text"), ("Title", "text")]
    headers += [(field, "number") for field in RATING_FIELDS]
    headers += [("Mean", "number")]
    if ranked:
        headers.append(("Rank score", "number"))
    headers += [("Literature", "text"), ("Lint flags", "number"), ("Merged", "number")]
    head = "".join(
        f'<th data-type="{kind}"><button type="button">{_e(label)}</button></th>'
        for label, kind in headers
    )
    rows = []
    for position, item in enumerate(result.ideas, start=1):
        ratings = []
        for field in RATING_FIELDS:
            value = getattr(item.reviewed, field)
            original = getattr(item.original, field)
            note = f' <span class="orig" title="author\'s rating">({original})</span>'
            ratings.append(
                f'<td class="num" data-sort="{value}">{value}'
                f"{note if item.judge is not None else ''}</td>"
            )
        cells = [
            f'<td class="num" data-sort="{position}">{position}</td>',
            f'<td><a href="#idea-{_e(item.reviewed.Name)}">{_e(item.reviewed.Name)}</a></td>',
            f"<td>{_e(item.reviewed.Title)}</td>",
            *ratings,
            f'<td class="num" data-sort="{item.score:.3f}">{item.score:.1f}</td>',
        ]
        if ranked:
            rank = item.rank_score if item.rank_score is not None else float("nan")
            cells.append(f'<td class="num" data-sort="{rank}">{rank:+.2f}</td>')
        status = item.novelty.status
        flags = "".join(f'<span class="tag flag">{_e(flag.kind)}</span>' for flag in item.lint)
        conflict = (
            f' <span class="tag conflict" title="{_e(item.novel_conflict)}">conflict</span>'
            if item.novel_conflict
            else ""
        )
        cells += [
            f'<td data-sort="{status}"><span class="tag {status}">'
            f"{STATUS_LABELS[status]}</span>{conflict}</td>",
            f'<td data-sort="{len(item.lint)}">{flags}</td>',
            f'<td class="num" data-sort="{len(item.duplicates)}">{len(item.duplicates)}</td>',
        ]
        rows.append(f'<tr data-name="{_e(item.reviewed.Name)}">{"".join(cells)}</tr>')
    return (
        '<input id="filter" type="search" placeholder="Filter ideas..." aria-label="Filter">'
        f'<table id="ideas"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _details(item: ReviewedIdea) -> str:
    idea = item.reviewed
    parts = [
        f'<details id="idea-{_e(idea.Name)}"><summary>{_e(idea.Name)}: {_e(idea.Title)}</summary>',
        f"<p>{_e(idea.Experiment)}</p>",
    ]
    if item.judge is not None:
        rationale = "".join(
            f"<dt>{field} {getattr(item.judge, field)}/10 "
            f'<span class="orig">(author: {getattr(item.original, field)})</span></dt>'
            f"<dd>{_e(text)}</dd>"
            for field, text in item.judge.rationales().items()
        )
        parts.append(f'<dl class="rationale">{rationale}</dl>')
    else:
        parts.append(
            f"<p><b>Not scored by the judge</b> ({_e(item.judge_error or 'judge off')}); "
            "the author's ratings are kept.</p>"
        )
    if item.rank_score is not None:
        parts.append(f"<p>Tournament rank score: {item.rank_score:+.2f}</p>")
    if item.lint:
        flags = "".join(
            f"<li><b>{_e(flag.kind)}</b>: {_e(flag.message)} (<q>{_e(flag.evidence)}</q>)</li>"
            for flag in item.lint
        )
        parts.append(f"<p><b>Lint flags</b></p><ul>{flags}</ul>")
    parts.append(_novelty(item))
    if item.duplicates:
        merged = "".join(
            f"<li>{_e(d.name)} (entry {d.index}): {_e(d.title)}"
            f"{' — ' + _e(d.reason) if d.reason else ''}</li>"
            for d in item.duplicates
        )
        parts.append(f"<p><b>Merged duplicates</b></p><ul>{merged}</ul>")
    parts.append("</details>")
    return "\n".join(parts)


def _novelty(item: ReviewedIdea) -> str:
    novelty = item.novelty
    lines = [
        f'<p><b>Novelty</b>: <span class="tag {novelty.status}">'
        f"{STATUS_LABELS[novelty.status]}</span> ({_e(novelty.mode)}) {_e(novelty.reason)}</p>"
    ]
    if item.original.novel is not None:
        lines.append(
            f"<p>The input said <code>novel: {str(item.original.novel).lower()}</code>; written: "
            f"<code>novel: {_json_novel(item.reviewed.novel)}</code></p>"
        )
    if item.novel_conflict:
        lines.append(f'<p class="banner conflict"><b>Conflict</b>: {_e(item.novel_conflict)}</p>')
    if novelty.paper is not None:
        lines.append(
            f"<p>Already done by: {_link(novelty.paper.url, novelty.paper.citation())}</p>"
        )
    if novelty.queries:
        queries = ", ".join(f"<q>{_e(query)}</q>" for query in novelty.queries)
        lines.append(f"<p>Queries: {queries}</p>")
    if novelty.papers:
        evidence = "".join(
            f"<li>{_link(paper.url, paper.citation())} <span class='orig'>{_e(paper.source)}"
            f"{f', similarity {paper.similarity:.2f}' if paper.similarity is not None else ''}"
            "</span></li>"
            for paper in novelty.papers
        )
        lines.append(f'<ul class="evidence">{evidence}</ul>')
    return "\n".join(lines)


def _json_novel(value: bool | None) -> str:
    return "(none: The AI Scientist checks it)" if value is None else str(value).lower()


def _duplicates(result: ReviewResult) -> str:
    groups = [item for item in result.ideas if item.duplicates]
    if not groups:
        return "<p>No duplicates were found.</p>"
    rows = []
    for item in groups:
        members = "".join(
            f"<li>{_e(d.name)} (entry {d.index}): {_e(d.title)}"
            f"{' — ' + _e(d.reason) if d.reason else ''}</li>"
            for d in item.duplicates
        )
        rows.append(
            f'<div class="group"><p>Kept <a href="#idea-{_e(item.reviewed.Name)}">'
            f"{_e(item.reviewed.Name)}</a> (entry {item.position}): {_e(item.reviewed.Title)}"
            f"</p><ul>{members}</ul></div>"
        )
    return "\n".join(rows)


def _earlier(result: ReviewResult) -> str:
    seen = [(item, item.earlier) for item in result.ideas if item.earlier is not None]
    if not seen:
        return (
            "<p>No idea here, nor a near-duplicate of one, has results in the store "
            "(<code>ideagen results</code> records them).</p>"
        )
    rows = "".join(
        f"<li><b>{_e(item.reviewed.Name)}</b>: {_e(earlier.name)} ran before "
        f"(<code>{_e(earlier.folder)}</code>): {_e(earlier.summary())}</li>"
        for item, earlier in seen
    )
    return f'<ul id="run-before">{rows}</ul>'


def outcomes_section(outcomes: list[IdeaOutcome]) -> str:
    """The table of what The AI Scientist did with each idea (`ideagen results`)."""
    from ideagen.results import format_change

    head = "".join(
        f"<th>{_e(label)}</th>"
        for label in ("Name", "Ran", "Best run", "Change", "Noise (±)", "Verdict", "Paper")
    )
    head += "<th>Review</th><th>Judge (I/F/N)</th><th>Topic</th>"
    rows = []
    for outcome in outcomes:
        metric = outcome.metric or ""
        change = outcome.main_delta()
        noise = [v for k, v in outcome.noise.items() if k.rsplit(".", 1)[-1] == metric]
        review = outcome.review
        judge = outcome.provenance.judge if outcome.provenance else None
        cells = [
            f"<td>{_e(outcome.name)}<br><span class='orig'>{_e(outcome.folder)}</span></td>",
            f"<td>{'yes' if outcome.ran else 'no'}"
            f" <span class='orig'>({len(outcome.runs)} of {outcome.attempts} runs)</span></td>",
            f"<td>{_e(outcome.best_run or '')}</td>",
            f"<td class='num'>{_e(format_change(metric, change)) if change is not None else ''}"
            f" <span class='orig'>{_e(metric)}</span></td>",
            f"<td class='num'>{_e(format_change(metric, max(noise))[1:]) if noise else '?'}</td>",
            f"<td>{_e(outcome.verdict or '')}</td>",
            f"<td>{'yes' if outcome.paper else 'no'}</td>",
            f"<td>{_e(f'{review.Decision} (Overall {review.Overall:g})') if review else ''}</td>",
            f"<td>{_e('/'.join(str(v) for v in judge.values())) if judge else ''}</td>",
            f"<td>{_e(outcome.provenance.topic or '') if outcome.provenance else ''}</td>",
        ]
        rows.append(f'<tr data-name="{_e(outcome.name)}">{"".join(cells)}</tr>')
    return (
        f'<table id="outcomes"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def render_results_report(summary: ResultsSummary) -> str:
    """A page of its own for `ideagen results --report`."""
    title = f"What The AI Scientist did: {summary.experiment or summary.directory}"
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
        f'<p class="meta">Results: <code>{_e(summary.directory)}</code>'
        f"{f' · ideas: <code>{_e(summary.ideas_file)}</code>' if summary.ideas_file else ''}"
        " · a change counts only beyond the noise: twice the combined standard error of the "
        "two runs' means (from final_info.json's stderrs)</p>"
        f"<h2>Outcomes</h2>{outcomes_section(summary.outcomes)}</body></html>\n"
    )


def _costs(result: ReviewResult) -> str:
    spend = result.spend
    if spend is None or spend.calls == 0:
        return "<p>No model calls were made.</p>"
    return (
        f"<p>{spend.calls} model calls ({spend.failed_calls} failed), "
        f"{spend.tokens_in:,} tokens in, {spend.tokens_out:,} out "
        f"({spend.cache_read_tokens:,} read from the prompt cache), "
        f"estimated cost ${spend.cost_usd:.4f}, {spend.latency_s:.1f} s of model time.</p>"
    )


def score_plot_svg(result: ReviewResult, width: int = 640, height: int = 420) -> str:
    """Feasibility against Interestingness, dot size by Novelty, colour by status.

    Ideas with the same two scores are spread on a small circle so that none hides another.
    """
    left, right, top, bottom = 50, 150, 20, 45
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(value: float) -> float:
        return left + (value - 0.5) / 10 * plot_w

    def y(value: float) -> float:
        return top + plot_h - (value - 0.5) / 10 * plot_h

    parts = [
        f'<svg id="score-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Feasibility against Interestingness">',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#ccc"/>',
    ]
    for tick in range(1, 11):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{top}" x2="{x(tick):.1f}" y2="{top + plot_h}" '
            'stroke="#eee"/>'
            f'<line x1="{left}" y1="{y(tick):.1f}" x2="{left + plot_w}" y2="{y(tick):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{x(tick):.1f}" y="{top + plot_h + 15}" text-anchor="middle">{tick}</text>'
            f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">'
        "Feasibility</text>"
        f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
        'text-anchor="middle">Interestingness</text>'
    )
    stacks: dict[tuple[int, int], int] = {}
    for item in result.ideas:
        cell = (item.reviewed.Feasibility, item.reviewed.Interestingness)
        stacks[cell] = stacks.get(cell, 0) + 1
    placed: dict[tuple[int, int], int] = {}
    for item in result.ideas:
        idea = item.reviewed
        cell = (idea.Feasibility, idea.Interestingness)
        slot = placed.get(cell, 0)
        placed[cell] = slot + 1
        spread = 0.0 if stacks[cell] == 1 else 0.28
        angle = 2 * math.pi * slot / max(stacks[cell], 1)
        cx = x(idea.Feasibility + spread * math.cos(angle))
        cy = y(idea.Interestingness + spread * math.sin(angle))
        radius = 3 + idea.Novelty * 0.7
        parts.append(
            f'<circle class="point" data-name="{_e(idea.Name)}" cx="{cx:.1f}" cy="{cy:.1f}" '
            f'r="{radius:.1f}" fill="{POINT_COLORS[_status(item)]}" fill-opacity="0.75" '
            f'stroke="#fff"><title>{_e(idea.Name)}: I{idea.Interestingness} '
            f"F{idea.Feasibility} N{idea.Novelty}</title></circle>"
        )
    legend_x = left + plot_w + 15
    for row, (status, label) in enumerate(
        (("ready", "no flags"), ("flagged", "lint flags"), ("not_novel", "not novel"))
    ):
        parts.append(
            f'<circle cx="{legend_x + 6}" cy="{top + 12 + row * 20}" r="6" '
            f'fill="{POINT_COLORS[status]}"/>'
            f'<text x="{legend_x + 18}" y="{top + 16 + row * 20}">{label}</text>'
        )
    parts.append(
        f'<text x="{legend_x}" y="{top + 85}">dot size: Novelty</text>'
        f'<text x="{legend_x}" y="{top + 100}">{len(result.ideas)} ideas</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def summary_table(result: ReviewResult) -> Table:
    """The on-screen table: the ideas in recommended order with the judge's ratings (I, F, N;
    the author's originals are in the report)."""
    from rich import box
    from rich.table import Table

    title = f"{result.source.name}: {len(result.ideas)} ideas in recommended order"
    if result.weak_model:
        title += " (low-confidence scores: small local judge)"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    longest = max((len(item.reviewed.Name) for item in result.ideas), default=4)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("Name", no_wrap=True, min_width=min(longest, 40), overflow="ellipsis")
    for label in ("I", "F", "N", "Mean"):
        table.add_column(label, justify="right", no_wrap=True)
    if result.tournament is not None:
        table.add_column("Rank", justify="right", no_wrap=True)
    table.add_column("Novelty", no_wrap=True)
    table.add_column("Flags", overflow="fold")
    table.add_column("Dup", justify="right", no_wrap=True)
    earlier = any(item.earlier is not None for item in result.ideas)
    if earlier:
        cells = [item.earlier.short() for item in result.ideas if item.earlier is not None]
        table.add_column("Run before", overflow="fold", min_width=max(map(len, cells)))
    for position, item in enumerate(result.ideas, start=1):
        ratings = [str(getattr(item.reviewed, field)) for field in RATING_FIELDS]
        if item.judge is None:
            ratings = [f"[dim]{value}[/]" for value in ratings]
        row = [str(position), item.reviewed.Name, *ratings, f"{item.score:.1f}"]
        if result.tournament is not None:
            row.append(f"{item.rank_score:+.2f}" if item.rank_score is not None else "")
        status = item.novelty.status
        colour = {"novel": "green", "not_novel": "red", "unknown": "dim"}[status]
        row += [
            f"[{colour}]{STATUS_LABELS[status]}[/]"
            + (" [yellow]conflict[/]" if item.novel_conflict else ""),
            ", ".join(flag.kind for flag in item.lint),
            str(len(item.duplicates)) if item.duplicates else "",
        ]
        if earlier:
            row.append(item.earlier.short() if item.earlier is not None else "")
        table.add_row(*row)
    return table


# the evolve archive (`ideagen evolve --report`)

ARCHIVE_STYLE = """
#archive-grid td.niche { text-align: center; min-width: 9em; height: 3.2em; cursor: pointer;
  border: 1px solid #fff; }
#archive-grid td.niche.empty { background: #f4f4f6; color: #999; cursor: default; }
#archive-grid td.niche a { color: #1d1d1f; text-decoration: none; display: block; }
#archive-grid td.niche .score { font-weight: 600; font-size: 1.1em; }
#archive-grid th.row { text-align: right; white-space: nowrap; }
.lineage li { margin-bottom: .2em; }
.scale span { display: inline-block; width: 2.2em; text-align: center; font-size: 12px; }
"""

ARCHIVE_SCRIPT = """
(function () {
  function open(hash) {
    var target = hash && document.getElementById(hash.slice(1));
    if (target && target.tagName === 'DETAILS') { target.open = true; target.scrollIntoView(); }
  }
  document.querySelectorAll('#archive-grid td.niche[data-entry]').forEach(function (cell) {
    cell.addEventListener('click', function (event) {
      event.preventDefault();
      open('#elite-' + cell.getAttribute('data-entry'));
    });
  });
  open(location.hash);
})();
"""


def score_colour(score: float | None) -> str:
    """Red (1) through yellow to green (10), light enough for dark text."""
    if score is None:
        return "#f4f4f6"
    hue = max(0.0, min(1.0, (score - 1) / 9)) * 120
    return f"hsl({hue:.0f}, 65%, 78%)"


def archive_section(archive: Archive) -> str:
    """The grid (rows x columns of niches, colour = the elite's judge score; a click opens the
    elite with its lineage), then each elite's details."""
    spec = archive.spec
    elites = archive.elites()
    head = "".join(f"<th>{_e(b.label)}</th>" for b in spec.columns.bins)
    rows = []
    for row in spec.rows.bins:
        cells = []
        for column in spec.columns.bins:
            niche = f"{row.key}/{column.key}"
            elite = elites.get(niche)
            if elite is None:
                cells.append(f'<td class="niche empty" data-niche="{_e(niche)}">empty</td>')
                continue
            cells.append(
                f'<td class="niche" data-niche="{_e(niche)}" data-entry="{elite.id}" '
                f'data-score="{elite.score}" style="background: {score_colour(elite.score)}" '
                f'title="{_e(elite.idea.Title)}"><a href="#elite-{elite.id}">'
                f'<span class="score">{elite.score:.1f}</span><br>{_e(elite.idea.Name)}</a></td>'
            )
        rows.append(f'<tr><th class="row">{_e(row.label)}</th>{"".join(cells)}</tr>')
    scale = "".join(f'<span style="background: {score_colour(s)}">{s}</span>' for s in range(1, 11))
    grid = (
        f'<table id="archive-grid"><thead><tr><th>{_e(spec.rows.name)} \\ '
        f"{_e(spec.columns.name)}</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f'<p class="scale">judge score (mean of I, F, N): {scale}</p>'
    )
    details = "".join(_elite_details(archive, elite) for elite in archive.recommended())
    return grid + "<h2>Elites, best first</h2>" + (details or "<p>The archive is empty.</p>")


def _elite_details(archive: Archive, elite: ArchiveEntry) -> str:
    idea = elite.idea
    parts = [
        f'<details id="elite-{elite.id}"><summary>{elite.score:.1f} · {_e(idea.Name)}: '
        f"{_e(idea.Title)} <span class='orig'>({_e(archive.spec.label(elite.niche))})"
        "</span></summary>",
        f"<p>{_e(idea.Experiment)}</p>",
    ]
    if elite.judge:
        from ideagen.review.judge import JudgeScore

        judged = JudgeScore.model_validate_json(elite.judge)
        rationale = "".join(
            f"<dt>{field} {getattr(judged, field)}/10</dt><dd>{_e(text)}</dd>"
            for field, text in judged.rationales().items()
        )
        parts.append(f'<dl class="rationale">{rationale}</dl>')
    if elite.reason:
        parts.append(f'<p class="orig">{_e(elite.reason)}</p>')
    steps = []
    for step in archive.lineage(elite):
        score = f"{step.score:.1f}" if step.score is not None else "not judged"
        steps.append(
            f'<li style="margin-left: {step.depth * 1.2:.1f}em" data-entry="{step.entry_id}">'
            f"<b>{_e(step.name)}</b>: {_e(step.title)} <span class='orig'>({_e(step.operator)}, "
            f"{_e(step.status)}, {score})</span></li>"
        )
    parts.append(f'<p><b>Lineage</b></p><ul class="lineage">{"".join(steps)}</ul></details>')
    return "\n".join(parts)


def render_archive_report(
    archive: Archive, spend: SpendSummary | None = None, topic: str | None = None
) -> str:
    """A page of its own for `ideagen evolve --report`."""
    counts = archive.counts()
    filled = len(archive.elites())
    title = f"Evolve archive: {topic}" if topic else f"Evolve archive {archive.key}"
    cost = f" · {spend.calls} model calls, ${spend.cost_usd:.4f}" if spend and spend.calls else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}{ARCHIVE_STYLE}</style></head><body><h1>{_e(title)}</h1>"
        f'<p class="meta">{filled} of {len(archive.spec.cells())} niches filled · '
        f"{counts.judged} ideas judged, {counts.replaced} replacements, {counts.lost} "
        f"challengers lost · rejected before judging: {counts.duplicate} duplicates, "
        f"{counts.infeasible} infeasible{cost}</p>"
        f"<h2>Grid</h2>{archive_section(archive)}<script>{ARCHIVE_SCRIPT}</script>"
        "</body></html>\n"
    )
