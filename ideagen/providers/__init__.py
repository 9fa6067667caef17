"""Choose and build a language model.

    model = get_model("auto", store=store, run_id=run_id)
    reply = model.complete([Message(role="user", content="...")], context=template_code)
    draft = model.structured(messages, IdeaDraft, system=..., context=..., temperature=0.7)

"auto" takes anthropic when ANTHROPIC_API_KEY is set, else openai when OPENAI_API_KEY is set
or a base URL was given, else the embedded local model, and says on screen which and why.
"""

from __future__ import annotations

import os

from rich.console import Console

from ideagen.providers.base import InvalidReply, LanguageModel, Message, ModelError, Reply, Usage
from ideagen.providers.budget import Budget
from ideagen.retry import RetryPolicy
from ideagen.store import Store

PROVIDERS = ("auto", "anthropic", "openai", "local")

__all__ = [
    "PROVIDERS",
    "InvalidReply",
    "LanguageModel",
    "Message",
    "ModelError",
    "Reply",
    "RetryPolicy",
    "Usage",
    "get_model",
]


def get_model(
    provider: str = "auto",
    model: str | None = None,
    *,
    store: Store,
    base_url: str | None = None,
    no_cache: bool = False,
    run_id: str | None = None,
    console: Console | None = None,
    retry: RetryPolicy | None = None,
    max_cost_usd: float | None = None,
) -> LanguageModel:
    """A ready model. Raises ModelError (one line, what to do) when it cannot be built.

    `retry` replaces the default retry and timeout policy (tests use short delays).
    `max_cost_usd` stops the calls recorded under `run_id` (and its sub-runs) at that spend.
    """
    if provider not in PROVIDERS:
        raise ModelError(f"unknown provider {provider!r}; choose one of {', '.join(PROVIDERS)}")
    if provider == "auto":
        provider = _choose(base_url, console or Console(stderr=True))
    budget = Budget(max_cost_usd, run_id or "", store) if max_cost_usd is not None else None
    shared = {
        "store": store,
        "run_id": run_id,
        "no_cache": no_cache,
        "retry": retry,
        "budget": budget,
    }
    if provider == "anthropic":
        from ideagen.providers.anthropic_provider import AnthropicModel

        return AnthropicModel(model, base_url=base_url, **shared)
    if provider == "openai":
        from ideagen.providers.openai_provider import OpenAIModel

        return OpenAIModel(model, base_url=base_url, **shared)
    from ideagen.providers.local_provider import LocalModel

    return LocalModel(model, **shared)


def _choose(base_url: str | None, console: Console) -> str:
    if os.environ.get("ANTHROPIC_API_KEY"):
        console.print("[bold]model:[/] anthropic, because ANTHROPIC_API_KEY is set")
        return "anthropic"
    if os.environ.get("OPENAI_API_KEY"):
        console.print("[bold]model:[/] openai, because OPENAI_API_KEY is set")
        return "openai"
    if base_url or os.environ.get("OPENAI_BASE_URL"):
        console.print("[bold]model:[/] openai-compatible server, because a base URL is given")
        return "openai"
    console.print(
        "[bold]model:[/] local Qwen2.5-Coder-1.5B-Instruct, because neither ANTHROPIC_API_KEY "
        "nor OPENAI_API_KEY is set.\n[yellow]note:[/] a 1.5B model on the CPU writes coherent "
        "but generic ideas and its review scores are rough; set a key (or --provider openai "
        "--base-url URL) for ideas worth a GPU run."
    )
    return "local"
