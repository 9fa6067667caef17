"""The HTML report: one self-contained file that opens from disk, with no server and nothing
fetched from elsewhere (styles, script and the score plot are all inline).

It holds a sortable table of the ideas in recommended order, a scatter plot of the judge's
scores, each idea's rationales, lint flags and novelty evidence (with links to the papers),
and the duplicate groups that were merged. The markup lives in Jinja2 templates under
templates/ (autoescaped); this module gathers what they show.
"""

from __future__ import annotations

import math
from functools import cache
from typing import TYPE_CHECKING

import jinja2
from markupsafe import Markup

from ideagen.schema import RATING_FIELDS

if TYPE_CHECKING:
    from rich.table import Table

    from ideagen.evolve.archive import Archive
    from ideagen.results import IdeaOutcome, ResultsSummary
    from ideagen.review.pipeline import ReviewedIdea, ReviewResult
    from ideagen.store import SpendSummary

STATUS_LABELS = {"novel": "novel", "not_novel": "not novel", "unknown": "unknown"}
POINT_COLORS = {"ready": "#2a7d4f", "flagged": "#c77c02", "not_novel": "#b3261e"}


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("ideagen.review", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals.update(
        status_labels=STATUS_LABELS,
        rating_fields=RATING_FIELDS,
        score_colour=score_colour,
        nan=float("nan"),
    )
    return environment


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)


def render_report(result: ReviewResult) -> str:
    """The whole report as one HTML document."""
    headers = [("#", "number"), ("Name", "text"), ("Title", "text")]
    headers += [(field, "number") for field in RATING_FIELDS]
    headers += [("Mean", "number")]
    if result.tournament is not None:
        headers.append(("Rank score", "number"))
    headers += [("Literature", "text"), ("Lint flags", "number"), ("Merged", "number")]
    counts = {
        "merged": sum(len(item.duplicates) for item in result.ideas),
        "flagged": sum(1 for item in result.ideas if item.lint),
        "not_novel": sum(1 for item in result.ideas if item.novelty.status == "not_novel"),
        "judged": sum(1 for item in result.ideas if item.judge is not None),
    }
    return _render(
        "review.html.j2",
        result=result,
        headers=headers,
        counts=counts,
        score_plot=score_plot_svg(result),
    )


def _status(item: ReviewedIdea) -> str:
    if item.novelty.status == "not_novel":
        return "not_novel"
    return "flagged" if item.lint else "ready"


def outcomes_section(outcomes: list[IdeaOutcome]) -> Markup:
    """The table of what The AI Scientist did with each idea (`ideagen results`)."""
    from ideagen.results import format_change

    rows = []
    for outcome in outcomes:
        metric = outcome.metric or ""
        change = outcome.main_delta()
        noise = [v for k, v in outcome.noise.items() if k.rsplit(".", 1)[-1] == metric]
        judge = outcome.provenance.judge if outcome.provenance else None
        rows.append(
            {
                "outcome": outcome,
                "metric": metric,
                "change": format_change(metric, change) if change is not None else "",
                "noise": format_change(metric, max(noise))[1:] if noise else "?",
                "judge": "/".join(str(v) for v in judge.values()) if judge else "",
            }
        )
    return Markup(_render("outcomes.html.j2", rows=rows))


def render_results_report(summary: ResultsSummary) -> str:
    """A page of its own for `ideagen results --report`."""
    title = f"What The AI Scientist did: {summary.experiment or summary.directory}"
    return _render(
        "results.html.j2",
        title=title,
        summary=summary,
        outcomes=outcomes_section(summary.outcomes),
    )


def score_plot_svg(result: ReviewResult, width: int = 640, height: int = 420) -> Markup:
    """Feasibility against Interestingness, dot size by Novelty, colour by status.

    Ideas with the same two scores are spread on a small circle so that none hides another.
    """
    left, right, top, bottom = 50, 150, 20, 45
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(value: float) -> float:
        return left + (value - 0.5) / 10 * plot_w

    def y(value: float) -> float:
        return top + plot_h - (value - 0.5) / 10 * plot_h

    stacks: dict[tuple[int, int], int] = {}
    for item in result.ideas:
        cell = (item.reviewed.Feasibility, item.reviewed.Interestingness)
        stacks[cell] = stacks.get(cell, 0) + 1
    placed: dict[tuple[int, int], int] = {}
    points = []
    for item in result.ideas:
        idea = item.reviewed
        cell = (idea.Feasibility, idea.Interestingness)
        slot = placed.get(cell, 0)
        placed[cell] = slot + 1
        spread = 0.0 if stacks[cell] == 1 else 0.28
        angle = 2 * math.pi * slot / max(stacks[cell], 1)
        points.append(
            {
                "idea": idea,
                "cx": x(idea.Feasibility + spread * math.cos(angle)),
                "cy": y(idea.Interestingness + spread * math.sin(angle)),
                "radius": 3 + idea.Novelty * 0.7,
                "colour": POINT_COLORS[_status(item)],
            }
        )
    return Markup(
        _render(
            "score_plot.svg.j2",
            width=width,
            height=height,
            left=left,
            top=top,
            plot_w=plot_w,
            plot_h=plot_h,
            ticks=[{"value": tick, "x": x(tick), "y": y(tick)} for tick in range(1, 11)],
            points=points,
            legend=(("ready", "no flags"), ("flagged", "lint flags"), ("not_novel", "not novel")),
            colours=POINT_COLORS,
            legend_x=left + plot_w + 15,
            count=len(result.ideas),
        )
    )


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


def score_colour(score: float | None) -> str:
    """Red (1) through yellow to green (10), light enough for dark text."""
    if score is None:
        return "#f4f4f6"
    hue = max(0.0, min(1.0, (score - 1) / 9)) * 120
    return f"hsl({hue:.0f}, 65%, 78%)"


def archive_section(archive: Archive) -> Markup:
    """The grid (rows x columns of niches, colour = the best elite's judge score; a click
    opens that elite with its lineage), then each elite's details."""
    from ideagen.review.judge import JudgeScore

    details = [
        {
            "elite": elite,
            "judged": JudgeScore.model_validate_json(elite.judge) if elite.judge else None,
            "lineage": archive.lineage(elite),
        }
        for elite in archive.recommended()
    ]
    return Markup(
        _render(
            "archive_section.html.j2",
            spec=archive.spec,
            held=archive.elites_by_niche(),
            details=details,
        )
    )


def render_archive_report(
    archive: Archive, spend: SpendSummary | None = None, topic: str | None = None
) -> str:
    """A page of its own for `ideagen evolve --report`."""
    return _render(
        "archive.html.j2",
        title=f"Evolve archive: {topic}" if topic else f"Evolve archive {archive.key}",
        archive=archive,
        counts=archive.counts(),
        filled=len(archive.elites_by_niche()),
        spend=spend,
        grid=archive_section(archive),
    )
