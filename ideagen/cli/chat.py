"""`ideagen chat`: talk with the model about seed ideas; keep, refine and save the good ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from ideagen.chat import CHAT_MAX_TOKENS, ChatRepl, ChatSession
from ideagen.cli._common import (
    add_model_options,
    model_from_args,
    non_blank,
    open_store,
    show_estimate,
)
from ideagen.providers.base import ModelError
from ideagen.template_prompt import TemplateError, bundled_template_dir, load_template


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "chat",
        help="talk with the model about seed ideas; /keep, /refine and /save the good ones",
        description="A conversation with the model about the template, as with a chat "
        "assistant. Ideas it proposes are collected and numbered; /help lists the commands.",
    )
    parser.add_argument("--topic", type=non_blank, help="what to talk about first")
    parser.add_argument(
        "--template",
        type=Path,
        help="template folder with prompt.json and experiment.py (default: the bundled one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("seed_ideas.json"),
        help="where /save writes kept ideas (default: ./seed_ideas.json)",
    )
    add_model_options(parser, budget=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        template = load_template(args.template or bundled_template_dir())
    except TemplateError as exc:
        print(f"ideagen chat: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=True)
    with open_store(args) as store:
        session_id = ChatSession.new_session_id()
        try:
            model = model_from_args(args, store, session_id, console)
        except ModelError as exc:
            print(f"ideagen chat: {exc}", file=sys.stderr)
            return 2
        session = ChatSession(model, store, template, topic=args.topic, session_id=session_id)
        history_chars = 4 * CHAT_MAX_TOKENS  # a few turns of conversation resent each time
        chars = len(template.cached_prefix()) + history_chars
        show_estimate(model, console, args.max_cost, 1, chars, CHAT_MAX_TOKENS, per_message=True)
        return ChatRepl(session, args.out).run()
