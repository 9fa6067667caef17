"""Do idea scores predict what The AI Scientist then got out of the idea? Spearman rank
correlation between the scores an idea had before it ran and its outcome.

    python bench/bench_judge_outcomes.py                      # the data in the repository
    python bench/bench_judge_outcomes.py --home DIR           # + outcomes in your store
    python bench/bench_judge_outcomes.py --judge --provider anthropic   # + ideagen's judge

Data at hand, said plainly:
- bench/data/ai-scientist-example-results/: the ten example ideas SakanaAI published with
  The AI Scientist (Apache-2.0, see its NOTICE), real runs and real reviews. The scores next
  to them are The AI Scientist's OWN ratings from its ideas.json
  (bench/data/ai-scientist-v1-ideas/example_papers__NAME__ideas.json), not ideagen's judge:
  no model API is reachable here. All ten ran and were reviewed (all rejected, Overall 3-6),
  so this is a small, survivor-only sample. `--judge` scores the same ten ideas with
  ideagen's judge through the provider you choose.
- With --home: outcomes that `ideagen results` stored, scored by ideagen's judge (the
  ratings `ideagen review` wrote). Shown only when at least three have both.

Outcomes: the review's Overall (1-10), and the main metric's improvement of the best run over
run_0 (relative to run_0, sign-corrected so that higher is better, averaged over datasets).
The baseline is no relation (rho = 0); at n = 10 a two-sided p < 0.05 needs |rho| > 0.65.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scipy.stats import spearmanr

from ideagen.ideafile import load_ideas
from ideagen.results import IdeaOutcome, read_results, stored_outcomes
from ideagen.schema import RATING_FIELDS, Idea
from ideagen.store import Store

DATA = Path(__file__).resolve().parent / "data"
EXAMPLES = DATA / "ai-scientist-example-results"
IDEA_FILES = DATA / "ai-scientist-v1-ideas"


def improvement(outcome: IdeaOutcome) -> float | None:
    """Relative change of the main metric, best run over run_0, higher = better."""
    changes = []
    for key, delta in outcome.delta.items():
        if key.rsplit(".", 1)[-1] != outcome.metric:
            continue
        scale = abs(outcome.baseline_means.get(key) or 1.0)
        changes.append((delta if outcome.higher_is_better else -delta) / scale)
    return sum(changes) / len(changes) if changes else None


def example_pairs() -> list[tuple[Idea, IdeaOutcome]]:
    pairs = []
    for outcome in read_results(EXAMPLES).outcomes:
        ideas = load_ideas(IDEA_FILES / f"example_papers__{outcome.name}__ideas.json").ideas
        match = next((i for i in ideas if i.Name == outcome.name), None)
        if match is not None:
            pairs.append((match, outcome))
    return pairs


def report(label: str, scores: list[float], outcomes: list[IdeaOutcome]) -> None:
    print(f"\n{label} (n = {len(scores)})")
    measures = {
        "review Overall": [o.review.Overall if o.review else None for o in outcomes],
        "metric improvement": [improvement(o) for o in outcomes],
    }
    for name, values in measures.items():
        kept = [(s, v) for s, v in zip(scores, values, strict=True) if v is not None]
        if len(kept) < 3:
            print(f"  vs {name:<20} too few ideas with both ({len(kept)})")
            continue
        rho, p = spearmanr([s for s, _ in kept], [v for _, v in kept])
        print(f"  vs {name:<20} rho = {rho:+.2f}  (p = {p:.2f}, n = {len(kept)}; baseline 0)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="an ideagen store whose outcomes to include")
    parser.add_argument("--judge", action="store_true", help="score the examples with the judge")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--model")
    args = parser.parse_args()

    pairs = example_pairs()
    print(f"data: {EXAMPLES.relative_to(DATA.parent.parent)}: {len(pairs)} real outcomes")
    outcomes = [o for _, o in pairs]
    for field in (*RATING_FIELDS, "mean"):
        scores = [
            sum(getattr(i, f) for f in RATING_FIELDS) / 3 if field == "mean" else getattr(i, field)
            for i, _ in pairs
        ]
        report(f"The AI Scientist's own {field} rating", scores, outcomes)

    if args.judge:
        from ideagen.providers import get_model
        from ideagen.review.judge import Judge

        with Store.open(args.home) as store:
            judge = Judge(get_model(args.provider, args.model, store=store))
            scores = [judge.score(idea).mean for idea, _ in pairs]
        report(f"ideagen's judge ({args.provider}), mean of I/F/N", scores, outcomes)

    if args.home:
        with Store.open(args.home) as store:
            judged = [o for o in stored_outcomes(store) if o.provenance and o.provenance.judge]
        if len(judged) < 3:
            print(f"\nstore {args.home}: {len(judged)} outcomes with judge scores; need 3")
        else:
            scores = [sum(o.provenance.judge.values()) / 3 for o in judged]
            report(f"store {args.home}: ideagen's judge, mean of I/F/N", scores, judged)
    return 0


if __name__ == "__main__":
    sys.exit(main())
