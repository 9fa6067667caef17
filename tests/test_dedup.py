"""`ideagen dedup` and the dedup library, with the real embedded MiniLM model.

The hand-written ideas below are our own (a FashionMNIST CNN template); the corpus tests use
pairs labelled in bench/dedup_devset.jsonl and skip when the corpus is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ideagen import embeddings
from ideagen.cli import main
from ideagen.dedup import duplicates_against, find_duplicates, judgment_key
from ideagen.dedup.judge import JUDGE_KIND
from ideagen.dedup.linkage import MAX_CROSS_PAIRS
from ideagen.dedup.pairs import CANDIDATES
from ideagen.dedup.parts import PARTS_KIND, parts_key, read_parts
from ideagen.ideafile import load_ideas
from ideagen.providers import RetryPolicy, get_model
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import bundled_template_dir
from testkit.loopback import LoopbackServer, Reply

DEVSET = Path(__file__).resolve().parents[1] / "bench" / "dedup_devset.jsonl"
RATINGS = {"Interestingness": 5, "Feasibility": 8, "Novelty": 4}
OWN_IDEAS = [
    (
        "label_smoothing_sweep",
        "Label Smoothing Strength and Calibration on FashionMNIST",
        "Add label smoothing to the cross-entropy loss with epsilon in {0.05, 0.1, 0.2}. Train "
        "the baseline CNN for each value and compare test accuracy and expected calibration "
        "error against the unsmoothed baseline.",
    ),
    (
        "mixup_augmentation",
        "Mixup Augmentation for Small CNNs",
        "Blend pairs of training images and their labels with a Beta(0.2, 0.2) coefficient "
        "during training. Measure test accuracy and robustness to Gaussian noise compared to "
        "standard training.",
    ),
    (
        "cosine_lr_schedule",
        "Cosine Learning Rate Decay versus Step Decay",
        "Replace the step learning rate schedule with cosine annealing over the full run, with "
        "and without a 2-epoch warmup. Compare convergence speed and final test accuracy.",
    ),
    (
        "depthwise_separable",
        "Depthwise Separable Convolutions for Parameter Efficiency",
        "Swap each 3x3 convolution for a depthwise convolution followed by a 1x1 pointwise "
        "convolution. Report parameter count, training time per epoch and test accuracy.",
    ),
    (
        "magnitude_pruning",
        "Iterative Magnitude Pruning of the Classifier",
        "Prune the 20% smallest weights every two epochs until 80% sparsity, fine-tuning "
        "between steps. Track test accuracy against sparsity.",
    ),
    (
        "class_confusion_analysis",
        "Which Garment Classes Get Confused",
        "After training, compute the confusion matrix on the test set and show the most "
        "confused class pairs (shirt, T-shirt, pullover) with example images.",
    ),
    (
        "batchnorm_ablation",
        "Removing Batch Normalization",
        "Train the CNN without batch normalization at three learning rates and compare training "
        "stability and test accuracy to the baseline.",
    ),
    (
        "random_erasing",
        "Random Erasing as Occlusion Augmentation",
        "Erase a random rectangle in each training image with probability 0.5 and measure test "
        "accuracy and accuracy on occluded test images.",
    ),
]
EXACT_COPY = ("label_smoothing_again", *OWN_IDEAS[0][1:])
PARAPHRASE = (
    "cosine_annealing",
    "Cosine Annealing of the Learning Rate instead of Step Decay",
    "Use cosine annealing of the learning rate across the whole training run instead of the "
    "step schedule, trying it with and without a two-epoch warmup. Compare how fast it "
    "converges and the final test accuracy.",
)


def make_idea(name: str, title: str, experiment: str) -> Idea:
    return Idea(Name=name, Title=title, Experiment=experiment, **RATINGS)


def write_ideas(path: Path, rows) -> Path:
    entries = [make_idea(*row).to_entry() for row in rows]
    path.write_text(json.dumps(entries, indent=4), encoding="utf-8")
    return path


@pytest.fixture
def ideas_file(tmp_path: Path) -> Path:
    return write_ideas(tmp_path / "ideas.json", [*OWN_IDEAS, EXACT_COPY, PARAPHRASE])


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["dedup", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# the library


def test_exact_and_near_exact_copies_are_grouped_and_nothing_else(store: Store):
    ideas = [make_idea(*row) for row in (*OWN_IDEAS, EXACT_COPY, PARAPHRASE)]
    result = find_duplicates(ideas, store)
    assert result.index_groups() == [[0, 8], [2, 9]]
    paraphrase_group = result.clusters[1]
    assert paraphrase_group.keep in (2, 9)
    other = 9 if paraphrase_group.keep == 2 else 2
    assert "meaning" in paraphrase_group.reasons[other]
    assert "cosine" in paraphrase_group.reasons[other]  # a shared distinctive term is named


def test_the_most_specific_member_is_kept_unless_scores_say_otherwise(store: Store):
    short = make_idea("cosine_lr", "Cosine Learning Rate Decay", "Use cosine annealing.")
    ideas = [short, make_idea(*OWN_IDEAS[2]), make_idea(*PARAPHRASE), make_idea(*OWN_IDEAS[3])]
    by_detail = find_duplicates(ideas, store, threshold=0.05)
    group = next(c for c in by_detail.clusters if 0 in c.members)
    assert group.keep != 0
    assert "most specific" in group.keep_reason
    by_score = find_duplicates(ideas, store, threshold=0.05, scores={0: 9.0, 1: 3.0, 2: 4.0})
    group = next(c for c in by_score.clusters if 0 in c.members)
    assert group.keep == 0
    assert "review score" in group.keep_reason


def test_a_second_run_embeds_nothing(store: Store):
    ideas = [make_idea(*row) for row in OWN_IDEAS]
    before = embeddings.stats.embedded
    first = find_duplicates(ideas, store)
    assert embeddings.stats.embedded - before == len(ideas)
    before = embeddings.stats.embedded
    second = find_duplicates(ideas, store)
    assert embeddings.stats.embedded == before
    assert second.index_groups() == first.index_groups()


def test_embeddings_are_unit_vectors_cached_by_content_and_model(store: Store):
    vectors = embeddings.embed(["a noise schedule", "a noise schedule", "label smoothing"], store)
    assert vectors.shape == (3, embeddings.DIMENSIONS)
    assert abs(float(vectors[0] @ vectors[0]) - 1.0) < 1e-5
    assert (vectors[0] == vectors[1]).all()
    cached = store.get_embeddings(
        [embeddings.content_hash("label smoothing")], embeddings.MODEL_NAME
    )
    assert (next(iter(cached.values())) == vectors[2]).all()


def test_duplicates_against_existing_ideas(store: Store):
    existing = [make_idea(*row) for row in OWN_IDEAS[:5]]
    new = [make_idea(*OWN_IDEAS[6]), make_idea(*PARAPHRASE), make_idea(*OWN_IDEAS[7])]
    matches = duplicates_against(new, existing, store)
    assert [(m.i, m.j) for m in matches] == [(1, 2)]
    assert 0.0 < matches[0].score <= 1.0 and "meaning" in matches[0].why


def test_in_a_short_file_meaning_must_agree_so_shared_phrasing_is_no_duplicate(store: Store):
    """Two ideas written from one pattern (as the local model writes evolve's children), each
    with its own technique. Among a handful of ideas IDF cannot tell the pattern's words from
    the techniques', and meaning and wording together called the two alone duplicates (0.78);
    meaning alone does not (0.39). Nor is a shared theme a duplicate: meaning alone would call three
    pairs of the template's six seeds (all evolutionary methods) duplicates."""
    pattern = (
        "In experiment.py, change `train`: apply {0} to every training batch, {1}. Runs to "
        "compare with the unchanged experiment.py: train the baseline and the changed network "
        "with two seeds each, and compare their test accuracy and test loss with the "
        "baseline's. Expected: {0} regularises the small CNN, so test accuracy rises and the "
        "gap between training and test loss narrows."
    )
    cutmix = make_idea(
        "cutmix_small_cnns",
        "CutMix Regularisation for Small CNNs",
        pattern.format("CutMix", "pasting a patch of another image and mixing the labels"),
    )
    erasing = make_idea(
        "random_erasing_small_cnns",
        "Random Erasing Regularisation for Small CNNs",
        pattern.format("random erasing", "blanking a random rectangle of each image"),
    )
    short_file = [erasing, *(make_idea(*row) for row in OWN_IDEAS[:3])]
    assert duplicates_against([cutmix], short_file, store) == []
    [match] = duplicates_against([make_idea(*PARAPHRASE)], short_file, store)
    assert match.j == 3 and "meaning alone must agree" in match.why
    seeds = load_ideas(bundled_template_dir() / "seed_ideas.json").ideas
    assert find_duplicates(seeds, store).clusters == []


def test_near_copies_of_one_idea_form_one_group_with_bounded_work(store: Store):
    """The worst case for grouping: every pair is a candidate and one group holds them all.
    Each merge scores at most MAX_CROSS_PAIRS pairs (larger groups are compared through
    their summed rows), so the pairs scored grow linearly with the ideas, not as n(n-1)/2."""
    original = make_idea(*OWN_IDEAS[0])
    fillers = ("carefully", "again", "jointly", "separately", "first", "later")
    count = 1200
    copies = [
        original.model_copy(
            update={
                "Name": f"copy_{k}",
                # the opening is unchanged, so the whole set costs one embedding
                "Experiment": f"{original.Experiment} Run it {fillers[k % 6]} "
                f"and {fillers[k // 6 % 6]}.",
            }
        )
        for k in range(count)
    ]
    others = [make_idea(*row) for row in OWN_IDEAS[1:]]
    result = find_duplicates([*copies, *others], store)
    assert result.index_groups() == [list(range(count))]
    assert result.pairs_scored <= count * (CANDIDATES + MAX_CROSS_PAIRS) < count * (count - 1) / 2


def test_fewer_than_two_ideas_have_no_groups(store: Store):
    assert find_duplicates([], store).clusters == []
    assert find_duplicates([make_idea(*OWN_IDEAS[0])], store).clusters == []
    assert duplicates_against([], [make_idea(*OWN_IDEAS[0])], store) == []


def test_related_but_different_pairs_are_kept_apart(corpus_dir: Path, store: Store):
    """Pairs labelled in the dev set: each related pair has a whole-text MiniLM cosine of
    0.85-0.89, which the single 0.8 threshold would call duplicates."""
    path = corpus_dir / "example_papers__gan_diffusion__ideas.json"
    ideas = [Idea.from_entry(entry) for entry in json.loads(path.read_text())]
    labelled = {
        (row["a"]["index"], row["b"]["index"]): row["label"]
        for row in map(json.loads, DEVSET.read_text().splitlines())
        if row["a"]["file"] == row["b"]["file"] == path.name
    }
    related = [(60, 72), (30, 64), (87, 95), (56, 95), (72, 95), (27, 64), (30, 36)]
    duplicates = [(32, 74), (25, 39), (12, 82), (10, 18), (36, 64)]
    assert all(labelled[pair] == "related" for pair in related)
    assert all(labelled[pair] == "duplicate" for pair in duplicates)
    group_of = {
        m: tuple(c.members) for c in find_duplicates(ideas, store).clusters for m in c.members
    }
    assert [pair for pair in related if group_of.get(pair[0], -1) == group_of.get(pair[1])] == []
    assert all(
        group_of.get(a) is not None and group_of[a] == group_of.get(b) for a, b in duplicates
    )


# the command


def test_json_output_is_the_clusters_with_the_evidence_of_every_merge(capsys, ideas_file: Path):
    code, out, _ = run_cli(capsys, ideas_file, "--json")
    assert code == 0
    printed = json.loads(out)
    assert printed["clusters"] == [[0, 8], [2, 9]]
    assert out.strip().count("\n") == 0
    for group, members in zip(printed["groups"], printed["clusters"], strict=True):
        assert group["members"] == members and group["keep"] in members
        merged = group["merged"]
        assert sorted(m["member"] for m in merged) == sorted(set(members) - {group["keep"]})
        for merge in merged:
            for part in ("meaning", "change", "measure", "wording"):
                assert 0.0 <= merge[part] <= 1.0 + 1e-6
            assert merge["shared_terms"] and 0.0 < merge["score"] <= 1.0


def test_table_names_the_group_and_the_member_to_keep(capsys, monkeypatch, ideas_file: Path):
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = run_cli(capsys, ideas_file)
    assert code == 0
    for expected in ("label_smoothing_sweep", "label_smoothing_again", "cosine_annealing"):
        assert expected in out
    assert "keep" in out and "meaning" in out


def test_against_reports_ideas_duplicating_another_file(capsys, tmp_path: Path):
    existing = write_ideas(tmp_path / "seed_ideas.json", OWN_IDEAS[:5])
    new = write_ideas(tmp_path / "new.json", [OWN_IDEAS[6], PARAPHRASE])
    code, out, _ = run_cli(capsys, new, "--against", existing, "--json")
    assert code == 0
    matches = json.loads(out)["matches"]
    assert [(m["i"], m["j"]) for m in matches] == [(1, 2)]


@pytest.mark.parametrize("rows", [[], [OWN_IDEAS[0]]], ids=["empty", "one idea"])
def test_empty_and_one_idea_files(capsys, tmp_path: Path, rows):
    path = write_ideas(tmp_path / "ideas.json", rows)
    code, out, _ = run_cli(capsys, path, "--json")
    assert (code, json.loads(out)) == (0, {"clusters": [], "groups": []})
    code, out, _ = run_cli(capsys, path)
    assert code == 0 and "no duplicates" in out


def test_unreadable_file_is_reported_like_validate(capsys, tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text("[{not json", encoding="utf-8")
    code, out, err = run_cli(capsys, path, "--json")
    assert (code, out) == (2, "")
    assert str(path) in err and "Traceback" not in err
    code, out, err = run_cli(capsys, tmp_path / "missing.json")
    assert (code, out) == (2, "") and "missing.json" in err


def test_schema_errors_are_listed_with_entry_and_field(capsys, tmp_path: Path):
    path = tmp_path / "ideas.json"
    entries = [make_idea(*OWN_IDEAS[0]).to_entry(), {**make_idea(*OWN_IDEAS[1]).to_entry()}]
    del entries[1]["Experiment"]
    path.write_text(json.dumps(entries), encoding="utf-8")
    code, out, err = run_cli(capsys, path, "--json")
    assert (code, out) == (1, "")
    assert "entry 1" in err and "Experiment" in err and "mixup_augmentation" in err


def test_threshold_outside_zero_and_one_is_refused(capsys, ideas_file: Path):
    code, out, err = run_cli(capsys, ideas_file, "--threshold", "1.5")
    assert code == 2 and out == "" and "--threshold" in err


# the model (judge and reader of parts), against the loopback server

SMOOTHED_LABELS = (  # the same experiment as label_smoothing_sweep, in other words
    "smoothed_labels",
    "Label Smoothing against Overconfidence",
    "Smooth the one-hot labels with epsilon 0.1 in the loss and measure expected "
    "calibration error and test accuracy.",
)
CONFIDENCE_PENALTY = (  # another change to the loss for calibration: related
    "confidence_penalty",
    "Confidence Penalty Regularization for Calibration",
    "Add an entropy penalty on the softmax output to the loss and measure expected "
    "calibration error and test accuracy against the baseline.",
)
SAME_EXPERIMENTS = [
    {"label_smoothing_sweep", "smoothed_labels"},
    {"label_smoothing_sweep", "label_smoothing_again"},
    {"cosine_lr_schedule", "cosine_annealing"},
]
# The scripted model's reading of the cosine pair: one change and one measurement, worded alike
COSINE_PARTS = {
    "change": "cosine annealing learning rate schedule with optional warmup",
    "measure": "convergence speed and final test accuracy",
}


class ScriptedDedupModel:
    """Answers the dedup calls as a model would, told apart by their purpose: the judge calls
    the pairs in SAME_EXPERIMENTS duplicates (with `self_consistent` False, it still says
    "duplicate" but calls the two changes different) and others related; the parts reader
    answers COSINE_PARTS for the cosine ideas, a sentence from the Title for any other idea,
    and text that is no JSON for the ideas named in `unreadable`."""

    def __init__(self, self_consistent: bool = True, unreadable: frozenset[str] = frozenset()):
        self.self_consistent = self_consistent
        self.unreadable = unreadable
        self.judged: list[set[str]] = []
        self.read: list[str] = []  # the Name of every idea the parts reader was asked about

    def __call__(self, request) -> Reply:
        # the first user message shows the idea(s); a repair request adds messages after it
        names = [
            line.split(": ", 1)[1]
            for line in request.messages[0][1].splitlines()
            if line.startswith("Name: ")
        ]
        if request.purpose == "dedup judge":
            self.judged.append(set(names))
            same = set(names) in SAME_EXPERIMENTS
            answer = {
                "change_a": f"what {names[0]} changes",
                "change_b": f"what {names[1]} changes",
                "same_change": same and self.self_consistent,
                "same_measurement": same,
                "verdict": "duplicate" if same else "related",
                "reason": "decided by the change made",
            }
            return Reply(json.dumps(answer))
        assert request.purpose.startswith("dedup parts"), request.purpose
        (name,) = names
        self.read.append(name)
        if name in self.unreadable:
            return Reply("I would rather describe this idea in prose.")
        if name.startswith("cosine"):
            return Reply(json.dumps(COSINE_PARTS))
        title = next(row[1] for row in (*OWN_IDEAS, EXACT_COPY, SMOOTHED_LABELS) if row[0] == name)
        return Reply(json.dumps({"change": title, "measure": "test accuracy"}))


def loopback_model(loopback: LoopbackServer, store: Store, scripted: ScriptedDedupModel):
    loopback.responder = scripted
    return get_model(
        "openai",
        "gpt-judge",
        store=store,
        base_url=loopback.openai_url,
        retry=RetryPolicy(
            base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=5, total_timeout_s=10
        ),
    )


def test_judge_is_asked_about_uncertain_pairs_only_and_answers_are_kept(
    loopback: LoopbackServer, store: Store
):
    scripted = ScriptedDedupModel()
    judge = loopback_model(loopback, store, scripted)
    ideas = [make_idea(*row) for row in (*OWN_IDEAS, SMOOTHED_LABELS, CONFIDENCE_PENALTY)]
    assert find_duplicates(ideas, store).index_groups() == []
    result = find_duplicates(ideas, store, judge=judge)
    asked = [r for r in loopback.requests_for("openai") if r.purpose == "dedup judge"]
    assert 0 < len(asked) == len(scripted.judged) == result.pairs_judged < result.pairs_scored
    assert "distinct" in asked[0].system_text and "same_change" in asked[0].system_text
    assert result.index_groups() == [[0, 8]]
    (evidence,) = result.clusters[0].evidence.values()
    assert (evidence.verdict, evidence.judge_reason) == ("duplicate", "decided by the change made")
    assert "decided by the change made" in next(iter(result.clusters[0].reasons.values()))
    kept = store.get_judgment(JUDGE_KIND, judgment_key(ideas[0], ideas[8]), "gpt-judge")
    assert (kept["verdict"], kept["same_change"], kept["same_measurement"]) == (
        "duplicate",
        True,
        True,
    )
    requests_before = len(loopback.requests_for("openai"))
    again = find_duplicates(ideas, store, judge=judge)
    assert len(loopback.requests_for("openai")) == requests_before
    assert again.index_groups() == result.index_groups()


def test_a_duplicate_verdict_the_judges_own_answers_contradict_is_not_counted(
    loopback: LoopbackServer, store: Store
):
    scripted = ScriptedDedupModel(self_consistent=False)
    judge = loopback_model(loopback, store, scripted)
    ideas = [make_idea(*row) for row in (*OWN_IDEAS, SMOOTHED_LABELS, CONFIDENCE_PENALTY)]
    result = find_duplicates(ideas, store, judge=judge)
    assert {"label_smoothing_sweep", "smoothed_labels"} in scripted.judged
    kept = store.get_judgment(JUDGE_KIND, judgment_key(ideas[0], ideas[8]), "gpt-judge")
    assert (kept["verdict"], kept["same_change"]) == ("duplicate", False)
    assert result.index_groups() == []


def test_the_model_reads_each_compared_idea_once_and_its_parts_are_compared(
    loopback: LoopbackServer, store: Store
):
    ideas = [make_idea(*row) for row in (*OWN_IDEAS, EXACT_COPY, PARAPHRASE)]
    offline = find_duplicates(ideas, store)
    assert offline.index_groups() == [[0, 8], [2, 9]]
    offline_cosine = next(iter(offline.clusters[1].evidence.values()))
    assert offline_cosine.parts_from == "rules" and offline_cosine.change < 0.95

    scripted = ScriptedDedupModel()
    result = find_duplicates(ideas, store, judge=loopback_model(loopback, store, scripted))
    assert result.index_groups() == [[0, 8], [2, 9]]
    # only the ideas whose parts are compared (the merged ones) are read, each once
    merged = {ideas[m].Name for cluster in result.clusters for m in cluster.members}
    assert sorted(scripted.read) == sorted(merged)
    cosine = next(iter(result.clusters[1].evidence.values()))
    # the model worded both cosine ideas' change and measurement alike: the comparison says so
    assert cosine.parts_from == "model" and cosine.parts_note is None
    assert cosine.change == pytest.approx(1.0) and cosine.measure == pytest.approx(1.0)
    assert "parts read by the model" in next(iter(result.clusters[1].reasons.values()))
    assert store.get_judgment(PARTS_KIND, parts_key(ideas[9]), "gpt-judge") == COSINE_PARTS

    # another run, another model object on the same store: nothing is read again
    rerun = ScriptedDedupModel()
    again = find_duplicates(ideas, store, judge=loopback_model(loopback, store, rerun))
    assert rerun.read == [] and rerun.judged == []
    assert next(iter(again.clusters[1].evidence.values())) == cosine


def test_an_unusable_parts_reply_falls_back_to_the_rule_based_parse_with_a_note(
    loopback: LoopbackServer, store: Store
):
    new, existing = [make_idea(*PARAPHRASE)], [make_idea(*row) for row in OWN_IDEAS]
    (offline,) = duplicates_against(new, existing, store)
    scripted = ScriptedDedupModel(unreadable=frozenset({"cosine_annealing"}))
    (match,) = duplicates_against(
        new, existing, store, judge=loopback_model(loopback, store, scripted)
    )
    assert (match.i, match.j) == (offline.i, offline.j) == (0, 2)
    assert "cosine_annealing" in scripted.read and "cosine_lr_schedule" in scripted.read
    evidence = match.evidence
    assert evidence.parts_from == "rules"
    assert "cosine_annealing" in evidence.parts_note and "rule-based" in evidence.parts_note
    assert evidence.parts_note in match.why
    assert (evidence.change, evidence.measure) == (
        offline.evidence.change,
        offline.evidence.measure,
    )
    # the unusable answer is not kept (a later run asks again); the usable one is
    assert store.get_judgment(PARTS_KIND, parts_key(new[0]), "gpt-judge") is None
    assert store.get_judgment(PARTS_KIND, parts_key(existing[2]), "gpt-judge") == COSINE_PARTS


def test_parts_without_a_model_are_the_rule_based_parse(store: Store):
    idea = make_idea(*OWN_IDEAS[2])
    read = read_parts(idea, store)
    assert read.source == "rules" and read.note is None
    assert read.parts.change.startswith("cosine lr schedule Cosine Learning Rate Decay")
    assert read.parts.measure == "Compare convergence speed and final test accuracy."


def test_the_command_with_judge_shows_the_models_parts_in_every_merge(
    capsys, loopback: LoopbackServer, ideas_file: Path
):
    scripted = ScriptedDedupModel()
    loopback.responder = scripted
    code, out, _ = run_cli(
        capsys,
        ideas_file,
        "--json",
        "--judge",
        "--provider",
        "openai",
        "--model",
        "gpt-judge",
        "--base-url",
        loopback.openai_url,
    )
    assert code == 0
    printed = json.loads(out)
    assert printed["clusters"] == [[0, 8], [2, 9]]
    merges = [merge for group in printed["groups"] for merge in group["merged"]]
    assert [merge["parts_from"] for merge in merges] == ["model", "model"]
    assert len(scripted.read) == 4
