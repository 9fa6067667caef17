"""The command line: parses arguments and hands them to the library. No logic lives here."""

from __future__ import annotations

import argparse
import sys

from ideagen import __version__
from ideagen.cli import brainstorm, chat, dedup, model, results, review, template, validate

COMMANDS = (brainstorm, chat, review, results, dedup, validate, template, model)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ideagen",
        description="Draft, review and rank research ideas for SakanaAI's The AI Scientist.",
    )
    parser.add_argument("--version", action="version", version=f"ideagen {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="folder of the ideagen store (default: $IDEAGEN_HOME or the user data folder)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
