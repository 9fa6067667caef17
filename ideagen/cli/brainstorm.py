"""`ideagen brainstorm`: draft new seed ideas for a template and append them to a file."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ideagen.brainstorm import (
    DEFAULT_ROUNDS,
    DEFAULT_ROUNDS_BY_PROVIDER,
    Brainstorm,
    BrainstormError,
    BrainstormEvent,
    BrainstormResult,
)
from ideagen.cli._common import (
    add_model_options,
    check_outputs,
    model_from_args,
    non_blank,
    non_negative_int,
    open_store,
    positive_int,
    quiet_notices,
    show_estimate,
)
from ideagen.providers.base import ModelError
from ideagen.template_prompt import TemplateError, bundled_template_dir, load_template

DEFAULT_OUT = Path("seed_ideas.json")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "brainstorm",
        help="draft new seed ideas for a template, appended to FILE as each one is done",
        description="Draft N new seed ideas on a topic, each refined over self-critique rounds, "
        "checked for feasibility and against existing ideas, and appended to FILE at once. "
        "Running the same command again continues until FILE holds N ideas from the topic.",
    )
    parser.add_argument(
        "--topic", required=True, type=non_blank, help="what the ideas should be about"
    )
    parser.add_argument(
        "-n",
        type=positive_int,
        default=5,
        dest="count",
        metavar="N",
        help="ideas wanted (default 5)",
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="template folder with prompt.json and experiment.py (default: the bundled one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="idea file to append to (default: ./seed_ideas.json)",
    )
    parser.add_argument(
        "--rounds",
        type=non_negative_int,
        help=f"most self-critique rounds per idea (default {DEFAULT_ROUNDS}; "
        f"{DEFAULT_ROUNDS_BY_PROVIDER['local']} for the local model, where a round costs more "
        "than a draft)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        help="ideas drafted at once (default: 8 for API providers, 1 for the local model)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="draft N new ideas even if earlier runs already added some for this topic",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print only errors")
    output.add_argument("--json", action="store_true", help="print the result as JSON")
    add_model_options(parser, budget=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        template = load_template(args.template or bundled_template_dir())
    except TemplateError as exc:
        print(f"ideagen brainstorm: {exc}", file=sys.stderr)
        return 2
    out = args.out or DEFAULT_OUT
    bundled_seeds = bundled_template_dir() / "seed_ideas.json"
    if args.out is None and out.resolve() == bundled_seeds.resolve():
        print(
            f"ideagen brainstorm: {out.resolve()} is the bundled template's own seed file; "
            "name it with --out to write it anyway",
            file=sys.stderr,
        )
        return 2
    show = not (args.quiet or args.json)
    quiet_notices(not show)
    console = Console(stderr=True)
    if not check_outputs("brainstorm", {"the ideas": out}):
        return 2
    with open_store(args) as store:
        try:
            run_id = Brainstorm.new_run_id()
            model = model_from_args(args, store, run_id, console if show else Console(quiet=True))
            brainstorm = Brainstorm(
                model,
                store,
                template,
                topic=args.topic,
                count=args.count,
                out=out,
                rounds=args.rounds,
                concurrency=args.concurrency,
                fresh=args.fresh,
                run_id=run_id,
            )
            if show:
                show_estimate(model, console, args.max_cost, *brainstorm.estimate())
            result = _run_with_progress(brainstorm, console) if show else brainstorm.run()
        except (BrainstormError, ModelError) as exc:
            print(f"ideagen brainstorm: {exc}", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    elif show:
        _print_summary(result, console)
    if result.error:
        print(f"ideagen brainstorm: stopped: {result.error}", file=sys.stderr)
        return 1
    if result.interrupted:
        print("ideagen brainstorm: interrupted; run it again to continue", file=sys.stderr)
        return 130
    return 0 if result.complete else 1


def _run_with_progress(brainstorm: Brainstorm, console: Console) -> BrainstormResult:
    if brainstorm.model.weak:
        console.print(
            "[yellow]On the CPU the local model takes about a minute per idea, more when "
            "drafts are refused."
        )
    progress = Progress(
        TextColumn("[bold]ideas"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
    )
    stages: dict[int, str] = {}
    rejected = {"count": 0}
    lock = threading.Lock()
    task = progress.add_task(
        "ideas", total=brainstorm.count, completed=len(brainstorm.earlier), status=""
    )

    def report(event: BrainstormEvent) -> None:
        with lock:
            if event.kind == "plan":
                stages[event.slot] = "planning angles"
            elif event.kind == "draft":
                stages.pop(0, None)  # the plan is done once a slot drafts
                stages[event.slot] = "drafting"
            elif event.kind == "round":
                stages[event.slot] = f"round {event.round}/{brainstorm.rounds}"
            elif event.kind == "repair":
                stages[event.slot] = "repairing"
                progress.console.print(f"[dim]slot {event.slot}: repairing: {event.detail}")
            else:
                stages.pop(event.slot, None)
            if event.kind == "finished":
                progress.advance(task)
            elif event.kind == "rejected":
                rejected["count"] += 1
                progress.console.print(f"[dim]slot {event.slot}: redrafting: {event.detail}")
            spend = brainstorm.spend()
            working = ", ".join(f"#{slot} {stage}" for slot, stage in sorted(stages.items()))
            status = (
                f"tokens: {spend.tokens_in + spend.cache_write_tokens:,} in, "
                f"{spend.cache_read_tokens:,} cached, {spend.tokens_out:,} out; "
                f"${spend.cost_usd:.4f}"
            )
            if rejected["count"]:
                status += f", {rejected['count']} redrafted"
            if working:
                status += f"  [{working}]"
            progress.update(task, status=status)

    brainstorm.report = report
    with progress:
        return brainstorm.run()


def _print_summary(result: BrainstormResult, console: Console) -> None:
    if result.new:
        table = Table(title=f"New ideas in {result.out}")
        for column in ("Name", "Title", "I", "F", "N", "rounds"):
            table.add_column(column, overflow="fold")
        for finished in result.new:
            idea = finished.idea
            table.add_row(
                idea.Name,
                idea.Title,
                str(idea.Interestingness),
                str(idea.Feasibility),
                str(idea.Novelty),
                str(finished.rounds),
            )
        console.print(table)
    done = len(result.earlier) + len(result.new)
    rejected = ", ".join(f"{count} {kind}" for kind, count in sorted(result.rejected.items()))
    console.print(
        f"{result.out}: {done} of {result.wanted} ideas on {result.topic!r} "
        f"({len(result.earlier)} from earlier runs, {len(result.new)} new); "
        f"{result.drafts} drafts ({result.repaired} passed after a repair), "
        f"rejected: {rejected or 'none'}"
    )
    if result.gave_up:
        console.print(
            f"[yellow]{result.gave_up} idea slot(s) gave up after repeated rejections; "
            "run again to try more"
        )
    spend = result.spend
    if spend:
        console.print(
            f"spend: {spend.calls} calls ({spend.failed_calls} failed), "
            f"{spend.tokens_in:,} prompt tokens + {spend.cache_read_tokens:,} cache-read + "
            f"{spend.cache_write_tokens:,} cache-write, {spend.tokens_out:,} output tokens, "
            f"${spend.cost_usd:.4f}"
        )
