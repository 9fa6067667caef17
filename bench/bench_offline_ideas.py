"""Offline idea quality: the local model drafting seed ideas for the bundled template.

For each model and topic it runs `brainstorm` as a user would (a fresh store, one output file
per topic) and reports, next to each other:

- seconds per finished idea (wall clock, model already installed), decode tokens/s;
- the share of drafts that pass the gate, and why the others were refused;
- quality checks on the finished ideas, independent of the gate's thresholds: the topic's own
  words used, the template's settings named literally (e.g. `max_lr`, `widths`), its metrics
  named, and how distinct the ideas are (duplicate pairs and the highest meaning similarity
  between two new ideas of one topic).

Baseline: the old default, SmolLM2-135M, on the same runtime (`--model smollm2-135m`); issue 10
measured 0 usable ideas of 8 from it. Timings on a shared 2-core machine vary with load.

    nice .venv/bin/python bench/bench_offline_ideas.py                      # new default, 12 ideas
    nice .venv/bin/python bench/bench_offline_ideas.py --models qwen2.5-coder-1.5b smollm2-135m
    nice .venv/bin/python bench/bench_offline_ideas.py --topics evolutionary -n 3 --rounds 0 1
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ideagen import embeddings
from ideagen.brainstorm import Brainstorm, BrainstormEvent, default_rounds
from ideagen.dedup import duplicates_against, opening_text
from ideagen.gate import Gate
from ideagen.providers import get_model
from ideagen.store import Store
from ideagen.template_prompt import bundled_template_dir, load_template

TOPICS = ("evolutionary", "data augmentation", "regularization")


@dataclass
class TopicRun:
    model: str
    rounds: int
    topic: str
    wanted: int
    seconds: float
    ideas: list[dict]
    drafts: int
    rejected: dict[str, int]
    tokens_out: int
    generation_s: float
    angles: list[str]
    checks: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def passed_share(self) -> float:
        return len(self.ideas) / self.drafts if self.drafts else 0.0


def settings_of(code: str) -> list[str]:
    """The template's settings: module-level assignments above the first function."""
    head = code.split("\ndef ", 1)[0]
    return sorted(set(re.findall(r"^([a-z_][a-z0-9_]*)\s*=", head, re.MULTILINE)))


def quality(run: TopicRun, gate: Gate, settings: list[str], store: Store) -> dict:
    ideas = [idea for idea in (gate_idea(entry) for entry in run.ideas)]
    if not ideas:
        return {}
    texts = [f"{i.Title} {i.Experiment}" for i in ideas]
    named_settings = [
        sorted(s for s in settings if re.search(rf"\b{re.escape(s)}\b", text)) for text in texts
    ]
    vectors = embeddings.embed([opening_text(i) for i in ideas], store)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    duplicate_pairs = sum(
        len(duplicates_against([ideas[k]], ideas[k + 1 :], store)) for k in range(len(ideas) - 1)
    )
    return {
        "topic_words_used": sum(gate.names_topic(i) for i in ideas),
        "settings_named": sum(bool(named) for named in named_settings),
        "settings_named_each": named_settings,
        "metrics_named": sum(bool(gate.template_terms.measured(i)) for i in ideas),
        "duplicate_pairs": duplicate_pairs,
        "max_similarity": float(similarity.max()) if len(ideas) > 1 else None,
        "plain_english_words": [len(i.Experiment.split()) for i in ideas],
    }


def gate_idea(entry: dict):
    from ideagen.schema import Idea

    return Idea.from_entry(entry)


def run_topic(model_key: str, rounds: int | None, topic: str, count: int, home: Path) -> TopicRun:
    store = Store(home / "store.db")
    template = load_template(bundled_template_dir())
    model = get_model("local", model_key, store=store, run_id=None)
    out = home / f"{re.sub(r'[^a-z0-9]+', '_', topic)}.json"
    started = time.monotonic()

    def show(event: BrainstormEvent) -> None:
        detail = f": {event.detail[:150]}" if event.detail else ""
        print(
            f"   {time.monotonic() - started:6.0f} s  slot {event.slot} {event.kind}{detail}",
            flush=True,
        )

    brainstorm = Brainstorm(
        model,
        store,
        template,
        topic=topic,
        count=count,
        out=out,
        rounds=rounds,
        report=show,
    )
    result = brainstorm.run()
    seconds = time.monotonic() - started
    spend = result.spend
    run = TopicRun(
        model=model.model,
        rounds=brainstorm.rounds,
        topic=topic,
        wanted=count,
        seconds=seconds,
        ideas=[finished.idea.to_entry() for finished in result.new],
        drafts=result.drafts,
        rejected=result.rejected,
        tokens_out=spend.tokens_out if spend else 0,
        generation_s=spend.latency_s if spend else 0.0,
        angles=result.angles,
        error=result.error,
    )
    gate = Gate(template, store, topic=topic)
    run.checks = quality(run, gate, settings_of(template.experiment_code), store)
    return run


