"""`ideagen validate FILE...`: check idea files against the AI Scientist v1 schema."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ideagen.cli._common import check_outputs
from ideagen.ideafile import IdeaFileError, fix_entries, load_ideas, write_output

EXIT_OK, EXIT_INVALID, EXIT_UNREADABLE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check idea files (exit 0 valid, 1 schema errors, 2 unreadable)",
        description="Check idea files against the AI Scientist v1 idea schema. "
        "One line per problem: file, entry index (and Name), field.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path)
    parser.add_argument(
        "--fix", action="store_true", help="write a repaired copy (needs -o) and list changes"
    )
    parser.add_argument("-o", "--out", type=Path, help="where --fix writes the repaired copy")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.fix and (args.out is None or len(args.files) != 1):
        print("ideagen validate: --fix needs exactly one FILE and -o OUT", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.fix and not check_outputs("validate", {"the repaired copy": args.out}):
        return EXIT_UNREADABLE
    worst = EXIT_OK
    for path in args.files:
        try:
            loaded = load_ideas(path)
        except IdeaFileError as exc:
            print(exc)
            worst = max(worst, EXIT_UNREADABLE)
            continue
        if args.fix:
            return _fix(loaded, args.out)
        for problem in loaded.problems:
            print(problem)
        if loaded.errors:
            worst = max(worst, EXIT_INVALID)
        summary = f"{path}: {len(loaded.entries)} entries, {len(loaded.errors)} errors"
        print(summary + f", {len(loaded.warnings)} warnings", file=sys.stderr)
    return worst


def _fix(loaded, out: Path) -> int:
    result = fix_entries(str(loaded.path), loaded.entries)
    for change in result.changes:
        print(f"fixed: {change}")
    write_output(out, loaded.style.render(result.entries))
    print(f"wrote {out} ({len(result.changes)} changes)", file=sys.stderr)
    for problem in result.remaining:
        print(problem)
    return EXIT_INVALID if result.remaining else EXIT_OK
