"""Small helpers shared by the subcommands: the store, and the model options."""

from __future__ import annotations

import argparse

from rich.console import Console

from ideagen.providers import PROVIDERS, get_model
from ideagen.providers.base import LanguageModel
from ideagen.store import Store


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.home)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--provider, --model, --base-url, --no-cache: the same for every command using a model."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--provider",
        choices=PROVIDERS,
        default="auto",
        help="auto: anthropic if ANTHROPIC_API_KEY is set, else openai if OPENAI_API_KEY is "
        "set, else the embedded local model (default auto)",
    )
    group.add_argument("--model", help="model name (default: the provider's default)")
    group.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible (or Anthropic) server address"
    )
    group.add_argument("--no-cache", action="store_true", help="bypass the response cache")


def model_from_args(
    args: argparse.Namespace, store: Store, run_id: str | None, console: Console
) -> LanguageModel:
    return get_model(
        args.provider,
        args.model,
        store=store,
        base_url=args.base_url,
        no_cache=args.no_cache,
        run_id=run_id,
        console=console,
    )
