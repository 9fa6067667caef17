"""Benchmark of `ideagen dedup`: quality on the labelled dev set, and speed.

    python bench/bench_dedup.py                  # quality + timings (1,000 and 10,000 ideas)
    python bench/bench_dedup.py --sizes 1000     # quicker
    python bench/bench_dedup.py --sizes          # quality only
    python bench/bench_dedup.py --worst-case     # + 10,000 near-copies of one idea
    python bench/bench_dedup.py --fit            # refit the combiner and print its constants
    python bench/bench_dedup.py --sizes --judge local --judge-budget-s 600 --parts-limit 2
        # + a judge model on (a sample of) the dev pairs in the uncertain band: those pairs'
        # F1 without and with the judge, its verdicts, seconds per call, calls per 100 ideas

Quality: bench/dedup_devset.jsonl holds pairs of ideas from the AI Scientist's own idea files
(bench/data/ai-scientist-v1-ideas/, Apache-2.0, see its NOTICE), referenced by file, index and
Name, each labelled duplicate / related / distinct by hand. Duplicate is the positive class.
Each pair is scored in the context of all ideas of its template (every idea file of that
template family), as `ideagen dedup` would score a file holding them. Printed side by side:

- baseline: MiniLM cosine of the whole idea text (Title + Experiment) at 0.8, the single
  threshold of Si et al. 2024, and at its best single threshold (in-sample, optimistic; and
  chosen on the other templates, held out);
- ideagen: the shipped combiner and threshold on all pairs (in-sample); the same model
  refitted by leave-one-template-out cross-validation, each template's pairs scored by a
  combiner and threshold fitted on the other templates only (held out: pairs the method never
  saw, from a template it never saw); the same with the change and measure parts compared
  separately as two more features (measured, and left out of the shipped score because they
  do not help held out); and the groups `find_duplicates` forms (a pair counts as found when
  both ideas land in one group).

Small files: each dev pair scored again among a few other ideas of its template (2 to 48 in
all), as brainstorm and evolve check a new idea against a short file: the shipped score, the
combiner of meaning and wording on every context, and meaning alone; and how many pairs of
the bundled template's seed ideas each calls duplicates.

Speed: N ideas made by recombining corpus titles and Experiment sentences (in memory), deduped
with a fresh store (cold: the model loads and every text is embedded) and again (warm).
--worst-case adds N near-copies of one idea (each differs from the original in a word or
two), the case where every pair is a candidate and one group holds everything.
Timings are wall-clock seconds on whatever machine runs this, under its load at the time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ideagen import embeddings  # noqa: E402
from ideagen.dedup import find, judge, pairs, parts, text  # noqa: E402
from ideagen.ideafile import load_ideas  # noqa: E402
from ideagen.providers import get_model  # noqa: E402
from ideagen.schema import Idea  # noqa: E402
from ideagen.store import Store  # noqa: E402
from ideagen.template_prompt import bundled_template_dir  # noqa: E402

CORPUS = ROOT / "bench" / "data" / "ai-scientist-v1-ideas"
DEVSET = ROOT / "bench" / "dedup_devset.jsonl"
# The AI Scientist's three main templates and the example-paper runs made from each; every
# other template is its own family.
TEMPLATES = {
    "2d_diffusion": (
        "2d_diffusion",
        "adaptive_dual_scale_denoising",
        "dual_expert_denoiser",
        "gan_diffusion",
        "grid_based_noise_adaptation",
    ),
    "grokking": (
        "grokking",
        "data_augmentation_grokking",
        "layerwise_lr_grokking",
        "mdl_grokking_correlation",
        "weight_initialization_grokking",
    ),
    "nanoGPT": ("nanoGPT", "nanoGPT_lite", "multi_style_adapter", "rl_lr_adaptation"),
}
C = 1.0  # inverse L2 penalty of the combiner's logistic regression (standardized features)
THRESHOLDS = np.linspace(0.02, 0.98, 97)


def template_of(file_name: str) -> str:
    folder = file_name.split("__")[1]
    return next((name for name, members in TEMPLATES.items() if folder in members), folder)


def text_of(idea: Idea) -> str:
    return f"{idea.Title}\n{idea.Experiment}"


def load_contexts() -> tuple[dict[str, list[Idea]], dict[tuple[str, int], tuple[str, int]]]:
    """Unique ideas per template, and where each (file, index) sits in its template's list."""
    contexts: dict[str, list[Idea]] = {}
    position: dict[tuple[str, int], tuple[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for path in sorted(CORPUS.glob("*ideas.json")):
        template = template_of(path.name)
        for index, entry in enumerate(json.loads(path.read_text())):
            idea = Idea.from_entry(entry)
            key = (template, text_of(idea))
            if key not in seen:
                seen[key] = len(contexts.setdefault(template, []))
                contexts[template].append(idea)
            position[(path.name, index)] = (template, seen[key])
    return contexts, position


def load_devset(position, contexts):
    """(template, a, b, label) per line; a line whose Name does not match its entry stops."""
    rows = []
    for number, line in enumerate(DEVSET.read_text().splitlines(), start=1):
        row = json.loads(line)
        ends = []
        for side in ("a", "b"):
            template, index = position[(row[side]["file"], row[side]["index"])]
            if contexts[template][index].Name != row[side]["name"]:
                sys.exit(f"{DEVSET.name} line {number}: {side} is not {row[side]['name']}")
            ends.append((template, index))
        rows.append((ends[0][0], ends[0][1], ends[1][1], row["label"]))
    return rows


def prf(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((predicted & truth).sum())
    precision = tp / max(1, int(predicted.sum()))
    recall = tp / max(1, int(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_threshold(scores: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> float:
    return float(grid[int(np.argmax([prf(scores >= t, truth)[2] for t in grid]))])


def fit_combiner(features: np.ndarray, truth: np.ndarray):
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C))
    return model.fit(features, truth)


def raw_coefficients(model) -> tuple[np.ndarray, float]:
    """The fitted pipeline as coefficients and intercept on the unstandardized features."""
    scaler, logistic = model[0], model[1]
    coefficients = logistic.coef_[0] / scaler.scale_
    return coefficients, float(logistic.intercept_[0] - coefficients @ scaler.mean_)


def leave_one_template_out(features, truth, templates, single_feature=False):
    """Held-out scores: each template's pairs predicted by a combiner and threshold fitted on
    the other templates' pairs. Returns predictions and the thresholds chosen."""
    predicted = np.zeros(len(truth), dtype=bool)
    thresholds = []
    for template in sorted(set(templates)):
        test = templates == template
        train = ~test
        if single_feature:
            train_scores, test_scores = features[train, 0], features[test, 0]
            grid = np.unique(train_scores)
        else:
            model = fit_combiner(features[train], truth[train])
            train_scores = model.predict_proba(features[train])[:, 1]
            test_scores = model.predict_proba(features[test])[:, 1]
            grid = THRESHOLDS
        threshold = best_threshold(train_scores, truth[train], grid)
        thresholds.append(threshold)
        predicted[test] = test_scores >= threshold
    return predicted, thresholds


def judged(store, provider, contexts, rows, shipped, truth, limit, parts_limit, budget_s):
    """Rows of the table for the judge on the uncertain band (the same pairs without and with
    it), and notes: its verdicts by label, seconds per call, calls per 100 ideas."""
    model = get_model(provider, store=store)
    name = f"{provider}/{model.model}"
    band = np.nonzero(np.abs(shipped - find.DEFAULT_THRESHOLD) < judge.UNCERTAIN_BAND)[0]
    # in a fixed random order, so that the pairs asked before a limit or the time budget are a
    # random sample of the band (the dev file lists its pairs template by template)
    order = np.random.default_rng(0).permutation(band)[: limit or None]
    asked, shown, answers = [], [], []
    started = time.perf_counter()
    for k in order:
        if budget_s and time.perf_counter() - started > budget_s:
            break
        pair = (contexts[rows[k][0]][rows[k][1]], contexts[rows[k][0]][rows[k][2]])
        answers.extend(judge.ask_judge([pair], model, store))
        asked.append(k)
        shown.append(pair)
    judge_seconds = (time.perf_counter() - started) / max(1, len(asked))
    asked = np.array(asked, dtype=np.int64)
    without = shipped >= find.DEFAULT_THRESHOLD
    with_judge = without.copy()
    with_judge[asked] = [answer.duplicate for answer in answers]
    labels = [rows[k][3] for k in asked]
    described = ", ".join(f"{labels.count(label)} {label}" for label in sorted(set(labels)))
    table = [
        (
            f"band pairs asked ({len(asked)} of {len(band)}: {described}), no judge",
            prf(without[asked], truth[asked]),
        ),
        (f"the same band pairs, judge {name}", prf(with_judge[asked], truth[asked])),
        (f"all dev pairs, judge {name} on those asked", prf(with_judge, truth)),
    ]
    notes = [f"judge {name}, verdicts by hand label (counted duplicates in brackets):"]
    for label in ("duplicate", "related", "distinct"):
        mine = [
            answer
            for answer, truth_label in zip(answers, labels, strict=True)
            if truth_label == label
        ]
        if mine:
            verdicts = ", ".join(
                f"{verdict} {sum(a.verdict == verdict for a in mine)}"
                + (f" ({sum(a.duplicate for a in mine)})" if verdict == "duplicate" else "")
                for verdict in ("duplicate", "related", "distinct")
            )
            notes.append(f"  {label:9s} pairs: {verdicts}")
    notes.append(f"  {judge_seconds:.1f} s per judge call (store cache included)")
    if parts_limit:
        readers = list({parts.parts_key(idea): idea for pair in shown for idea in pair}.values())
        readers = readers[:parts_limit]
        started = time.perf_counter()
        read = [parts.read_parts(idea, store, model) for idea in readers]
        parts_seconds = (time.perf_counter() - started) / max(1, len(readers))
        unusable = sum(r.source == "rules" for r in read)
        notes.append(
            f"  {parts_seconds:.1f} s per parts reading ({len(readers)} ideas, {unusable} unusable)"
        )
    ideas = judge_calls = merged = 0
    for members in contexts.values():
        scorer = pairs.PairScorer(members, store)
        probabilities = scorer.score(*scorer.candidate_pairs())
        uncertain = np.abs(probabilities - find.DEFAULT_THRESHOLD) < judge.UNCERTAIN_BAND
        judge_calls += int(uncertain.sum())
        merged += sum(len(group) for group in find.find_duplicates(members, store).index_groups())
        ideas += len(members)
    notes.append(
        f"  calls per 100 ideas (all {ideas} corpus ideas, each template deduplicated as one "
        f"file): {100 * judge_calls / ideas:.0f} judge calls (uncertain candidate pairs) + "
        f"{100 * merged / ideas:.0f} parts readings (ideas in a merge, offline grouping)"
    )
    return table, notes


def quality(
    store: Store,
    fit: bool,
    judges: list[str],
    judge_limit: int = 0,
    parts_limit: int = 0,
    budget_s: float = 0.0,
) -> None:
    contexts, position = load_contexts()
    rows = load_devset(position, contexts)
    truth = np.array([label == "duplicate" for *_, label in rows])
    templates = np.array([row[0] for row in rows])
    counts = {
        label: sum(row[3] == label for row in rows)
        for label in ("duplicate", "related", "distinct")
    }
    per_template = {t: int((templates == t).sum()) for t in sorted(set(templates))}
    print(
        f"dev set: {len(rows)} pairs ({', '.join(f'{n} {k}' for k, n in counts.items())}) "
        f"from {len(per_template)} templates: "
        + ", ".join(f"{t} {n}" for t, n in per_template.items())
    )

    features = np.zeros((len(rows), len(pairs.FEATURES)))
    shipped = np.zeros(len(rows))
    part_features = np.zeros((len(rows), 2))
    whole_text_cosine = np.zeros(len(rows))
    grouped = np.zeros(len(rows), dtype=bool)
    for template, ideas in contexts.items():
        selected = [k for k, row in enumerate(rows) if row[0] == template]
        if not selected:
            continue
        first = np.array([rows[k][1] for k in selected])
        second = np.array([rows[k][2] for k in selected])
        scorer = pairs.PairScorer(ideas, store)
        features[selected] = scorer.features(first, second)
        shipped[selected] = scorer.score(first, second)
        part_features[selected] = scorer.part_similarities(first, second)
        whole = embeddings.embed([f"{i.Title}. {i.Experiment}" for i in ideas], store)
        whole_text_cosine[selected] = np.einsum("ij,ij->i", whole[first], whole[second])
        group_of = {}
        for group in find.find_duplicates(ideas, store).index_groups():
            for member in group:
                group_of[member] = tuple(group)
        grouped[selected] = [
            group_of.get(a) is not None and group_of.get(a) == group_of.get(b)
            for a, b in zip(first, second, strict=True)
        ]

    best = best_threshold(whole_text_cosine, truth, np.unique(whole_text_cosine))
    baseline_held_out, _ = leave_one_template_out(
        whole_text_cosine[:, None], truth, templates, single_feature=True
    )
    held_out, thresholds = leave_one_template_out(features, truth, templates)
    with_parts, _ = leave_one_template_out(
        np.column_stack([features, part_features]), truth, templates
    )
    table = [
        ("baseline: MiniLM whole-text cosine >= 0.80", prf(whole_text_cosine >= 0.8, truth)),
        (
            f"baseline: best single threshold {best:.3f} (in-sample)",
            prf(whole_text_cosine >= best, truth),
        ),
        ("baseline: best single threshold (held-out template)", prf(baseline_held_out, truth)),
        (
            f"ideagen: shipped score >= {find.DEFAULT_THRESHOLD:.2f} (in-sample)",
            prf(shipped >= find.DEFAULT_THRESHOLD, truth),
        ),
        ("ideagen: combiner refitted (held-out template)", prf(held_out, truth)),
        ("ideagen: + change and measure parts (held-out template)", prf(with_parts, truth)),
        ("ideagen: find_duplicates groups, shipped (in-sample)", prf(grouped, truth)),
    ]
    notes = []
    for provider in judges:
        rows_judged, judge_notes = judged(
            store, provider, contexts, rows, shipped, truth, judge_limit, parts_limit, budget_s
        )
        table.extend(rows_judged)
        notes.extend(judge_notes)
    width = max(len(name) for name, _ in table)
    print(f"{'method':{width}s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    for name, (precision, recall, f1) in table:
        print(f"{name:{width}s} {precision:9.3f} {recall:7.3f} {f1:6.3f}")
    for note in notes:
        print(note)
    print("held-out F1 per template (combiner fitted on the others):")
    for template in sorted(set(templates)):
        mask = templates == template
        if truth[mask].any():
            print(
                f"  {template:30s} {prf(held_out[mask], truth[mask])[2]:.3f} "
                f"({int(mask.sum())} pairs, {int(truth[mask].sum())} duplicates)"
            )

    small_files(store, contexts, rows, truth)

    if fit:
        coefficients, intercept = raw_coefficients(fit_combiner(features, truth))
        print("fitted on all dev pairs (paste into ideagen/dedup/pairs.py and find.py):")
        print(f"FEATURES = {pairs.FEATURES}")
        print(f"COEFFICIENTS = np.array([{', '.join(f'{c:.3f}' for c in coefficients)}])")
        print(f"INTERCEPT = {intercept:.3f}")
        print(f"DEFAULT_THRESHOLD = {np.median(thresholds):.2f}  # median held-out-fold choice")
        meaning = features[:, :1]
        slope = float(LogisticRegression(C=C).fit(meaning, truth).coef_[0, 0])
        cut = best_threshold(meaning[:, 0], truth, np.unique(meaning))
        at_threshold = np.log(find.DEFAULT_THRESHOLD / (1 - find.DEFAULT_THRESHOLD))
        print(f"MEANING_COEFFICIENT = {slope:.3f}")
        print(f"MEANING_INTERCEPT = {at_threshold - slope * cut:.3f}  # threshold at cut {cut:.3f}")


def small_files(store: Store, contexts, rows, truth: np.ndarray) -> None:
    """Each dev pair scored among a few other ideas of its template (chosen at random, fixed
    seed), as brainstorm and evolve score a new idea against a short file: the shipped score,
    the combiner of meaning and wording on every context (IDF from those few ideas), and
    meaning alone. Then the pairs of the bundled template's seed ideas that each calls
    duplicates (six ideas on one theme, each a different experiment)."""
    print(
        "small files: each dev pair scored among N-2 other ideas of its template (P / R / F1; "
        f"below {pairs.MIN_IDEAS_FOR_WORDING} ideas, meaning alone must agree):"
    )
    print(f"{'ideas':>7s} {'shipped':>20s} {'combiner always':>20s} {'meaning alone':>20s}")
    for size in (2, 4, 8, 16, 20, 24, 32, 48):
        rng = random.Random(size)
        shipped, combined, meaning = (np.zeros(len(rows)) for _ in range(3))
        for k, (template, a, b, _) in enumerate(rows):
            ideas = contexts[template]
            others = [idea for n, idea in enumerate(ideas) if n not in (a, b)]
            chosen = rng.sample(others, min(size - 2, len(others)))
            scorer = pairs.PairScorer([ideas[a], ideas[b], *chosen], store)
            pair = (np.array([0]), np.array([1]))
            features = scorer.features(*pair)
            shipped[k] = scorer.score(*pair)[0]
            combined[k] = pairs.probability(features)[0]
            meaning[k] = pairs.meaning_probability(features[:, 0])[0]
        cells = [
            "{:.2f} / {:.2f} / {:.2f}".format(*prf(scores >= find.DEFAULT_THRESHOLD, truth))
            for scores in (shipped, combined, meaning)
        ]
        print(f"{size:>7d} " + " ".join(f"{cell:>20s}" for cell in cells))
    seeds = load_ideas(bundled_template_dir() / "seed_ideas.json").ideas
    scorer = pairs.PairScorer(seeds, store)
    seed_pairs = list(itertools.combinations(range(len(seeds)), 2))
    first, second = np.array([a for a, _ in seed_pairs]), np.array([b for _, b in seed_pairs])
    features = scorer.features(first, second)
    called = [
        int((scores >= find.DEFAULT_THRESHOLD).sum())
        for scores in (
            scorer.score(first, second),
            pairs.probability(features),
            pairs.meaning_probability(features[:, 0]),
        )
    ]
    print(
        f"the template's {len(seeds)} seed ideas, {len(first)} pairs called duplicates: "
        f"shipped {called[0]}, combiner always {called[1]}, meaning alone {called[2]}"
    )


def synthetic_ideas(count: int, seed: int = 0) -> list[Idea]:
    """Realistic-looking ideas recombined from corpus titles and Experiment sentences."""
    contexts, _ = load_contexts()
    pool = [idea for ideas in contexts.values() for idea in ideas]
    sentences = [
        sentence
        for idea in pool
        for sentence in re.split(r"(?<=[.;])\s+", idea.Experiment)
        if len(sentence.split()) > 4
    ]
    rng = random.Random(seed)
    ideas = []
    for k in range(count):
        source = rng.choice(pool)
        experiment = " ".join(rng.sample(sentences, rng.randint(3, 6)))
        ideas.append(
            Idea(
                Name=f"{source.Name}_{k}",
                Title=rng.choice(pool).Title,
                Experiment=experiment,
                Interestingness=rng.randint(1, 10),
                Feasibility=rng.randint(1, 10),
                Novelty=rng.randint(1, 10),
            )
        )
    return ideas


def near_copies(count: int, seed: int = 0) -> list[Idea]:
    """`count` copies of one corpus idea, each with a word or two added to its Experiment
    after the opening: every pair is a candidate, every pair a duplicate. The opening is
    unchanged, so a cold run embeds one text (the recombined rows show the cost of embedding
    10,000 different texts)."""
    contexts, _ = load_contexts()
    original = contexts["grokking"][3]
    words = original.Experiment.split()
    keep = text.OPENING_WORDS
    rng = random.Random(seed)
    fillers = ["carefully", "also", "then", "again", "jointly", "separately", "first", "later"]
    ideas = []
    for k in range(count):
        copy = list(words)
        for _ in range(rng.randint(1, 2)):
            copy.insert(rng.randrange(keep, len(copy) + 1), rng.choice(fillers))
        update = {"Name": f"{original.Name}_{k}", "Experiment": " ".join(copy)}
        ideas.append(original.model_copy(update=update))
    return ideas


def timings(label: str, ideas: list[Idea]) -> None:
    with tempfile.TemporaryDirectory() as home, Store.open(home) as store:
        runs = []
        for _ in ("cold", "warm"):
            before = embeddings.stats.embedded
            started = time.perf_counter()
            result = find.find_duplicates(ideas, store)
            runs.append((time.perf_counter() - started, embeddings.stats.embedded - before))
    (cold, cold_embedded), (warm, warm_embedded) = runs
    largest = max((len(c.members) for c in result.clusters), default=0)
    values = (
        label,
        len(ideas),
        f"{cold:.1f}",
        f"{warm:.1f}",
        cold_embedded,
        warm_embedded,
        len(result.clusters),
        largest,
    )
    print(" ".join(f"{value:>13}" for value in values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit and print the combiner")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="also time near-copies of one idea, at the largest size",
    )
    parser.add_argument("--store", help="store folder to reuse (default: a fresh temporary one)")
    parser.add_argument(
        "--judge",
        action="append",
        default=[],
        metavar="PROVIDER",
        help="also ask this provider (local, anthropic, openai) about the dev pairs in the "
        "uncertain band; repeatable",
    )
    parser.add_argument(
        "--judge-limit",
        type=int,
        default=0,
        help="ask about at most this many band pairs (a fixed random sample of the band)",
    )
    parser.add_argument(
        "--judge-budget-s",
        type=float,
        default=0.0,
        help="stop asking the judge after this many seconds and report the pairs asked",
    )
    parser.add_argument(
        "--parts-limit",
        type=int,
        default=0,
        help="also time the judge model reading the parts of this many of the asked ideas",
    )
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"the idea corpus is not present at {CORPUS}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch, Store.open(args.store or scratch) as store:
        quality(
            store, args.fit, args.judge, args.judge_limit, args.parts_limit, args.judge_budget_s
        )
    if args.sizes or args.worst_case:
        print("timings (measured under the load of the machine at the time):")
        columns = (
            "ideas",
            "count",
            "cold s",
            "warm s",
            "embedded cold",
            "embedded warm",
            "groups",
            "largest group",
        )
        print(" ".join(f"{column:>13s}" for column in columns))
        for size in args.sizes:
            timings("recombined", synthetic_ideas(size, seed=size))
        if args.worst_case:
            timings("near-copies", near_copies(max(args.sizes or [10000])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
