"""The one model interface every provider implements.

Callers hand over messages (plus an optional large, unchanging `context` that providers
may cache, such as the template's code) and get text back, or a reply parsed into a
pydantic type. Usage of every call is recorded in the store by the provider.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal, Protocol, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class Usage(BaseModel):
    tokens_in: int = 0
    tokens_out: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    cost_usd: float = 0.0


class Reply(BaseModel):
    text: str
    model: str
    stop_reason: str | None = None
    usage: Usage = Usage()


class ModelError(Exception):
    """A call that cannot succeed (bad key, bad request, unknown model, retries exhausted).

    The message is one line that says what to do, and never contains a key.
    """


class InvalidReply(ModelError):
    """The model answered, but not with a valid instance of the schema, even after repair.

    A weakness of that one reply, not of the connection: callers may ask again.
    """


class CallBudget(Protocol):
    """What a model asks before each attempt at a call, every repair and retry included."""

    def reserve(self, estimate_usd: float) -> float:
        """Hold room for one attempt that may cost up to `estimate_usd`, or raise to refuse
        it; the returned reservation is given back through `release`."""
        ...

    def release(self, reservation: float) -> None: ...


class LanguageModel(ABC):
    provider: str
    model: str
    weak: bool = False  # the tiny local model: its ideas should be read with care

    def for_run(self, run_id: str) -> LanguageModel:
        """This model recording its calls under `run_id` (a run's slot or worker); a model that
        records nothing is itself."""
        return self

    @abstractmethod
    def with_budget(self, budget: CallBudget) -> LanguageModel:
        """This model asking `budget` before every attempt at a call, each repair and retry
        included, in place of any budget it had."""

    @abstractmethod
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
        """Free text. `context` is a large unchanging prefix the provider may cache."""

    @abstractmethod
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
        """A reply parsed into `schema`; validation errors go back to the model for repair."""
