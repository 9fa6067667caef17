"""`ideagen review FILE`: validate, merge duplicates, judge, lint, check novelty, order,
then write the ideas for the AI Scientist, a table on screen and an HTML report."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ideagen.cli._common import (
    add_model_options,
    check_outputs,
    model_from_args,
    open_store,
    positive_int,
    show_estimate,
)
from ideagen.handover import (
    DEFAULT_SCIENTIST_MODEL,
    Handover,
    HandoverError,
    back_up,
    next_steps,
    target_for,
)
from ideagen.ideafile import save_ideas, write_output
from ideagen.providers import ModelError
from ideagen.review.pipeline import (
    ReviewInputError,
    ReviewOptions,
    load_for_review,
    review_estimate,
    review_file,
)
from ideagen.review.report import render_report, summary_table
from ideagen.template_prompt import TemplateError, load_template

EXIT_OK, EXIT_INCOMPLETE, EXIT_FAILED = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "review",
        help="judge, lint, check novelty and order an idea file; write JSON and an HTML report",
        description="Review an AI Scientist idea file before spending money on it: validate, "
        "merge duplicates, score each idea with an independent judge, flag what the template "
        "cannot do, check novelty, and write the ideas in recommended order.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the idea file (ideas.json)")
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="where to write the reviewed ideas (default: FILE's name + .reviewed.json)",
    )
    parser.add_argument(
        "--into",
        type=Path,
        metavar="AI_SCIENTIST_DIR/templates/NAME",
        help="write the reviewed ideas as that template's ideas.json, where The AI Scientist's "
        "--skip-idea-generation reads them (an existing one is backed up first), and print "
        "the command to run",
    )
    parser.add_argument(
        "--scientist-model",
        default=DEFAULT_SCIENTIST_MODEL,
        metavar="MODEL",
        help="the --model shown in the launch_scientist.py command "
        f"(default: {DEFAULT_SCIENTIST_MODEL}, The AI Scientist's own default)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="FILE.html",
        help="where to write the HTML report (default: FILE + .review.html)",
    )
    add_model_options(parser, budget=True)
    parser.add_argument(
        "--novelty",
        choices=("online", "offline", "off"),
        help="online: OpenAlex and Semantic Scholar; offline: --corpus; "
        "default: offline when --corpus is given, else online",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        metavar="FILE",
        help="local literature for offline novelty (JSONL or BibTeX)",
    )
    parser.add_argument(
        "--unknown-as",
        choices=("novel", "not-novel"),
        default="novel",
        help="what an unknown novelty (nothing found) becomes in `novel` for ideas without "
        "one (default: novel); an input `novel` is never replaced by unknown",
    )
    parser.add_argument(
        "--override-novel",
        action="store_true",
        help="let ideagen replace an input `novel: false` (The AI Scientist's verdict): with "
        "the check on, by ideagen's verdict; with --novelty off, by no verdict, so The AI "
        "Scientist checks it again",
    )
    parser.add_argument(
        "--rank", action="store_true", help="order by a pairwise tournament (more model calls)"
    )
    parser.add_argument(
        "--rounds", type=positive_int, metavar="N", help="tournament rounds (default: log2(n) + 1)"
    )
    parser.add_argument("--limit", type=int, metavar="N", help="review only the first N ideas")
    parser.add_argument(
        "--template",
        type=Path,
        metavar="DIR",
        help="template folder whose task description the judge reads and whose code and "
        "metrics the ideas are checked against",
    )
    parser.add_argument(
        "--template-dataset",
        default="FashionMNIST",
        metavar="NAME",
        help="the template's dataset, for the lint (default: FashionMNIST)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    if args.limit is not None and args.limit < 1:
        console.print("ideagen review: --limit must be at least 1")
        return EXIT_FAILED
    if args.into is not None and args.out is not None:
        console.print("ideagen review: give --out or --into, not both")
        return EXIT_FAILED
    try:
        into = target_for(args.into) if args.into is not None else None
        loaded = load_for_review(args.file)
        template = load_template(args.template) if args.template else None
    except ReviewInputError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.exit_code
    except (TemplateError, HandoverError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    out = into or args.out or args.file.with_name(args.file.stem + ".reviewed.json")
    report_path = args.report or args.file.with_name(args.file.stem + ".review.html")
    if not check_outputs("review", {"the reviewed ideas": out, "the report": report_path}):
        return EXIT_FAILED
    options = ReviewOptions(
        novelty=args.novelty,
        corpus=args.corpus,
        unknown_as_novel=args.unknown_as == "novel",
        override_novel=args.override_novel,
        rank=args.rank,
        rank_rounds=args.rounds,
        template_dataset=args.template_dataset,
        task_description=template.task_description if template else None,
        template_name=template.name if template else args.into.name if args.into else None,
        template=template,
        limit=args.limit,
    )
    run_id = uuid.uuid4().hex
    store = open_store(args)
    try:
        model = model_from_args(args, store, run_id, console)
        show_estimate(model, console, args.max_cost, *review_estimate(loaded.ideas, options))
        with ProgressBars(console) as progress:
            result = review_file(args.file, model, store, options, run_id=run_id, progress=progress)
    except ReviewInputError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.exit_code
    except ModelError as exc:
        print(f"ideagen review: {exc}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    handover = None
    if into is not None:
        handover = Handover(args.into, into, back_up(into))
    save_ideas(out, result.output_ideas())
    write_output(report_path, render_report(result))
    Console().print(summary_table(result))
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    spend = result.spend
    if spend is not None:
        console.print(
            f"cost: {spend.calls} model calls, {spend.tokens_in:,} tokens in, "
            f"{spend.tokens_out:,} out, ${spend.cost_usd:.4f}; {result.seconds:.0f} s"
        )
    console.print(f"wrote {out} and {report_path}")
    for line in next_steps(result.output_ideas(), out, handover, args.scientist_model):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    return _exit_code(result, model)


def _exit_code(result, model) -> int:
    """Not 0 when the review is incomplete: the budget stopped it, or no idea was judged."""
    budget = getattr(model, "budget", None)
    if budget is not None and budget.reached:
        print(
            "ideagen review: stopped at the --max-cost budget; what was done is written, "
            "unjudged ideas keep their own ratings",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    if result.ideas and all(item.judge is None for item in result.ideas):
        print(
            "ideagen review: the judge could not score any idea (see the report for why)",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    return EXIT_OK


class ProgressBars:
    """A progress bar per step, on stderr; hands `review_file` its callback."""

    def __init__(self, console: Console):
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.bar.start()
        return self.update

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, step: str, done: int, total: int) -> None:
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total or None)
        self.bar.update(self.tasks[step], completed=done, total=total or None)
