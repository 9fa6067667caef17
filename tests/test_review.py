"""`ideagen review`: lint, literature clients, novelty, judge, tournament, the whole command.

Models and literature services are real HTTP servers on 127.0.0.1 (testkit/loopback.py and
testkit/literature.py); the model server answers through `ScriptedReviewer` (tests/fakes.py),
which tells the calls apart by their purpose and answers in JSON from the idea shown.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from ideagen.cli import main
from ideagen.ideafile import load_ideas
from ideagen.local.engine import grammar_schema
from ideagen.providers import get_model
from ideagen.providers.common import RetryPolicy as ModelRetryPolicy
from ideagen.review.judge import (
    RATIONALE_MAX_CHARS,
    Judge,
    JudgeReply,
    bradley_terry,
    default_rounds,
    run_tournament,
    swiss_pairings,
)
from ideagen.review.lint import lint_idea
from ideagen.review.novelty import (
    CorpusError,
    LiteratureError,
    NoveltyChecker,
    OpenAlexClient,
    RetryPolicy,
    SemanticScholarClient,
    load_corpus,
    online_clients,
)
from ideagen.schema import Idea
from testkit.loopback import LoopbackServer
from tests.fakes import AIScientistCheckout, ScriptedReviewer, idea_in, quality, seeds

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, call_timeout_s=5)


def make_idea(name: str, title: str, experiment: str, ratings=(5, 5, 5), **extra) -> Idea:
    entry = {
        "Name": name,
        "Title": title,
        "Experiment": experiment,
        "Interestingness": ratings[0],
        "Feasibility": ratings[1],
        "Novelty": ratings[2],
        **extra,
    }
    return Idea.from_entry(entry)


@pytest.fixture
def reviewer(loopback: LoopbackServer, monkeypatch: pytest.MonkeyPatch) -> ScriptedReviewer:
    scripted = ScriptedReviewer()
    loopback.responder = scripted
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    monkeypatch.setenv("OPENAI_BASE_URL", loopback.openai_url)
    return scripted


def loopback_model(store, loopback: LoopbackServer):
    return get_model(
        "openai",
        "gpt-4o-mini",
        store=store,
        base_url=loopback.openai_url,
        retry=ModelRetryPolicy(max_attempts=2, base_delay_s=0.01, total_timeout_s=20),
    )


# lint


def test_lint_clean_fashionmnist_idea_has_no_flags():
    idea = make_idea(
        "label_smoothing",
        "Label smoothing on Fashion-MNIST",
        "Add label smoothing 0.1 to the loss in experiment.py and compare test accuracy "
        "on FashionMNIST against the baseline over 5 seeds.",
    )
    assert lint_idea(idea) == []


@pytest.mark.parametrize(
    ("text", "kind", "evidence"),
    [
        ("Repeat the study on CIFAR-10 as well.", "other_dataset", "CIFAR-10"),
        ("Compare with plain MNIST digits.", "other_dataset", "MNIST"),
        ("Pretrain on ImageNet first.", "imagenet", "ImageNet"),
        ("Fine-tune a pre-trained ResNet-50.", "pretrained_weights", "pre-trained"),
        ("Run a user study with 20 people.", "human_study", "user study"),
        ("Train for 3 days on 8 GPUs.", "long_compute", "3 days"),
        ("Train for 5000 epochs.", "long_compute", "5000 epochs"),
        ("Add a --dropout flag to experiment.py.", "extra_arguments", "--dropout"),
        (
            "Expose the width as a command-line argument.",
            "extra_arguments",
            "command-line argument",
        ),
        ("Evaluate on an additional dataset of sketches.", "external_data", "additional dataset"),
    ],
)
def test_lint_flags_what_the_template_cannot_do(text, kind, evidence):
    idea = make_idea("x", "An idea", f"Modify the CNN. {text}")
    flags = {flag.kind: flag for flag in lint_idea(idea)}
    assert kind in flags, flags
    assert flags[kind].evidence == evidence


def test_lint_does_not_flag_the_template_dataset_or_gradient_clipping():
    idea = make_idea(
        "clip",
        "Gradient clipping",
        "Clip the gradients at norm 1.0 while training on Fashion MNIST; run with --out_dir.",
    )
    assert lint_idea(idea) == []


def test_lint_accepts_data_the_template_code_generates():
    idea = make_idea(
        "compound_ops",
        "Compound operations",
        "Modify the AbstractDataset class to include new datasets for compound operations "
        "such as (a+b)-c, generated in code like the existing ones.",
    )
    assert lint_idea(idea, template_dataset="modular arithmetic") == []


def test_lint_uses_the_template_dataset_it_is_given():
    idea = make_idea("x", "Augmentation on CIFAR-10", "Random crops on CIFAR10 vs FashionMNIST.")
    assert [flag.kind for flag in lint_idea(idea, template_dataset="CIFAR-10")] == ["other_dataset"]
    assert "FashionMNIST" in lint_idea(idea, template_dataset="CIFAR-10")[0].message
    assert "CIFAR-10" in lint_idea(idea)[0].message


def test_lint_on_the_real_corpus_flags_other_datasets(corpus_dir: Path):
    ideas = load_ideas(corpus_dir / "templates__nanoGPT__ideas.json").ideas
    flagged = [i for i in ideas if any(f.kind == "other_dataset" for f in lint_idea(i))]
    assert flagged, "nanoGPT ideas name enwik8/text8, which the FashionMNIST template lacks"
    assert all(re.search(r"enwik8|text8|shakespeare|squad", i.Experiment, re.I) for i in flagged)


# literature clients


def test_openalex_client_reads_the_real_shape_and_caches(literature_server, store):
    literature_server.add_paper(
        "Mixup regularization for fashion image classification",
        "We study mixup on FashionMNIST and find better calibration.",
        2020,
    )
    client = OpenAlexClient("openalex", literature_server.base_url, store, FAST_RETRY)
    papers = client.search("mixup fashion")
    assert [p.title for p in papers] == ["Mixup regularization for fashion image classification"]
    assert papers[0].abstract == "We study mixup on FashionMNIST and find better calibration."
    assert papers[0].year == 2020 and papers[0].url.startswith("https://doi.org/")
    assert client.search("mixup fashion") == papers
    assert literature_server.count("openalex") == 1, "the second search is served from the store"


def test_semantic_scholar_client_sends_the_key_header(literature_server, store, monkeypatch):
    monkeypatch.setenv("S2_API_KEY", "s2-secret")
    literature_server.add_paper("Cutout for small CNNs", "Cutout regularization on FashionMNIST.")
    s2 = online_clients(store, FAST_RETRY)[1]
    assert isinstance(s2, SemanticScholarClient)
    papers = s2.search("cutout")
    assert papers[0].title == "Cutout for small CNNs"
    assert papers[0].url.startswith("https://www.semanticscholar.org/paper/")
    assert literature_server.requests[-1].headers.get("x-api-key") == "s2-secret"
    assert literature_server.requests[-1].params["fields"] == "title,abstract,year,url"


def test_zero_hits_is_an_empty_list_and_cached(literature_server, store):
    client = OpenAlexClient("openalex", literature_server.base_url, store, FAST_RETRY)
    assert client.search("nothing matches this") == []
    assert client.search("nothing matches this") == []
    assert literature_server.count("openalex") == 1


def test_429_is_retried_with_backoff_then_succeeds(literature_server, store):
    literature_server.add_paper("Dropout in CNNs", "dropout study")
    literature_server.rate_limited = 2
    literature_server.retry_after = "0.02"
    waits: list[float] = []
    retry = RetryPolicy(max_attempts=4, base_delay_s=0.01, max_delay_s=1.0, sleep=waits.append)
    client = OpenAlexClient("openalex", literature_server.base_url, store, retry)
    assert [p.title for p in client.search("dropout")] == ["Dropout in CNNs"]
    assert [r.status for r in literature_server.requests] == [429, 429, 200]
    assert waits == [0.02, 0.02], "Retry-After is honoured when longer than the backoff"


def test_429_storm_gives_up_after_capped_tries(literature_server, store):
    literature_server.storm = True
    literature_server.retry_after = "3600"
    waits: list[float] = []
    retry = RetryPolicy(max_attempts=4, base_delay_s=0.5, max_retry_after_s=2.0, sleep=waits.append)
    client = SemanticScholarClient("semantic_scholar", literature_server.base_url, store, retry)
    with pytest.raises(LiteratureError, match="429 after 4 tries"):
        client.search("anything")
    assert literature_server.count("semantic_scholar") == 4
    assert waits == [2.0, 2.0, 2.0], "an hour-long Retry-After is capped"
    assert store.get_literature("semantic_scholar", "anything\n5") is None, "failures not cached"


def test_unreachable_service_is_not_asked_again(store):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = OpenAlexClient("openalex", f"http://127.0.0.1:{port}", store, FAST_RETRY)
    with pytest.raises(LiteratureError, match="unreachable"):
        client.search("first")
    with pytest.raises(LiteratureError, match="unreachable"):
        client.search("second")


# corpus files


def test_corpus_jsonl_and_bibtex(tmp_path: Path):
    jsonl = tmp_path / "papers.jsonl"
    jsonl.write_text(
        json.dumps({"title": "Mixup", "abstract": "Mixing images.", "year": 2018})
        + "\n\n"
        + json.dumps({"title": "Cutout", "doi": "10.1/abc"})
        + "\n"
    )
    papers = load_corpus(jsonl)
    assert [(p.title, p.abstract, p.year) for p in papers] == [
        ("Mixup", "Mixing images.", 2018),
        ("Cutout", "", None),
    ]
    assert papers[1].url == "https://doi.org/10.1/abc"
    bib = tmp_path / "refs.bib"
    bib.write_text(
        "@article{zhang2018,\n  title = {{Mixup}: Beyond Empirical Risk Minimization},\n"
        '  abstract = "We propose {mixup}, a simple learning principle.",\n  year = 2018,\n}\n'
        "@comment{ignored}\n"
        "@inproceedings{devries2017, title={Improved Regularization with {Cutout}}, "
        "url={https://arxiv.org/abs/1708.04552}}\n"
    )
    papers = load_corpus(bib)
    assert [p.title for p in papers] == [
        "Mixup: Beyond Empirical Risk Minimization",
        "Improved Regularization with Cutout",
    ]
    assert papers[0].abstract == "We propose mixup, a simple learning principle."
    assert papers[0].year == 2018 and papers[1].url == "https://arxiv.org/abs/1708.04552"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"title": "ok"}\n{"title": \n', "line 2: invalid JSON"),
        ('{"abstract": "no title"}\n', "line 1: title: missing"),
        ("[1, 2]\n", "line 1: expected an object"),
        ("@article{x, title={Unclosed\n", "entry at line 1: a field value is not closed"),
    ],
)
def test_bad_corpus_names_file_and_line(tmp_path: Path, content: str, message: str):
    path = tmp_path / ("bad.bib" if content.startswith("@") else "bad.jsonl")
    path.write_text(content)
    with pytest.raises(CorpusError, match=re.escape(message)) as error:
        load_corpus(path)
    assert str(path) in str(error.value)


# online novelty with a model


def test_novelty_zero_hits_is_unknown_never_novel(reviewer, loopback, literature_server, store):
    checker = NoveltyChecker(loopback_model(store, loopback), online_clients(store, FAST_RETRY))
    idea = make_idea("quiet", "Spectral dropout schedules", "Change dropout per frequency.")
    result = checker.check(idea)
    assert result.status == "unknown"
    assert "zero hits" in result.reason
    assert result.queries == ["Spectral dropout schedules"]
    assert "verdict" not in reviewer.seen, "no verdict is asked for without papers"


def test_novelty_not_novel_names_the_paper(reviewer, loopback, literature_server, store):
    literature_server.add_paper(
        "Label smoothing for clothing images",
        "Label smoothing improves accuracy of small CNNs on clothing images.",
        2019,
    )
    reviewer.verdict_paper = 1
    checker = NoveltyChecker(loopback_model(store, loopback), online_clients(store, FAST_RETRY))
    result = checker.check(make_idea("ls", "Label smoothing clothing", "Add label smoothing."))
    assert result.status == "not_novel"
    assert result.paper is not None and result.paper.title == "Label smoothing for clothing images"
    assert result.paper.url
    verdict_prompt = reviewer.seen["verdict"][0].last_user_text
    assert "[1] Label smoothing for clothing images (2019)" in verdict_prompt


def test_not_novel_without_a_listed_paper_stays_unknown(
    reviewer,
    loopback,
    literature_server,
    store,
):
    literature_server.add_paper("Label smoothing study", "label smoothing")
    reviewer.verdict_paper = 7
    checker = NoveltyChecker(loopback_model(store, loopback), online_clients(store, FAST_RETRY))
    result = checker.check(make_idea("ls", "Label smoothing study", "Add label smoothing."))
    assert result.status == "unknown" and result.paper is None


def test_novelty_storm_is_unknown_with_the_reason(reviewer, loopback, literature_server, store):
    literature_server.add_paper("Label smoothing study", "label smoothing")
    literature_server.storm = True
    checker = NoveltyChecker(loopback_model(store, loopback), online_clients(store, FAST_RETRY))
    result = checker.check(make_idea("ls", "Label smoothing study", "Add label smoothing."))
    assert result.status == "unknown"
    assert "429" in result.reason
    assert literature_server.count("openalex") == FAST_RETRY.max_attempts


# judge and tournament


def test_judge_sees_one_idea_without_its_ratings(reviewer, loopback, store):
    judge = Judge(loopback_model(store, loopback), "Classify FashionMNIST with a small CNN.")
    idea = make_idea("wide_cnn", "Wider CNN", "Double the channels.", (9, 9, 9), novel=True)
    score = judge.score(idea)
    assert score.Interestingness == quality("wide_cnn")
    request = reviewer.seen["judge"][0]
    assert [role for role, _ in request.messages] == ["user"], "a fresh context per idea"
    assert idea_in(request.last_user_text) == {
        "Name": "wide_cnn",
        "Title": "Wider CNN",
        "Experiment": "Double the channels.",
    }
    assert "Classify FashionMNIST with a small CNN." in request.system_text


def test_judge_rationales_are_bounded_and_an_overlong_one_is_asked_again(reviewer, loopback, store):
    """An API model that runs past the bound is asked to repair its reply, and the score
    survives; the bound reaches the local model's grammar."""
    answers: list[dict] = []
    repairs = []

    def first_reply_rambles(request):
        if request.purpose != "review.judge":
            return reviewer(request)
        if not answers:
            answers.append(json.loads(reviewer(request)))
            return json.dumps(answers[0] | {"novelty_rationale": "Studied before. " * 40})
        repairs.append(request)
        return json.dumps(answers[0])

    loopback.responder = first_reply_rambles
    judge = Judge(loopback_model(store, loopback), "Classify FashionMNIST with a small CNN.")
    score = judge.score(make_idea("wide_cnn", "Wider CNN", "Double the channels.", (9, 9, 9)))
    assert score.Interestingness == quality("wide_cnn")
    assert len(score.novelty_rationale) <= RATIONALE_MAX_CHARS
    assert len(repairs) == 1 and "novelty_rationale" in repairs[0].last_user_text
    properties = grammar_schema(JudgeReply)["properties"]  # what the local model's grammar gets
    for field in ("interestingness_rationale", "feasibility_rationale", "novelty_rationale"):
        assert properties[field]["maxLength"] == RATIONALE_MAX_CHARS


