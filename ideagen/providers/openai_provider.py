"""OpenAI and every server that speaks its Chat Completions API (Ollama, vLLM, llama.cpp's
server, LM Studio), through the official `openai` SDK.

OpenAI caches repeated prompt prefixes by itself, so the `context` goes first, in the one
system message, ahead of the instructions that change. The SDK's own retries are off.

Structured replies are asked for with `response_format` json_schema, strict where the schema
allows (every field required; keywords strict mode lacks, such as minLength, are left to
validation and the repair loop). A server that rejects response_format with a 400 naming it is
asked again without, and remembered, so later calls to that model there go by instructions alone.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel

from ideagen.providers.base import Reply, Usage
from ideagen.providers.common import (
    PURPOSE_HEADER,
    CallFailed,
    RecordedModel,
    Request,
    RetryableError,
    chat_messages,
    failure_for_status,
    first_line,
    redact,
    retry_after_seconds,
    stop_reason,
)

DEFAULT_MODEL = "gpt-4.1"
KEY_VARIABLE = "OPENAI_API_KEY"
# Servers such as Ollama or llama.cpp ignore the key, but the SDK insists on one.
KEYLESS_PLACEHOLDER = "no-key"
# The JSON Schema keywords OpenAI's strict structured outputs accept.
STRICT_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "$ref", "$defs", "description", "title", "pattern", "format", "minimum",
        "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
    }
)  # fmt: skip

log = logging.getLogger(__name__)

# (endpoint, model) pairs whose server refused response_format: asked by instructions alone.
_NO_RESPONSE_FORMAT: set[tuple[str, str]] = set()


class OpenAIModel(RecordedModel):
    provider = "openai"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, **shared):
        super().__init__(model or DEFAULT_MODEL, **shared)
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._key = os.environ.get(KEY_VARIABLE)
        if not self._key and not base_url:
            raise CallFailed(
                "auth_error",
                f"{KEY_VARIABLE} is not set; export it, give --base-url for a local "
                "OpenAI-compatible server, or use --provider local",
            )
        self._client = openai.OpenAI(
            api_key=self._key or KEYLESS_PLACEHOLDER,
            base_url=base_url,
            max_retries=0,
            timeout=self.retry.call_timeout_s,
        )
        self.endpoint = str(self._client.base_url)
        # OpenAI's own reasoning models accept only max_completion_tokens; other servers
        # mostly know only max_tokens.
        self._length_parameter = "max_tokens" if base_url else "max_completion_tokens"

    def _native_schema(self, schema: type[BaseModel]) -> dict[str, Any] | None:
        if (self.endpoint, self.model) in _NO_RESPONSE_FORMAT:
            return None
        return response_format(schema)

    def _send(self, request: Request, timeout: float) -> Reply:
        system = "\n\n".join(part for part in (request.context, request.system) if part)
        messages = [{"role": "system", "content": system}] if system else []
        extra = {"response_format": request.json_schema} if request.json_schema else {}
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages + chat_messages(request.messages),
                temperature=request.temperature,
                timeout=timeout,
                extra_headers={PURPOSE_HEADER: request.purpose} if request.purpose else None,
                **{self._length_parameter: request.max_tokens},
                **extra,
            )
        except openai.APITimeoutError:
            raise RetryableError("timeout", f"no answer within {timeout:.0f} s") from None
        except openai.APIConnectionError:
            raise RetryableError("connection_error", f"cannot reach {self.endpoint}") from None
        except openai.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            message = body.get("message") or (body.get("error") or {}).get("message") or ""
            if request.json_schema and error.status_code == 400 and _names_format(str(message)):
                log.info(
                    "%s %s at %s refused response_format (%s); asking by instructions alone",
                    self.provider,
                    self.model,
                    self.endpoint,
                    first_line(str(message)),
                )
                _NO_RESPONSE_FORMAT.add((self.endpoint, self.model))
                return self._send(request.model_copy(update={"json_schema": None}), timeout)
            raise failure_for_status(
                provider=self.provider,
                model=self.model,
                status_code=error.status_code,
                server_message=redact(first_line(str(message)), [self._key]),
                retry_after=retry_after_seconds(error.response.headers),
                key_variable=KEY_VARIABLE,
            ) from None
        if not isinstance(response, ChatCompletion) or not response.choices:
            # A proxy's or captive portal's error page: often gone on the next try.
            raise RetryableError(
                "bad_response",
                f"{self.endpoint} answered with an HTML page or other non-JSON reply, not like "
                "a Chat Completions API; check OPENAI_BASE_URL / --base-url if it persists",
            )
        choice = response.choices[0]
        return Reply(
            text=choice.message.content or "",
            model=response.model or self.model,
            stop_reason=stop_reason(choice.finish_reason),
            usage=_usage(response),
        )


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """`schema` as a json_schema response_format: strict when every field is required."""
    full = schema.model_json_schema()
    strict = _strict_form(full)
    return {
        "type": "json_schema",
        "json_schema": {
            "name": re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64],
            "schema": strict if strict is not None else full,
            "strict": strict is not None,
        },
    }


def _strict_form(schema: Any) -> Any:
    """The schema cut to what strict mode accepts, or None when it cannot be strict (an
    optional field, or an object open to more keys)."""
    if isinstance(schema, list):
        parts = [_strict_form(item) for item in schema]
        return None if any(part is None for part in parts) else parts
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "object":
        properties = schema.get("properties") or {}
        if schema.get("additionalProperties") not in (None, False):
            return None
        if set(schema.get("required") or []) != set(properties):
            return None
    strict: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in STRICT_KEYWORDS:
            continue
        if key in ("properties", "$defs"):
            value = {name: _strict_form(child) for name, child in value.items()}
            if any(child is None for child in value.values()):
                return None
        elif key in ("items", "anyOf"):
            value = _strict_form(value)
            if value is None:
                return None
        strict[key] = value
    if strict.get("type") == "object":
        strict["additionalProperties"] = False
    return strict


def _names_format(message: str) -> bool:
    return bool(re.search(r"response_format|json_schema", message, re.IGNORECASE))


def _usage(response: ChatCompletion) -> Usage:
    """Usage with cached tokens split out: OpenAI counts them inside prompt_tokens."""
    if response.usage is None:
        return Usage()
    details = response.usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details else 0
    written = (getattr(details, "cache_write_tokens", None) or 0) if details else 0
    return Usage(
        tokens_in=max(0, response.usage.prompt_tokens - cached - written),
        tokens_out=response.usage.completion_tokens,
        cache_write_tokens=written,
        cache_read_tokens=cached,
    )
