"""Repairs per 100 structured calls, by how each provider asks for structured output.

THE SERVER IS SCRIPTED: no model runs. The loopback server answers like a model does in each
mode, from a seeded random profile printed with the figures:
- asked by instructions alone (the parse-and-repair path), a reply is sometimes prose without
  JSON, cut-off JSON, a rating out of 1..10, a missing field or a Name breaking its pattern;
- Anthropic tool use (forced tool, schema as input_schema): the API always yields a JSON object,
  so the prose and cut-off slips go, but the schema slips stay (non-strict tool input is not
  constrained);
- OpenAI response_format json_schema, strict: decoding is constrained, so no slips;
- an OpenAI-compatible server without response_format: it answers 400 once, then the model is
  asked by instructions alone.
A repair request is always answered well. What the figures measure is the provider code: which
mode it asks for, and how many round trips the repair loop adds in each.

    .venv/bin/python bench/bench_structured.py [--calls 100] [--seed 7]

The baseline column is the same calls with the native hook off (instructions alone), as every
provider asked before native structured output.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for testkit, when run as a file

from ideagen.providers import InvalidReply, Message, get_model  # noqa: E402
from ideagen.store import Store  # noqa: E402
from testkit.loopback import LoopbackServer, ReceivedRequest, Reply  # noqa: E402

ASK = [Message(role="user", content="Propose one research idea for a FashionMNIST CNN.")]
GOOD = {
    "Name": "cosine_warm_restarts",
    "Title": "Cosine learning-rate schedule with warm restarts",
    "Experiment": "Replace the step schedule with cosine warm restarts; compare accuracy.",
    "Interestingness": 6,
    "Feasibility": 9,
    "Novelty": 3,
}
# (slip, probability per first attempt, whether a forced tool call still makes it)
SLIPS = [
    ("prose without JSON", 0.04, False),
    ("cut-off JSON", 0.04, False),
    ("rating out of 1..10", 0.05, True),
    ("missing field", 0.04, True),
    ("Name breaks its pattern", 0.03, True),
]


class IdeaDraft(BaseModel):
    Name: str = Field(pattern=r"^[a-z0-9_]+$", description="a short snake_case name")
    Title: str = Field(description="the title of the idea")
    Experiment: str = Field(description="what to change in the training code and measure")
    Interestingness: int = Field(ge=1, le=10)
    Feasibility: int = Field(ge=1, le=10)
    Novelty: int = Field(ge=1, le=10)


def slipped(slip: str) -> str:
    if slip == "prose without JSON":
        return "Here is an idea: try cosine warm restarts on the learning rate."
    if slip == "cut-off JSON":
        return json.dumps(GOOD)[:60]
    if slip == "rating out of 1..10":
        return json.dumps({**GOOD, "Feasibility": 11})
    if slip == "missing field":
        return json.dumps({k: v for k, v in GOOD.items() if k != "Experiment"})
    return json.dumps({**GOOD, "Name": "Cosine Warm Restarts"})


def is_repair(request: ReceivedRequest) -> bool:
    """A repair request carries the model's rejected reply and the note on what was wrong."""
    return len(request.messages) > 1


def scripted_model(seed: int):
    rng = random.Random(seed)

    def answer(request: ReceivedRequest) -> Reply:
        if is_repair(request):
            return Reply(json.dumps(GOOD))
        draw = rng.random()  # one per first attempt: every mode sees the same sequence
        form = request.body.get("response_format") or {}
        if (form.get("json_schema") or {}).get("strict"):
            return Reply(json.dumps(GOOD))
        forced_tool = bool(request.body.get("tool_choice"))
        edge = 0.0
        for slip, probability, with_tool in SLIPS:
            edge += probability
            if draw < edge:
                return Reply(slipped(slip) if with_tool or not forced_tool else json.dumps(GOOD))
        return Reply("```json\n" + json.dumps(GOOD) + "\n```")

    return answer


def measure(
    provider: str, server: LoopbackServer, calls: int, seed: int, *, native: bool
) -> dict[str, int]:
    server.responder = scripted_model(seed)
    server.requests.clear()
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "ideagen.sqlite")
        model = get_model(provider, model=f"bench-{provider}-{seed}", store=store, no_cache=True)
        if not native:
            # The baseline: the hook every provider had before native structured output.
            model._native_schema = lambda schema: None
        failed = 0
        for _ in range(calls):
            try:
                model.structured(ASK, IdeaDraft, temperature=0.7, purpose="bench")
            except InvalidReply:
                failed += 1
    repairs = sum(is_repair(r) for r in server.requests if "messages" in r.body)
    carried = sum("tools" in r.body or "response_format" in r.body for r in server.requests)
    return {
        "requests": len(server.requests),
        "repairs": repairs,
        "failed": failed,
        "native": carried,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    os.environ["ANTHROPIC_API_KEY"] = os.environ["OPENAI_API_KEY"] = "sk-bench"
    print("SCRIPTED SERVER: replies come from a seeded profile, not from a model.")
    print("First-attempt slip rates when asked by instructions alone:")
    for slip, probability, with_tool in SLIPS:
        kept = "kept" if with_tool else "gone"
        print(f"  {slip:26} {probability:.0%}  (under forced tool use: {kept})")
    print(f"\n{args.calls} structured calls per mode, seed {args.seed}:")
    print(
        f"{'mode':44} {'baseline':>8} {'repairs/100':>11} {'requests':>9} {'native':>7} "
        f"{'failed':>7}"
    )
    modes = [
        ("anthropic", "Anthropic Messages API", True),
        ("openai", "OpenAI Chat Completions", True),
        ("openai", "OpenAI-compatible server, no response_format", False),
    ]
    for provider, label, supports in modes:
        with LoopbackServer() as server:
            server.supports_response_format = supports
            os.environ["ANTHROPIC_BASE_URL"] = server.anthropic_url
            os.environ["OPENAI_BASE_URL"] = server.openai_url
            before = measure(provider, server, args.calls, args.seed, native=False)
            figures = measure(provider, server, args.calls, args.seed, native=True)
        baseline = 100 * before["repairs"] / args.calls
        per_100 = 100 * figures["repairs"] / args.calls
        print(
            f"{label:44} {baseline:8.1f} {per_100:11.1f} {figures['requests']:9d} "
            f"{figures['native']:7d} {figures['failed']:7d}"
        )
    print("baseline: repairs/100 asked by instructions alone (parse and repair, as before)")
    print("native: requests that carried tools or response_format")


if __name__ == "__main__":
    main()