def test_swiss_pairings_never_repeat_a_pair():
    points, seeds = [0.0] * 7, [float(i) for i in range(7)]
    played: set[frozenset[int]] = set()
    for _ in range(default_rounds(7)):
        pairs = swiss_pairings(points, seeds, played)
        players = [p for pair in pairs for p in pair]
        assert len(players) == len(set(players)), "nobody plays twice in a round"
        for first, second in pairs:
            assert frozenset((first, second)) not in played
            played.add(frozenset((first, second)))
            points[max(first, second)] += 1
    assert default_rounds(7) == 4 and default_rounds(2) == 1 and default_rounds(1) == 0


def test_bradley_terry_orders_by_wins_and_stays_finite():
    strengths = bradley_terry(3, [(0, 1), (0, 1), (0, 2), (1, 2), (1, 2), (0, 2)])
    assert strengths[0] > strengths[1] > strengths[2] > 0
    assert bradley_terry(2, [(0, 1), (1, 0)]) == pytest.approx([1.0, 1.0])


def test_tournament_asks_both_orders_and_cancels_position_bias(reviewer, loopback, store):
    ideas = [make_idea(f"idea_{n}", f"Idea {n}", f"Experiment {n}.") for n in range(6)]
    reviewer.position_bias = True
    judge = Judge(loopback_model(store, loopback))
    tournament = run_tournament(judge, ideas, seeds=[0.0] * 6)
    asked = {(c.shown_first, c.shown_second) for c in tournament.comparisons}
    for first, second in asked:
        assert (second, first) in asked, "every pair is asked in both orders"
    assert tournament.strengths == pytest.approx([1.0] * 6), (
        "a judge that always says A ranks no one"
    )


