"""What every provider shares: retries, the structured-reply repair loop, the response cache,
call recording and cost.

A provider subclasses `RecordedModel` and implements `_send`: one attempt at one request,
returning a `Reply` with its usage, raising `RetryableError` for what waiting may fix
(429, 5xx, 529, timeouts, dropped connections) and `CallFailed` for what it cannot
(bad key, bad request, unknown model). Everything else lives here, once.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ideagen.providers import pricing
from ideagen.providers.base import (
    CallBudget,
    InvalidReply,
    LanguageModel,
    Message,
    ModelError,
    Reply,
    Usage,
)
from ideagen.providers.budget import Estimate
from ideagen.resources import render_prompt
from ideagen.retry import (  # noqa: F401  (providers import them from here)
    LONG_WAIT_S,
    RetriesExhausted,
    RetryableError,
    RetryPolicy,
    retry_after_seconds,
)
from ideagen.store import CallRecord, Store

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

MAX_REPAIRS = 2  # a structured reply that fails validation is sent back at most this often
STOP_END = "end_turn"
STOP_MAX_TOKENS = "max_tokens"
PURPOSE_HEADER = "X-Ideagen-Purpose"
# Far above any real prompt (the template's code plus a few ideas is under 100,000); a request
# larger than this to a paid model is a mistake (a huge idea file) and is not sent.
MAX_PAID_REQUEST_CHARS = 400_000


class CallFailed(ModelError):
    """One attempt failed in a way that retrying cannot fix; `status` goes into the record."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def redact(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def failure_for_status(
    *,
    provider: str,
    model: str,
    status_code: int,
    server_message: str,
    retry_after: float | None,
    key_variable: str,
) -> RetryableError | CallFailed:
    """Sort an HTTP error status into retry-worthy or final, with a message saying what to do."""
    said = f"HTTP {status_code}: {server_message}" if server_message else f"HTTP {status_code}"
    if status_code == 429:
        return RetryableError("rate_limited", f"rate limited ({said})", retry_after)
    if status_code == 529:
        return RetryableError("overloaded", f"overloaded ({said})", retry_after)
    if status_code in (408, 409) or status_code >= 500:
        return RetryableError("server_error", f"server error ({said})", retry_after)
    if status_code in (401, 403):
        return CallFailed(
            "auth_error",
            f"{provider} rejected the API key ({said}); set a valid {key_variable}",
        )
    if status_code == 404:
        return CallFailed(
            "not_found",
            f"{provider} has no model {model!r} at this address ({said}); "
            "check --model and --base-url",
        )
    return CallFailed(
        "bad_request", f"{provider} refused the request ({said}); check --model and the input"
    )


class Request(BaseModel):
    """One model request as the cache and the providers see it."""

    system: str | None
    context: str | None
    messages: list[Message]
    temperature: float
    max_tokens: int
    # The schema in the provider's native structured-output form (see _native_schema);
    # None for free text and for providers without one.
    json_schema: dict[str, Any] | None = None
    # What the call is for (the `purpose` of complete/structured); sent as the PURPOSE_HEADER
    # so a proxy, a log or a test server can tell calls apart. Not part of the cache key.
    purpose: str | None = None


class ReplyProblem(Exception):
    """A reply that cannot be turned into the wanted type; the text goes back to the model."""


def parse_reply(reply: Reply, schema: type[T]) -> T:
    """The first JSON object in the reply text, validated against `schema`."""
    text = reply.text
    start = text.find("{")
    if start < 0:
        raise ReplyProblem(_cut_note(reply) + "it holds no JSON object.")
    try:
        data, _ = json.JSONDecoder().raw_decode(text[start:])
    except json.JSONDecodeError as error:
        raise ReplyProblem(_cut_note(reply) + f"its JSON is malformed ({error.msg}).") from None
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'the object'}: {item['msg']}"
            for item in error.errors()
        )
        raise ReplyProblem(
            _cut_note(reply) + f"the JSON does not match the schema ({problems})."
        ) from None


def _cut_note(reply: Reply) -> str:
    if reply.stop_reason == STOP_MAX_TOKENS:
        return "it was cut off at the length limit, so keep it shorter; "
    return ""


