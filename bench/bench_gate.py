"""Calibrate the gate (ideagen/gate.py) on real ideas and on real nonsense.

Good ideas: The AI Scientist's own ideas for three of its templates (grokking, nanoGPT,
2d_diffusion; bench/data/ai-scientist-v1-ideas, the example papers' files joined to the
template they came from), each checked against its own template's code and metrics
(bench/data/ai-scientist-templates), and the bundled FashionMNIST template's seed ideas
against that template. Nonsense: the three ideas issue 10 quotes from SmolLM2-135M and the
drafts SmolLM2-135M wrote for this benchmark (bench/data/smollm2_drafts.json). Ideas from
other domains (epidemics, earthquakes, molecules, radiance fields, sketches) checked against
the FashionMNIST template show what grounding says about ideas that do not belong.

For each rule it prints the distribution on both sides and the share each side passes at
the gate's threshold. The topic threshold is calibrated on ideas that do not use the
topic's own words (those pass without the embedding): an idea is on a topic when it uses
that topic's family of words (e.g. "genetic", "mutation" for evolutionary).

    .venv/bin/python bench/bench_gate.py            # prints the calibration
    .venv/bin/python bench/bench_gate.py --write    # and keeps it in bench/gate_calibration.txt
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np

from ideagen import embeddings, gate
from ideagen.dedup import opening_text
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import bundled_template_dir, load_template

BENCH = Path(__file__).resolve().parent
CORPUS = BENCH / "data" / "ai-scientist-v1-ideas"
TEMPLATES = BENCH / "data" / "ai-scientist-templates"
SMOLLM_DRAFTS = BENCH / "data" / "smollm2_drafts.json"
OUTPUT = BENCH / "gate_calibration.txt"

# Example papers' idea files, by the template they were generated for.
PAPER_TEMPLATE = {
    "adaptive_dual_scale_denoising": "2d_diffusion",
    "dual_expert_denoiser": "2d_diffusion",
    "gan_diffusion": "2d_diffusion",
    "grid_based_noise_adaptation": "2d_diffusion",
    "data_augmentation_grokking": "grokking",
    "layerwise_lr_grokking": "grokking",
    "mdl_grokking_correlation": "grokking",
    "weight_initialization_grokking": "grokking",
    "multi_style_adapter": "nanoGPT",
    "rl_lr_adaptation": "nanoGPT",
}
OTHER_DOMAINS = ("seir", "earthquake-prediction", "MACE", "tensorf", "sketch_rnn", "probes")

# What issue 10 quotes of the old default's demo output (the parts it quotes, verbatim).
ISSUE_10_NONSENSE = [
    {
        "Name": "human_assisted_rescue",
        "Title": "Human Assisted Rescue has been successfully deployed to assist those who "
        "require it, one day at home",
        "Experiment": "2017-5498",
    },
    {
        "Name": "please_go_ahead",
        "Title": "The experimental template contains an unnecessary non-essential section. "
        "This essay has been reorganized",
        "Experiment": "The experimental template contains an unnecessary non-essential section. "
        "This essay has been reorganized",
    },
    {
        "Name": "the_experimental_template",
        "Title": "A New Research Idea",
        "Experiment": "A New Research Idea",
    },
]

# Topic families: an idea is about the topic when it uses one of these words.
TOPICS = {
    "evolutionary": r"evolution|evolv|genetic|mutation|crossover|population|neat\b",
    "data augmentation": r"augment|mixup|cutmix|cutout|random crop|flip",
    "regularization": r"regulari|dropout|weight decay|label smoothing|penalty|l2\b|l1\b",
    "learning rate": r"learning[ -]rate|\blr\b|warmup|annealing|schedul",
    "initialization": r"initiali",
    "attention": r"attention",
    "noise schedule": r"noise schedul|beta schedul|noise level",
}


def idea(entry: dict) -> Idea:
    fields = {"Interestingness": 5, "Feasibility": 5, "Novelty": 5} | entry
    return Idea.model_validate({k: fields[k] for k in (*gate.Idea.model_fields,) if k in fields})


def corpus_ideas() -> dict[str, list[Idea]]:
    """Each template's ideas, distinct by title."""
    found: dict[str, dict[str, Idea]] = {}
    for path in sorted(CORPUS.glob("*.json")):
        _, folder, _ = path.stem.split("__")
        template = PAPER_TEMPLATE.get(folder, folder)
        for entry in json.loads(path.read_text()):
            found.setdefault(template, {}).setdefault(entry["Title"], idea(entry))
    return {template: list(ideas.values()) for template, ideas in found.items()}