def test_tournament_recovers_the_judges_preference(reviewer, loopback, store):
    ideas = [make_idea(f"idea_{n}", f"Idea {n}", f"Experiment {n}.") for n in range(8)]
    judge = Judge(loopback_model(store, loopback))
    tournament = run_tournament(judge, ideas, seeds=[0.0] * 8)
    best = max(range(8), key=lambda i: tournament.strengths[i])
    worst = min(range(8), key=lambda i: tournament.strengths[i])
    assert quality(ideas[best].Name) == max(quality(i.Name) for i in ideas)
    assert quality(ideas[worst].Name) < quality(ideas[best].Name)
    assert (
        len(reviewer.seen["pairwise"])
        == len(tournament.comparisons)
        == 2 * sum(len(r) for r in tournament.rounds)
    )


# offline novelty with the real embeddings


def test_offline_novelty_searches_the_corpus_with_embeddings(reviewer, loopback, store, tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps(entry)
            for entry in [
                {
                    "title": "Label smoothing for small CNNs on clothing images",
                    "abstract": "We add label smoothing to a CNN trained on FashionMNIST.",
                    "url": "https://example.org/label-smoothing",
                },
                {"title": "Protein structure prediction", "abstract": "Folding with attention."},
                {"title": "Galaxy morphology surveys", "abstract": "Telescopes and galaxies."},
            ]
        )
    )
    from ideagen.review.novelty import CorpusIndex

    reviewer.verdict_paper = 1
    checker = NoveltyChecker(
        loopback_model(store, loopback), corpus=CorpusIndex.build(load_corpus(corpus), store)
    )
    close = checker.check(
        make_idea(
            "smooth",
            "Label smoothing on FashionMNIST",
            "Add label smoothing of 0.1 to the cross-entropy loss of the FashionMNIST CNN.",
        )
    )
    assert close.status == "not_novel" and close.mode == "offline"
    assert close.paper.title == "Label smoothing for small CNNs on clothing images"
    shown = reviewer.seen["verdict"][0].last_user_text
    assert "Protein structure prediction" not in shown, "only close entries reach the model"
    far = checker.check(
        make_idea("bird", "Birdsong tempo", "Measure the tempo of recorded birdsong in spring.")
    )
    assert far.status == "unknown" and "nothing close" in far.reason
    assert len(reviewer.seen["verdict"]) == 1