class RecordedModel(LanguageModel):
    """The shared half of every provider: cache, retries, recording, structured replies."""

    provider: str
    endpoint: str = ""  # part of the cache key: the same model name on two servers differs

    def __init__(
        self,
        model: str,
        *,
        store: Store,
        run_id: str | None = None,
        no_cache: bool = False,
        retry: RetryPolicy | None = None,
        budget: CallBudget | None = None,
    ):
        self.model = model
        self.budget = budget
        self.store = store
        self.run_id = run_id
        self.no_cache = no_cache
        self.retry = retry or RetryPolicy()
        self.price = pricing.price_for(model, pricing.load_prices(store.path.parent))

    @abstractmethod
    def _send(self, request: Request, timeout: float) -> Reply:
        """One attempt. Raise RetryableError or CallFailed; return the reply with its usage."""
        raise NotImplementedError

    def _native_schema(self, schema: type[BaseModel]) -> dict[str, Any] | None:
        """The hook for native structured output: the schema in the form this provider's
        `_send` constrains replies with (it finds it in request.json_schema), or None when the
        provider has no such mode and the reply is asked for by instructions alone. Either way
        the reply is parsed, validated and repaired below."""
        return None

    # the interface

    def for_run(self, run_id: str) -> RecordedModel:
        """A copy sharing client, store and budget, whose calls are recorded under `run_id`."""
        model = copy.copy(self)
        model.run_id = run_id
        return model

    def with_budget(self, budget: CallBudget) -> RecordedModel:
        model = copy.copy(self)
        model.budget = budget
        return model

    def complete(
        self,
        messages: list[Message],
        *,
        system: str | None = None,
        context: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        purpose: str | None = None,
    ) -> Reply:
        request = Request(
            system=system,
            context=context,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            purpose=purpose,
        )
        key = self._cache_key(request, schema=None)
        cached = self._cached(key)
        if cached is not None:
            return Reply(text=cached, model=self.model, stop_reason=STOP_END)
        reply = self._call(request, purpose)
        if key and reply.stop_reason == STOP_END:
            self.store.put_response(key, reply.text)
        return reply

    def structured(
        self,
        messages: list[Message],
        schema: type[T],
        *,
        system: str | None = None,
        context: str | None = None,
        temperature: float = 0.7,
        max_tokens: int = 1024,
        purpose: str | None = None,
    ) -> T:
        instructions = render_prompt(
            "provider_structured", schema=json.dumps(schema.model_json_schema())
        )
        request = Request(
            system=f"{system}\n\n{instructions}" if system else instructions,
            context=context,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
            purpose=purpose,
            json_schema=self._native_schema(schema),
        )
        key = self._cache_key(request, schema=schema)
        cached = self._cached(key)
        if cached is not None:
            return schema.model_validate_json(cached)
        conversation = list(messages)
        last_problem: ReplyProblem | None = None
        for attempt in range(MAX_REPAIRS + 1):
            label = purpose if attempt == 0 else f"{purpose or 'structured'} (repair {attempt})"
            reply = self._call(request.model_copy(update={"messages": conversation}), label)
            try:
                value = parse_reply(reply, schema)
            except ReplyProblem as problem:
                log.info("%s %s: unusable %s reply: %s", self.provider, self.model, label, problem)
                conversation = [
                    *conversation,
                    Message(role="assistant", content=reply.text or "(empty reply)"),
                    Message(role="user", content=render_prompt("provider_repair", problem=problem)),
                ]
                last_problem = problem
                continue
            if key:
                self.store.put_response(key, value.model_dump_json())
            return value
        raise InvalidReply(
            f"{self.provider} {self.model}: no valid {schema.__name__} after "
            f"{MAX_REPAIRS + 1} tries; the last reply: {last_problem}"
        )

    # shared machinery

    def _cache_key(self, request: Request, schema: type[BaseModel] | None) -> str | None:
        """The response-cache key, or None when the request must not be cached."""
        if self.no_cache or request.temperature != 0:
            return None
        identity = {
            "provider": self.provider,
            "endpoint": self.endpoint,
            "model": self.model,
            "request": request.model_dump(exclude={"json_schema", "purpose"}),
            "schema": schema.model_json_schema() if schema else None,
        }
        encoded = json.dumps(identity, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(encoded).hexdigest()

    def _cached(self, key: str | None) -> str | None:
        return self.store.get_response(key) if key else None

    def _call(self, request: Request, purpose: str | None) -> Reply:
        """One request with retries; every attempt is recorded, failed ones too."""
        self._refuse_oversized(request)
        estimate = self._estimate_usd(request)

        def attempt(timeout: float) -> Reply:
            # Each attempt passes the budget, so neither retries nor repairs can run past it.
            reservation = self.budget.reserve(estimate) if self.budget else None
            try:
                return self._attempt(request, timeout, purpose)
            finally:
                # Given back once the attempt is recorded: the spend counts it from then on.
                if self.budget is not None and reservation is not None:
                    self.budget.release(reservation)

        def on_wait(error: RetryableError, number: int, delay: float) -> None:
            level = logging.WARNING if delay >= LONG_WAIT_S else logging.INFO
            log.log(
                level,
                "%s %s: %s; waiting %.0f s before attempt %d of %d",
                self.provider,
                self.model,
                error.reason,
                delay,
                number + 1,
                self.retry.max_attempts,
            )

        try:
            return self.retry.run(attempt, on_wait)
        except RetriesExhausted as exhausted:
            raise ModelError(
                f"{self.provider} {self.model}: {exhausted.error.reason}; gave up after "
                f"{exhausted.attempts} attempts in {exhausted.elapsed_s:.0f} s; try again later"
            ) from None

    def _attempt(self, request: Request, timeout: float, purpose: str | None) -> Reply:
        """One attempt, recorded whether it succeeds or fails."""
        started = time.monotonic()
        try:
            reply = self._send(request, timeout)
        except (RetryableError, CallFailed) as error:
            self.record(error.status, Usage(), time.monotonic() - started, purpose)
            raise
        usage = reply.usage.model_copy(
            update={"cost_usd": pricing.cost_usd(reply.usage, self.price)}
        )
        self.record("ok", usage, time.monotonic() - started, purpose)
        return reply.model_copy(update={"usage": usage})

    def _estimate_usd(self, request: Request) -> float:
        """The most a call can cost: every input character counted as a token (no tokenizer
        packs fewer than one character into a token), plus max_tokens of output."""
        return pricing.cost_usd(
            Usage(tokens_in=request_chars(request), tokens_out=request.max_tokens), self.price
        )

    def estimate(self, calls: int, chars_per_call: int, tokens_out_per_call: int) -> Estimate:
        """About what `calls` calls of this size cost (4 characters a token, no cache
        discounts, every reply at its full length)."""
        usage = Usage(tokens_in=calls * chars_per_call // 4, tokens_out=calls * tokens_out_per_call)
        return Estimate(calls, pricing.cost_usd(usage, self.price) if self.paid else 0.0)

    @property
    def paid(self) -> bool:
        return self.price is not None and self.price.input > 0

    def _refuse_oversized(self, request: Request) -> None:
        size = request_chars(request)
        if self.paid and size > MAX_PAID_REQUEST_CHARS:
            raise CallFailed(
                "too_large",
                f"not sent: a {size:,}-character request to the paid model {self.model} "
                f"(over {MAX_PAID_REQUEST_CHARS:,}); shorten the ideas or the template",
            )

    def record(self, status: str, usage: Usage, latency_s: float, purpose: str | None) -> None:
        self.store.record_call(
            CallRecord(
                provider=self.provider,
                model=self.model,
                status=status,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
                cache_write_tokens=usage.cache_write_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                latency_s=latency_s,
                cost_usd=usage.cost_usd,
                purpose=purpose,
                run_id=self.run_id,
            )
        )


def request_chars(request: Request) -> int:
    """Characters sent: what the size guard and the cost estimates measure."""
    parts = (request.system or "", request.context or "", *(m.content for m in request.messages))
    return sum(len(part) for part in parts)


def chat_messages(messages: list[Message]) -> list[dict[str, str]]:
    """Messages as the chat APIs take them."""
    return [{"role": message.role, "content": message.content} for message in messages]


def stop_reason(raw: str | None) -> str | None:
    """One vocabulary for every provider: "end_turn" or "max_tokens" (others pass through).
    A forced tool call (Anthropic's native structured output) ends the turn too."""
    return {"stop": STOP_END, "tool_use": STOP_END, "length": STOP_MAX_TOKENS}.get(raw or "", raw)


def first_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:300]
