"""Benchmark: `ideagen brainstorm` against a sequential, uncached baseline loop.

Both draft N ideas with R reflection rounds each through the same Anthropic provider, against
the loopback server at a fixed latency per call (default 1 s), in the same run:

- baseline: like The AI Scientist's idea generator, one idea after another; every first call
  sends the full template code and every previous idea in full, and every reflection round
  resends the whole conversation; nothing is cached.
- ideagen: N ideas drafted concurrently; the template code is the cached prefix; existing
  ideas go in as one-line summaries; each critique round sends only the current idea.

Run:  .venv/bin/python bench/bench_brainstorm.py [-n 20] [--rounds 3] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ideagen.brainstorm import Brainstorm  # noqa: E402
from ideagen.ideafile import load_ideas  # noqa: E402
from ideagen.providers import Message, get_model  # noqa: E402
from ideagen.store import SpendSummary, Store  # noqa: E402
from ideagen.template_prompt import bundled_template_dir, load_template  # noqa: E402
from testkit.ideas import IDEA_BANK, IdeaWriter, idea_json, make_template  # noqa: E402
from testkit.loopback import LoopbackServer, ReceivedRequest, Reply  # noqa: E402

BASELINE_FIRST = "BASELINE: propose the next idea."
BASELINE_REFLECT = "BASELINE: reflect on the idea"


class BenchResponder:
    """ideagen's prompts go to IdeaWriter; the baseline's get ideas from its own copy of the
    bank and, in reflection rounds, the same idea back (done in the last round)."""

    def __init__(self, rounds: int):
        self.ideagen = IdeaWriter(done_after=rounds)
        self.baseline_next = 0
        self.lock = threading.Lock()

    def __call__(self, request: ReceivedRequest) -> Reply:
        last = request.last_user_text
        if request.purpose == "baseline.first":
            with self.lock:
                name, title, experiment = IDEA_BANK[self.baseline_next % len(IDEA_BANK)]
                self.baseline_next += 1
            return Reply(
                "THOUGHT: a plain next step.\n" + json.dumps(idea_json(name, title, experiment))
            )
        if request.purpose == "baseline.reflect":
            previous = request.messages[-2][1]
            return Reply(
                previous.replace(
                    "a plain next step", "I am done" if "final" in last else "still refining"
                )
            )
        return self.ideagen(request)


def baseline_loop(model, template, seeds: list[dict], count: int, rounds: int) -> list[dict]:
    """One idea at a time; full code and every earlier idea in full in every first call; the
    whole conversation resent in every reflection round; no cache (no `context`)."""
    ideas = list(seeds)
    for _ in range(count):
        first = (
            f"{BASELINE_FIRST}\n\n{template.task_description}\n\n<experiment.py>\n"
            f"{template.experiment_code}\n</experiment.py>\n\nIdeas so far:\n\n"
            + "\n\n".join(json.dumps(idea) for idea in ideas)
            + "\n\nAnswer with THOUGHT and then the new idea as JSON."
        )
        history = [Message(role="user", content=first)]
        reply = model.complete(
            history, system=template.system, max_tokens=1024, purpose="baseline.first"
        )
        history.append(Message(role="assistant", content=reply.text))
        for round_number in range(1, rounds + 1):
            final = " (final round)" if round_number == rounds else ""
            history.append(
                Message(
                    role="user",
                    content=f"{BASELINE_REFLECT}, round {round_number}/{rounds}{final}. "
                    "Check quality, novelty and feasibility; repeat the JSON, improved.",
                )
            )
            reply = model.complete(
                history, system=template.system, max_tokens=1024, purpose="baseline.reflect"
            )
            history.append(Message(role="assistant", content=reply.text))
        text = history[-1].content
        ideas.append(json.loads(text[text.index("{") :]))
    return ideas[len(seeds) :]


def row(label: str, wall: float, spend: SpendSummary, ideas: int) -> list[str]:
    return [
        label,
        f"{ideas}",
        f"{wall:.1f}",
        f"{spend.calls}",
        f"{spend.tokens_in + spend.cache_write_tokens:,}",
        f"{spend.cache_read_tokens:,}",
        f"{spend.tokens_out:,}",
        f"${spend.cost_usd:.3f}",
    ]


def print_table(rows: list[list[str]]) -> None:
    header = [
        "",
        "ideas",
        "wall s",
        "calls",
        "uncached prompt tok",
        "cache-read tok",
        "output tok",
        "cost",
    ]
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for index, line in enumerate(table):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * width for width in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_brainstorm_"))
    try:
        template_dir = bundled_template_dir()
        if not (template_dir / "experiment.py").is_file():
            print(f"(no bundled template at {template_dir}; using a generated one)")
            template_dir = make_template(work / "template")
        template = load_template(template_dir)
        seeds_file = template_dir / "seed_ideas.json"
        seeds = json.loads(seeds_file.read_text()) if seeds_file.is_file() else []

        server = LoopbackServer(latency_s=args.latency).start()
        server.responder = BenchResponder(args.rounds)
        os.environ["ANTHROPIC_BASE_URL"] = server.anthropic_url
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
        store = Store.open(work / "home")

        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
        print(
            f"template {template.name}: experiment.py {len(template.experiment_code):,} chars, "
            f"{len(seeds)} seed ideas; N={args.n}, R={args.rounds}"
        )
        print(
            f"SIMULATED model: the loopback server (Anthropic API shape) waits {args.latency:g} s "
            "per call and counts tokens as characters / 4; no real model is called"
        )
        baseline_model = get_model("anthropic", store=store, run_id="baseline")
        started = time.monotonic()
        baseline_ideas = baseline_loop(baseline_model, template, seeds, args.n, args.rounds)
        baseline_wall = time.monotonic() - started
        baseline_spend = store.spend("baseline")

        out = work / "seed_ideas.json"
        if seeds_file.is_file():
            shutil.copy(seeds_file, out)
        model = get_model("anthropic", store=store)
        brainstorm = Brainstorm(
            model,
            store,
            template,
            topic="evolutionary",
            count=args.n,
            out=out,
            rounds=args.rounds,
            concurrency=args.concurrency,
        )
        started = time.monotonic()
        result = brainstorm.run()
        ideagen_wall = time.monotonic() - started
        ideagen_spend = brainstorm.spend()
        server.stop()

        assert len(load_ideas(out).ideas) == len(seeds) + len(result.new)
        print()
        print_table(
            [
                row(
                    "baseline (sequential, no cache)",
                    baseline_wall,
                    baseline_spend,
                    len(baseline_ideas),
                ),
                row(
                    f"ideagen (concurrency {brainstorm.concurrency}, cached)",
                    ideagen_wall,
                    ideagen_spend,
                    len(result.new),
                ),
            ]
        )
        baseline_uncached = baseline_spend.tokens_in + baseline_spend.cache_write_tokens
        ideagen_uncached = ideagen_spend.tokens_in + ideagen_spend.cache_write_tokens
        print()
        print(
            f"wall time (simulated): {baseline_wall / ideagen_wall:.1f}x less (goal >= 4x); "
            f"uncached prompt tokens: {baseline_uncached / ideagen_uncached:.1f}x fewer "
            f"(goal >= 3x); cost: {baseline_spend.cost_usd / ideagen_spend.cost_usd:.1f}x less"
        )
        print(
            f"ideagen rejected {result.duplicates_rejected} duplicate(s) and "
            f"{result.infeasible_rejected} infeasible draft(s) along the way "
            "(the embedding model load and duplicate checks are inside its wall time)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
