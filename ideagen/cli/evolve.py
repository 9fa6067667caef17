"""`ideagen evolve`: a MAP-Elites search over ideas, with a live view of the grid."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ideagen.cli._common import add_model_options, model_from_args, open_store
from ideagen.evolve import (
    Evolve,
    EvolveError,
    EvolveEvent,
    EvolveResult,
    NicheFileError,
    load_niches,
)
from ideagen.evolve.archive import DEFAULT_PER_NICHE
from ideagen.evolve.niches import cell
from ideagen.ideafile import atomic_write_text
from ideagen.providers.base import ModelError
from ideagen.review.report import render_archive_report
from ideagen.template_prompt import TemplateError, bundled_template_dir, load_template


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evolve",
        help="quality-diversity search: the best ideas for each kind of change, within a budget",
        description="Keep a grid of niches (what an idea changes x how far it goes) with the "
        "best ideas found for each, bred from the seeds by mutation and crossover and judged by "
        "the review judge. The archive lives in the store: rerun the same command to continue; "
        "the budget counts every run of the archive. The elites are written to FILE: each "
        "niche's best first, best score first.",
    )
    parser.add_argument("--topic", required=True, help="what the ideas should be about")
    parser.add_argument(
        "--template",
        type=Path,
        help="template folder with prompt.json and experiment.py (default: the bundled one)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="idea file for the elites"
    )
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument(
        "--budget-calls",
        type=int,
        metavar="N",
        help="make at most N model calls in all, repairs and retries included",
    )
    budget.add_argument(
        "--max-cost", type=float, metavar="USD", help="stop once the archive has cost USD"
    )
    parser.add_argument(
        "--niches",
        type=Path,
        metavar="FILE",
        help="niche grid as JSON (two axes of bins; default: what the idea changes x how far "
        "it goes from the baseline)",
    )
    parser.add_argument(
        "--descriptors",
        choices=("model", "embedding"),
        help="how ideas are placed in niches: the model with a rubric, or the nearest niche "
        "description by embedding (default: model; embedding for the local model)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="children bred at once (default: 8 for API providers, 1 for the local model)",
    )
    parser.add_argument(
        "--per-niche",
        type=int,
        default=DEFAULT_PER_NICHE,
        metavar="N",
        help=f"elites each niche keeps (default: {DEFAULT_PER_NICHE}; 1 is classic MAP-Elites)",
    )
    parser.add_argument("--seed", type=int, help="random seed for choosing parents")
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="also write an HTML report of the grid"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only errors")
    output.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        template = load_template(args.template or bundled_template_dir())
        niches = load_niches(args.niches) if args.niches else None
    except (TemplateError, NicheFileError) as exc:
        print(f"ideagen evolve: {exc}", file=sys.stderr)
        return 2
    show = not (args.quiet or args.json)
    console = Console(stderr=True)
    with open_store(args) as store:
        try:
            model = model_from_args(args, store, None, console if show else Console(quiet=True))
            evolve = Evolve(
                model,
                store,
                template,
                topic=args.topic,
                out=args.out,
                max_calls=args.budget_calls,
                max_cost=args.max_cost,
                niches=niches,
                descriptors=args.descriptors,
                concurrency=args.concurrency,
                per_niche=args.per_niche,
                rng_seed=args.seed,
            )
            result = _run_live(evolve, console) if show else evolve.run()
        except (EvolveError, ModelError) as exc:
            print(f"ideagen evolve: {exc}", file=sys.stderr)
            return 2
        if args.report:
            atomic_write_text(
                args.report, render_archive_report(evolve.archive, result.spend, evolve.topic)
            )
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    elif show:
        _print_summary(result, evolve, console, args.report)
    if result.error:
        print(f"ideagen evolve: stopped: {result.error}", file=sys.stderr)
        return 1
    if result.stopped == "interrupted":
        print("ideagen evolve: interrupted; run it again to continue", file=sys.stderr)
        return 130
    return 0


def grid_table(evolve: Evolve) -> Table:
    """The archive as a table: one row per row bin, one column per column bin."""
    spec = evolve.spec
    held = evolve.archive.elites_by_niche()
    table = Table(title=f"{len(held)} of {len(spec.cells())} niches filled", show_lines=True)
    table.add_column(spec.rows.name, no_wrap=True)
    for column in spec.columns.bins:
        table.add_column(column.label, min_width=14, max_width=28, overflow="ellipsis")
    for row in spec.rows.bins:
        cells = []
        for column in spec.columns.bins:
            here = held.get(cell(row.key, column.key), [])
            if not here:
                cells.append(Text("·", style="dim"))
            else:
                best = here[0]
                colour = "green" if best.score >= 7 else "yellow" if best.score >= 5 else "red"
                more = f" (+{len(here) - 1})" if len(here) > 1 else ""
                cells.append(Text.assemble((f"{best.score:.1f} ", colour), best.idea.Name + more))
        table.add_row(row.label, *cells)
    return table


def _status_line(evolve: Evolve, working: dict[int, str]) -> Text:
    counts = evolve.counts
    spend = evolve.spend()
    budget = evolve.budget
    limit = (
        f"{spend.calls}/{budget.max_calls} calls"
        if budget.max_calls is not None
        else f"{spend.calls} calls"
    )
    cost = f"${spend.cost_usd:.4f}" + (f"/${budget.max_cost:.2f}" if budget.max_cost else "")
    line = (
        f"spend: {limit}, {cost}; this run: {counts.seeds} seeds, {counts.bred} bred, "
        f"{counts.entered} took a free place, {counts.replaced} replaced an elite, "
        f"{counts.lost} lost; rejected {counts.duplicate} duplicate, {counts.infeasible} "
        f"infeasible, {counts.gate} by the gate; {counts.invalid} invalid replies"
    )
    if counts.repaired:
        line += f"; {counts.repaired} passed after a repair"
    if counts.cut:
        line += f"; {counts.cut} cut by the budget before its score"
    if working:
        line += "\n" + ", ".join(f"#{w} {what}" for w, what in sorted(working.items()))
    return Text(line)


def _run_live(evolve: Evolve, console: Console) -> EvolveResult:
    if evolve.model.weak:
        console.print(
            "[yellow]The local model is small and slow: expect a minute or more per child, "
            "and weak judgments."
        )
    working: dict[int, str] = {}
    lock = threading.Lock()
    live = Live(console=console, refresh_per_second=4, transient=False)

    def render() -> Group:
        return Group(grid_table(evolve), _status_line(evolve, working))

    def report(event: EvolveEvent) -> None:
        with lock:
            if event.kind == "working":
                aim = f" -> {event.niche}" if event.niche else ""
                working[event.worker] = event.operator + aim
            else:
                working.pop(event.worker, None)
            if event.kind in ("rejected", "invalid"):
                live.console.print(f"[dim]#{event.worker} {event.operator}: {event.detail}")
            live.update(render())

    evolve.report = report
    with live:
        live.update(render())
        result = evolve.run()
        working.clear()
        live.update(render())
    if not console.is_terminal:
        console.line()  # a live view off a terminal ends without one
    return result


def _print_summary(
    result: EvolveResult, evolve: Evolve, console: Console, report: Path | None
) -> None:
    totals = result.totals
    filled = len({elite.niche for elite in result.elites})
    console.print(
        f"{result.out}: {len(result.elites)} elites of {filled} of {result.cells} niches, "
        "each niche's best first"
        + (f", then {_entries(result.kept)} it already held. " if result.kept else ". ")
        + f"Archive so far: {totals.judged} ideas judged, {totals.replaced} replacements; "
        f"rejected before judging: {totals.duplicate} duplicates, {totals.infeasible} "
        f"infeasible, {totals.gate} refused by the gate."
    )
    spend = result.spend
    console.print(
        f"spend (all runs of this archive): {spend.calls} calls ({spend.failed_calls} failed), "
        f"{spend.tokens_in:,} tokens in, {spend.tokens_out:,} out, ${spend.cost_usd:.4f}"
    )
    if result.stopped == "budget":
        console.print("stopped: the budget is spent; raise it and rerun to continue")
    if report:
        console.print(f"report: {report}")


def _entries(count: int) -> str:
    return f"{count} other entry" if count == 1 else f"{count} other entries"