# the whole command


IDEAS = [
    {
        "Name": "label_smoothing",
        "Title": "Label smoothing for clothing classification",
        "Experiment": "Add label smoothing of 0.1 to the cross-entropy loss and compare test "
        "accuracy with the baseline over 3 seeds.",
        "Interestingness": 5,
        "Feasibility": 9,
        "Novelty": 3,
    },
    {
        "Name": "imagenet_pretraining",
        "Title": "ImageNet pretraining for FashionMNIST",
        "Experiment": "Initialise the CNN from a pretrained ResNet-50 trained on ImageNet and "
        "fine-tune it on FashionMNIST.",
        "Interestingness": 7,
        "Feasibility": 6,
        "Novelty": 6,
    },
    {
        "Name": "cosine_warmup",
        "Title": "Cosine schedule with warmup",
        "Experiment": "Replace the step learning-rate schedule with a linear warmup for one "
        "epoch followed by cosine decay, and compare the test accuracy with the baseline.",
        "Interestingness": 6,
        "Feasibility": 9,
        "Novelty": 4,
        "novel": True,
    },
    {
        "Name": "cosine_schedule_warmup",
        "Title": "Cosine learning rate schedule with warmup",
        "Experiment": "Replace the step learning-rate schedule with a linear warmup for the first "
        "epoch, then cosine decay; compare test accuracy against the baseline.",
        "Interestingness": 6,
        "Feasibility": 8,
        "Novelty": 4,
    },
    {
        "Name": "mixup_curriculum",
        "Title": "Mixup strength curriculum",
        "Experiment": "Increase the mixup alpha linearly during training and measure test "
        "accuracy and calibration error against the baseline.",
        "Interestingness": 8,
        "Feasibility": 8,
        "Novelty": 7,
        "novel": False,
    },
]


@pytest.fixture
def ideas_file(tmp_path: Path) -> Path:
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(IDEAS, indent=4))
    return path