def nonsense() -> list[Idea]:
    drafts = json.loads(SMOLLM_DRAFTS.read_text())["drafts"] if SMOLLM_DRAFTS.exists() else []
    entries = ISSUE_10_NONSENSE + [d for d in drafts if "Title" in d]
    ideas = []
    for entry in entries:
        entry = dict(entry)
        entry["Name"] = re.sub(r"[^a-z0-9_]", "_", entry["Name"].lower()) or "x"
        ideas.append(idea(entry))
    return ideas


def spread(values: list[float]) -> str:
    a = np.array(values, dtype=float)
    return (
        f"n={len(a):3d} min={a.min():6.2f} p5={np.percentile(a, 5):6.2f} "
        f"median={np.median(a):6.2f} max={a.max():6.2f}"
    )


def share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({sum(flags) / len(flags):.0%})"


def calibrate(store: Store) -> None:
    ideas = corpus_ideas()
    metrics = json.loads((TEMPLATES / "metrics.json").read_text())
    fashion = load_template(bundled_template_dir())
    seeds = [idea(e) for e in json.loads((fashion.folder / "seed_ideas.json").read_text())]
    own: list[tuple[Idea, gate.TemplateTerms]] = [(s, gate.TemplateTerms(fashion)) for s in seeds]
    for name, info in metrics.items():
        terms_of = gate.TemplateTerms(load_template(TEMPLATES / name), info["metrics"])
        own += [(i, terms_of) for i in ideas[name]]
    fashion_terms = gate.TemplateTerms(fashion)
    garbage = nonsense()
    foreign = [i for name in OTHER_DOMAINS for i in ideas.get(name, [])]
    good = [i for i, _ in own]

    print(f"good ideas: {len(good)} (their own template), nonsense: {len(garbage)}, ")
    print(f"other-domain ideas against the FashionMNIST template: {len(foreign)}\n")

    def rule(title: str, feature, passes, bounds: str) -> None:
        print(f"== {title} (gate: {bounds})")
        good_values = [feature(i, t) for i, t in own]
        bad_values = [feature(i, fashion_terms) for i in garbage]
        print(f"   good      {spread(good_values)}  pass {share([passes(v) for v in good_values])}")
        print(f"   nonsense  {spread(bad_values)}  pass {share([passes(v) for v in bad_values])}")
        if foreign:
            values = [feature(i, fashion_terms) for i in foreign]
            print(f"   other dom {spread(values)}  pass {share([passes(v) for v in values])}")
        print()

    low, high = gate.TITLE_WORDS
    rule(
        "Title words",
        lambda i, t: len(i.Title.split()),
        lambda v: low <= v <= high,
        gate.TITLE_WORDS,
    )
    low, high = gate.EXPERIMENT_WORDS
    rule(
        "Experiment words",
        lambda i, t: len(i.Experiment.split()),
        lambda v: low <= v <= high,
        gate.EXPERIMENT_WORDS,
    )
    rule(
        "letter share of the Experiment",
        lambda i, t: gate.letter_share(i.Experiment),
        lambda v: v >= gate.MIN_LETTER_SHARE,
        f">= {gate.MIN_LETTER_SHARE}",
    )
    rule(
        "function-word share of the Experiment",
        lambda i, t: gate.function_word_share(i.Experiment),
        lambda v: v >= gate.MIN_FUNCTION_WORD_SHARE,
        f">= {gate.MIN_FUNCTION_WORD_SHARE}",
    )
    rule(
        "most repeated word trigram",
        lambda i, t: gate.most_repeated_trigram(f"{i.Title} {i.Experiment}")[1],
        lambda v: v <= gate.MAX_TRIGRAM_REPEATS,
        f"<= {gate.MAX_TRIGRAM_REPEATS}",
    )
    rule(
        "template terms used",
        lambda i, t: len(t.used(i)),
        lambda v: v >= gate.MIN_TEMPLATE_TERMS,
        f">= {gate.MIN_TEMPLATE_TERMS}",
    )
    rule(
        "template metrics measured",
        lambda i, t: len(t.measured(i)),
        lambda v: v >= 1,
        ">= 1",
    )
    rule(
        "sentences said twice in the Experiment",
        lambda i, t: int(gate.repeated_sentence(i.Experiment) is not None),
        lambda v: v == 0,
        "none",
    )
    rule(
        "code names used as if the template had them, and it does not",
        lambda i, t: len(gate.unknown_code_names(i, t)),
        lambda v: v == 0,
        "none",
    )
    rule(
        "kinds of data or people the template does not have",
        lambda i, t: len(gate.foreign_data_terms(i, t)),
        lambda v: v == 0,
        "none",
    )
    rule(
        "selects or tunes on the test data",
        lambda i, t: int(gate.selects_on_test_data(i) is not None),
        lambda v: v == 0,
        "none",
    )
    rule(
        f"runs of {gate.COPIED_WORDS} words copied from the task description",
        lambda i, t: int(gate.copied_from_task(i, t) is not None),
        lambda v: v == 0,
        "none",
    )
    rule(
        "all plain-English and grounding rules",
        lambda i, t: len(gate.plain_english_problems(i) + gate.grounding_problems(i, t)),
        lambda v: v == 0,
        "no failure",
    )
    calibrate_topic(store, ideas, seeds)


