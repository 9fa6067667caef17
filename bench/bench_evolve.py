"""evolve against brainstorm + review at an equal budget of model calls, with one model.

Baseline arm: `brainstorm -n K --rounds R`, then the review judge scores the pool (the
template's seed ideas and the K new ones). The calls both took are the budget N. Evolve arm:
`evolve --budget-calls N` from the same seeds with the same model as breeder and judge.

For each arm, over the top K of its pool by the judge's score (the mean of its three
ratings): niches covered (every idea placed by the same embedding placer, so neither arm is
placed by its own model), mean and best judge score, the mean pairwise embedding distance
(1 - cosine, MiniLM), how many of the top K are new ideas rather than seeds, how many new
ideas each arm's output holds and their mean score (brainstorm keeps every draft that
passed, evolve only its elites), and the share of candidates rejected, by reason (a
duplicate, infeasible, refused by the brainstorm gate, or a reply that was no valid idea).
Each arm has a fresh store of its own, so no cached answer favours either. The judge answers
at temperature 0, yet the local model does not always give an idea seen by both arms the same
score; so the top K of both arms are also judged again by one judge in one store (its replies
cached), and their mean and best are reported beside each arm's own.

    python bench/bench_evolve.py --provider local -k 4 --rounds 1
    python bench/bench_evolve.py --provider openai --base-url http://127.0.0.1:8080/v1 -k 6
"""

from __future__ import annotations

import argparse
import copy
import itertools
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ideagen import embeddings
from ideagen.brainstorm import Brainstorm
from ideagen.evolve import Evolve, NichePlacer, default_niches
from ideagen.evolve.archive import DEFAULT_PER_NICHE
from ideagen.ideafile import load_ideas
from ideagen.providers import get_model
from ideagen.providers.base import InvalidReply
from ideagen.review.judge import Judge
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import bundled_template_dir, load_template


@dataclass
class Arm:
    name: str
    pool: list[tuple[Idea, float, bool]]  # idea, judge score, new (not a template seed)
    calls: int
    candidates: int
    rejected: dict[str, int]  # by reason: duplicate, infeasible, gate, invalid
    seconds: float
    log: list[str]  # what happened to each candidate, in order


def top(arm: Arm, k: int) -> list[tuple[Idea, float, bool]]:
    return sorted(arm.pool, key=lambda item: -item[1])[:k]


def metrics(arm: Arm, k: int, placer: NichePlacer, judge: Judge, store: Store) -> dict[str, str]:
    best = top(arm, k)
    ideas = [idea for idea, _, _ in best]
    scores = [score for _, score, _ in best]
    again = [score for score in (judge_again(judge, idea) for idea in ideas) if score is not None]
    fresh = [score for _, score, new in arm.pool if new]
    vectors = embeddings.embed([f"{i.Title}. {i.Experiment}" for i in ideas], store)
    distances = [
        1 - float(vectors[a] @ vectors[b]) for a, b in itertools.combinations(range(len(ideas)), 2)
    ]
    niches_top = {placer.nearest(idea).niche for idea in ideas}
    niches_pool = {placer.nearest(idea).niche for idea, _, _ in arm.pool}
    rejected = sum(arm.rejected.values())
    share = rejected / arm.candidates if arm.candidates else 0.0
    reasons = ", ".join(f"{count} {reason}" for reason, count in arm.rejected.items() if count)
    return {
        "model calls": str(arm.calls),
        "wall time": f"{arm.seconds:.0f} s",
        f"niches covered by the top {k}": f"{len(niches_top)} of {len(placer.spec.cells())}",
        "niches covered by the whole pool": f"{len(niches_pool)} ({len(arm.pool)} ideas)",
        f"mean judge score, top {k}": f"{np.mean(scores):.2f}" if scores else "-",
        f"best judge score, top {k}": f"{max(scores):.2f}" if scores else "-",
        f"mean score, top {k}, judged again": f"{np.mean(again):.2f}" if again else "-",
        f"best score, top {k}, judged again": f"{max(again):.2f}" if again else "-",
        f"mean pairwise distance, top {k}": f"{np.mean(distances):.3f}" if distances else "-",
        f"new ideas in the top {k}": str(sum(new for _, _, new in best)),
        "new ideas in the output, mean score": (
            f"{len(fresh)}, {np.mean(fresh):.2f}" if fresh else "0, -"
        ),
        "candidates rejected": f"{rejected} of {arm.candidates} ({share:.0%})",
        "  of which": reasons or "-",
    }


def judge_again(judge: Judge, idea: Idea) -> float | None:
    """The idea's score from one judge for both arms, in one store: its temperature-0 replies
    are cached, so an idea both arms kept gets one score. Within the arms, the local model gave
    the same seed 8.67 in one and 8.00 in the other (run 20 of bench/evolve_local.txt)."""
    try:
        return judge.score(idea).mean
    except InvalidReply:
        return None