def run_review(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["review", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_review_end_to_end_online(
    reviewer,
    loopback,
    literature_server,
    ideas_file,
    tmp_path,
    capsys,
    store,
):
    literature_server.add_paper(
        "Label smoothing for clothing images", "Label smoothing on clothing images.", 2019
    )
    reviewer.verdict_paper = 1
    out, report = tmp_path / "reviewed.json", tmp_path / "report.html"
    code, stdout, stderr = run_review(
        capsys,
        str(ideas_file),
        "--out",
        str(out),
        "--report",
        str(report),
        "--provider",
        "openai",
        "--model",
        "gpt-4o-mini",
        "--novelty",
        "online",
    )
    assert code == 0, stderr
    loaded = load_ideas(out)
    assert loaded.errors == []
    names = [idea.Name for idea in loaded.ideas]
    assert len(names) == 4, "the two cosine-warmup ideas were merged into one"
    kept = next(n for n in names if n.startswith("cosine_"))
    merged_into = next(i for i in loaded.ideas if i.Name == kept).model_extra["review"]["merged"]
    assert merged_into and merged_into[0].startswith("cosine_") and merged_into[0] != kept

    def judge_mean(name: str) -> tuple[float, int]:
        score = quality(name)
        return (score + 11 - score + max(1, score - 1)) / 3, -names_in_file.index(name)

    names_in_file = [entry["Name"] for entry in IDEAS]
    assert kept == max(["cosine_warmup", "cosine_schedule_warmup"], key=judge_mean), (
        "the group keeps the member the judge scored best"
    )
    for idea in loaded.ideas:
        assert isinstance(idea.novel, bool), "novel is set on every idea"
        original = next(entry for entry in IDEAS if entry["Name"] == idea.Name)
        assert idea.model_extra["original_ratings"] == {
            field: original[field] for field in ("Interestingness", "Feasibility", "Novelty")
        }
        assert idea.Interestingness == quality(idea.Name), "the judge's score is written"
        assert idea.Feasibility == 11 - quality(idea.Name)
    # ready ideas first, the lint-flagged one next, the published one last
    assert names[-1] == "label_smoothing"
    assert names[-2] == "imagenet_pretraining"
    last = loaded.ideas[-1]
    assert last.novel is False
    assert (
        last.model_extra["review"]["novelty"]["paper"]
        == "Label smoothing for clothing images (2019)"
    )
    ready = loaded.ideas[:2]
    assert {i.Name for i in ready} == {kept, "mixup_curriculum"}
    means = [(i.Interestingness + i.Feasibility + i.Novelty) / 3 for i in ready]
    assert means == sorted(means, reverse=True)
    assert next(i for i in ready if i.Name == kept).novel is True
    mixup = next(i for i in loaded.ideas if i.Name == "mixup_curriculum")
    assert mixup.novel is False, "The AI Scientist's `novel: false` is kept"
    assert "original_novel" not in mixup.model_extra
    conflict = mixup.model_extra["review"]["novelty"]["conflict"]
    assert conflict == "the input said not novel (kept); ideagen found nothing"
    assert f"mixup_curriculum: novel: {conflict}" in " ".join(stderr.split())
    assert "conflict" in stdout.split("mixup_curriculum", 1)[1].splitlines()[0]
    flags = next(i for i in loaded.ideas if i.Name == "imagenet_pretraining").model_extra["review"]
    assert {"imagenet: ImageNet", "pretrained_weights: pretrained"} <= set(flags["lint"])
    html = report.read_text()
    assert '<span class="tag conflict"' in html and "The input said <code>novel: false" in html
    assert "Label smoothing for clothing images" in html and "https://doi.org/10.5555/" in html
    assert "Low-confidence" not in html
    for name in names:
        assert name in stdout, "the table on screen lists every idea"
    spend = store.spend()
    assert "model calls" in stderr
    assert (
        literature_server.count("openalex") > 0 and literature_server.count("semantic_scholar") > 0
    )
    del spend


def test_unknown_as_not_novel_and_novelty_off(reviewer, loopback, ideas_file, tmp_path, capsys):
    out = tmp_path / "reviewed.json"
    code, _, stderr = run_review(
        capsys,
        str(ideas_file),
        "--out",
        str(out),
        "--report",
        str(tmp_path / "r.html"),
        "--provider",
        "openai",
        "--novelty",
        "off",
        "--unknown-as",
        "not-novel",
    )
    assert code == 0, stderr
    ideas = load_ideas(out).ideas
    given = {entry["Name"]: entry.get("novel") for entry in IDEAS}
    assert {idea.Name: idea.novel for idea in ideas} == {i.Name: given[i.Name] for i in ideas}, (
        "with the check off every idea keeps the input's novel, or has none"
    )
    assert all(i.model_extra["review"]["novelty"]["status"] == "unknown" for i in ideas)
    assert "verdict" not in reviewer.seen and "queries" not in reviewer.seen


def test_rank_orders_by_the_tournament(reviewer, loopback, ideas_file, tmp_path, capsys):
    out = tmp_path / "reviewed.json"
    code, stdout, stderr = run_review(
        capsys,
        str(ideas_file),
        "--out",
        str(out),
        "--report",
        str(tmp_path / "r.html"),
        "--provider",
        "openai",
        "--novelty",
        "off",
        "--rank",
    )
    assert code == 0, stderr
    ideas = load_ideas(out).ideas
    scores = [idea.model_extra["review"]["rank_score"] for idea in ideas]
    ready = [s for s, i in zip(scores, ideas, strict=True) if not i.model_extra["review"]["lint"]]
    assert ready == sorted(ready, reverse=True)
    assert len(reviewer.seen["pairwise"]) % 2 == 0 and reviewer.seen["pairwise"]
    assert "Rank" in stdout


def test_invalid_file_stops_with_the_validate_messages(reviewer, loopback, tmp_path, capsys):
    bad = [dict(IDEAS[0]), dict(IDEAS[1], Feasibility="high"), dict(IDEAS[2], Name="Bad Name")]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["validate", str(path)]) == 1
    validate_lines = capsys.readouterr().out.splitlines()
    out = tmp_path / "reviewed.json"
    code, _, stderr = run_review(capsys, str(path), "--out", str(out), "--provider", "openai")
    assert code == 1
    assert stderr.splitlines()[: len(validate_lines)] == validate_lines
    assert "entry 1 (imagenet_pretraining): Feasibility" in stderr
    assert not out.exists() and not (tmp_path / "bad.review.html").exists()
    assert loopback.requests == [], "no model call before the input is valid"


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "invalid JSON at line 1"), ('{"a": 1}', "expected a list of ideas")],
)
def test_unreadable_file_exits_2(reviewer, tmp_path, capsys, content, message):
    path = tmp_path / "ideas.json"
    path.write_text(content)
    code, _, stderr = run_review(capsys, str(path), "--provider", "openai")
    assert code == 2 and message in stderr and str(path) in stderr
    assert list(tmp_path.iterdir()) == [path], "nothing written"


