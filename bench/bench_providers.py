"""Benchmark the language-model layer and print the figures.

Local model (SmolLM2-135M-Instruct on this machine's CPU): load time, tokens per second of
free generation, seconds per structured idea (an idea-shaped schema, field by field).
SDK providers: wall time per call through get_model against the loopback server, side by
side with the baseline of a bare HTTP POST of the same request to the same server, and with
a response-cache hit.

    .venv/bin/python bench/bench_providers.py [--calls 50] [--ideas 3] [--skip-local]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel, Field

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for testkit, when run as a file

from ideagen.providers import Message, RetryPolicy, get_model  # noqa: E402
from ideagen.store import Store  # noqa: E402
from testkit.loopback import LoopbackServer, Reply  # noqa: E402

CONTEXT = "def train(model, loader):\n    for batch in loader:\n        step(batch)\n" * 80
ASK = [Message(role="user", content="Propose one research idea for a FashionMNIST CNN.")]
IDEA_REPLY = json.dumps(
    {
        "Name": "cosine_warm_restarts",
        "Title": "Cosine learning-rate schedule with warm restarts",
        "Experiment": "Replace the step schedule with cosine warm restarts; compare accuracy.",
        "Interestingness": 6,
        "Feasibility": 9,
        "Novelty": 3,
    }
)

LOAD_SCRIPT = (
    "from ideagen.providers.local_provider import load_model; print(load_model().load_seconds)"
)


class IdeaDraft(BaseModel):
    Name: str = Field(pattern=r"^[a-z0-9_]+$", description="a short snake_case name")
    Title: str = Field(description="the title of the idea")
    Experiment: str = Field(description="what to change in the training code and measure")
    Interestingness: int = Field(ge=1, le=10)
    Feasibility: int = Field(ge=1, le=10)
    Novelty: int = Field(ge=1, le=10)


def bench_local(store: Store, ideas: int) -> None:
    from ideagen.providers.local_provider import Decoder, load_model, torch_threads

    with tempfile.TemporaryDirectory() as cache:
        for label in ("converting the GGUF file", "from the kept conversion"):
            seconds = subprocess.run(
                [sys.executable, "-c", LOAD_SCRIPT],
                env={**os.environ, "IDEAGEN_MODEL_CACHE": cache},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()[-1]
            print(f"local load, {label:26s}{float(seconds):8.1f} s")
    loaded = load_model()
    prompt = loaded.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": CONTEXT[:1200]},
            {"role": "user", "content": ASK[0].content},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    for threads in ("2", "1"):
        os.environ["IDEAGEN_LOCAL_THREADS"] = threads
        with torch_threads():
            decoder = Decoder(loaded, temperature=0.7)
            started = time.perf_counter()
            decoder.feed_text(prompt)
            prefill = time.perf_counter() - started
            started = time.perf_counter()
            decoder.generate_line(48, stop_at_line_end=False)
            generation = time.perf_counter() - started
        print(
            f"local, {threads} thread(s): prompt {decoder.tokens_in / prefill:6.1f} tokens/s "
            f"({decoder.tokens_in} tokens), generation {decoder.tokens_out / generation:5.1f}"
            f" tokens/s ({decoder.tokens_out} tokens)"
        )
    del os.environ["IDEAGEN_LOCAL_THREADS"]
    model = get_model("local", store=store, run_id="bench-local")
    seconds = []
    for _ in range(ideas):
        started = time.perf_counter()
        draft = model.structured(ASK, IdeaDraft, system="You are an ML researcher.")
        seconds.append(time.perf_counter() - started)
        print(f"    {draft.Name}: {draft.Title[:70]}")
    print(
        f"local structured idea                 {statistics.mean(seconds):8.1f} s/idea "
        f"(n={ideas}, min {min(seconds):.1f}, max {max(seconds):.1f})"
    )
    spend = store.spend("bench-local")
    print(f"local tokens for those ideas          in {spend.tokens_in}, out {spend.tokens_out}")


def raw_post(url: str, path: str, body: dict, headers: dict) -> None:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port)
    connection.request(
        "POST", path, json.dumps(body), {"content-type": "application/json", **headers}
    )
    connection.getresponse().read()
    connection.close()


def timed(action, calls: int) -> list[float]:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return seconds


def describe(label: str, seconds: list[float]) -> str:
    median = statistics.median(seconds) * 1000
    p90 = sorted(seconds)[int(len(seconds) * 0.9) - 1] * 1000
    return f"{label:38s}{median:8.2f} ms median  {p90:8.2f} ms p90"


def bench_sdk(store: Store, calls: int) -> None:
    with LoopbackServer() as server:
        server.responder = lambda request: Reply(IDEA_REPLY)
        os.environ.update(
            ANTHROPIC_API_KEY="sk-bench",
            ANTHROPIC_BASE_URL=server.anthropic_url,
            OPENAI_API_KEY="sk-bench",
            OPENAI_BASE_URL=server.openai_url,
        )
        print(
            "SIMULATED API: the loopback server on 127.0.0.1 answers at once (no model, no "
            "added latency), so the figures are ideagen's own overhead per call"
        )
        policy = RetryPolicy(call_timeout_s=10)
        bodies = {
            "anthropic": (
                "/v1/messages",
                {
                    "model": "claude-sonnet-5-5",
                    "max_tokens": 1024,
                    "system": [{"type": "text", "text": CONTEXT}],
                    "messages": [{"role": "user", "content": ASK[0].content}],
                },
                {"x-api-key": "sk-bench", "anthropic-version": "2023-06-01"},
            ),
            "openai": (
                "/v1/chat/completions",
                {
                    "model": "gpt-4.1",
                    "max_tokens": 1024,
                    "messages": [
                        {"role": "system", "content": CONTEXT},
                        {"role": "user", "content": ASK[0].content},
                    ],
                },
                {"authorization": "Bearer sk-bench"},
            ),
        }
        for provider, (path, body, headers) in bodies.items():
            model = get_model(provider, store=store, retry=policy, run_id=f"bench-{provider}")
            print(f"{provider}:")

            def post(path=path, body=body, headers=headers) -> None:
                raw_post(server.url, path, body, headers)

            def complete(model=model, temperature: float = 0.7) -> None:
                model.complete(ASK, context=CONTEXT, temperature=temperature)

            def structured(model=model) -> None:
                model.structured(ASK, IdeaDraft, context=CONTEXT)

            baseline = timed(post, calls)
            print("  " + describe("bare HTTP POST (baseline)", baseline))
            through = timed(complete, calls)
            print("  " + describe("complete() via SDK + records", through))
            print("  " + describe("structured() idea", timed(structured, calls)))
            complete(temperature=0)
            cached = timed(lambda: complete(temperature=0), calls)
            print("  " + describe("response-cache hit", cached))
            overhead = (statistics.median(through) - statistics.median(baseline)) * 1000
            print(f"  {'overhead per call over baseline':38s}{overhead:8.2f} ms")
            spend = store.spend(f"bench-{provider}")
            print(
                f"  {'recorded':38s}{spend.calls} calls, cache reads {spend.cache_read_tokens}"
                f" tokens, estimated ${spend.cost_usd:.4f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50, help="calls per SDK measurement")
    parser.add_argument(
        "--ideas", type=int, default=3, help="structured ideas from the local model"
    )
    parser.add_argument("--skip-local", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPU cores, load average {load}")
    with tempfile.TemporaryDirectory() as home, Store.open(home) as store:
        bench_sdk(store, args.calls)
        if not args.skip_local:
            bench_local(store, args.ideas)


if __name__ == "__main__":
    main()