def run_brainstorm(args, store: Store, template, seeds: list[Idea], work: Path) -> Arm:
    run_id = "bench-brainstorm"
    model = make_model(args, store, run_id)
    started = time.monotonic()
    result = Brainstorm(
        model,
        store,
        template,
        topic=args.topic,
        count=args.k,
        out=work / "brainstorm.json",
        rounds=args.rounds,
        concurrency=1,
        run_id=run_id,
    ).run()
    judge_model = copy.copy(model)
    judge_model.run_id = f"{run_id}/judge"
    judge = Judge(judge_model, template.task_description)
    new = [finished.idea for finished in result.new]
    rejected = {"duplicate": 0, "infeasible": 0, "gate": 0, "invalid": 0}
    for kind, count in result.rejected.items():
        reason = kind if kind in rejected else "invalid" if kind == "invalid_reply" else "gate"
        rejected[reason] += count
    candidates = len(new) + sum(rejected.values())
    pool = []
    for idea in seeds + new:
        # As in evolve, an idea the judge gives no valid score is counted, not ranked.
        try:
            pool.append((idea, judge.score(idea).mean, idea in new))
        except InvalidReply:
            rejected["invalid"] += 1
    return Arm(
        "brainstorm + review",
        pool,
        store.spend(run_id).calls,
        candidates,
        rejected,
        time.monotonic() - started,
        [],
    )


def run_evolve(args, store: Store, template, seeds: list[Idea], budget: int, work: Path) -> Arm:
    model = make_model(args, store, None)
    started = time.monotonic()
    result = Evolve(
        model,
        store,
        template,
        topic=args.topic,
        out=work / "evolve.json",
        max_calls=budget,
        concurrency=1,
        per_niche=args.per_niche,
        rng_seed=args.seed,
    ).run()
    seed_keys = {(s.Title, s.Experiment) for s in seeds}
    pool = [
        (e.idea, e.score or 0.0, (e.idea.Title, e.idea.Experiment) not in seed_keys)
        for e in result.elites
    ]
    session = result.session
    rejected = {
        "duplicate": session.duplicate,
        "infeasible": session.infeasible,
        "gate": session.gate,
        "invalid": session.invalid,
        "cut by the budget": session.cut,
    }
    log = [
        f"  #{e.id:<3} {e.operator:14s} {'+'.join(map(str, e.parents)) or '-':7s} "
        f"{e.status:10s} {e.niche or '-':24s} {e.idea.Name[:40]:40s} "
        f"{(e.reason or '').split('; placed by')[0][:110]}"
        for e in store.archive_entries(result.archive)
    ]
    return Arm(
        "evolve",
        pool,
        result.spend.calls,
        session.bred + session.seeds + session.invalid,
        rejected,
        time.monotonic() - started,
        log,
    )


def make_model(args, store: Store, run_id: str | None):
    return get_model(args.provider, args.model, store=store, base_url=args.base_url, run_id=run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", default="local")
    parser.add_argument("--model")
    parser.add_argument("--base-url")
    parser.add_argument(
        "-k", type=int, default=4, help="ideas brainstorm drafts; the top K compared"
    )
    parser.add_argument("--rounds", type=int, default=1, help="brainstorm's critique rounds")
    parser.add_argument("--topic", default="evolutionary and search methods for small CNNs")
    parser.add_argument("--template", type=Path, default=bundled_template_dir())
    parser.add_argument("--seed", type=int, default=0, help="evolve's random seed")
    parser.add_argument(
        "--per-niche", type=int, default=DEFAULT_PER_NICHE, help="elites each niche keeps"
    )
    parser.add_argument(
        "--seeds",
        choices=("template", "none"),
        default="template",
        help="start both arms from the template's seed ideas, or from none (cheaper)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-evolve-") as scratch:
        work = Path(scratch)
        folder = work / "template"
        shutil.copytree(args.template, folder)
        if args.seeds == "none":
            (folder / "seed_ideas.json").write_text("[]\n")
        template = load_template(folder)
        seeds = load_ideas(folder / "seed_ideas.json", missing_ok=True).ideas
        # one store per arm, so that evolve does not take brainstorm's ideas as its seeds
        with Store.open(work / "brainstorm-home") as store:
            baseline = run_brainstorm(args, store, template, seeds, work)
            model = make_model(args, store, None)
        with Store.open(work / "evolve-home") as store:
            evolved = run_evolve(args, store, template, seeds, baseline.calls, work)
        with Store.open(work / "metrics-home") as store:
            placer = NichePlacer(default_niches(), store, "embedding")
            judge = Judge(make_model(args, store, "bench-judge-again"), template.task_description)
            rows = {
                arm.name: metrics(arm, args.k, placer, judge, store) for arm in (baseline, evolved)
            }
            listed = {
                arm.name: [
                    f"  {score:5.2f}  {placer.nearest(idea).niche:28s} {idea.Title}"
                    for idea, score, _ in top(arm, args.k)
                ]
                for arm in (baseline, evolved)
            }
    print(
        f"drafter and judge: {model.provider} {model.model}; topic {args.topic!r}; "
        f"K={args.k}, brainstorm rounds={args.rounds}; template seeds: {len(seeds)}; "
        f"budget: the {baseline.calls} calls brainstorm + review took; "
        f"evolve keeps {args.per_niche} per niche"
    )
    names = list(rows)
    width = max(len(metric) for metric in rows[names[0]]) + 2
    print(f"{'':{width}}{names[0]:>40}{names[1]:>40}")
    for metric in rows[names[0]]:
        print(f"{metric:{width}}{rows[names[0]][metric]:>40}{rows[names[1]][metric]:>40}")
    for name, lines in listed.items():
        print(f"top {args.k} of {name} (judge score, niche, title):", *lines, sep="\n")
    print(
        "evolve's archive, in order (entry, operator, parents, status, niche, name, why):",
        *evolved.log,
        sep="\n",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