def test_bad_corpus_is_reported_before_any_model_call(
    reviewer, loopback, ideas_file, tmp_path, capsys
):
    corpus = tmp_path / "papers.jsonl"
    corpus.write_text('{"title": "fine"}\n{"abstract": "no title"}\n')
    code, _, stderr = run_review(
        capsys, str(ideas_file), "--corpus", str(corpus), "--provider", "openai"
    )
    assert code == 2
    assert f"{corpus}: line 2: title: missing" in stderr
    assert loopback.requests == []
    code, _, stderr = run_review(capsys, str(ideas_file), "--novelty", "offline")
    assert code == 2 and "--novelty offline needs --corpus" in stderr


def test_review_of_a_real_corpus_file(reviewer, loopback, corpus_dir, tmp_path, capsys):
    source = corpus_dir / "templates__grokking__ideas.json"
    out = tmp_path / "grokking.reviewed.json"
    code, stdout, stderr = run_review(
        capsys,
        str(source),
        "--out",
        str(out),
        "--report",
        str(tmp_path / "grokking.html"),
        "--provider",
        "openai",
        "--novelty",
        "off",
        "--limit",
        "12",
    )
    assert code == 0, stderr
    originals = {idea.Name: idea for idea in load_ideas(source).ideas[:12]}
    reviewed = load_ideas(out)
    assert reviewed.errors == [] and 0 < len(reviewed.ideas) <= 12
    merged = sum(len(i.model_extra["review"].get("merged", [])) for i in reviewed.ideas)
    assert len(reviewed.ideas) + merged == 12
    for idea in reviewed.ideas:
        assert idea.Name in originals
        assert idea.Experiment == originals[idea.Name].Experiment
        assert idea.novel is originals[idea.Name].novel, "The AI Scientist's verdict is kept"
        assert "original_novel" not in idea.model_extra
    assert "only the first 12 of 51 ideas reviewed" in stderr


def test_unreachable_services_stop_query_writing(reviewer, loopback, store):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    clients = [
        OpenAlexClient("openalex", f"http://127.0.0.1:{port}", store, FAST_RETRY),
        SemanticScholarClient("semantic_scholar", f"http://127.0.0.1:{port}", store, FAST_RETRY),
    ]
    checker = NoveltyChecker(loopback_model(store, loopback), clients)
    first = checker.check(make_idea("a", "Idea a", "Do a."))
    second = checker.check(make_idea("b", "Idea b", "Do b."))
    assert first.status == second.status == "unknown"
    assert "unreachable" in first.reason and "unreachable" in second.reason
    assert len(reviewer.seen["queries"]) == 1, "no queries are written once nothing answers"


