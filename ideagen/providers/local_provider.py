"""The embedded offline model: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) run by llama.cpp.

`ideagen model install` puts the model file and the runtime in the user cache; `--model` picks
another installed model (qwen2.5-coder-0.5b, smollm2-135m). Structured replies are constrained
by the runtime's JSON-schema grammar through the shared flow's native-schema hook, so they parse
by construction unless max_tokens cuts them; the shared repair loop handles those.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from ideagen.local.engine import grammar_schema, load_engine
from ideagen.local.models import spec_for
from ideagen.providers.base import ModelError, Reply, Usage
from ideagen.providers.common import STOP_END, STOP_MAX_TOKENS, CallFailed, RecordedModel, Request

# The system prompt is read once per call and reused from the runtime's cache while it stays the
# same; this bounds the first call (about 2,500 tokens of template code).
CONTEXT_CHARS = 10_000


class LocalModel(RecordedModel):
    """The offline provider; its judgments are marked low-confidence (`weak`)."""

    provider = "local"
    weak = True

    def __init__(self, model: str | None = None, **shared: Any):
        self.spec = spec_for(model)
        super().__init__(self.spec.name, **shared)
        self.engine = load_engine(self.spec)
        self.on_progress: Callable[[int], None] | None = None  # tokens generated so far

    def _native_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        return grammar_schema(schema)

    def _send(self, request: Request, timeout: float) -> Reply:
        # The context goes first, so that calls sharing it share the prompt's prefix.
        context = request.context[:CONTEXT_CHARS] if request.context else None
        system = "\n\n".join(part for part in (context, request.system) if part) or None
        try:
            result = self.engine.generate(
                system,
                request.messages,
                schema=request.json_schema,
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                on_progress=self.on_progress,
            )
        except ModelError as error:
            raise CallFailed("engine_error", str(error)) from None
        return Reply(
            text=result.text,
            model=self.model,
            stop_reason=STOP_MAX_TOKENS if result.cut else STOP_END,
            usage=Usage(
                tokens_in=result.tokens_evaluated,
                tokens_out=result.tokens_out,
                cache_read_tokens=result.tokens_in - result.tokens_evaluated,
            ),
        )