def calibrate_topic(store: Store, ideas: dict[str, list[Idea]], seeds: list[Idea]) -> None:
    pool = [i for name in ("grokking", "nanoGPT", "2d_diffusion") for i in ideas[name]] + seeds
    print("== topic similarity, ideas that do not use the topic's own words")
    # One batch fills the embedding cache; the checks below then only look vectors up.
    texts = [opening_text(i) for i in pool + nonsense()] + list(TOPICS)
    embeddings.embed(texts, store)
    on, off = [], []
    fashion = load_template(bundled_template_dir())
    for topic, family in TOPICS.items():
        checker = gate.Gate(fashion, store, topic=topic)
        pattern = re.compile(family, re.IGNORECASE)
        said_topic = [i for i in pool if checker.names_topic(i)]
        rest = [i for i in pool if not checker.names_topic(i)]
        about = [i for i in rest if pattern.search(f"{i.Title} {i.Experiment}")]
        other = [i for i in rest if not pattern.search(f"{i.Title} {i.Experiment}")]
        topic_on = [checker.topic_similarity(i) for i in about]
        topic_off = [checker.topic_similarity(i) for i in other]
        on += topic_on
        off += topic_off
        print(
            f"   {topic!r}: {len(said_topic)} ideas use its words; of the rest, "
            f"{len(about)} on it, {len(other)} not"
        )
        if topic_on:
            print(f"      on  {spread(topic_on)}")
        print(f"      off {spread(topic_off)}")
    threshold = gate.TOPIC_SIMILARITY
    print(f"   all on-topic  {spread(on)}  pass {share([v >= threshold for v in on])}")
    print(f"   all off-topic {spread(off)}  pass {share([v >= threshold for v in off])}")
    for candidate in (0.05, 0.1, 0.15, 0.2, 0.25, 0.3):
        kept = np.mean([v >= candidate for v in on])
        refused = np.mean([v < candidate for v in off])
        print(
            f"   threshold {candidate:.2f}: on-topic kept {kept:.0%}, "
            f"off-topic refused {refused:.0%}"
        )
    garbage = nonsense()
    for topic in ("evolutionary", "data augmentation", "regularization"):
        checker = gate.Gate(fashion, store, topic=topic)
        values = [checker.topic_similarity(i) for i in garbage]
        print(f"   nonsense vs {topic!r}: {spread(values)}")


class _Tee(io.TextIOBase):
    """Prints as it goes and keeps a copy for the calibration file."""

    def __init__(self, copy: io.StringIO):
        self.copy = copy

    def write(self, text: str) -> int:
        self.copy.write(text)
        sys.__stdout__.write(text)
        sys.__stdout__.flush()
        return len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"also write {OUTPUT.name}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        store = Store(Path(home) / "bench.db")
        buffer = io.StringIO()
        with redirect_stdout(_Tee(buffer)):
            calibrate(store)
    text = buffer.getvalue()
    if args.write:
        OUTPUT.write_text(f"# output of: python bench/bench_gate.py --write\n\n{text}")


if __name__ == "__main__":
    main()