@pytest.mark.slow
def test_offline_review_with_the_local_model(tmp_path, capsys, monkeypatch):
    """No key, no network: the judge is the embedded model and the report says so."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(IDEAS[:1], indent=4))
    out, report = tmp_path / "reviewed.json", tmp_path / "report.html"
    code, stdout, stderr = run_review(
        capsys, str(path), "--out", str(out), "--report", str(report), "--novelty", "off"
    )
    assert code == 0, stderr
    assert "local Qwen2.5-Coder-1.5B-Instruct" in stderr
    (idea,) = load_ideas(out).ideas
    assert idea.novel is None, "with --novelty off an idea that had no verdict gets none"
    rationales = idea.model_extra["review"].get("rationales")
    if rationales is not None:
        assert all(text.strip() for text in rationales.values()), "the model wrote each reason"
        assert idea.model_extra["original_ratings"]["Interestingness"] == 5
    assert 'id="low-confidence"' in report.read_text()
    assert "low-confidence" in stdout


def test_warnings_cover_only_the_reviewed_entries(reviewer, loopback, tmp_path, capsys):
    entries = [dict(IDEAS[0]), dict(IDEAS[4]), dict(IDEAS[1]), dict(IDEAS[1])]
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(entries))
    common = ["--provider", "openai", "--novelty", "off", "--out", str(tmp_path / "o.json")]
    code, _, stderr = run_review(capsys, str(path), *common, "--limit", "2")
    assert code == 0 and "duplicate Name" not in stderr
    code, _, stderr = run_review(capsys, str(path), *common)
    said = " ".join(stderr.split())
    assert code == 0
    assert f"warning: {path}: entry 3 (imagenet_pretraining): Name: duplicate Name" in said
    assert "warning: warning:" not in said


def test_review_offline_with_a_bibtex_corpus(reviewer, loopback, ideas_file, tmp_path, capsys):
    corpus = tmp_path / "refs.bib"
    corpus.write_text(
        "@article{smooth2019,\n  title = {Label Smoothing for Clothing Classification},\n"
        "  abstract = {Adding label smoothing of 0.1 to the cross-entropy loss of a small CNN "
        "improves test accuracy on clothing images.},\n  year = 2019,\n"
        "  doi = {10.5555/smooth}\n}\n"
    )
    reviewer.verdict_paper = 1
    out = tmp_path / "reviewed.json"
    code, _, stderr = run_review(
        capsys, str(ideas_file), "--out", str(out), "--corpus", str(corpus), "--provider", "openai"
    )
    assert code == 0, stderr
    ideas = load_ideas(out).ideas
    smooth = next(i for i in ideas if i.Name == "label_smoothing")
    assert smooth.novel is False and ideas[-1] is smooth
    assert smooth.model_extra["review"]["novelty"]["url"] == "https://doi.org/10.5555/smooth"
    others = [i for i in ideas if i is not smooth]
    assert all(i.model_extra["review"]["novelty"]["status"] != "not_novel" for i in others)
    assert {i.Name: i.novel for i in others if not i.novel} == {"mixup_curriculum": False}, (
        "every other idea is novel, except the one The AI Scientist said was not"
    )
    assert "queries" not in reviewer.seen, "offline novelty writes no web queries"


# The AI Scientist's novelty verdicts and the hand-over to it


def launched(ideas: list[dict]) -> list[str]:
    """The Names The AI Scientist runs from this ideas.json. Its selection, copied from
    SakanaAI/AI-Scientist launch_scientist.py line 363 (Apache-2.0):
    `novel_ideas = [idea for idea in ideas if idea["novel"]]`"""
    novel_ideas = [idea for idea in ideas if idea["novel"]]
    return [idea["Name"] for idea in novel_ideas]


def checked_by_the_ai_scientist(ideas: list[dict]) -> list[str]:
    """Without --skip-novelty-check, check_idea_novelty skips every idea that has a `novel`
    key (ai_scientist/generate_ideas.py, lines 420-422) and checks the rest."""
    return [idea["Name"] for idea in ideas if "novel" not in idea]


VERDICT_IDEAS = [
    dict(IDEAS[4]),  # mixup_curriculum: The AI Scientist said novel: false
    dict(IDEAS[2]),  # cosine_warmup: novel: true
    dict(IDEAS[1]),  # imagenet_pretraining: no verdict
    dict(IDEAS[0]),  # label_smoothing: no verdict, and published
    dict(
        IDEAS[0],
        Name="noisy_labels",
        novel=True,
        Title="Mislabelled clothing images",
        Experiment="Flip 20% of the training labels at random and measure how much the test "
        "accuracy drops against the baseline.",
    ),  # The AI Scientist said novel: true, and it is published
]


@pytest.fixture
def verdicts_file(tmp_path: Path) -> Path:
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(VERDICT_IDEAS, indent=4))
    return path


def review_verdicts(capsys, path: Path, *extra: str) -> tuple[list[dict], str, str]:
    out = path.with_name("out.json")
    code, stdout, stderr = run_review(
        capsys, str(path), "--out", str(out), "--provider", "openai", *extra
    )
    assert code == 0, stderr
    return json.loads(out.read_text()), stdout, " ".join(stderr.split())


def test_novel_verdicts_with_the_check_on(
    reviewer, loopback, literature_server, verdicts_file, capsys
):
    literature_server.add_paper(
        "Label smoothing for clothing images", "Label smoothing on clothing images.", 2019
    )
    literature_server.add_paper(
        "Mislabelled clothing images in training", "Training on mislabelled clothing images.", 2020
    )
    reviewer.verdict_paper = 1
    ideas, stdout, stderr = review_verdicts(capsys, verdicts_file, "--novelty", "online")
    novel = {idea["Name"]: idea["novel"] for idea in ideas}
    assert novel == {
        "mixup_curriculum": False,  # kept: ideagen's "novel" does not overrule it
        "cosine_warmup": True,
        "imagenet_pretraining": True,  # ideagen found nothing: --unknown-as novel
        "label_smoothing": False,
        "noisy_labels": False,  # input true, but ideagen names the paper
    }
    assert sorted(launched(ideas)) == ["cosine_warmup", "imagenet_pretraining"]
    assert checked_by_the_ai_scientist(ideas) == []
    assert "mixup_curriculum: novel: the input said not novel (kept)" in stderr
    assert (
        "noisy_labels: novel: the input said novel; ideagen found it in "
        "Mislabelled clothing images in training (2020)" in stderr
    )
    assert "--skip-novelty-check" in stderr

    ideas, _, stderr = review_verdicts(
        capsys, verdicts_file, "--novelty", "online", "--override-novel"
    )
    assert sorted(launched(ideas)) == ["cosine_warmup", "imagenet_pretraining", "mixup_curriculum"]
    assert "--override-novel won" in stderr


def test_unknown_never_replaces_an_input_verdict(reviewer, loopback, verdicts_file, capsys):
    corpus = verdicts_file.with_name("empty.jsonl")
    corpus.write_text('{"title": "Quantum error correction codes", "abstract": "Qubits."}\n')
    ideas, _, _ = review_verdicts(
        capsys, verdicts_file, "--corpus", str(corpus), "--unknown-as", "not-novel"
    )
    novel = {idea["Name"]: idea["novel"] for idea in ideas}
    assert novel["cosine_warmup"] is True and novel["noisy_labels"] is True
    assert novel["mixup_curriculum"] is False
    assert novel["imagenet_pretraining"] is False, "no verdict + unknown: --unknown-as decides"


def test_novelty_off_keeps_verdicts_and_says_not_to_skip_the_check(
    reviewer, loopback, verdicts_file, capsys
):
    ideas, _, stderr = review_verdicts(capsys, verdicts_file, "--novelty", "off")
    by_name = {idea["Name"]: idea for idea in ideas}
    assert by_name["mixup_curriculum"]["novel"] is False
    assert by_name["cosine_warmup"]["novel"] is True
    assert "novel" not in by_name["imagenet_pretraining"]
    assert "novel" not in by_name["label_smoothing"]
    with pytest.raises(KeyError):
        launched(ideas)  # what --skip-novelty-check would do
    assert sorted(checked_by_the_ai_scientist(ideas)) == ["imagenet_pretraining", "label_smoothing"]
    assert "2 of 5 ideas have no `novel` verdict: run The AI Scientist WITHOUT" in stderr
    assert "--skip-novelty-check --model" not in stderr

    ideas, _, _ = review_verdicts(capsys, verdicts_file, "--novelty", "off", "--override-novel")
    assert "novel" not in {i["Name"]: i for i in ideas}["mixup_curriculum"], (
        "overridden with the check off: The AI Scientist checks it again"
    )


def test_review_keeps_every_other_key_of_the_input(reviewer, loopback, tmp_path, capsys):
    entry = dict(IDEAS[4], novel=False, source={"from": "The AI Scientist", "round": 3})
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps([entry], indent=4))
    (idea,), _, _ = review_verdicts(capsys, path, "--novelty", "off")
    assert idea["novel"] is False and idea["source"] == entry["source"]
    assert list(idea)[: len(entry)] == list(entry), "input keys first, in their order"


def scientist_template(root: Path) -> Path:
    template = root / "templates" / "fashion_mnist"
    template.mkdir(parents=True)
    (template / "experiment.py").write_text("print('experiment')\n")
    return template


def test_into_writes_where_the_ai_scientist_reads_and_backs_up(
    reviewer, loopback, ideas_file, tmp_path, capsys
):
    template = scientist_template(tmp_path / "AI-Scientist")
    previous = template / "ideas.json"
    previous.write_text('[{"Name": "old"}]')
    common = ["--provider", "openai", "--novelty", "off", "--into", str(template)]
    code, _, stderr = run_review(capsys, str(ideas_file), *common)
    assert code == 0, stderr
    # generate_ideas(skip_generation=True) reads <base_dir>/ideas.json
    # (ai_scientist/generate_ideas.py, lines 84-88), base_dir = templates/<--experiment>
    # (launch_scientist.py, line 341)
    written = json.loads(previous.read_text())
    assert [idea["Name"] for idea in written][0] != "old" and len(written) == 4
    backups = sorted(template.glob("ideas.json.bak-*"))
    assert len(backups) == 1 and backups[0].read_text() == '[{"Name": "old"}]'
    said = " ".join(stderr.split())
    root = tmp_path / "AI-Scientist"
    assert (
        f"cd {root} && python launch_scientist.py --experiment fashion_mnist "
        "--skip-idea-generation --model claude-3-5-sonnet-20240620" in said
    ), "no --skip-novelty-check: two ideas have no verdict"

    corpus = tmp_path / "papers.jsonl"
    corpus.write_text('{"title": "Quantum error correction codes", "abstract": "Qubits."}\n')
    code, _, stderr = run_review(
        capsys,
        str(ideas_file),
        "--provider",
        "openai",
        "--into",
        str(template),
        "--corpus",
        str(corpus),
        "--scientist-model",
        "gpt-4o-2024-05-13",
    )
    assert code == 0, stderr
    said = " ".join(stderr.split())
    assert "--skip-idea-generation --skip-novelty-check --model gpt-4o-2024-05-13" in said, (
        "every idea has a verdict now"
    )
    assert len(sorted(template.glob("ideas.json.bak-*"))) == 2, "a backup is never replaced"


def test_into_needs_a_template_folder(reviewer, loopback, ideas_file, tmp_path, capsys):
    missing = tmp_path / "AI-Scientist" / "templates" / "nope"
    code, stdout, stderr = run_review(capsys, str(ideas_file), "--into", str(missing))
    assert code == 2 and f"{missing}: no such template folder" in stdout + stderr
    assert loopback.requests == []
    code, _, stderr = run_review(
        capsys, str(ideas_file), "--into", str(tmp_path), "--out", str(tmp_path / "x.json")
    )
    assert code == 2 and "give --out or --into, not both" in stderr


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(
    reviewer, loopback, ideas_file, tmp_path, capsys, umask, mode
):
    import os

    out, report = tmp_path / "out.json", tmp_path / "report.html"
    previous = os.umask(umask)
    try:
        code, _, stderr = run_review(
            capsys,
            str(ideas_file),
            "--out",
            str(out),
            "--report",
            str(report),
            "--provider",
            "openai",
            "--novelty",
            "off",
        )
    finally:
        os.umask(previous)
    assert code == 0, stderr
    assert out.stat().st_mode & 0o777 == mode and report.stat().st_mode & 0o777 == mode
    out.chmod(0o640)
    run_review(
        capsys, str(ideas_file), "--out", str(out), "--provider", "openai", "--novelty", "off"
    )
    assert out.stat().st_mode & 0o777 == 0o640, "an existing file keeps its mode"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left"


def test_review_shows_what_happened_to_an_idea_run_before(
    reviewer, loopback, tmp_path, capsys, monkeypatch
):
    smoothing = Idea.from_entry(IDEAS[0])
    scientist = AIScientistCheckout(tmp_path / "AI-Scientist")
    folder = scientist.idea_folder(smoothing, "20260101_120000")
    scientist.run(folder, 1, seeds((0.928, 0.930), (0.29, 0.29)))  # -0.20 pp
    scientist.paper(folder, smoothing, overall=3, decision="Reject")
    assert main(["results", str(scientist.results)]) == 0
    capsys.readouterr()
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps(IDEAS, indent=4))
    report = tmp_path / "r.html"
    monkeypatch.setenv("COLUMNS", "140")  # the width of a wide terminal
    code, stdout, stderr = run_review(
        capsys, str(path), "--provider", "openai", "--novelty", "off", "--report", str(report)
    )
    assert code == 0, stderr
    row = next(line for line in stdout.splitlines() if "label_smoothing" in line)
    assert row.rstrip().endswith("-0.20 pp (noise), rejected")
    html = report.read_text()
    assert "<b>label_smoothing</b>: label_smoothing ran before" in html
