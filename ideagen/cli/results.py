"""`ideagen results DIR`: what The AI Scientist did with each idea, kept in the store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ideagen.cli._common import open_store
from ideagen.ideafile import atomic_write_text
from ideagen.results import (
    ResultsError,
    ResultsSummary,
    format_change,
    read_results,
    save_outcomes,
)
from ideagen.review.report import render_results_report

EXIT_OK, EXIT_FAILED = 0, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        help="what The AI Scientist did with each idea: runs, change against run_0, paper, review",
        description="Read The AI Scientist's results folder (results/NAME: one folder per idea) "
        "and show, per idea, whether its experiments ran, the best run's change in each metric "
        "against the baseline run_0 with the seed-to-seed noise, whether a paper was written "
        "and its review. The outcomes are stored beside each idea's history in the store.",
    )
    parser.add_argument(
        "directory",
        type=Path,
        metavar="DIR",
        help="a results folder (AI_SCIENTIST_DIR/results/NAME), or The AI Scientist's folder "
        "with --experiment NAME",
    )
    parser.add_argument(
        "--experiment",
        metavar="NAME",
        help="the template name: DIR is then The AI Scientist's folder; its results/NAME is read",
    )
    parser.add_argument(
        "--ideas",
        type=Path,
        metavar="FILE",
        help="the ideas.json that was run (default: DIR's templates/NAME/ideas.json when present)",
    )
    parser.add_argument(
        "--metric",
        metavar="NAME",
        help="the main metric in final_info.json (default: test accuracy when present, else the "
        "first accuracy, else a validation or evaluation loss)",
    )
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument(
        "--lower-is-better",
        dest="higher_is_better",
        action="store_false",
        default=None,
        help="the main metric improves downwards (the default for losses and times)",
    )
    direction.add_argument(
        "--higher-is-better",
        dest="higher_is_better",
        action="store_true",
        help="the main metric improves upwards (the default for anything else)",
    )
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    parser.add_argument("--report", type=Path, metavar="FILE.html", help="write an HTML page too")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    directory = args.directory
    if args.experiment:
        directory = directory / "results" / args.experiment
    store = open_store(args)
    try:
        summary = read_results(
            directory,
            experiment=args.experiment,
            ideas_file=args.ideas,
            metric=args.metric,
            higher_is_better=args.higher_is_better,
            store=store,
        )
        save_outcomes(store, summary)
    except ResultsError as exc:
        print(f"ideagen results: {exc}")
        return EXIT_FAILED
    finally:
        store.close()
    if args.report:
        atomic_write_text(args.report, render_results_report(summary))
    if args.json:
        print(json.dumps({"ideas": [o.public() for o in summary.outcomes]}, indent=2))
        return EXIT_OK
    console = Console()
    console.print(results_table(summary))
    errors = Console(stderr=True)
    for outcome in summary.outcomes:
        for problem in outcome.problems:
            errors.print(f"{outcome.folder}: {problem}", highlight=False, markup=False)
    errors.print(
        "A change counts only beyond the noise: twice the combined standard error of the two "
        "runs' means (final_info.json's stderrs). With one seed the noise is unknown.",
        highlight=False,
    )
    if args.report:
        errors.print(f"wrote {args.report}")
    return EXIT_OK


def results_table(summary: ResultsSummary) -> Table:
    metrics = sorted({o.metric for o in summary.outcomes if o.metric})
    count = len(summary.outcomes)
    title = f"{summary.experiment}: {count} idea{'' if count == 1 else 's'}"
    if metrics:
        title += f"; change = best run - run_0 in {', '.join(metrics)}"
    rows = []
    for outcome in summary.outcomes:
        metric = outcome.metric or ""
        change = outcome.main_delta()
        noise = [v for k, v in outcome.noise.items() if k.rsplit(".", 1)[-1] == metric]
        review = outcome.review
        paper = "paper" if outcome.paper else "no paper"
        rows.append(
            [
                f"{'yes' if outcome.ran else 'no'} {len(outcome.runs)}/{outcome.attempts}",
                outcome.best_run or "",
                format_change(metric, change) if change is not None else "",
                format_change(metric, max(noise)).lstrip("+") if noise else "?",
                outcome.verdict or "",
                f"{review.Decision} {review.Overall:g}" if review else paper,
            ]
        )
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    longest = max((len(outcome.name) for outcome in summary.outcomes), default=4)
    table.add_column("Name", overflow="fold", min_width=min(longest, 16))
    labels = ("Ran", "Best", "Change", "Noise ±", "Verdict", "Paper")
    for column, label in enumerate(labels):
        width = max([len(label), *(len(row[column]) for row in rows)])
        table.add_column(label, no_wrap=True, min_width=width)
    for outcome, row in zip(summary.outcomes, rows, strict=True):
        table.add_row(outcome.name, *row)
    return table
