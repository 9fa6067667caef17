"""Claude through the official `anthropic` SDK (Messages API).

The large unchanging `context` goes first in the system prompt as its own block marked
cache_control "ephemeral", so every later call of a run that repeats it is billed as a cache
read. The SDK's own retries are off: the policy in `common` is the only one.
Current Claude models refuse non-default sampling parameters and the installed SDK
(anthropic 2.x) no longer has `temperature`, so none is sent; the caller's temperature still
decides whether a reply may come from the response cache.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import anthropic
from anthropic.types import Message as AnthropicMessage
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

DEFAULT_MODEL = "claude-sonnet-5-5"
KEY_VARIABLE = "ANTHROPIC_API_KEY"
TOOL_DESCRIPTION = "Give your answer as this tool's input."


class AnthropicModel(RecordedModel):
    provider = "anthropic"

    def __init__(self, model: str | None = None, *, base_url: str | None = None, **shared):
        super().__init__(model or DEFAULT_MODEL, **shared)
        self._key = os.environ.get(KEY_VARIABLE)
        if not self._key:
            raise CallFailed(
                "auth_error", f"{KEY_VARIABLE} is not set; export it or use --provider local"
            )
        self._client = anthropic.Anthropic(
            api_key=self._key,
            base_url=base_url,
            max_retries=0,
            timeout=self.retry.call_timeout_s,
        )
        self.endpoint = str(self._client.base_url)

    def _native_schema(self, schema: type[BaseModel]) -> dict[str, Any]:
        return {
            "name": re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64],
            "description": TOOL_DESCRIPTION,
            "input_schema": schema.model_json_schema(),
        }

    def _send(self, request: Request, timeout: float) -> Reply:
        tool = request.json_schema
        forced = (
            {"tools": [tool], "tool_choice": {"type": "tool", "name": tool["name"]}} if tool else {}
        )
        system_blocks = []
        if request.context:
            system_blocks.append(
                {"type": "text", "text": request.context, "cache_control": {"type": "ephemeral"}}
            )
        if request.system:
            system_blocks.append({"type": "text", "text": request.system})
        try:
            response = self._client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                messages=chat_messages(request.messages),
                timeout=timeout,
                extra_headers={PURPOSE_HEADER: request.purpose} if request.purpose else None,
                **({"system": system_blocks} if system_blocks else {}),
                **forced,
            )
        except anthropic.APITimeoutError:
            raise RetryableError("timeout", f"no answer within {timeout:.0f} s") from None
        except anthropic.APIConnectionError:
            raise RetryableError("connection_error", f"cannot reach {self.endpoint}") from None
        except anthropic.APIStatusError as error:
            raise failure_for_status(
                provider=self.provider,
                model=self.model,
                status_code=error.status_code,
                server_message=redact(first_line(error.api_message or ""), [self._key]),
                retry_after=retry_after_seconds(error.response.headers),
                key_variable=KEY_VARIABLE,
            ) from None
        if not isinstance(response, AnthropicMessage):
            # A proxy's or captive portal's error page: often gone on the next try.
            raise RetryableError(
                "bad_response",
                f"{self.endpoint} answered with an HTML page or other non-JSON reply, not like "
                "the Anthropic API; check ANTHROPIC_BASE_URL / --base-url if it persists",
            )
        usage = response.usage
        return Reply(
            text="".join(_block_text(block) for block in response.content),
            model=response.model,
            stop_reason=stop_reason(response.stop_reason),
            usage=Usage(
                tokens_in=usage.input_tokens,
                tokens_out=usage.output_tokens,
                cache_write_tokens=usage.cache_creation_input_tokens or 0,
                cache_read_tokens=usage.cache_read_input_tokens or 0,
            ),
        )


def _block_text(block: Any) -> str:
    """A text block's text; a tool call's input as JSON (the structured reply)."""
    if block.type == "tool_use":
        return json.dumps(block.input)
    return block.text if block.type == "text" else ""
