"""`ideagen results`: reading The AI Scientist's results folders, storing the outcomes, and
using them (review's "run before", brainstorm's context).

The fixture is built the way SakanaAI/AI-Scientist writes these folders (file and line of its
code in each helper), with the FashionMNIST template's own final_info.json shape.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ideagen.cli import main
from ideagen.results import (
    earlier_outcomes,
    outcome_lessons,
    read_idea_folder,
    read_results,
    save_outcomes,
    stored_outcomes,
)
from ideagen.schema import Idea
from ideagen.store import Store
from tests.fakes import BASELINE, AIScientistCheckout, final_info, seeds

METRICS = ("test_accuracy", "test_loss", "final_train_loss", "train_time")


def idea(name: str, title: str, experiment: str, **extra) -> Idea:
    ratings = {"Interestingness": 6, "Feasibility": 8, "Novelty": 5}
    return Idea.from_entry(
        {"Name": name, "Title": title, "Experiment": experiment, **ratings, **extra}
    )


SMOOTHING = idea(
    "label_smoothing",
    "Label smoothing for clothing classification",
    "Add label smoothing of 0.1 to the cross-entropy loss and compare test accuracy with the "
    "baseline over two seeds.",
    original_ratings={"Interestingness": 5, "Feasibility": 9, "Novelty": 3},
    novel=True,
)
WIDER = idea(
    "wider_cnn",
    "Doubling the channels of the CNN",
    "Double the number of channels in both convolution layers and compare accuracy and "
    "training time with the baseline.",
)
MIXUP = idea(
    "mixup_curriculum",
    "Mixup strength curriculum",
    "Increase the mixup alpha linearly during training and measure test accuracy.",
)
NO_BASE = idea(
    "dropout_sweep",
    "Dropout rate sweep",
    "Sweep the dropout rate before the classifier over 0.1, 0.3 and 0.5.",
)


@pytest.fixture
def checkout(tmp_path: Path) -> AIScientistCheckout:
    scientist = AIScientistCheckout(tmp_path / "AI-Scientist")
    ideas = [SMOOTHING, WIDER, MIXUP, NO_BASE]
    (scientist.template / "ideas.json").write_text(
        json.dumps([i.to_entry() for i in ideas], indent=4)
    )
    # finished: two runs, a paper and its review; run_2 is the best by test accuracy
    done = scientist.idea_folder(SMOOTHING, "20260101_120000")
    scientist.run(done, 1, seeds((0.931, 0.932), (0.279, 0.281)))  # +0.05 pp
    scientist.run(done, 2, seeds((0.939, 0.941), (0.300, 0.302)))  # +0.9 pp, worse loss
    scientist.paper(done, SMOOTHING, overall=4, decision="Reject")
    # half-finished: one run succeeded, the next attempt failed, the writeup never finished
    half = scientist.idea_folder(WIDER, "20260101_130000")
    scientist.run(half, 1, seeds((0.931, 0.931), (0.281, 0.281)))
    scientist.run(half, 2, None)
    # no run finished: every attempt failed
    failed = scientist.idea_folder(MIXUP, "20260101_140000")
    for attempt in (1, 2, 3, 4):
        scientist.run(failed, attempt, None)
    # run_0 missing (removed by hand, or the template had none)
    orphan = scientist.idea_folder(NO_BASE, "20260101_150000")
    shutil.rmtree(orphan / "run_0")
    scientist.run(orphan, 1, seeds((0.92, 0.93), (0.3, 0.3)))
    return scientist


def by_name(outcomes) -> dict:
    return {o["name"] if isinstance(o, dict) else o.name: o for o in outcomes}


def test_json_reports_each_idea_in_the_documented_shape(checkout, capsys):
    code = main(["results", str(checkout.root), "--experiment", "fashion_mnist", "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["ideas"]
    ideas = by_name(data["ideas"])
    assert set(ideas) == {"label_smoothing", "wider_cnn", "mixup_curriculum", "dropout_sweep"}
    for entry in ideas.values():
        assert list(entry)[:7] == ["name", "folder", "ran", "best_run", "delta", "paper", "review"]

    done = ideas["label_smoothing"]
    assert done["folder"] == "20260101_120000_label_smoothing"
    assert done["ran"] is True and done["best_run"] == "run_2"
    assert done["delta"]["test_accuracy"] == pytest.approx(0.940 - 0.931)
    assert done["delta"]["test_loss"] == pytest.approx(0.301 - 0.281)
    assert done["paper"] is True
    assert done["review"] == {"Overall": 4, "Decision": "Reject"}
    assert done["verdict"] == "better"
    assert done["noise"]["test_accuracy"] == pytest.approx(2 * (0.001**2 + 0.001**2) ** 0.5)

    half = ideas["wider_cnn"]
    assert half["ran"] is True and half["best_run"] == "run_1"
    assert half["paper"] is False and half["review"] is None
    assert half["runs"] == ["run_1"] and half["attempts"] == 2

    failed = ideas["mixup_curriculum"]
    assert failed["ran"] is False and failed["best_run"] is None
    assert failed["delta"] == {} and failed["paper"] is False and failed["review"] is None
    assert failed["attempts"] == 4

    orphan = ideas["dropout_sweep"]
    assert orphan["ran"] is True and orphan["best_run"] == "run_1"
    assert orphan["delta"] == {}, "nothing to subtract without run_0"
    assert orphan["verdict"] == "no baseline"
    assert any("run_0" in problem for problem in orphan["problems"])


def test_a_change_inside_the_noise_is_not_a_win(checkout, tmp_path):
    folder = checkout.idea_folder(WIDER, "20260102_100000")
    checkout.run(folder, 1, seeds((0.9305, 0.9325), (0.28, 0.282)))  # +0.05 pp
    outcome = read_idea_folder(folder)
    assert outcome.delta["test_accuracy"] == pytest.approx(0.0005)
    assert outcome.verdict == "within noise"
    assert outcome.summary().startswith("+0.05 pp test_accuracy (within noise)")


def test_one_seed_means_unknown_noise(tmp_path):
    scientist = AIScientistCheckout(tmp_path / "AI-Scientist")
    one_seed = {k: v[:1] for k, v in BASELINE.items()}
    (scientist.template / "run_0" / "final_info.json").write_text(json.dumps(final_info(one_seed)))
    folder = scientist.idea_folder(WIDER, "20260102_100000")
    scientist.run(folder, 1, {k: [v[0] + 0.01] for k, v in BASELINE.items()})
    outcome = read_idea_folder(folder)
    assert outcome.verdict == "noise unknown" and outcome.noise == {}


def test_a_loss_is_better_when_lower(checkout):
    folder = checkout.results / "20260101_120000_label_smoothing"
    outcome = read_idea_folder(folder, metric="test_loss")
    assert outcome.higher_is_better is False
    assert outcome.best_run == "run_1", "run_1's test loss is the lowest"
    assert read_idea_folder(folder, metric="train_time").higher_is_better is False
    assert read_idea_folder(folder, metric="test_loss", higher_is_better=True).best_run == "run_2"


def test_outcomes_are_stored_and_linked_to_the_idea_record(checkout, store):
    drafted = store.add_idea(SMOOTHING, topic="regularisation", model="claude", template="x")
    other = idea("label_smoothing", "Another idea under the same Name", "Something else.")
    store.add_idea(other, topic="other topic")
    summary = read_results(checkout.results, store=store)
    assert summary.ideas_file == str(checkout.template / "ideas.json")
    save_outcomes(store, summary)
    save_outcomes(store, read_results(checkout.results, store=store))  # rerun replaces

    rows = store.outcomes(experiment="fashion_mnist")
    assert len(rows) == 4
    linked = next(row for row in rows if row.name == "label_smoothing")
    assert linked.idea_ids == [drafted], "linked by Name and text, not by Name alone"
    outcome = by_name(stored_outcomes(store, "fashion_mnist"))["label_smoothing"]
    assert outcome.provenance.topic == "regularisation"
    assert outcome.provenance.drafted_by == "claude"
    assert outcome.provenance.judge == {"Interestingness": 6, "Feasibility": 8, "Novelty": 5}
    assert outcome.provenance.novel is True


def test_table_and_html_report(checkout, tmp_path, capsys):
    report = tmp_path / "results.html"
    code = main(["results", str(checkout.results), "--report", str(report)])
    out, err = capsys.readouterr()
    assert code == 0
    assert "label_smoothing" in out and "+0.90 pp" in out and "Reject 4" in out
    assert "twice the combined standard error" in " ".join(err.split())
    html = report.read_text()
    assert '<table id="outcomes">' in html and 'data-name="mixup_curriculum"' in html


def test_unreadable_inputs_are_named_and_do_not_stop_the_others(checkout, tmp_path, capsys):
    broken = checkout.results / "20260101_120000_label_smoothing" / "run_1" / "final_info.json"
    broken.write_text("{not json")
    (checkout.results / "20260101_120000_label_smoothing" / "review.txt").write_text("[1]")
    code = main(["results", str(checkout.results), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    done = by_name(json.loads(out)["ideas"])["label_smoothing"]
    assert done["best_run"] == "run_2" and done["review"] is None
    assert any(str(broken) in p and "unreadable" in p for p in done["problems"])
    assert any("review.txt: expected the review as a JSON object" in p for p in done["problems"])

    missing = tmp_path / "nowhere"
    assert main(["results", str(missing)]) == 2
    assert f"{missing}: no such results folder" in capsys.readouterr().out


def test_the_real_example_results_of_the_ai_scientist():
    """The AI Scientist's published example papers (bench/data, Apache-2.0): every folder ran
    and was reviewed."""
    data = Path(__file__).resolve().parents[1] / "bench" / "data" / "ai-scientist-example-results"
    summary = read_results(data)
    assert len(summary.outcomes) == 10
    for outcome in summary.outcomes:
        assert outcome.ran and outcome.baseline and outcome.review is not None
        assert outcome.review.Decision in ("Accept", "Reject")
        assert outcome.title and outcome.description
    grokking = by_name(summary.outcomes)["layerwise_lr_grokking"]
    assert grokking.metric == "final_val_acc_mean" and grokking.higher_is_better
    assert set(grokking.delta) >= {"x_div_y.final_val_acc_mean", "permutation.final_val_acc_mean"}


def test_review_shows_the_outcome_of_an_earlier_near_duplicate(checkout, store):
    save_outcomes(store, read_results(checkout.results, store=store))
    reworded = idea(
        "smooth_labels",
        "Smoothing the labels of clothing classes",
        "Apply label smoothing (epsilon 0.1) to the cross-entropy loss and compare the test "
        "accuracy against the baseline over two seeds.",
    )
    unrelated = idea(
        "pruning_schedule",
        "Magnitude pruning schedule",
        "Prune 50% of the convolution weights by magnitude after epoch two and fine-tune.",
    )
    found = earlier_outcomes([reworded, unrelated, MIXUP], store, "fashion_mnist")
    assert found[0] is not None and found[0].name == "label_smoothing"
    assert found[1] is None
    assert found[2] is not None and found[2].name == "mixup_curriculum", "same Name and Title"
    assert found[0].summary() == "+0.90 pp test_accuracy, paper rejected (Overall 4)"
    assert found[2].summary() == "did not run"


def test_brainstorm_context_says_what_worked_and_what_failed(checkout, store):
    assert outcome_lessons(store, "fashion_mnist") == ""
    save_outcomes(store, read_results(checkout.results, store=store))
    lessons = outcome_lessons(store, "fashion_mnist")
    worked, failed = lessons.split("Did not work", 1)
    assert (
        "- Label smoothing for clothing classification: +0.90 pp test_accuracy, "
        "paper rejected (Overall 4)" in worked
    )
    assert "Mixup strength curriculum: did not run" in failed
    assert "Doubling the channels of the CNN: +0.00 pp test_accuracy (within noise)" in failed
    assert outcome_lessons(store, "another_template") == ""


def test_store_migrates_an_older_file(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with Store(path) as store:
        store.add_idea(SMOOTHING)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE outcome_ideas")
    conn.execute("DROP TABLE outcomes")
    conn.execute("PRAGMA user_version=3")
    conn.commit()
    conn.close()
    with Store(path) as store:
        assert store.schema_version >= 4 and store.outcomes() == []
        assert [s.idea.Name for s in store.ideas(name="label_smoothing")] == ["label_smoothing"]


def test_brainstorm_for_the_template_is_told_the_outcomes(checkout, store, tmp_path, monkeypatch):
    from ideagen.brainstorm import Brainstorm
    from ideagen.providers import get_model
    from ideagen.template_prompt import bundled_template_dir, load_template

    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    model = get_model("openai", "gpt-4o-mini", store=store, base_url="http://127.0.0.1:9")
    template = load_template(bundled_template_dir())
    assert template.name == checkout.experiment == "fashion_mnist"

    def context() -> str:
        return Brainstorm(
            model, store, template, topic="x", count=1, out=tmp_path / "s.json"
        )._context

    assert "WHAT HAPPENED TO EARLIER IDEAS" not in context()
    save_outcomes(store, read_results(checkout.results, store=store))
    assert "- Mixup strength curriculum: did not run" in context()


def test_results_on_the_ai_scientist_folder_asks_for_the_experiment(checkout, capsys):
    (checkout.root / "launch_scientist.py").write_text("# The AI Scientist\n")
    assert main(["results", str(checkout.root)]) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "add --experiment NAME (its results hold: fashion_mnist)" in said
