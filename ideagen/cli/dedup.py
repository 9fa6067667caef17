"""`ideagen dedup FILE`: group the ideas that are the same experiment, and say which to keep."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ideagen.cli._common import add_model_options, model_from_args, open_store
from ideagen.dedup import (
    DEFAULT_THRESHOLD,
    DedupResult,
    DuplicateMatch,
    duplicates_against,
    find_duplicates,
)
from ideagen.embeddings import EmbeddingModelMissing
from ideagen.ideafile import IdeaFile, IdeaFileError, load_ideas
from ideagen.providers import LanguageModel, ModelError
from ideagen.schema import Idea
from ideagen.store import Store

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dedup",
        help="group ideas that are the same experiment and say which to keep",
        description="Find ideas that a researcher would run as the same experiment (same "
        "change, same measurement), group them, and name the member to keep. With --against, "
        "report the ideas of FILE that duplicate ideas of another file.",
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="the idea file")
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"duplicate probability above which a pair is one experiment "
        f"(default {DEFAULT_THRESHOLD}, chosen on the labelled dev set)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print only JSON: {"clusters": [[i, j, ...], ...]} (0-based indices into FILE) '
        'and "groups", each with the member kept and the evidence for every merge',
    )
    parser.add_argument(
        "--against", type=Path, metavar="FILE2", help="report ideas of FILE that duplicate FILE2"
    )
    parser.add_argument(
        "--judge",
        action="store_true",
        help="ask a model about the pairs near the threshold, and have it read what each merged "
        "idea changes and measures (answers are kept in the store)",
    )
    add_model_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    errors = Console(stderr=True)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        print("ideagen dedup: --threshold must lie between 0 and 1", file=sys.stderr)
        return EXIT_UNREADABLE
    loaded = [_load(path) for path in (args.file, args.against) if path is not None]
    for result in loaded:
        if isinstance(result, int):
            return result
    ideas = loaded[0].ideas
    existing = loaded[1].ideas if args.against else None
    store = open_store(args)
    try:
        judge = _judge(args, store, errors) if args.judge else None
        if existing is not None:
            matches = duplicates_against(ideas, existing, store, args.threshold, judge)
            _print_matches(args, ideas, existing, matches)
        else:
            result = find_duplicates(ideas, store, args.threshold, judge)
            _print_clusters(args, ideas, result)
    except (ModelError, EmbeddingModelMissing) as exc:
        print(f"ideagen dedup: {exc}", file=sys.stderr)
        return EXIT_UNREADABLE
    finally:
        store.close()
    return EXIT_OK


def _load(path: Path) -> IdeaFile | int:
    """The loaded file, or the exit code after printing its problems as `validate` does."""
    try:
        loaded = load_ideas(path)
    except IdeaFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNREADABLE
    if loaded.errors:
        for problem in loaded.problems:
            print(problem, file=sys.stderr)
        return EXIT_INVALID
    for problem in loaded.warnings:
        print(problem, file=sys.stderr)
    return loaded


def _judge(args: argparse.Namespace, store: Store, errors: Console) -> LanguageModel:
    model = model_from_args(args, store, None, errors)
    if model.weak:
        errors.print(
            f"[yellow]warning:[/] the offline model {model.model} is a poor judge: on the 75 "
            "uncertain pairs of the dev set it called none of the 29 duplicates a duplicate "
            "(F1 0.755 without it, 0.624 with it), at about 20 s a pair on 2 cores; it only "
            "keeps uncertain pairs apart. An API model (ANTHROPIC_API_KEY, OPENAI_API_KEY or "
            "--base-url) is the judge to use",
            highlight=False,
        )
    return model


def _print_clusters(args: argparse.Namespace, ideas: list[Idea], result: DedupResult) -> None:
    if args.json:
        groups = [
            {
                "members": cluster.members,
                "keep": cluster.keep,
                "keep_reason": cluster.keep_reason,
                "merged": [
                    {"member": member, **cluster.evidence[member].model_dump(exclude={"i", "j"})}
                    for member in cluster.evidence
                ],
            }
            for cluster in result.clusters
        ]
        print(json.dumps({"clusters": result.index_groups(), "groups": groups}))
        return
    console = Console()
    if not result.clusters:
        console.print(f"{args.file}: no duplicates among {len(ideas)} ideas", soft_wrap=True)
        return
    table = Table(
        title=f"{args.file}: {len(result.clusters)} groups of duplicates", show_lines=True
    )
    for column in ("group", "Names", "Titles", "why", "keep"):
        table.add_column(column, overflow="fold")
    for number, cluster in enumerate(result.clusters, start=1):
        names = "\n".join(f"[{m}] {ideas[m].Name}" for m in cluster.members)
        titles = "\n".join(ideas[m].Title for m in cluster.members)
        why = "\n".join(f"[{m}] {reason}" for m, reason in cluster.reasons.items())
        keep = f"[{cluster.keep}] {ideas[cluster.keep].Name}: {cluster.keep_reason}"
        table.add_row(str(number), names, titles, why, keep)
    console.print(table)
    judged = f", {result.pairs_judged} asked to the judge" if result.pairs_judged else ""
    console.print(
        f"{result.pairs_scored} candidate pairs scored{judged}; threshold {result.threshold:.2f}"
    )


def _print_matches(
    args: argparse.Namespace, ideas: list[Idea], existing: list[Idea], matches: list[DuplicateMatch]
) -> None:
    if args.json:
        rows = [match.model_dump() for match in matches]
        print(json.dumps({"matches": rows}))
        return
    console = Console()
    if not matches:
        console.print(f"{args.file}: no idea duplicates one in {args.against}", soft_wrap=True)
        return
    table = Table(title=f"ideas of {args.file} that duplicate {args.against}", show_lines=True)
    for column in ("idea", "duplicates", "score", "why"):
        table.add_column(column, overflow="fold")
    for match in matches:
        table.add_row(
            f"[{match.i}] {ideas[match.i].Name}",
            f"[{match.j}] {existing[match.j].Name}",
            f"{match.score:.2f}",
            match.why,
        )
    console.print(table)
