"""llama.cpp in this process through llama-cpp-python (the optional `llama-cpp` extra).

Same speed as the Node bridge without a second process; PyPI ships it only as source, so it is
used when the user has built it. llama-cpp-python keeps the previous prompt's tokens and skips
the shared prefix of the next prompt by itself. Unlike the bridge's (see `settle` in
bridge.mjs), its reply at temperature 0 can therefore depend on the prompt before it; it is not
built on the machines this is developed on, so it is left as it is.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from ideagen.local.engine import Engine, Generation, Progress
from ideagen.providers.base import Message


class LlamaCppEngine(Engine):
    kind = "llama-cpp"

    def __init__(self, model: Path, *, threads: int, context_size: int):
        from llama_cpp import Llama

        started = time.perf_counter()
        self.llama = Llama(
            model_path=str(model),
            n_ctx=context_size,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        self.load_s = time.perf_counter() - started
        self.context_size = context_size
        self._lock = threading.Lock()

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
        chat = [{"role": "system", "content": system}] if system else []
        chat += [message.model_dump() for message in messages]
        response_format = {"type": "json_object", "schema": schema} if schema else None
        with self._lock:
            previous = self.llama.input_ids[: self.llama.n_tokens].tolist()
            begun = time.perf_counter()
            first_token_at = None
            pieces: list[str] = []
            finish = None
            for chunk in self.llama.create_chat_completion(
                chat,
                response_format=response_format,
                temperature=temperature,
                max_tokens=max_tokens,
                stream=True,
            ):
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    first_token_at = first_token_at or time.perf_counter()
                    pieces.append(text)
                    if on_progress:
                        on_progress(len(pieces))
                finish = choice.get("finish_reason") or finish
            finished = time.perf_counter()
            produced = len(pieces)
            prompt_tokens = max(0, self.llama.n_tokens - produced)
            prompt = self.llama.input_ids[:prompt_tokens].tolist()
        reused = next(
            (i for i, (old, new) in enumerate(zip(previous, prompt, strict=False)) if old != new),
            min(len(previous), len(prompt)),
        )
        prompt_end = first_token_at or finished
        return Generation(
            text="".join(pieces),
            cut=finish == "length",
            tokens_in=prompt_tokens,
            tokens_evaluated=prompt_tokens - reused,
            tokens_out=produced,
            prompt_s=prompt_end - begun,
            decode_s=finished - prompt_end,
        )

    def close(self) -> None:
        self.llama.close()
