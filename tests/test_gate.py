"""The gate refuses nonsense from any model, with its reason, and lets real ideas through.

Real ideas: The AI Scientist's own ideas for its grokking template, checked against that
template's code (bench/data), and hand-written ideas of the same grain for the bundled
FashionMNIST template. Nonsense: what issue 10 quotes from the old default model, and drafts
SmolLM2-135M really wrote (bench/data/smollm2_drafts.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ideagen.gate import Gate, TemplateTerms, grounding_problems, plain_english_problems
from ideagen.idea_examples import gate_examples
from ideagen.schema import Idea
from ideagen.template_prompt import bundled_template_dir, load_template

REPO = Path(__file__).resolve().parents[1]
BENCH_DATA = REPO / "bench" / "data"
GROKKING_METRICS = [
    "final_train_loss",
    "final_val_loss",
    "final_train_acc",
    "final_val_acc",
    "step_val_acc_99",
]


def idea(name: str, title: str, experiment: str) -> Idea:
    return Idea(
        Name=name, Title=title, Experiment=experiment, Interestingness=6, Feasibility=7, Novelty=5
    )


# Ideas for the bundled template in the grain of the AI Scientist's own, each naming the
# settings it changes and the results it compares.
GOOD_FASHION_IDEAS = [
    (
        "evolved_augmentation_policy",
        "Evolving Augmentation Policies for a Compact FashionMNIST CNN",
        "Replace the fixed random horizontal flip with an augmentation policy chosen by a small "
        "genetic algorithm: each individual encodes flip, shift and erasing probabilities, is "
        "trained for two epochs and scored by test accuracy; the best policy is then trained "
        "for the full 6 epochs and compared with the baseline on test accuracy, test loss and "
        "training time.",
    ),
    (
        "evolved_lr_schedule",
        "Evolutionary Search Over One-Cycle Schedule Settings",
        "Evolve max_lr, warmup_fraction and momentum with a population of eight individuals over "
        "five generations, using mutation and crossover, each individual trained for two "
        "epochs. Train the best setting for all epochs with three seeds and compare test "
        "accuracy and final training loss with the unchanged schedule.",
    ),
    (
        "label_smoothing_strength",
        "How Much Label Smoothing Does a Small CNN Need",
        "Sweep label_smoothing over 0, 0.05, 0.1 and 0.2 with weight_decay fixed and two seeds "
        "each; report test accuracy, test loss and the gap between final training loss and "
        "test loss, to see whether smoothing regularizes or only hides overconfidence.",
    ),
]

# What issue 10 quotes the old default writing (the quoted parts, verbatim).
ISSUE_10_NONSENSE = [
    (
        "human_assisted_rescue",
        "Human Assisted Rescue has been successfully deployed to assist those who require "
        "it, one day at home",
        "2017-5498",
    ),
    (
        "please_go_ahead",
        "The experimental template contains an unnecessary non-essential section. This essay "
        "has been reorganized",
        "The experimental template contains an unnecessary non-essential section. This essay "
        "has been reorganized",
    ),
    ("the_experimental_template", "A New Research Idea", "A New Research Idea"),
]


@pytest.fixture(scope="module")
def fashion():
    return load_template(bundled_template_dir())


def grokking_ideas() -> list[Idea]:
    path = BENCH_DATA / "ai-scientist-v1-ideas" / "templates__grokking__ideas.json"
    return [Idea.from_entry(entry) for entry in json.loads(path.read_text())]


def smollm_drafts() -> list[Idea]:
    drafts = json.loads((BENCH_DATA / "smollm2_drafts.json").read_text())["drafts"]
    return [idea("smollm_draft", draft["Title"], draft["Experiment"]) for draft in drafts]


def test_the_ai_scientists_own_ideas_pass_against_their_template():
    grokking = TemplateTerms(
        load_template(BENCH_DATA / "ai-scientist-templates" / "grokking"), GROKKING_METRICS
    )
    ideas = grokking_ideas()
    refused = [
        (i.Name, problems)
        for i in ideas
        if (problems := plain_english_problems(i) + grounding_problems(i, grokking))
    ]
    assert len(ideas) >= 40
    assert len(refused) <= len(ideas) // 20, refused  # at most 5% of real ideas refused


def test_good_ideas_for_the_bundled_template_pass(store, fashion):
    gate = Gate(fashion, store, topic="evolutionary", examples=gate_examples(fashion))
    for name, title, experiment in GOOD_FASHION_IDEAS[:2]:
        assert gate.check(idea(name, title, experiment)) == []
    regularization = Gate(fashion, store, topic="regularization")
    assert regularization.check(idea(*GOOD_FASHION_IDEAS[2])) == []


@pytest.mark.parametrize("number", range(len(ISSUE_10_NONSENSE)))
def test_the_nonsense_quoted_in_issue_10_is_refused_with_its_reason(store, fashion, number):
    name, title, experiment = ISSUE_10_NONSENSE[number]
    failures = Gate(fashion, store, topic="evolutionary").check(idea(name, title, experiment))
    kinds = {failure.kind for failure in failures}
    assert {"ungrounded", "no_measurement"} <= kinds
    expected = [
        {"length", "not_plain_english", "off_topic"},  # Experiment "2017-5498"
        {"length"},  # an Experiment of 13 words of meta-talk
        {"length", "placeholder_title"},
    ]
    assert expected[number] <= kinds, failures
    assert all(failure.message for failure in failures)


def test_every_draft_smollm2_wrote_is_refused(store, fashion):
    gate = Gate(fashion, store, topic="data augmentation")
    drafts = smollm_drafts()
    assert len(drafts) >= 6
    for draft in drafts:
        assert gate.check(draft), draft


def test_numbers_only_fields_are_not_plain_english():
    numbers = idea("x", "2017 5498 3321", "12 34 56 78 90 " * 5)
    kinds = [failure.kind for failure in plain_english_problems(numbers)]
    assert kinds.count("not_plain_english") >= 2
    assert "digits or symbols" in str(plain_english_problems(numbers))


def test_a_decoding_loop_is_refused():
    looped = idea(
        "loop",
        "Evolving Learning Rates for FashionMNIST",
        "Evolve the learning rate and the weight decay. " + "and then the model and then " * 12,
    )
    failures = plain_english_problems(looped)
    assert any(f.kind == "not_plain_english" and "repeats itself" in f.message for f in failures)


def test_an_identifier_list_is_not_sentences():
    listing = idea(
        "identifiers",
        "Settings of the FashionMNIST Classifier",
        "max_lr warmup_fraction momentum weight_decay label_smoothing widths epochs batch_size "
        "flip_augmentation mixed_precision seeds eval_batch_size train_subset test_subset "
        "test_accuracy test_loss",
    )
    assert [f.kind for f in plain_english_problems(listing)] == ["not_plain_english"]


def test_an_idea_for_another_domain_is_ungrounded(store, fashion):
    epidemic = idea(
        "vaccination_timing",
        "Optimal Vaccination Timing in an SEIR Epidemic Model",
        "Add a vaccination compartment to the SEIR differential equations and vary the day "
        "vaccination starts between day 10 and day 60; report the peak number of infected "
        "people and the total deaths over the outbreak for each start day.",
    )
    failures = Gate(fashion, store).check(epidemic)
    assert [f.kind for f in failures] == ["ungrounded", "no_measurement"]
    assert "experiment.py" in failures[0].message and "test_accuracy" in failures[1].message


def test_an_idea_off_the_topic_is_refused_and_one_on_it_in_other_words_passes(store, fashion):
    gate = Gate(fashion, store, topic="evolutionary")
    off = idea(*GOOD_FASHION_IDEAS[2])  # label smoothing: well grounded, not evolutionary
    failures = gate.check(off)
    assert [f.kind for f in failures] == ["off_topic"]
    assert "'evolutionary'" in failures[0].message
    genetic = idea(
        "genetic_widths",
        "A Genetic Algorithm Over Layer Widths",
        "Encode the four entries of widths as a genome, apply mutation and crossover to a "
        "population of six for four generations, train each for one epoch and keep the "
        "fittest by test accuracy; compare the winner with the baseline on test accuracy and "
        "number of parameters.",
    )
    assert not gate.names_topic(genetic)  # never says "evolutionary"...
    assert gate.check(genetic) == []  # ...but is about it


def test_a_restated_seed_idea_is_a_copy(store, fashion):
    gate = Gate(fashion, store, topic="evolutionary", examples=gate_examples(fashion))
    seed = json.loads((fashion.folder / "seed_ideas.json").read_text())[1]
    restated = idea("my_idea", seed["Title"], seed["Experiment"] + " Report test accuracy.")
    failures = gate.check(restated)
    assert [f.kind for f in failures] == ["copies_example"]
    assert seed["Name"] in failures[0].message


def test_distinct_finds_a_duplicate_of_an_existing_idea(store, fashion):
    gate = Gate(fashion, store, topic="evolutionary")
    existing = [idea(*entry) for entry in GOOD_FASHION_IDEAS]
    name, title, experiment = GOOD_FASHION_IDEAS[1]
    reworded = idea("evolve_schedule_again", title, experiment.replace("eight", "ten"))
    duplicate = gate.distinct(reworded, existing)
    assert duplicate is not None and duplicate.kind == "duplicate" and name in duplicate.message
    other = idea(*GOOD_FASHION_IDEAS[0])
    assert gate.distinct(other, existing[1:]) is None


def test_review_flags_the_same_failures_in_a_file_it_reads(
    loopback, store, fashion, tmp_path, monkeypatch
):
    from ideagen.providers import get_model
    from ideagen.providers.common import RetryPolicy
    from ideagen.review.pipeline import ReviewOptions, review_file
    from ideagen.review.report import render_report
    from tests.fakes import ScriptedReviewer

    loopback.responder = ScriptedReviewer()
    model = get_model(
        "openai",
        "gpt-4o-mini",
        store=store,
        base_url=loopback.openai_url,
        retry=RetryPolicy(max_attempts=2, base_delay_s=0.01, total_timeout_s=20),
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")
    good = idea(*GOOD_FASHION_IDEAS[2])
    nonsense = idea(*ISSUE_10_NONSENSE[0])
    epidemic = idea(
        "vaccination_timing",
        "Optimal Vaccination Timing in an SEIR Epidemic Model",
        "Add a vaccination compartment to the SEIR differential equations and vary the day "
        "vaccination starts between day 10 and day 60; report the peak number of infected "
        "people and the total deaths over the outbreak for each start day.",
    )
    path = tmp_path / "ideas.json"
    path.write_text(json.dumps([i.to_entry() for i in (good, nonsense, epidemic)], indent=4))

    def flags(options: ReviewOptions) -> dict[str, set[str]]:
        result = review_file(path, model, store, options)
        return {item.original.Name: {flag.kind for flag in item.lint} for item in result.ideas}

    with_template = flags(ReviewOptions(novelty="off", template=fashion))
    assert with_template[good.Name] == set()
    assert {"length", "not_plain_english", "ungrounded"} <= with_template[nonsense.Name]
    assert with_template[epidemic.Name] == {"ungrounded", "no_measurement"}
    # Without the template only what needs none is flagged.
    without = flags(ReviewOptions(novelty="off"))
    assert without[good.Name] == without[epidemic.Name] == set()
    assert {"length", "not_plain_english"} == without[nonsense.Name]

    result = review_file(path, model, store, ReviewOptions(novelty="off", template=fashion))
    assert result.ideas[0].original.Name == good.Name  # the flagged ones are ordered after it
    html = render_report(result)
    assert "ungrounded" in html and "of the things in experiment.py" in html


# What the embedded Qwen2.5-Coder-1.5B drafted on "evolutionary" (brainstorm, 2026-11-29): it
# tells the coder to edit `run`, `display_results` and `data_pipeline`, none of which
# experiment.py has.
INVENTED_FUNCTIONS = (
    "evolutionary_network_search_for_fashion_mnist",
    "Evolutionary Network Search for FashionMNIST with Correlation Metric",
    "Modify the `run` function to include an additional metric to evaluate the evolution of the "
    "architecture that measures the correlation between its performance and the diversity of "
    "the population. Specifically, create a new function `evaluate_population` that calculates "
    "the correlation. Modify the `display_results` function to also display the correlation, "
    "and compare test accuracy with the baseline.",
)


def test_code_the_template_lacks_is_refused_and_new_code_said_to_be_added_is_not(store, fashion):
    failures = Gate(fashion, store, topic="evolutionary").check(idea(*INVENTED_FUNCTIONS))
    unknown = [f for f in failures if f.kind == "unknown_code"]
    assert len(unknown) == 1, failures
    # It names what is missing, what is there instead, and how to say that code is new.
    assert "`run`, `display_results`" in unknown[0].message
    assert "evaluate_population" not in unknown[0].message
    assert "train_all" in unknown[0].message and "adds a new one" in unknown[0].message
    grounded = idea(
        "evolved_widths_in_net",
        "Evolving the Widths of the FashionMNIST Network",
        "Add a new function named `mutate_widths` that perturbs `widths`; evolve a population "
        "of six over four generations, each trained by `train` for one epoch with max_lr "
        "unchanged, and compare test_accuracy and num_parameters of the winner with the "
        "baseline.",
    )
    assert [f.kind for f in Gate(fashion, store).check(grounded)] == []


def test_a_sentence_said_twice_is_refused():
    text = (
        "Evolve the widths of the network with a genetic algorithm over four generations. "
        "Compare test accuracy with the baseline. "
        "Evolve the widths of the network with a genetic algorithm over four generations."
    )
    failures = plain_english_problems(idea("twice", "Evolving Network Widths Twice", text))
    assert [f.kind for f in failures] == ["not_plain_english"]
    assert "same sentence twice" in failures[0].message


def test_an_idea_about_data_the_template_lacks_is_refused(store, fashion):
    sentiment = idea(
        "sentence_sentiment_widths",
        "Evolving Widths for Sentence Sentiment",
        "Evolve widths and max_lr with a genetic algorithm to classify the sentiment of each "
        "sentence and token in the training data, and compare test accuracy with the baseline "
        "run over two seeds.",
    )
    failures = Gate(fashion, store, topic="evolutionary").check(sentiment)
    assert [f.kind for f in failures] == ["foreign_data"]
    assert "sentence, token" in failures[0].message
    # The same words are fine for a template about text.
    nanogpt = TemplateTerms(load_template(BENCH_DATA / "ai-scientist-templates" / "nanoGPT"))
    assert all(f.kind != "foreign_data" for f in grounding_problems(sentiment, nanogpt))


def test_a_draft_under_a_seed_title_is_a_copy_whatever_its_experiment(store, fashion):
    seed = gate_examples(fashion)[0]
    retitled = idea("own_name", seed.Title, GOOD_FASHION_IDEAS[0][2])
    failures = Gate(fashion, store, examples=gate_examples(fashion)).check(retitled)
    assert [f.kind for f in failures] == ["copies_example"]
    assert seed.Name in failures[0].message


@pytest.mark.parametrize(
    "sentence",
    [
        "The genetic algorithm's fitness is the test accuracy of each network after one epoch.",
        "Select the best of the evolved widths on the test set.",
        "The evolved augmentation policy maximizes the test accuracy.",
        "Early stopping monitors the test loss.",
        "The fitness function should be the test accuracy over the whole test set.",
    ],
)
def test_selecting_or_tuning_on_the_test_data_is_refused(store, fashion, sentence):
    text = (
        "Evolve `widths` with a genetic algorithm over four generations of six networks, each "
        f"trained by `train` for one epoch with max_lr unchanged. {sentence} Compare "
        "num_parameters with the baseline."
    )
    failures = Gate(fashion, store).check(idea("evolved_widths", "Evolving Network Widths", text))
    assert [f.kind for f in failures] == ["selects_on_test"]
    assert "held out from the training data" in failures[0].message


@pytest.mark.parametrize(
    "sentence",
    [
        "Select the best widths by accuracy on 5,000 held-out training images, then report "
        "their test accuracy.",
        "Tune max_lr on the training images and evaluate on the test set.",
        "Compare the test accuracy of the evolved network with the baseline.",
        "Early stopping scores on images held out from the training data, never on the test data.",
    ],
)
def test_reporting_the_test_result_of_what_was_selected_passes(store, fashion, sentence):
    text = (
        "Evolve `widths` with a genetic algorithm over four generations of six networks, each "
        f"trained by `train` for one epoch with max_lr unchanged. {sentence} Report "
        "num_parameters too."
    )
    evolved = idea("evolved_widths", "Evolving Network Widths", text)
    assert Gate(fashion, store).check(evolved) == []


def test_an_idea_padded_with_the_task_description_is_refused(store, fashion):
    text = (
        "Evolve max_lr and momentum with a genetic algorithm over four generations of six "
        "candidates, each scored on 5,000 training images held out from training. Run the "
        "experiment with two seeds (on a CPU side by side, one process each) and take about a "
        "minute on two CPU cores. Compare test accuracy with the baseline."
    )
    failures = Gate(fashion, store).check(idea("evolved_lr", "Evolving the Learning Rate", text))
    assert [f.kind for f in failures] == ["copies_task"]
    assert "'two seeds on a cpu side by side'" in failures[0].message
    # Naming the template's own things is not a copy.
    named = text.replace("(on a CPU side by side, one process each) ", "")
    assert Gate(fashion, store).check(idea("evolved_lr", "Evolving the Learning Rate", named)) == []
    # Nor is listing the results the runs report in the task's own words.
    listed = named.replace(
        "Compare test accuracy with the baseline.",
        "Compare the test accuracy, test loss, final training loss and training time with the "
        "baseline's.",
    )
    assert (
        Gate(fashion, store).check(idea("evolved_lr", "Evolving the Learning Rate", listed)) == []
    )


def test_an_idea_that_restates_its_instructions_is_refused(store, fashion):
    instructions = (
        "Combine what is best in each into ONE experiment that is more than running both: the "
        "question should need both parts, and the measurement should show how they interact."
    )
    gate = Gate(fashion, store, instructions=[instructions])
    echo = (
        "In experiment.py, change `evaluate` and `train`: combine the two ideas into a single "
        "experiment that is more than running both: the question should need both parts. "
        "Compare test accuracy and training loss with the baseline network."
    )
    failures = gate.check(idea("combined", "Combining Two Ideas on FashionMNIST", echo))
    assert [f.kind for f in failures] == ["copies_instructions"]
    assert "'experiment that is more than running both the'" in failures[0].message
    # Carrying the instructions out, in the idea's own words, is no copy.
    carried = (
        "In experiment.py, evolve `max_lr` with a genetic algorithm inside `train_all` while "
        "`train` adds mixup; the question is whether the evolved max_lr differs with mixup on. "
        "Compare test accuracy and training loss with the baseline network."
    )
    assert gate.check(idea("evolved_lr_mixup", "Evolved Learning Rates Under Mixup", carried)) == []
