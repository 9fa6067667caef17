"""`ideagen brainstorm` end to end against the loopback model server (both APIs).

The server stands in for the model API at the socket; `IdeaWriter` decides what the "model"
answers: a new idea for a draft request, a critique (with the done flag) for a critique
request. Everything between the command line and the socket is the production code.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import pytest

from ideagen import embeddings
from ideagen.brainstorm import (
    SKETCH_MAX_CHARS,
    Angle,
    Brainstorm,
    BrainstormEvent,
    IdeaSketch,
    PlanPart,
    default_rounds,
    draft_fields,
    plan_parts,
    sketch_fields,
    sketch_schema,
)
from ideagen.cli import main
from ideagen.gate import TemplateTerms
from ideagen.idea_examples import ai_scientist_examples
from ideagen.ideafile import load_ideas
from ideagen.providers import RetryPolicy, get_model
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import load_template
from testkit.ideas import (
    CRITIQUE,
    DRAFT,
    IDEA_BANK,
    PLAN,
    PLAN_PARTS,
    REPAIR,
    IdeaWriter,
    idea_json,
    make_template,
)
from testkit.loopback import Fault, LoopbackServer, ReceivedRequest, Reply

REPO = Path(__file__).resolve().parents[1]

FAST_RETRY = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=10, total_timeout_s=30)


@pytest.fixture
def template(tmp_path: Path) -> Path:
    return make_template(tmp_path / "fashion_template")


@pytest.fixture(params=["anthropic", "openai"])
def provider(request, loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "anthropic":
        monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    else:
        monkeypatch.setenv("OPENAI_BASE_URL", loopback.openai_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-brainstorm")
    return request.param


@pytest.fixture
def anthropic(loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """Only the Anthropic API, for behaviour that does not depend on the provider."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
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
    loopback, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    out.write_text(json.dumps(EXISTING, indent=2))
    writer = IdeaWriter(done_after=2)
    loopback.responder = writer

    result = run_brainstorm(store, template, out, provider, count=3, rounds=3)

    entries = json.loads(out.read_text())
    assert entries[:2] == EXISTING  # existing entries kept exactly, invalid one included
    assert out.read_text().startswith("[\n  {")  # the file's own layout (indent 2) kept
    new = load_ideas(out).ideas[1:]
    assert len(new) == 3 and len(result.new) == 3
    assert {idea.Name for idea in new} == {f.idea.Name for f in result.new}
    # One plan for the run; each idea: one draft, then rounds until the model said done
    # (round 2 of 3).
    assert writer.plans == 1 and writer.drafts == 3 and writer.critiques == 6
    assert all(f.rounds == 2 for f in result.new)
    assert all("Repeat with 3 seeds." in idea.Experiment for idea in new)
    stored = store.ideas(topic="regularization")
    assert len(stored) == 3
    assert all(s.source_file == str(out.resolve()) for s in stored)
    assert all(s.template == "fashion_template" and s.model.startswith(provider) for s in stored)
    row = store._conn.execute("SELECT rounds, tokens, cost_usd, run_id FROM ideas").fetchone()
    assert row[0] == 2 and row[1] > 0 and row[3] == result.run_id
    # The template's code goes to the model in every call, ahead of the changing part.
    for request in loopback.requests:
        prompt = request.prompt_text
        assert "self.conv119" in prompt and prompt.index("self.conv119") < prompt.index("Topic")
    assert result.spend.calls == 10 and result.spend.failed_calls == 0


def test_prompt_caching_serves_the_template_on_anthropic(
    loopback, monkeypatch, store, template, tmp_path
):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    loopback.min_cacheable_tokens = 500
    loopback.responder = IdeaWriter(done_after=1)
    result = run_brainstorm(
        store, template, tmp_path / "out.json", "anthropic", count=3, concurrency=1
    )
    spend = result.spend
    assert spend.calls == 7
    assert spend.cache_write_tokens > 0
    # After the first call (the plan) writes the cache, the other six read it.
    assert spend.cache_read_tokens >= 6 * spend.cache_write_tokens * 0.99
    assert spend.cache_read_tokens > spend.tokens_in


def test_existing_ideas_are_summarized_not_repeated_in_full(
    loopback, anthropic, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    long_experiment = "A very long experiment description. " * 50
    out.write_text(json.dumps([idea_json("long_one", "A Long Idea", long_experiment)]))
    loopback.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=1)
    draft_prompt = next(r for r in loopback.requests if r.purpose == DRAFT).last_user_text
    assert "long_one: A Long Idea" in draft_prompt
    assert long_experiment not in draft_prompt


