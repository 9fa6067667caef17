"""Benchmark the language-model layer and print the figures.

SDK providers: wall time per call through get_model against the loopback server, side by
side with the baseline of a bare HTTP POST of the same request to the same server, and with
a response-cache hit.

    .venv/bin/python bench/bench_providers.py [--calls 50]

The local model has its own benchmark: bench/bench_local_model.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
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


class IdeaDraft(BaseModel):
    Name: str = Field(pattern=r"^[a-z0-9_]+$", description="a short snake_case name")
    Title: str = Field(description="the title of the idea")
    Experiment: str = Field(description="what to change in the training code and measure")
    Interestingness: int = Field(ge=1, le=10)
    Feasibility: int = Field(ge=1, le=10)
    Novelty: int = Field(ge=1, le=10)


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
    args = parser.parse_args()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPU cores, load average {load}")
    with tempfile.TemporaryDirectory() as home, Store.open(home) as store:
        bench_sdk(store, args.calls)


if __name__ == "__main__":
    main()
