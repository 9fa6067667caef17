"""One small interface to llama.cpp, whichever way it is reached.

    engine = load_engine(spec)            # once per process and model
    result = engine.generate(system, messages, schema=grammar_schema(IdeaDraft), ...)

Two implementations: `LlamaCppEngine` (in-process llama-cpp-python, used when importable) and
`NodeEngine` (node-llama-cpp's prebuilt llama.cpp, driven through one long-lived bridge process).
IDEAGEN_LOCAL_ENGINE=node or =llama-cpp picks one; IDEAGEN_LOCAL_THREADS sets the thread count.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from copy import deepcopy
from typing import Any

from pydantic import BaseModel

from ideagen.local.models import ModelSpec, model_path
from ideagen.providers.base import Message, ModelError

ENGINE_ENV = "IDEAGEN_LOCAL_ENGINE"
THREADS_ENV = "IDEAGEN_LOCAL_THREADS"
# Every CPU this process may use, by default. Measured with bench/bench_local_model.py on the
# idle 2-core build machine: the 1.5B model took 19.1 s per structured idea on two threads
# against 48.7 s on one (prompt 117 against 58 tokens/s). On a machine busy with other work
# fewer threads can be faster; IDEAGEN_LOCAL_THREADS sets the count.
DEFAULT_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
CONTEXT_SIZE = 8192
MAX_ENUM_RANGE = 100  # integer fields with bounds up to this wide become an enum


class Generation(BaseModel):
    """One reply and what it cost."""

    text: str
    cut: bool  # stopped by max_tokens rather than by the model
    tokens_in: int  # the whole prompt
    tokens_evaluated: int  # the part of the prompt not reused from the previous call
    tokens_out: int
    prompt_s: float
    decode_s: float


Progress = Callable[[int], None]  # called with the number of tokens generated so far


class Engine(ABC):
    """A loaded model that answers chat requests, optionally constrained to a JSON schema."""

    kind: str
    load_s: float

    @abstractmethod
    def generate(
        self,
        system: str | None,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        max_tokens: int,
        on_progress: Progress | None = None,
    ) -> Generation:
        """The model's reply to the conversation; calls are served one at a time."""

    @abstractmethod
    def close(self) -> None:
        """Free the model (the process exit does it too)."""


def threads() -> int:
    value = os.environ.get(THREADS_ENV)
    if not value:
        return DEFAULT_THREADS
    if not value.isdigit() or int(value) < 1:
        raise ModelError(f"{THREADS_ENV} must be a whole number of threads, not {value!r}")
    return int(value)


def engine_kind() -> str:
    """llama-cpp when llama-cpp-python is importable, else node; IDEAGEN_LOCAL_ENGINE decides."""
    chosen = os.environ.get(ENGINE_ENV)
    if chosen:
        if chosen not in ("node", "llama-cpp"):
            raise ModelError(f"{ENGINE_ENV} must be node or llama-cpp, not {chosen!r}")
        return chosen
    return "llama-cpp" if importlib.util.find_spec("llama_cpp") else "node"


_engines: dict[tuple[str, str, int], Engine] = {}
_engines_lock = threading.Lock()


def load_engine(spec: ModelSpec) -> Engine:
    """The engine for this model, loaded on first use and kept for the process."""
    kind, count = engine_kind(), threads()
    with _engines_lock:
        key = (kind, spec.key, count)
        if key not in _engines:
            path = model_path(spec)
            if kind == "llama-cpp":
                from ideagen.local.llama_cpp_engine import LlamaCppEngine

                _engines[key] = LlamaCppEngine(path, threads=count, context_size=CONTEXT_SIZE)
            else:
                from ideagen.local.node_engine import NodeEngine

                _engines[key] = NodeEngine(path, threads=count, context_size=CONTEXT_SIZE)
        return _engines[key]


def grammar_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The pydantic schema in the subset both runtimes turn into a grammar.

    Neither runtime enforces an integer's minimum/maximum, so bounded integers become an enum of
    their values, and so does a const; anyOf becomes oneOf; keywords the grammars ignore
    (title, pattern, default) are dropped, so what validation still checks is what pydantic
    checks after.
    """
    full = schema.model_json_schema()
    definitions = full.pop("$defs", {})

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return convert(deepcopy(definitions[node["$ref"].rsplit("/", 1)[-1]]))
        out = {
            key: convert(value)
            for key, value in node.items()
            if key not in ("title", "pattern", "default", "examples")
        }
        if "anyOf" in out:
            out["oneOf"] = out.pop("anyOf")
        if "const" in out:  # a one-value Literal
            out["enum"] = [out.pop("const")]
        if out.get("type") == "object":
            out.setdefault("additionalProperties", False)
        if out.get("type") == "integer":
            low = out.pop("minimum", None)
            high = out.pop("maximum", None)
            low = out.pop("exclusiveMinimum", None) + 1 if "exclusiveMinimum" in out else low
            high = out.pop("exclusiveMaximum", None) - 1 if "exclusiveMaximum" in out else high
            if low is not None and high is not None and high - low <= MAX_ENUM_RANGE:
                out.pop("type")
                out["enum"] = list(range(low, high + 1))
        return out

    return convert(full)
