"""The command line: parses arguments and hands them to the library. No logic lives here."""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys

from ideagen import __version__
from ideagen.cli import (
    brainstorm,
    chat,
    dedup,
    evolve,
    model,
    results,
    review,
    template,
    validate,
)
from ideagen.ideafile import OutputError
from ideagen.store import StoreError, damaged_store, store_path

COMMANDS = (brainstorm, evolve, chat, review, results, dedup, validate, template, model)


EXIT_INTERRUPTED = 130


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
    show_notices()
    try:
        code = args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except (StoreError, OutputError) as exc:
        print(f"ideagen {args.command}: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(
            f"ideagen {args.command}: {damaged_store(store_path(args.home), exc)}", file=sys.stderr
        )
        return 2
    if code == EXIT_INTERRUPTED:
        # Ctrl-C: everything finished is saved and the store is closed. Normal interpreter
        # shutdown can take half a minute more (a worker blocked on a server that never
        # answers, the embedding model's threads being torn down), so leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def show_notices() -> None:
    """Warnings from the library (a long retry wait) go to stderr as one line each."""
    logger = logging.getLogger("ideagen")
    if not any(isinstance(handler, _Stderr) for handler in logger.handlers):
        logger.addHandler(_Stderr())
    logger.setLevel(logging.WARNING)


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (tests and pagers replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"ideagen: {record.getMessage()}", file=sys.stderr)
