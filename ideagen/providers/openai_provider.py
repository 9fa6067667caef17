"""OpenAI and every server that speaks its Chat Completions API (Ollama, vLLM, llama.cpp's
server, LM Studio), through the official `openai` SDK.

OpenAI caches repeated prompt prefixes by itself, so the `context` goes first, in the one
system message, ahead of the instructions that change. The SDK's own retries are off.
"""

from __future__ import annotations

import os

import openai
from openai.types.chat import ChatCompletion

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

    def _send(self, request: Request, timeout: float) -> Reply:
        system = "\n\n".join(part for part in (request.context, request.system) if part)
        messages = [{"role": "system", "content": system}] if system else []
        try:
            response = self._client.chat.completions.create(
                model=self.model,
                messages=messages + chat_messages(request.messages),
                temperature=request.temperature,
                timeout=timeout,
                extra_headers={PURPOSE_HEADER: request.purpose} if request.purpose else None,
                **{self._length_parameter: request.max_tokens},
            )
        except openai.APITimeoutError:
            raise RetryableError("timeout", f"no answer within {timeout:.0f} s") from None
        except openai.APIConnectionError:
            raise RetryableError("connection_error", f"cannot reach {self.endpoint}") from None
        except openai.APIStatusError as error:
            body = error.body if isinstance(error.body, dict) else {}
            message = body.get("message") or (body.get("error") or {}).get("message") or ""
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