def test_faults_mid_run_lose_no_idea_and_write_none_twice(
    loopback, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    loopback.responder = IdeaWriter(done_after=1)
    loopback.script(
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
    loopback, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    writer = IdeaWriter(done_after=1)
    calls = {"n": 0}

    def fail_after_two_ideas(request: ReceivedRequest):
        calls["n"] += 1
        if calls["n"] > 5:  # the plan, two ideas of two calls each, then the key is revoked
            return Fault.error(401, "invalid api key")
        return writer(request)

    loopback.responder = fail_after_two_ideas
    first = run_brainstorm(store, template, out, provider, count=5, concurrency=1)
    assert first.error and "API key" in first.error
    assert len(first.new) == 2 and names_in(out) == [f.idea.Name for f in first.new]

    loopback.responder = writer
    second = run_brainstorm(store, template, out, provider, count=5, concurrency=1)
    assert second.error is None and second.complete
    assert len(second.earlier) == 2 and len(second.new) == 3
    names = names_in(out)
    assert len(names) == 5 == len(set(names))


def test_a_reply_that_stays_invalid_is_redrafted_not_fatal(
    loopback, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    writer = IdeaWriter(done_after=1)
    invalid_replies = {"left": 3}  # the first draft and both of its repairs

    def broken_first_draft(request: ReceivedRequest):
        if request.purpose == DRAFT and invalid_replies["left"]:
            invalid_replies["left"] -= 1
            return Reply(json.dumps({"Name": "no_ratings", "Title": "Missing fields"}))
        return writer(request)

    loopback.responder = broken_first_draft
    result = run_brainstorm(store, template, out, provider, count=2, concurrency=1)
    assert result.error is None and result.complete
    assert invalid_replies["left"] == 0
    assert len(names_in(out)) == 2 and "no_ratings" not in names_in(out)


def test_a_killed_run_resumes_where_it_stopped(loopback, monkeypatch, template, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    loopback.latency_s = 0.2
    writer = IdeaWriter(done_after=1)
    loopback.responder = writer
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

    loopback.latency_s = 0
    assert main(arguments) == 0  # the same command again, in this process
    names = names_in(out)
    assert names[: len(first_names)] == first_names
    assert len(names) == 4 == len(set(names))
    assert load_ideas(out).errors == []


def test_fresh_starts_over_and_a_complete_run_is_not_repeated(
    loopback, anthropic, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    loopback.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=2)
    calls_before = len(loopback.requests)

    again = run_brainstorm(store, template, out, anthropic, count=2)
    assert again.complete and again.new == [] and len(loopback.requests) == calls_before

    fresh = run_brainstorm(store, template, out, anthropic, count=2, fresh=True)
    assert len(fresh.new) == 2 and len(names_in(out)) == 4


def test_duplicates_and_infeasible_ideas_are_rejected_and_redrafted(
    loopback, provider, store, template, tmp_path
):
    out = tmp_path / "seed_ideas.json"
    name, title, experiment = IDEA_BANK[0]
    out.write_text(json.dumps([idea_json(name, title, experiment)], indent=4))
    infeasible = (
        "imagenet_transfer",
        "Transfer From ImageNet",
        "Replace the convolution layers with a pretrained ResNet-50 from ImageNet and fine-tune "
        "it with the same learning_rate, weight_decay and label_smoothing for all epochs; "
        "compare test accuracy and training time with the small network.",
    )
    reworded = ("smoothing_again", title, experiment)
    writer = IdeaWriter(done_after=1, drafts=[reworded, infeasible])
    loopback.responder = writer
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
    critique_prompts = [r.last_user_text for r in loopback.requests if r.purpose == CRITIQUE]
    assert any("Automated checks found problems" in p for p in critique_prompts)
    last_draft = [r.last_user_text for r in loopback.requests if r.purpose == DRAFT][-1]
    assert "rejected" in last_draft and "duplicated" in last_draft


def test_a_name_clash_gets_a_suffix(loopback, anthropic, store, template, tmp_path):
    out = tmp_path / "seed_ideas.json"
    other = idea_json(IDEA_BANK[0][0], "Something Else Entirely", "Unrelated: count pixels.")
    out.write_text(json.dumps([other], indent=4))
    loopback.responder = IdeaWriter(done_after=1)
    run_brainstorm(store, template, out, anthropic, count=1)
    assert names_in(out) == [IDEA_BANK[0][0], IDEA_BANK[0][0] + "_2"]


def test_ideas_are_drafted_concurrently(loopback, monkeypatch, store, template, tmp_path):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    loopback.responder = IdeaWriter(done_after=1)
    embeddings.load_model()  # loaded once per process; not what this test times
    loopback.latency_s = 0.5
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
    # The plan, then about count/concurrency ideas in a row, each two call latencies long.
    expected = (1 + count / concurrency * calls_per_idea) * loopback.latency_s
    sequential = (1 + count * calls_per_idea) * loopback.latency_s
    assert expected * 0.9 <= wall < (expected + sequential) / 2
    # And the loopback really saw `concurrency` requests in flight at once, never more.
    arrivals = sorted(r.received_at for r in loopback.requests)
    peak = max(sum(1 for t in arrivals if s <= t < s + loopback.latency_s * 0.9) for s in arrivals)
    assert peak == concurrency


def test_cli_json_output_and_default_file(loopback, monkeypatch, template, tmp_path, capsys):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    monkeypatch.chdir(tmp_path)
    loopback.responder = IdeaWriter(done_after=1)
    code = main(
        ["brainstorm", "--topic", "regularization", "-n", "2", "--template", str(template)]
        + ["--json"]
    )
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["out"] == str(tmp_path / "seed_ideas.json")
    assert [idea["Name"] for idea in report["new_ideas"]] == names_in(tmp_path / "seed_ideas.json")
    assert report["spend"]["calls"] == 5
    assert (template / "seed_ideas.json").read_text() == "[]"


def test_cli_shows_progress_and_a_table(loopback, monkeypatch, template, tmp_path, capsys):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    loopback.responder = IdeaWriter(done_after=1)
    out = tmp_path / "ideas.json"
    code = main(
        [
            "brainstorm",
            "--topic",
            "regularization",
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
    assert "2 of 2 ideas" in err and "spend: 5 calls" in err


def test_cli_refuses_an_unreadable_file_and_leaves_it_alone(
    loopback, monkeypatch, template, tmp_path, capsys
):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", loopback.anthropic_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-brainstorm")
    out = tmp_path / "ideas.json"
    out.write_text('[{"Name": "x",')
    code = main(["brainstorm", "--topic", "t", "--template", str(template), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert str(out) in err and "invalid JSON" in err and "Traceback" not in err
    assert out.read_text() == '[{"Name": "x",'
    assert loopback.requests == []


def test_cli_reports_a_bad_template_folder(tmp_path, capsys):
    code = main(["brainstorm", "--topic", "t", "--template", str(tmp_path)])
    assert code == 2
    assert f"{tmp_path / 'prompt.json'}: missing" in capsys.readouterr().err


@pytest.mark.slow
def test_the_local_model_writes_valid_ideas(store, tmp_path):
    out = tmp_path / "seed_ideas.json"
    model = get_model("local", store=store)
    bundled = load_template(REPO / "template")
    result = Brainstorm(model, store, bundled, topic="data augmentation", count=1, out=out).run()
    loaded = load_ideas(out)
    assert loaded.errors == []
    assert len(loaded.ideas) == len(result.new) == 1, result.rejected
    # The plan named a technique, and the idea was written in parts whose function the
    # grammar took from experiment.py.
    assert len(result.angles) == 1 and result.angles[0].startswith("the technique ")
    changed = loaded.ideas[0].Experiment.split("`")[1]
    assert changed in TemplateTerms(bundled).functions


def test_the_plan_gives_each_slot_its_own_angle(loopback, anthropic, store, template, tmp_path):
    out = tmp_path / "seed_ideas.json"
    out.write_text(json.dumps([idea_json("long_one", "A Long Idea", "Run it twice.")]))
    writer = IdeaWriter(done_after=1)
    loopback.responder = writer
    result = run_brainstorm(store, template, out, anthropic, count=3, concurrency=1)

    plan = [r for r in loopback.requests if r.purpose == PLAN]
    assert len(plan) == 1 and writer.plans == 1
    assert "List 3 different angles" in plan[0].last_user_text
    assert "long_one: A Long Idea" in plan[0].last_user_text  # it steers clear of what exists
    angles = [
        str(Angle(part=part, angle=title))
        for part, (_, title, _) in zip(PLAN_PARTS, IDEA_BANK[:3], strict=False)
    ]
    assert result.angles == angles
    drafts = [r.last_user_text for r in loopback.requests if r.purpose == DRAFT]
    # Each slot drafts its own angle, and only its own.
    for prompt, angle in zip(drafts, angles, strict=True):
        assert angle in prompt and sum(other in prompt for other in angles) == 1
    # The examples of the right grain are in the shared prefix of every call.
    marker = "Ideas The AI Scientist wrote for other templates"
    assert all(marker in r.prompt_text for r in loopback.requests)


def test_a_plan_that_piles_every_angle_on_one_part_is_spread_over_parts(
    loopback, anthropic, store, template, tmp_path
):
    writer = IdeaWriter(done_after=1)

    def one_part(request: ReceivedRequest):
        if request.purpose == PLAN:
            angles = [
                {"part": "architecture", "angle": f"evolve the widths, take {n}"} for n in (1, 2, 3)
            ]
            return Reply(json.dumps({"angles": angles}))
        return writer(request)

    loopback.responder = one_part
    result = run_brainstorm(store, template, tmp_path / "out.json", anthropic, count=3)
    assert result.error is None and result.complete
    # The model's first angle for the part is kept; the two parts it left out get their own.
    assert result.angles == [
        str(Angle(part="architecture", angle="evolve the widths, take 1")),
        str(Angle(part="data", angle="a regularization method applied to this part")),
        str(Angle(part="optimisation", angle="a regularization method applied to this part")),
    ]
    drafts = [r.last_user_text for r in loopback.requests if r.purpose == DRAFT]
    assert [sum(angle in prompt for prompt in drafts) for angle in result.angles] == [1, 1, 1]


def test_plan_parts_are_the_evolve_grid_rows_but_search():
    from ideagen.evolve import default_niches

    rows = [row.key for row in default_niches().rows.bins]
    assert list(plan_parts()) == [key for key in rows if key != "search"]
    assert set(get_args(PlanPart)) == set(PLAN_PARTS)


def test_without_a_valid_plan_the_slots_draft_freely(
    loopback, anthropic, store, template, tmp_path
):
    writer = IdeaWriter(done_after=1)

    def no_plan(request: ReceivedRequest):
        if request.purpose == PLAN:
            return Reply("Here are some angles: mutation, crossover.")
        return writer(request)

    loopback.responder = no_plan
    result = run_brainstorm(store, template, tmp_path / "out.json", anthropic, count=2)
    assert result.error is None and result.complete and result.angles == []
    drafts = [r.last_user_text for r in loopback.requests if r.purpose == DRAFT]
    assert len(drafts) == 2 and not any("from the plan" in prompt for prompt in drafts)


def test_drafts_the_gate_refuses_are_redrafted_and_counted_with_their_reason(
    loopback, anthropic, store, template, tmp_path
):
    nonsense = ("human_assisted_rescue", "Human Assisted Rescue Has Been Deployed", "2017-5498")
    off_topic = (
        "vaccination_timing",
        "Optimal Vaccination Timing in an SEIR Epidemic Model",
        "Add a vaccination compartment to the SEIR differential equations and vary the day "
        "vaccination starts between day 10 and day 60; report the peak number of infected "
        "people and the total deaths over the outbreak for each start day.",
    )
    loopback.responder = IdeaWriter(done_after=1, drafts=[nonsense, off_topic])
    events: list[BrainstormEvent] = []
    out = tmp_path / "seed_ideas.json"
    result = run_brainstorm(
        store, template, out, anthropic, count=1, concurrency=1, report=events.append
    )
    assert names_in(out) == [IDEA_BANK[0][0]]
    assert result.drafts == 3
    assert result.rejected == {"length": 1, "ungrounded": 1}
    reasons = [e.detail for e in events if e.kind == "rejected"]
    assert "digits or symbols" in reasons[0] and "experiment.py" in reasons[1]
    # The critique round showed the gate's findings to the model before the draft was refused.
    critiques = [r.last_user_text for r in loopback.requests if r.purpose == CRITIQUE]
    assert "not_plain_english" in critiques[0] and "ungrounded" in critiques[1]
    assert result.to_json()["rejected"] == {"length": 1, "ungrounded": 1}


def test_a_draft_refused_for_something_fixable_is_repaired_rather_than_redrafted(
    loopback, anthropic, store, template, tmp_path
):
    invented = (
        "Modify the `run_training` function to sweep label_smoothing over 0, 0.05 and 0.1 as a "
        "regularization, with weight_decay and momentum fixed; compare test accuracy and test "
        "loss with the baseline."
    )
    fixed = invented.replace("Modify the `run_training` function to sweep", "Sweep")

    def writer(request: ReceivedRequest):
        if request.purpose == PLAN:
            return Reply("no plan")
        title = "Label Smoothing Strength as Regularization"
        experiment = fixed if request.purpose == REPAIR else invented
        return Reply(json.dumps(idea_json("smoothing_strength", title, experiment)))

    loopback.responder = writer
    events: list[BrainstormEvent] = []
    out = tmp_path / "seed_ideas.json"
    result = run_brainstorm(
        store, template, out, anthropic, count=1, rounds=0, report=events.append
    )
    assert result.complete and result.drafts == 1 and result.repaired == 1, result.rejected
    assert result.rejected == {}
    assert json.loads(out.read_text())[0]["Experiment"] == fixed
    repair = [r.last_user_text for r in loopback.requests if r.purpose == REPAIR]
    assert len(repair) == 1 and "unknown_code" in repair[0] and "`run_training`" in repair[0]
    assert [e.kind for e in events if e.slot and e.kind in ("repair", "rejected")] == ["repair"]


def test_a_draft_that_reuses_a_seed_name_for_its_own_idea_is_renamed(
    loopback, anthropic, store, template, tmp_path
):
    taken = ai_scientist_examples()[0][1].Name  # an example every draft is checked against
    name, title, experiment = IDEA_BANK[0]
    loopback.responder = lambda request: (
        Reply(json.dumps(idea_json(taken, title, experiment)))
        if request.purpose == DRAFT
        else Reply("no plan")
    )
    out = tmp_path / "seed_ideas.json"
    result = run_brainstorm(store, template, out, anthropic, count=1, rounds=0)
    assert result.complete
    assert names_in(out) != [taken] and names_in(out)[0].startswith(title.lower().split()[0])


def test_the_local_model_skips_critique_rounds_by_default():
    assert default_rounds("local") == 0
    assert default_rounds("anthropic") == default_rounds("openai") == 3


def test_a_small_model_writes_an_idea_in_parts_from_the_templates_own_names(
    loopback, monkeypatch, store, template, tmp_path
):
    # A small model served behind the OpenAI API (as Ollama would serve one), marked weak as
    # the local provider is: it gets the sketch instead of the paragraph draft.
    monkeypatch.setenv("OPENAI_BASE_URL", loopback.openai_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-brainstorm")
    baseline = {"fashion": {"means": {"test_accuracy": 0.9, "train_time": 60.0}}}
    (template / "run_0").mkdir()
    (template / "run_0" / "final_info.json").write_text(json.dumps(baseline))
    sketch = {
        "function": "make_optimizer",
        "change": "Evolve learning_rate and momentum with a (1+4) evolution strategy over five "
        "generations: each child perturbs both by a log-normal step of 0.2, and each candidate "
        "is scored on 5,000 training images held out from training",
        "runs": "the evolved pair against learning_rate 0.1 and momentum 0.9, two seeds each",
        "metric": "test_accuracy",
        "expected": "the evolved pair reaches the baseline's accuracy in fewer epochs",
        "Title": "Evolution Strategies for the Learning Rate and Momentum",
        "Interestingness": 5,
        "Feasibility": 8,
        "Novelty": 4,
    }
    techniques = {"techniques": ["evolution_strategies", "genetic algorithm"]}
    loopback.responder = lambda request: Reply(
        json.dumps(techniques if request.purpose == PLAN else sketch)
    )
    model = get_model("openai", store=store, retry=FAST_RETRY)
    model.weak = True
    out = tmp_path / "seed_ideas.json"
    out.write_text(json.dumps([idea_json("users_own", "Cosine Schedule Study", "Run it twice.")]))
    result = Brainstorm(
        model, store, load_template(template), topic="evolutionary", count=1, out=out, rounds=0
    ).run()
    assert result.complete and result.drafts == 1, result.rejected
    written = json.loads(out.read_text())[1]
    assert written["Name"] == "evolution_strategies_for_the_learning_rate_and_momentum"
    experiment = written["Experiment"]
    assert experiment.startswith("In experiment.py, change `make_optimizer`: Evolve learning_rate")
    assert "unchanged experiment.py: the evolved pair against learning_rate 0.1" in experiment
    assert "Compare their test accuracy with the baseline's. Expected: the evolved" in experiment
    # The plan named techniques, with spares; the slot drafted the first, in plain words.
    assert result.angles == ["the technique evolution strategies"]
    assert [r.purpose for r in loopback.requests] == [PLAN, DRAFT]
    plan = loopback.requests[0].last_user_text
    assert "List 3 different evolutionary techniques" in plan and "Cosine Schedule Study" in plan
    draft = loopback.requests[1]
    assert "from the plan): the technique evolution strategies" in draft.last_user_text
    # The reply could only name what the template has, and no idea's words primed the draft.
    schema = draft.body["response_format"]["json_schema"]["schema"]["properties"]
    assert schema["function"]["enum"] == ["augment", "make_optimizer", "Net"]
    assert schema["metric"]["enum"] == ["test_accuracy", "train_time"]
    assert "Cosine" not in draft.last_user_text


def written_sketch(functions: list[str], **parts: str) -> IdeaSketch:
    """A sketch as a small model replies, judged by test accuracy, with middling ratings."""
    schema = sketch_schema(functions, ["test_accuracy"])
    ratings = {"Interestingness": 5, "Feasibility": 8, "Novelty": 4}
    return schema(metric="test_accuracy", **parts, **ratings)


def test_a_sketch_field_cut_at_its_length_limit_keeps_its_whole_sentences():
    limit = SKETCH_MAX_CHARS["change"]
    whole = "Evolve max_lr and momentum with a genetic algorithm over five generations. "
    cut = (whole * (limit // len(whole) + 1))[:limit]
    sketch = written_sketch(
        ["train"],
        function="train",
        change=cut,
        runs="the evolved pair against max_lr 0.2 and momentum 0.9, two seeds each",
        expected="the evolved pair matches the baseline in fewer epochs",
        Title="Evolving the Learning Rate and Momentum",
    )
    experiment = sketch.to_idea().Experiment
    kept = experiment.split("`train`: ")[1].split(" Runs to compare")[0]
    assert kept == " ".join([whole.strip()] * (limit // len(whole)))
    with pytest.raises(ValueError, match="function"):
        type(sketch).model_validate(sketch.model_dump() | {"function": "run"})


@pytest.mark.parametrize(
    ("chosen", "change", "written"),
    [
        (  # the local model's own words, under `evaluate`
            "evaluate",
            "Replace the existing convolutional layers with dilated convolution layers. Modify "
            "the conv_block function to include dilations of 1, 2 and 4, so that the network "
            "sees wider patches of each image without more parameters or pooling.",
            "conv_block",
        ),
        (  # "evaluate" and "train" as verbs are not the functions
            "train_all",
            "Evolve the learning rate of each seed's run with a (1+4) evolution strategy: "
            "train each candidate for one epoch, evaluate it on 5,000 held-out training images "
            "and keep the best, for five generations before the final run.",
            "train_all",
        ),
        (  # two functions named: the chosen one stands
            "train",
            "Add dropout of 0.3 to `Net` before the classifier and turn it off in `evaluate`, so "
            "that the network cannot rely on a few units; the rest of training is unchanged "
            "and the rate is the one setting the change adds.",
            "train",
        ),
    ],
)
def test_a_sketch_changes_the_function_its_change_names_as_code(chosen, change, written):
    sketch = written_sketch(
        ["conv_block", "Net", "evaluate", "train", "train_all"],
        function=chosen,
        change=change,
        runs="the changed network against the baseline, two seeds each, same epochs.",
        expected="the changed network is at least as accurate as the baseline.",
        Title="A Change to a Small CNN on FashionMNIST",
    )
    assert sketch.to_idea().Experiment.startswith(f"In experiment.py, change `{written}`: ")


def test_an_idea_written_in_parts_is_shown_back_in_its_parts():
    sketch = written_sketch(
        ["make_optimizer"],
        function="make_optimizer",
        change="Replace the fixed learning rate with one evolved by a (1+4) evolution "
        "strategy over five generations, each candidate scored on 5,000 training images held "
        "out from training. Mutations are log-normal with a step of 0.2, and the best rate of "
        "the last generation trains the final network.",
        runs="the evolved rate against the fixed rate of 0.1, two seeds for each of the two.",
        expected="the evolved rate reaches the baseline's accuracy two epochs sooner.",
        Title="An Evolved Learning Rate for a Small CNN",
    )
    assert sketch_fields(sketch.to_idea()) == sketch.model_dump()
    paragraph = Idea(**idea_json("cosine", "Cosine Schedule Study", "Run it twice with cosine."))
    assert sketch_fields(paragraph) == draft_fields(paragraph)
