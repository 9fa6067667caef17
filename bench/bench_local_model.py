"""Benchmark the offline models on llama.cpp, side by side on the same prompts.

For each installed model (the old default SmolLM2-135M, the 0.5B fallback, the new default
Qwen2.5-Coder-1.5B, and the 1.5B on two threads) a fresh engine is started and asked for one
structured idea per topic under the JSON-schema grammar. Printed per row: load time, prompt
tokens/s (first call, whole prompt), decode tokens/s, peak RSS of the engine process, seconds
per structured idea, the share of replies that validate, and the prompt time of a repeated call
(prefix reuse). The baseline is the old runtime's figure from issue 10 (SmolLM2 through
transformers + gguf: 12.8 decode tokens/s, ideas 0 of 8 usable).

    nice .venv/bin/python bench/bench_local_model.py [--models KEY ...] [--topics N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from ideagen.local import engine, models
from ideagen.providers.base import Message, ModelError
from ideagen.resources import template_dir

TOPICS = ["evolutionary hyperparameter search", "data augmentation", "learning-rate schedules"]
ASK = "Propose one research idea about {topic} for this template, as JSON."
BASELINE = "old runtime (transformers+gguf, SmolLM2-135M, issue 10): decode 12.8 tok/s, 0/8 usable"


class Idea(BaseModel):
    Name: str = Field(max_length=40, description="a short lowercase identifier with underscores")
    Title: str = Field(max_length=150, description="the title of the idea")
    Experiment: str = Field(
        max_length=800, description="what to change in experiment.py and what to measure"
    )
    Interestingness: int = Field(ge=1, le=10)
    Feasibility: int = Field(ge=1, le=10)
    Novelty: int = Field(ge=1, le=10)


@dataclass
class Row:
    label: str
    load_s: float
    prompt_tps: float
    decode_tps: float
    peak_rss_mb: float | None
    s_per_idea: float
    valid: str
    reuse_prompt_s: float
    first_prompt_s: float
    sample: str


def system_prompt() -> str:
    prompt = json.loads((template_dir() / "prompt.json").read_text())
    code = (template_dir() / "experiment.py").read_text()[:4000]
    return f"{prompt['system']}\n\n{prompt['task_description']}\n\nexperiment.py begins:\n{code}"


def peak_rss_mb(loaded: engine.Engine) -> float | None:
    process = getattr(loaded, "process", None)
    if process is None:
        return None
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def run(key: str, threads: int, topics: list[str]) -> Row:
    spec = models.MODELS[key]
    path = models.model_path(spec)
    schema = engine.grammar_schema(Idea)
    system = system_prompt()
    if engine.engine_kind() == "llama-cpp":
        from ideagen.local.llama_cpp_engine import LlamaCppEngine as Chosen
    else:
        from ideagen.local.node_engine import NodeEngine as Chosen
    loaded = Chosen(path, threads=threads, context_size=engine.CONTEXT_SIZE)
    try:
        results, seconds, valid = [], [], 0
        for topic in topics:
            ask = [Message(role="user", content=ASK.format(topic=topic))]
            started = time.perf_counter()
            result = loaded.generate(system, ask, schema=schema, temperature=0.7, max_tokens=400)
            seconds.append(time.perf_counter() - started)
            results.append(result)
            try:
                idea = Idea.model_validate_json(result.text)
                valid += 1
            except ValidationError:
                idea = None
        first = results[0]
        repeat = loaded.generate(
            system,
            [Message(role="user", content=ASK.format(topic=topics[0]))],
            schema=schema,
            temperature=0.7,
            max_tokens=8,
        )
        decode = sum(r.tokens_out for r in results) / max(1e-9, sum(r.decode_s for r in results))
        return Row(
            label=f"{spec.name} ({threads} thread{'s' if threads > 1 else ''})",
            load_s=loaded.load_s,
            prompt_tps=first.tokens_evaluated / max(1e-9, first.prompt_s),
            decode_tps=decode,
            peak_rss_mb=peak_rss_mb(loaded),
            s_per_idea=statistics.mean(seconds),
            valid=f"{valid}/{len(topics)}",
            reuse_prompt_s=repeat.prompt_s,
            first_prompt_s=first.prompt_s,
            sample=idea.Title if idea else results[-1].text[:80],
        )
    finally:
        loaded.close()


def describe(row: Row) -> str:
    rss = f"{row.peak_rss_mb:.0f}" if row.peak_rss_mb else "n/a"
    return (
        f"{row.label:<42} {row.load_s:>6.1f} {row.prompt_tps:>10.1f} {row.decode_tps:>10.1f} "
        f"{rss:>7} {row.s_per_idea:>7.1f} {row.valid:>5} {row.first_prompt_s:>12.1f} "
        f"{row.reuse_prompt_s:>7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs",
        nargs="+",
        default=[
            "smollm2-135m:1",
            "qwen2.5-coder-0.5b:1",
            "qwen2.5-coder-1.5b:1",
            "qwen2.5-coder-1.5b:2",
        ],
        help="MODEL:THREADS pairs",
    )
    parser.add_argument("--topics", type=int, default=3)
    args = parser.parse_args()
    print(
        f"engine: {engine.engine_kind()}; CPUs: {os.cpu_count()}; load average now: "
        f"{os.getloadavg()[0]:.1f}"
    )
    rows = []
    for run_spec in args.runs:
        key, threads = run_spec.split(":")
        try:
            rows.append(run(key, int(threads), TOPICS[: args.topics]))
        except ModelError as error:
            print(f"skipped {key}: {error}")
            continue
        print(f"{run_spec}: {describe(rows[-1])}", flush=True)
    header = (
        f"{'model':<42} {'load s':>6} {'prompt t/s':>10} {'decode t/s':>10} {'RSS MB':>7} "
        f"{'s/idea':>7} {'valid':>5} {'1st prompt s':>12} {'reuse s':>7}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(describe(row))
    print(f"baseline: {BASELINE}")
    print("a title from each model:")
    for row in rows:
        print(f"  {row.label}: {row.sample}")


if __name__ == "__main__":
    main()
