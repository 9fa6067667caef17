"""Benchmark of `ideagen dedup`: quality on the labelled dev set, and speed.

    python bench/bench_dedup.py                 # quality + timings (1,000 and 10,000 ideas)
    python bench/bench_dedup.py --sizes 1000    # quicker
    python bench/bench_dedup.py --fit           # refit the combiner and print its constants

Quality: bench/dedup_devset.jsonl holds pairs of ideas from the AI Scientist's own idea files
(../shared/corpora/ai-scientist-v1-ideas/), referenced by file, index and Name, each labelled
duplicate / related / distinct by hand. Duplicate is the positive class. Each pair is scored in
the context of all ideas of its template domain (every idea file of that template family),
as `ideagen dedup` would score a file holding them. Printed side by side:

- baseline: MiniLM cosine of the whole idea text (Title + Experiment) at 0.8, the single
  threshold of Si et al. 2024, and at its best single threshold (chosen on the dev set itself,
  so optimistic, and cross-validated);
- ideagen: the shipped combiner and threshold on all pairs (in-sample), the same model refitted
  in 10 x 5-fold cross-validation with the threshold picked on each training fold (the honest
  figure), and the groups `find_duplicates` forms (a pair counts as found when both ideas land
  in one group).

Speed: N ideas made by recombining corpus titles and Experiment sentences (in memory), deduped
with a fresh store (cold: the model loads and every text is embedded) and again (warm).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ideagen import dedup, embeddings  # noqa: E402
from ideagen.schema import Idea  # noqa: E402
from ideagen.store import Store  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpora" / "ai-scientist-v1-ideas"
DEVSET = ROOT / "bench" / "dedup_devset.jsonl"
DOMAINS = {
    "diffusion": (
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
    "nanogpt": ("nanoGPT", "nanoGPT_lite", "multi_style_adapter", "rl_lr_adaptation"),
}
FOLDS, REPEATS, L2 = 5, 10, 1.0


def domain_of(file_name: str) -> str:
    template = file_name.split("__")[1]
    return next((name for name, members in DOMAINS.items() if template in members), template)


def text_of(idea: Idea) -> str:
    return f"{idea.Title}\n{idea.Experiment}"


def load_contexts() -> tuple[dict[str, list[Idea]], dict[tuple[str, int], tuple[str, int]]]:
    """Unique ideas per domain, and where each (file, index) sits in its domain's list."""
    contexts: dict[str, list[Idea]] = {}
    position: dict[tuple[str, int], tuple[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for path in sorted(CORPUS.glob("*ideas.json")):
        domain = domain_of(path.name)
        for index, entry in enumerate(json.loads(path.read_text())):
            idea = Idea.from_entry(entry)
            key = (domain, text_of(idea))
            if key not in seen:
                seen[key] = len(contexts.setdefault(domain, []))
                contexts[domain].append(idea)
            position[(path.name, index)] = (domain, seen[key])
    return contexts, position


def load_devset(position):
    pairs = []
    for line in DEVSET.read_text().splitlines():
        row = json.loads(line)
        domain, a = position[(row["a"]["file"], row["a"]["index"])]
        _, b = position[(row["b"]["file"], row["b"]["index"])]
        pairs.append((domain, a, b, row["label"]))
    return pairs


def prf(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    tp = int((predicted & truth).sum())
    precision = tp / max(1, int(predicted.sum()))
    recall = tp / max(1, int(truth.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def best_threshold(scores: np.ndarray, truth: np.ndarray, grid: np.ndarray) -> float:
    return float(grid[int(np.argmax([prf(scores >= t, truth)[2] for t in grid]))])


def fit_logistic(features: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, float]:
    """L2-penalized logistic regression by gradient descent on standardized features,
    returned as coefficients and intercept on the raw features."""
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-9
    z = (features - mean) / scale
    weights, bias = np.zeros(z.shape[1]), 0.0
    target = truth.astype(float)
    for _ in range(4000):
        p = 1 / (1 + np.exp(-(z @ weights + bias)))
        weights -= 0.5 * (z.T @ (p - target) + L2 * weights) / len(target)
        bias -= 0.5 * float((p - target).mean())
    coefficients = weights / scale
    return coefficients, bias - float(coefficients @ mean)


def predict(features, coefficients, intercept):
    return 1 / (1 + np.exp(-(features @ coefficients + intercept)))


def cross_validate(features, truth, single_feature=None):
    """Pooled precision/recall/F1 over REPEATS x FOLDS folds; the threshold (and, unless
    single_feature is given, the combiner) is fitted on each training fold only."""
    grid = np.linspace(0.02, 0.98, 97)
    predicted_all, truth_all, thresholds = [], [], []
    for repeat in range(REPEATS):
        order = np.random.default_rng(repeat).permutation(len(truth))
        for test in np.array_split(order, FOLDS):
            train = np.setdiff1d(order, test)
            if single_feature is None:
                coefficients, intercept = fit_logistic(features[train], truth[train])
                train_scores = predict(features[train], coefficients, intercept)
                test_scores = predict(features[test], coefficients, intercept)
            else:
                train_scores, test_scores = features[train, 0], features[test, 0]
                grid = np.unique(train_scores)
            threshold = best_threshold(train_scores, truth[train], grid)
            thresholds.append(threshold)
            predicted_all.append(test_scores >= threshold)
            truth_all.append(truth[test])
    return (
        *prf(np.concatenate(predicted_all), np.concatenate(truth_all)),
        float(np.median(thresholds)),
    )


def quality(store: Store, fit: bool) -> None:
    contexts, position = load_contexts()
    pairs = load_devset(position)
    truth = np.array([label == "duplicate" for *_, label in pairs])
    counts = {
        label: sum(p[3] == label for p in pairs) for label in ("duplicate", "related", "distinct")
    }
    print(f"dev set: {len(pairs)} pairs ({', '.join(f'{n} {k}' for k, n in counts.items())})")

    features = np.zeros((len(pairs), 4))
    whole_text_cosine = np.zeros(len(pairs))
    grouped = np.zeros(len(pairs), dtype=bool)
    for domain, ideas in contexts.items():
        rows = [k for k, p in enumerate(pairs) if p[0] == domain]
        if not rows:
            continue
        first = np.array([pairs[k][1] for k in rows])
        second = np.array([pairs[k][2] for k in rows])
        features[rows] = dedup.PairScorer(ideas, store).features(first, second)
        whole = embeddings.embed([f"{i.Title}. {i.Experiment}" for i in ideas], store)
        whole_text_cosine[rows] = np.einsum("ij,ij->i", whole[first], whole[second])
        group_of = {}
        for group in dedup.find_duplicates(ideas, store).index_groups():
            for member in group:
                group_of[member] = tuple(group)
        grouped[rows] = [
            group_of.get(a) is not None and group_of.get(a) == group_of.get(b)
            for a, b in zip(first, second, strict=True)
        ]

    baseline_grid = np.unique(whole_text_cosine)
    best = best_threshold(whole_text_cosine, truth, baseline_grid)
    rows = [
        ("baseline: MiniLM whole-text cosine >= 0.80", *prf(whole_text_cosine >= 0.8, truth)),
        (
            f"baseline: best single threshold {best:.3f} (in-sample)",
            *prf(whole_text_cosine >= best, truth),
        ),
        (
            "baseline: best single threshold, cross-validated",
            *cross_validate(whole_text_cosine[:, None], truth, single_feature=0)[:3],
        ),
    ]
    shipped = dedup.probability(features)
    rows += [
        (
            f"ideagen: shipped combiner >= {dedup.DEFAULT_THRESHOLD:.2f} (in-sample)",
            *prf(shipped >= dedup.DEFAULT_THRESHOLD, truth),
        ),
        ("ideagen: combiner refitted, cross-validated", *cross_validate(features, truth)[:3]),
        ("ideagen: find_duplicates groups (shipped)", *prf(grouped, truth)),
    ]
    print(f"{'method':58s} {'precision':>9s} {'recall':>7s} {'F1':>6s}")
    for name, precision, recall, f1 in rows:
        print(f"{name:58s} {precision:9.3f} {recall:7.3f} {f1:6.3f}")

    if fit:
        coefficients, intercept = fit_logistic(features, truth)
        *_, cv_threshold = cross_validate(features, truth)
        print("fitted on all dev pairs (paste into ideagen/dedup.py):")
        print(f"COEFFICIENTS = np.array([{', '.join(f'{c:.3f}' for c in coefficients)}])")
        print(f"INTERCEPT = {intercept:.3f}")
        print(f"DEFAULT_THRESHOLD = {cv_threshold:.2f}  # median of the training-fold optima")
        for domain, ideas in contexts.items():
            if len(ideas) <= dedup.CANDIDATES:
                continue
            scorer = dedup.PairScorer(ideas, store)
            meaning = scorer.neighbour_meaning[:, : dedup.NEIGHBOURS].mean()
            wording = np.sort(scorer.neighbour_wording, axis=1)[:, ::-1][
                :, : dedup.NEIGHBOURS
            ].mean()
            print(f"neighbourhood means in {domain}: meaning {meaning:.3f}, wording {wording:.3f}")


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


def timings(sizes: list[int]) -> None:
    columns = ("ideas", "cold s", "warm s", "embedded cold", "embedded warm", "groups")
    print(" ".join(f"{column:>14s}" for column in columns))
    for size in sizes:
        ideas = synthetic_ideas(size, seed=size)
        with tempfile.TemporaryDirectory() as home, Store.open(home) as store:
            runs = []
            for _ in ("cold", "warm"):
                before = embeddings.stats.embedded
                started = time.perf_counter()
                result = dedup.find_duplicates(ideas, store)
                runs.append((time.perf_counter() - started, embeddings.stats.embedded - before))
        (cold, cold_embedded), (warm, warm_embedded) = runs
        values = (size, f"{cold:.1f}", f"{warm:.2f}", cold_embedded, warm_embedded)
        print(" ".join(f"{value:>14}" for value in (*values, len(result.clusters))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="refit and print the combiner")
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--store", help="store folder to reuse (default: a fresh temporary one)")
    args = parser.parse_args()
    if not CORPUS.is_dir():
        print(f"the idea corpus is not present at {CORPUS}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch, Store.open(args.store or scratch) as store:
        quality(store, args.fit)
    if args.sizes:
        timings(args.sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