def report(runs: list[TopicRun]) -> None:
    print(
        f"{'model':30s} {'rounds':>6s} {'topic':18s} {'ideas':>6s} {'drafts':>6s} "
        f"{'pass':>5s} {'s/idea':>7s} {'tok/s':>6s}  refused"
    )
    for run in runs:
        per_idea = run.seconds / len(run.ideas) if run.ideas else float("inf")
        tokens = run.tokens_out / run.generation_s if run.generation_s else 0.0
        refused = ", ".join(f"{n} {kind}" for kind, n in sorted(run.rejected.items())) or "-"
        print(
            f"{run.model:30s} {run.rounds:6d} {run.topic:18s} {len(run.ideas):3d}/{run.wanted:<2d} "
            f"{run.drafts:6d} {run.passed_share:5.0%} {per_idea:7.0f} {tokens:6.1f}  {refused}"
        )
    print()
    for (model, rounds), group in _grouped(runs).items():
        ideas = sum(len(r.ideas) for r in group)
        drafts = sum(r.drafts for r in group)
        seconds = sum(r.seconds for r in group)
        checks = [r.checks for r in group if r.checks]
        print(
            f"{model} (rounds {rounds}): {ideas} ideas from {drafts} drafts "
            f"({ideas / drafts if drafts else 0:.0%} pass the gate), "
            f"{seconds / ideas if ideas else float('inf'):.0f} s per finished idea"
        )
        if checks:
            print(
                f"   topic words used {sum(c['topic_words_used'] for c in checks)}/{ideas}, "
                f"settings named literally {sum(c['settings_named'] for c in checks)}/{ideas}, "
                f"metrics named {sum(c['metrics_named'] for c in checks)}/{ideas}, "
                f"duplicate pairs {sum(c['duplicate_pairs'] for c in checks)}, highest "
                f"similarity between two ideas of a topic "
                f"{max((c['max_similarity'] or 0) for c in checks):.2f}"
            )
    print("\nBaseline (issue 10, SmolLM2-135M on transformers+gguf): 0 usable ideas of 8.")


def _grouped(runs: list[TopicRun]) -> dict[tuple[str, int], list[TopicRun]]:
    groups: dict[tuple[str, int], list[TopicRun]] = {}
    for run in runs:
        groups.setdefault((run.model, run.rounds), []).append(run)
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["qwen2.5-coder-1.5b"])
    parser.add_argument("--topics", nargs="+", default=list(TOPICS))
    parser.add_argument("-n", type=int, default=4, help="ideas per topic (default 4)")
    parser.add_argument(
        "--rounds", nargs="+", type=int, help="critique rounds to compare (default: local's)"
    )
    parser.add_argument("--save", type=Path, help="write every idea and figure here as JSON")
    args = parser.parse_args()
    runs = []
    for model_key in args.models:
        for rounds in args.rounds or [default_rounds("local")]:
            with tempfile.TemporaryDirectory() as home:
                for topic in args.topics:
                    run = run_topic(model_key, rounds, topic, args.n, Path(home))
                    runs.append(run)
                    print(
                        f"[{run.model} rounds={rounds} {topic!r}: {len(run.ideas)} ideas, "
                        f"{run.drafts} drafts, {run.seconds:.0f} s]",
                        flush=True,
                    )
                    for entry in run.ideas:
                        print(f"   - {entry['Title']}\n     {entry['Experiment']}", flush=True)
                    if args.save:
                        args.save.write_text(
                            json.dumps([r.__dict__ for r in runs], indent=2, default=str)
                        )
    print()
    report(runs)


if __name__ == "__main__":
    main()
