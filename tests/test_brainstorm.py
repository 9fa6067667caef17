"""`ideagen brainstorm` end to end against the server model server (both APIs).

The server stands in for the model API at the socket; `IdeaWriter` decides what the "model"
answers: a new idea for a draft request, a critique (with the done flag) for a critique
request. Everything between the command line and the socket is the production code.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ideagen import embeddings
from ideagen.brainstorm import Brainstorm, BrainstormEvent
from ideagen.cli import main
from ideagen.ideafile import load_ideas
from ideagen.providers import RetryPolicy, get_model
from ideagen.store import Store
from ideagen.template_context import load_template
from tests.loopback import Fault, LoopbackServer, ReceivedRequest, Reply

REPO = Path(__file__).resolve().parents[1]

# Distinct experiments on different parts of a small image classifier, so that the "model"
# can propose many ideas that are not duplicates of each other.
IDEA_BANK = [
    (
        "label_smoothing_sweep",
        "Label Smoothing Strength and Calibration",
        "Replace the cross-entropy loss with label-smoothed cross-entropy at smoothing 0.0, 0.05, "
        "0.1 and 0.2; measure test accuracy and expected calibration error.",
    ),
    (
        "cosine_warm_restarts",
        "Cosine Learning Rate with Warm Restarts",
        "Swap the step learning-rate schedule for cosine annealing with warm restarts every two "
        "epochs; compare convergence speed and final test accuracy.",
    ),
    (
        "mixup_regularization",
        "Mixup Between Training Images",
        "Train on convex combinations of pairs of images and their labels with a Beta(0.2, 0.2) "
        "mixing weight; report test accuracy and the train-test gap.",
    ),
    (
        "width_depth_tradeoff",
        "Trading Width for Depth in a Small CNN",
        "Keep the parameter count fixed while moving capacity from channel width to extra "
        "convolution layers; chart accuracy against depth.",
    ),
    (
        "batch_size_scaling",
        "Batch Size and the Linear Scaling Rule",
        "Train with batch sizes 32 to 512, scaling the learning rate linearly; record accuracy and "
        "wall-clock time per epoch.",
    ),
    (
        "dropout_schedule",
        "Scheduled Dropout That Rises During Training",
        "Increase the dropout probability linearly from 0 to 0.5 over training instead of a fixed "
        "rate; measure overfitting and final accuracy.",
    ),
    (
        "weight_decay_adamw",
        "Decoupled Weight Decay Strength",
        "Use AdamW with decoupled weight decay from 0 to 0.1 and compare the test loss curves and "
        "the norm of the final weights.",
    ),
    (
        "random_erasing",
        "Random Erasing Augmentation",
        "Erase a random rectangle of each training image with probability 0.5; measure robustness "
        "to occluded test images and clean accuracy.",
    ),
    (
        "gradient_clipping",
        "Gradient Norm Clipping Thresholds",
        "Clip the global gradient norm at 0.5, 1, 5 and no clipping; track training stability and "
        "the number of loss spikes.",
    ),
    (
        "evolved_lr_schedule",
        "Evolving Learning Rate Schedules",
        "Encode a piecewise-linear learning rate schedule as a genome and run a small genetic "
        "algorithm over eight individuals for five generations, scoring each by validation "
        "accuracy after one epoch.",
    ),
    (
        "pruning_magnitude",
        "Magnitude Pruning After Training",
        "Remove the smallest 50, 70 and 90 percent of weights after training and fine-tune for "
        "one epoch; plot accuracy against sparsity.",
    ),
    (
        "knowledge_distillation_self",
        "Self-Distillation Across Generations",
        "Train a second copy of the network on the softened outputs of the first at temperature "
        "4; compare student and teacher accuracy.",
    ),
    (
        "activation_functions",
        "GELU, SiLU and ReLU Compared",
        "Swap the ReLU activations for GELU and SiLU throughout the network and measure accuracy "
        "and training time.",
    ),
    (
        "class_imbalance",
        "Robustness to Class Imbalance",
        "Subsample three classes to ten percent of their training images and compare loss "
        "reweighting against oversampling on per-class recall.",
    ),
    (
        "early_stopping_patience",
        "Early Stopping Patience",
        "Stop training when validation loss has not improved for 1, 2 or 4 epochs; report "
        "accuracy and epochs used.",
    ),
    (
        "batchnorm_placement",
        "Batch Normalization Before or After the Activation",
        "Insert batch normalization before versus after each ReLU and compare training speed and "
        "accuracy.",
    ),
    (
        "input_noise_robustness",
        "Training With Gaussian Input Noise",
        "Add Gaussian noise of standard deviation 0.1 to 0.3 to training inputs and evaluate "
        "accuracy on noisy and clean test images.",
    ),
    (
        "optimizer_comparison",
        "SGD With Momentum Versus Adam",
        "Train with SGD plus Nesterov momentum and with Adam at tuned learning rates; compare "
        "final accuracy and sharpness of the minimum.",
    ),
    (
        "kernel_size_study",
        "Large Versus Small Convolution Kernels",
        "Replace the 3x3 kernels with 5x5 and 7x7 kernels at equal parameter budget and measure "
        "accuracy per parameter.",
    ),
    (
        "stochastic_weight_averaging",
        "Stochastic Weight Averaging",
        "Average the weights over the last three epochs with a constant learning rate and "
        "compare test accuracy to the final weights.",
    ),
    (
        "curriculum_by_loss",
        "Curriculum Learning Ordered by Loss",
        "Order training images from low to high loss of a one-epoch model and feed easy examples "
        "first; measure convergence speed.",
    ),
    (
        "global_average_pooling",
        "Global Average Pooling Instead of Dense Layers",
        "Replace the fully connected layers with global average pooling and a linear classifier; "
        "compare parameters and accuracy.",
    ),
    (
        "seed_variance",
        "How Much Do Random Seeds Matter",
        "Run the baseline with ten random seeds and measure the spread of test accuracy and the "
        "ranking stability of two architectures.",
    ),
    (
        "confusion_pairs",
        "Targeted Augmentation for Confused Classes",
        "Find the two most confused class pairs and apply extra augmentation only to them; "
        "measure the change in their pairwise error.",
    ),
]

DRAFT_MARK = "Propose ONE new research idea"
CRITIQUE_MARK = "Critique it strictly"
FAST_RETRY = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=10, total_timeout_s=30)


def idea_json(name: str, title: str, experiment: str) -> dict:
    return {
        "Name": name,
        "Title": title,
        "Experiment": experiment,
        "Interestingness": 7,
        "Feasibility": 8,
        "Novelty": 6,
    }


class IdeaWriter:
    """The server server's responder: writes ideas from IDEA_BANK, critiques as scripted.

    `done_after`: the critique round in which it says done. `drafts`: optional list of
    (name, title, experiment) to hand out before the bank (for duplicates, infeasible...).
    """

    def __init__(self, done_after: int = 2, drafts: list[tuple[str, str, str]] | None = None):
        self.done_after = done_after
        self.queue = list(drafts or []) + list(IDEA_BANK)
        self.lock = threading.Lock()
        self.drafts = 0
        self.critiques = 0

    def __call__(self, request: ReceivedRequest) -> Reply:
        first_user = next(text for role, text in request.messages if role == "user")
        if DRAFT_MARK in first_user:
            with self.lock:
                self.drafts += 1
                name, title, experiment = self.queue.pop(0)
            return Reply(json.dumps(idea_json(name, title, experiment)))
        if CRITIQUE_MARK in first_user:
            with self.lock:
                self.critiques += 1
            round_number = int(re.search(r"round (\d+) of at most", first_user).group(1))
            shown = json.loads(first_user[first_user.index("{") : first_user.index("}") + 1])
            done = round_number >= self.done_after
            if not done:
                shown["Experiment"] += f" Repeat with {round_number + 2} seeds."
            critique = {"critique": "The measurement could be sharper.", "done": done}
            return Reply(json.dumps(critique | shown))
        return Reply("I only write ideas.")


def make_template(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompt.json").write_text(
        json.dumps(
            {
                "system": "You are an ambitious AI researcher.",
                "task_description": "You are given a script that trains a small CNN on "
                "FashionMNIST and reports test accuracy.",
            }
        )
    )
    layers = "\n".join(
        f"        self.conv{i} = nn.Conv2d({16 * i}, {16 * (i + 1)}, 3, padding=1)"
        for i in range(1, 120)
    )
    (folder / "experiment.py").write_text(
        "import torch\nimport torch.nn as nn\nfrom torchvision import datasets\n\n"
        "# trains on FashionMNIST from torchvision\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        f"{layers}\n"
    )
    (folder / "seed_ideas.json").write_text("[]")
    return folder


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    """The loopback model server, started for one test."""
    with LoopbackServer() as started:
        yield started


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return make_template(tmp_path / "fashion_template")


@pytest.fixture(params=["anthropic", "openai"])
def provider(request, server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "anthropic":
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    else:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-brainstorm")
    return request.param


@pytest.fixture
def anthropic(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Only the Anthropic API, for behaviour that does not depend on the provider."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    return "anthropic"


def run_brainstorm(store: Store, template: Path, out: Path, provider: str, **options):
    model = get_model(provider, store=store, retry=FAST_RETRY)
    options.setdefault("topic", "regularization")
    options.setdefault("count", 3)
    return Brainstorm(model, store, load_template(template), out=out, **options).run()


def names_in(path: Path) -> list[str]:
    return [entry["Name"] for entry in json.loads(path.read_text())]


EXISTING = [
    {
        "Name": "baseline_check",
        "Title": "Baseline",
        "Experiment": "Run as is.",
        "Interestingness": 1,
        "Feasibility": 10,
        "Novelty": 1,
        "custom_key": [1, 2],
    },
    {
        "Name": "Not A Valid Name",
        "Title": "kept as it is",
        "Experiment": "x",
        "Interestingness": 11,
        "Feasibility": 1,
        "Novelty": 1,
    },
]


def test_ideas_are_drafted_refined_and_appended_with_provenance(
    server, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    out.write_text(json.dumps(EXISTING, indent=2))
    writer = IdeaWriter(done_after=2)
    server.responder = writer

    result = run_brainstorm(store, template, out, provider, count=3, rounds=3)

    entries = json.loads(out.read_text())
    assert entries[:2] == EXISTING  # existing entries kept exactly, invalid one included
    assert out.read_text().startswith("[\n  {")  # the file's own layout (indent 2) kept
    new = load_ideas(out).ideas[1:]
    assert len(new) == 3 and len(result.new) == 3
    assert {idea.Name for idea in new} == {f.idea.Name for f in result.new}
    # Each idea: one draft, then rounds until the model said done (round 2 of 3).
    assert writer.drafts == 3 and writer.critiques == 6
    assert all(f.rounds == 2 for f in result.new)
    assert all("Repeat with 3 seeds." in idea.Experiment for idea in new)
    stored = store.ideas(topic="regularization")
    assert len(stored) == 3
    assert all(s.source_file == str(out.resolve()) for s in stored)
    assert all(s.template == "fashion_template" and s.model.startswith(provider) for s in stored)
    row = store._conn.execute("SELECT rounds, tokens, cost_usd, run_id FROM ideas").fetchone()
    assert row[0] == 2 and row[1] > 0 and row[3] == result.run_id
    # The template's code goes to the model in every call, ahead of the changing part.
    for request in server.requests:
        prompt = request.prompt_text
        assert "self.conv119" in prompt and prompt.index("self.conv119") < prompt.index("Topic")
    assert result.spend.calls == 9 and result.spend.failed_calls == 0


def test_prompt_caching_serves_the_template_on_anthropic(
    server, monkeypatch, store, template, tmp_path
):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    server.min_cacheable_tokens = 500
    server.responder = IdeaWriter(done_after=1)
    result = run_brainstorm(
        store, template, tmp_path / "out.json", "anthropic", count=3, concurrency=1
    )
    spend = result.spend
    assert spend.calls == 6
    assert spend.cache_write_tokens > 0
    # After the first call writes the cache, the other five read it.
    assert spend.cache_read_tokens >= 5 * spend.cache_write_tokens * 0.99
    assert spend.cache_read_tokens > spend.tokens_in


def test_existing_ideas_are_summarized_not_repeated_in_full(
    server, anthropic, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    long_experiment = "A very long experiment description. " * 50
    out.write_text(json.dumps([idea_json("long_one", "A Long Idea", long_experiment)]))
    server.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=1)
    draft_prompt = server.requests[0].last_user_text
    assert "long_one: A Long Idea" in draft_prompt
    assert long_experiment not in draft_prompt


def test_faults_mid_run_lose_no_idea_and_write_none_twice(
    server, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    server.responder = IdeaWriter(done_after=1)
    server.script(
        Fault.rate_limited(retry_after=0),
        Fault.server_error(500),
        Fault.overloaded(),
        Fault.drop_connection(),
    )
    result = run_brainstorm(store, template, out, provider, count=4, concurrency=2)

    assert result.error is None and result.complete
    names = names_in(out)
    assert len(names) == 4 == len(set(names))
    assert result.spend.failed_calls == 4
    assert len(store.ideas(topic="regularization")) == 4


def test_a_fatal_error_stops_the_run_and_a_rerun_continues(
    server, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    writer = IdeaWriter(done_after=1)
    calls = {"n": 0}

    def fail_after_two_ideas(request: ReceivedRequest):
        calls["n"] += 1
        if calls["n"] > 4:  # two ideas of two calls each, then the key is revoked
            return Fault.error(401, "invalid api key")
        return writer(request)

    server.responder = fail_after_two_ideas
    first = run_brainstorm(store, template, out, provider, count=5, concurrency=1)
    assert first.error and "API key" in first.error
    assert len(first.new) == 2 and names_in(out) == [f.idea.Name for f in first.new]

    server.responder = writer
    second = run_brainstorm(store, template, out, provider, count=5, concurrency=1)
    assert second.error is None and second.complete
    assert len(second.earlier) == 2 and len(second.new) == 3
    names = names_in(out)
    assert len(names) == 5 == len(set(names))


def test_a_reply_that_stays_invalid_is_redrafted_not_fatal(
    server, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    writer = IdeaWriter(done_after=1)
    invalid_replies = {"left": 3}  # the first draft and both of its repairs

    def broken_first_draft(request: ReceivedRequest):
        first_user = next(text for role, text in request.messages if role == "user")
        if DRAFT_MARK in first_user and invalid_replies["left"]:
            invalid_replies["left"] -= 1
            return Reply(json.dumps({"Name": "no_ratings", "Title": "Missing fields"}))
        return writer(request)

    server.responder = broken_first_draft
    result = run_brainstorm(store, template, out, provider, count=2, concurrency=1)
    assert result.error is None and result.complete
    assert invalid_replies["left"] == 0
    assert len(names_in(out)) == 2 and "no_ratings" not in names_in(out)


def test_a_killed_run_resumes_where_it_stopped(server, monkeypatch, template, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    server.latency_s = 0.2
    writer = IdeaWriter(done_after=1)
    server.responder = writer
    out = tmp_path / "seed_ideas.json"
    arguments = [
        "brainstorm",
        "--topic",
        "regularization",
        "-n",
        "4",
        "--template",
        str(template),
        "--out",
        str(out),
        "--provider",
        "anthropic",
        "--concurrency",
        "1",
        "--quiet",
    ]
    command = [sys.executable, "-m", "ideagen", *arguments]
    process = subprocess.Popen(command, cwd=tmp_path, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (out.exists() and names_in(out)):
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    first_names = names_in(out)
    assert 1 <= len(first_names) < 4

    server.latency_s = 0
    assert main(arguments) == 0  # the same command again, in this process
    names = names_in(out)
    assert names[: len(first_names)] == first_names
    assert len(names) == 4 == len(set(names))
    assert load_ideas(out).errors == []


def test_fresh_starts_over_and_a_complete_run_is_not_repeated(
    server, anthropic, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    server.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=2)
    calls_before = len(server.requests)

    again = run_brainstorm(store, template, out, anthropic, count=2)
    assert again.complete and again.new == [] and len(server.requests) == calls_before

    fresh = run_brainstorm(store, template, out, anthropic, count=2, fresh=True)
    assert len(fresh.new) == 2 and len(names_in(out)) == 4


def test_duplicates_and_infeasible_ideas_are_rejected_and_redrafted(
    server, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    name, title, experiment = IDEA_BANK[0]
    out.write_text(json.dumps([idea_json(name, title, experiment)], indent=4))
    infeasible = (
        "imagenet_transfer",
        "Transfer From ImageNet",
        "Fine-tune a pretrained ResNet-50 from ImageNet on the images.",
    )
    reworded = ("smoothing_again", title, experiment)
    writer = IdeaWriter(done_after=1, drafts=[reworded, infeasible])
    server.responder = writer
    events: list[BrainstormEvent] = []

    model = get_model(provider, store=store, retry=FAST_RETRY)
    brainstorm = Brainstorm(
        model,
        store,
        load_template(template),
        topic="regularization",
        count=1,
        out=out,
        concurrency=1,
        report=events.append,
    )
    result = brainstorm.run()

    # The reworded copy and then the bank's verbatim copy of the existing idea are duplicates.
    assert result.duplicates_rejected == 2 and result.infeasible_rejected == 1
    names = names_in(out)
    assert names == [name, IDEA_BANK[1][0]]
    rejections = [e.detail for e in events if e.kind == "rejected"]
    assert "duplicated" in rejections[0] and "pretrained" in rejections[1]
    # The infeasible draft was shown the automated check before being rejected, and the next
    # draft was told why the earlier ones were rejected.
    critique_prompts = [
        r.last_user_text for r in server.requests if CRITIQUE_MARK in r.last_user_text
    ]
    assert any("Automated checks found problems" in p for p in critique_prompts)
    last_draft = [r.last_user_text for r in server.requests if DRAFT_MARK in r.last_user_text][-1]
    assert "rejected" in last_draft and "duplicated" in last_draft


def test_a_name_clash_gets_a_suffix(server, anthropic, store, template, tmp_path):
    out = tmp_path / "seed_ideas.json"
    other = idea_json(IDEA_BANK[0][0], "Something Else Entirely", "Unrelated: count pixels.")
    out.write_text(json.dumps([other], indent=4))
    server.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=1)
    assert names_in(out) == [IDEA_BANK[0][0], IDEA_BANK[0][0] + "_2"]


def test_ideas_are_drafted_concurrently(server, monkeypatch, store, template, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    server.responder = IdeaWriter(done_after=1)
    embeddings.load_model()  # loaded once per process; not what this test times
    server.latency_s = 0.5
    count, concurrency, calls_per_idea = 6, 3, 2
    started = time.monotonic()
    result = run_brainstorm(
        store,
        template,
        tmp_path / "out.json",
        "anthropic",
        count=count,
        concurrency=concurrency,
        rounds=1,
        report=lambda e: print(e) if e.kind in ("rejected", "finished") else None,
    )
    wall = time.monotonic() - started
    assert len(result.new) == count
    # About count/concurrency ideas in a row, each two call latencies long.
    expected = count / concurrency * calls_per_idea * server.latency_s
    sequential = count * calls_per_idea * server.latency_s
    assert expected * 0.9 <= wall < (expected + sequential) / 2
    # And the server really saw `concurrency` requests in flight at once, never more.
    arrivals = sorted(r.received_at for r in server.requests)
    peak = max(sum(1 for t in arrivals if s <= t < s + server.latency_s * 0.9) for s in arrivals)
    assert peak == concurrency


def test_cli_json_output_and_default_file(server, monkeypatch, template, tmp_path, capsys):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    monkeypatch.chdir(tmp_path)
    server.responder = IdeaWriter(done_after=1)
    code = main(
        ["brainstorm", "--topic", "augmentation", "-n", "2", "--template", str(template), "--json"]
    )
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["out"] == str(tmp_path / "seed_ideas.json")
    assert [idea["Name"] for idea in report["new_ideas"]] == names_in(tmp_path / "seed_ideas.json")
    assert report["spend"]["calls"] == 4
    assert (template / "seed_ideas.json").read_text() == "[]"


def test_cli_shows_progress_and_a_table(server, monkeypatch, template, tmp_path, capsys):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    server.responder = IdeaWriter(done_after=1)
    out = tmp_path / "ideas.json"
    code = main(
        [
            "brainstorm",
            "--topic",
            "augmentation",
            "-n",
            "2",
            "--template",
            str(template),
            "--out",
            str(out),
            "--provider",
            "anthropic",
        ]
    )
    err = " ".join(capsys.readouterr().err.split())  # the console wraps lines
    assert code == 0
    assert "New ideas in" in err and IDEA_BANK[0][0] in err
    assert "2 of 2 ideas" in err and "spend: 4 calls" in err


def test_cli_refuses_an_unreadable_file_and_leaves_it_alone(
    server, monkeypatch, template, tmp_path, capsys
):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    out = tmp_path / "ideas.json"
    out.write_text('[{"Name": "x",')
    code = main(["brainstorm", "--topic", "t", "--template", str(template), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(out) in err and "invalid JSON" in err and "Traceback" not in err
    assert out.read_text() == '[{"Name": "x",'
    assert server.requests == []


def test_cli_reports_a_bad_template_folder(tmp_path, capsys):
    code = main(["brainstorm", "--topic", "t", "--template", str(tmp_path)])
    assert code == 2
    assert f"{tmp_path / 'prompt.json'}: missing" in capsys.readouterr().err


@pytest.mark.slow
def test_the_local_model_writes_valid_ideas(store, template, tmp_path):
    out = tmp_path / "seed_ideas.json"
    model = get_model("local", store=store)
    result = Brainstorm(
        model,
        store,
        load_template(template),
        topic="data augmentation",
        count=1,
        out=out,
        rounds=1,
    ).run()
    loaded = load_ideas(out)
    assert loaded.errors == []
    assert len(loaded.ideas) == len(result.new) == 1
    idea = loaded.ideas[0]
    assert idea.Title.strip() and idea.Experiment.strip()
