"""What a model call costs: a per-model price table in US dollars per million tokens.

Source: the providers' published list prices per million tokens, standard tier: Anthropic's
model overview pages on platform.claude.com (Sonnet 5 / 5.5 at $2 / $10, Opus 5.5 at $4 / $20,
as of November 2026) and its pricing page for older models; openai.com/api/pricing for OpenAI
(as of late 2025; newer gpt-5.x ids fall back to the gpt-5 row, an estimate).
Anthropic bills a 5-minute cache write at 1.25x and a cache read at 0.1x the input price;
OpenAI bills cached input at its listed "cached input" price and has no write surcharge.
Prices change: the user overrides or extends the table with a JSON file named by
IDEAGEN_PRICES, or <home>/prices.json, shaped
{"model-prefix": {"input": 3.0, "output": 15.0, "cache_write": 3.75, "cache_read": 0.3}}.

A model id matches the longest table key it starts with, so dated ids such as
"claude-sonnet-4-5-20250929" find the "claude-sonnet" row. A model the table does not know
costs 0 and `price_for` says so, so spend reports can flag the estimate as missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from ideagen.ideafile import unusable_json
from ideagen.providers.base import ModelError, Usage


class Price(BaseModel):
    input: float
    output: float
    cache_write: float = 0.0
    cache_read: float = 0.0


def _anthropic(input_price: float, output_price: float) -> Price:
    return Price(
        input=input_price,
        output=output_price,
        cache_write=round(input_price * 1.25, 6),
        cache_read=round(input_price * 0.1, 6),
    )


def _openai(input_price: float, output_price: float, cached_input: float) -> Price:
    return Price(input=input_price, output=output_price, cache_read=cached_input)


BUILTIN_PRICES: dict[str, Price] = {
    # Opus 4 and 4.1 kept the old Opus price; Opus 4.5 and later are listed at $5 / $25.
    "claude-opus-4-0": _anthropic(15.0, 75.0),
    "claude-opus-4-1": _anthropic(15.0, 75.0),
    "claude-opus-4-2025": _anthropic(15.0, 75.0),
    "claude-opus": _anthropic(5.0, 25.0),
    "claude-opus-5-5": _anthropic(4.0, 20.0),
    "claude-fable": _anthropic(10.0, 50.0),
    "claude-sonnet": _anthropic(3.0, 15.0),
    "claude-sonnet-5": _anthropic(2.0, 10.0),
    "claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "claude-3-5-sonnet": _anthropic(3.0, 15.0),
    "claude-haiku": _anthropic(1.0, 5.0),
    "claude-3-5-haiku": _anthropic(0.8, 4.0),
    "claude-3-haiku": _anthropic(0.25, 1.25),
    "gpt-5": _openai(1.25, 10.0, 0.125),
    "gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "gpt-5-nano": _openai(0.05, 0.4, 0.005),
    "gpt-4.1": _openai(2.0, 8.0, 0.5),
    "gpt-4.1-mini": _openai(0.4, 1.6, 0.1),
    "gpt-4.1-nano": _openai(0.1, 0.4, 0.025),
    "gpt-4o": _openai(2.5, 10.0, 1.25),
    "gpt-4o-mini": _openai(0.15, 0.6, 0.075),
    "o3": _openai(2.0, 8.0, 0.5),
    "o4-mini": _openai(1.1, 4.4, 0.275),
}


def _user_price_file(home: Path | None) -> Path | None:
    named = os.environ.get("IDEAGEN_PRICES")
    if named:
        return Path(named).expanduser()
    if home is not None and (home / "prices.json").is_file():
        return home / "prices.json"
    return None


def load_prices(home: Path | None = None) -> dict[str, Price]:
    """The built-in table with the user's file (if any) laid over it."""
    prices = dict(BUILTIN_PRICES)
    path = _user_price_file(home)
    if path is None:
        return prices
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ModelError(f"{path}: the price file must be a JSON object of model -> prices")
        for model, entry in raw.items():
            prices[model] = Price.model_validate(entry)
    except OSError as error:
        raise ModelError(f"{path}: cannot read the price file ({error.strerror})") from None
    except json.JSONDecodeError as error:
        raise ModelError(f"{path}: the price file is not JSON (line {error.lineno})") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ModelError(f"{path}: entry {model!r}: {where}: {first['msg']}") from None
    except (RecursionError, ValueError) as error:
        raise ModelError(f"{path}: {unusable_json(error)}") from None
    return prices


def price_for(model: str, prices: dict[str, Price]) -> Price | None:
    matches = [key for key in prices if model.startswith(key)]
    return prices[max(matches, key=len)] if matches else None


def cost_usd(usage: Usage, price: Price | None) -> float:
    """Dollars for one call. `usage.tokens_in` excludes cache writes and reads."""
    if price is None:
        return 0.0
    return (
        usage.tokens_in * price.input
        + usage.tokens_out * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    ) / 1_000_000
