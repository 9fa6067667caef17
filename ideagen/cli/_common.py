"""Small helpers shared by the subcommands: the store, the model options, and argument types
that refuse nonsense at once (before a model is loaded or a call is paid for)."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlsplit

from rich.console import Console

from ideagen.ideafile import OutputError, check_output_path
from ideagen.providers import PROVIDERS, get_model
from ideagen.providers.base import LanguageModel
from ideagen.providers.common import RecordedModel
from ideagen.store import Store


def open_store(args: argparse.Namespace) -> Store:
    return Store.open(args.home)


def positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0)


def _int_at_least(text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be {lowest} or more, got {value}")
    return value


def non_blank(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http(s) URL such as http://localhost:11434/v1"
        )
    return text


def usd(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an amount in USD, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive amount in USD, got {text}")
    return value


def add_model_options(parser: argparse.ArgumentParser, *, budget: bool = False) -> None:
    """--provider, --model, --base-url, --no-cache: the same for every command using a model;
    with `budget`, --max-cost too."""
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
        "--base-url",
        metavar="URL",
        type=http_url,
        help="an OpenAI-compatible (or Anthropic) server address",
    )
    group.add_argument("--no-cache", action="store_true", help="bypass the response cache")
    if budget:
        group.add_argument(
            "--max-cost",
            metavar="USD",
            type=usd,
            help="stop before spending more than this on model calls (what is done is kept)",
        )


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
        max_cost_usd=getattr(args, "max_cost", None),
    )


def check_outputs(command: str, outputs: dict[str, object]) -> bool:
    """Check every output path before any work; print the first problem and return False."""
    for what, path in outputs.items():
        if path is None:
            continue
        try:
            check_output_path(path, what)
        except OutputError as exc:
            print(f"ideagen {command}: {exc}", file=sys.stderr)
            return False
    return True


def quiet_notices(quiet: bool) -> None:
    """--quiet and --json: only errors on screen (no retry notices)."""
    logging.getLogger("ideagen").setLevel(logging.ERROR if quiet else logging.WARNING)


def show_estimate(
    model: LanguageModel,
    console: Console,
    limit_usd: float | None,
    calls: int,
    chars_per_call: int,
    tokens_out_per_call: int,
    *,
    per_message: bool = False,
) -> None:
    """Before a paid run starts: what it may cost at most, next to the budget."""
    if not isinstance(model, RecordedModel) or not model.paid:
        return
    estimate = model.estimate(calls, chars_per_call, tokens_out_per_call)
    console.print(estimate.describe(limit_usd, per_message=per_message), highlight=False)
