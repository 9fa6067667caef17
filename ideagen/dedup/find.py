"""Finding ideas that are the same experiment: within one file, or against existing ideas.

Two ideas are duplicates when a researcher would run them as the same experiment: the same
intervention and the same measurement, differing in wording, details or a small extension.
Candidate pairs come from each idea's nearest neighbours (so 10,000 ideas are never compared
all-pairs), are scored by pairs.py, optionally settled by a judge model when the score is
uncertain, and grouped by average linkage (linkage.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, Field

from ideagen.dedup.judge import UNCERTAIN_BAND, JudgeAnswer, ask_judge
from ideagen.dedup.linkage import PairScores, average_linkage
from ideagen.dedup.pairs import PairEvidence, PairScorer
from ideagen.providers.base import LanguageModel
from ideagen.schema import Idea
from ideagen.store import Store

# Probability above which a pair is a duplicate: chosen with the combiner by
# leave-one-template-out cross-validation on the dev set (bench/bench_dedup.py).
DEFAULT_THRESHOLD = 0.45
# A merged group may hold a pair this far below the threshold if the group's average holds
# (0.3 formed the best groups on the dev set, in-sample; 0.2 and 0.45 did no better).
LINK_FLOOR_SLACK = 0.3


class DuplicateCluster(BaseModel):
    """Ideas that are one experiment, and the one to keep."""

    members: list[int]
    keep: int
    keep_reason: str
    reasons: dict[int, str] = Field(description="for each other member, why it joins `keep`")
    evidence: dict[int, PairEvidence] = Field(
        description="for each other member, the measured evidence against `keep`"
    )


class DedupResult(BaseModel):
    clusters: list[DuplicateCluster]
    threshold: float
    pairs_scored: int = Field(description="candidate pairs and the pairs linkage asked about")
    pairs_judged: int = 0

    def index_groups(self) -> list[list[int]]:
        return [cluster.members for cluster in self.clusters]


class DuplicateMatch(BaseModel):
    """An idea (index `i` in the new list) that duplicates an existing one (index `j`)."""

    i: int
    j: int
    score: float
    why: str
    evidence: PairEvidence


def find_duplicates(
    ideas: Sequence[Idea],
    store: Store,
    threshold: float | None = None,
    judge: LanguageModel | None = None,
    scores: dict[int, float] | None = None,
) -> DedupResult:
    """Groups of ideas that are the same experiment, each with the member to keep.

    `scores` (index -> review score), when given, decides which member is kept; otherwise the
    most specific Experiment is kept. `judge` is asked about the pairs near the threshold, and
    reads what each merged idea changes and measures for the evidence.
    """
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if len(ideas) < 2:
        return DedupResult(clusters=[], threshold=threshold, pairs_scored=0)
    scorer = PairScorer(ideas, store, parts_model=judge)
    first, second = scorer.candidate_pairs()
    probabilities = scorer.score(first, second)
    answers = {}
    if judge is not None:
        answers = _judge_uncertain(scorer, first, second, probabilities, threshold, judge, store)
    pair_scores = PairScores(
        len(ideas),
        first,
        second,
        probabilities,
        scorer.score,
        {pair: float(answer.duplicate) for pair, answer in answers.items()},
    )
    groups = average_linkage(
        pair_scores, scorer.linear_score(), threshold, threshold - LINK_FLOOR_SLACK
    )
    clusters = _describe(scorer, pair_scores, groups, scores, answers)
    return DedupResult(
        clusters=clusters,
        threshold=threshold,
        pairs_scored=len(pair_scores.known),
        pairs_judged=len(answers),
    )


def duplicates_against(
    ideas: Sequence[Idea],
    existing: Sequence[Idea],
    store: Store,
    threshold: float | None = None,
    judge: LanguageModel | None = None,
) -> list[DuplicateMatch]:
    """Ideas of `ideas` that duplicate ideas of `existing`: (i, j, score, why), best first."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if not ideas or not existing:
        return []
    scorer = PairScorer([*ideas, *existing], store, parts_model=judge)
    first, second = scorer.candidate_pairs()
    across = (first < len(ideas)) & (second >= len(ideas))
    first, second = first[across], second[across]
    probabilities = scorer.score(first, second)
    answers = {}
    if judge is not None:
        answers = _judge_uncertain(scorer, first, second, probabilities, threshold, judge, store)
    found = [
        ((a, b), p)
        for a, b, p in zip(first.tolist(), second.tolist(), probabilities.tolist(), strict=True)
        if (answers[(a, b)].duplicate if (a, b) in answers else p >= threshold)
    ]
    matches = []
    for evidence in scorer.evidence([pair for pair, _ in found], [p for _, p in found]):
        _add_answer(evidence, answers.get((evidence.i, evidence.j)))
        matches.append(
            DuplicateMatch(
                i=evidence.i,
                j=evidence.j - len(ideas),
                score=evidence.score,
                why=evidence.why,
                evidence=evidence,
            )
        )
    return sorted(matches, key=lambda match: -match.score)


def _judge_uncertain(
    scorer: PairScorer,
    first: np.ndarray,
    second: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    judge: LanguageModel,
    store: Store,
) -> dict[tuple[int, int], JudgeAnswer]:
    uncertain = np.abs(probabilities - threshold) < UNCERTAIN_BAND
    pairs = list(zip(first[uncertain].tolist(), second[uncertain].tolist(), strict=True))
    answers = ask_judge([(scorer.ideas[a], scorer.ideas[b]) for a, b in pairs], judge, store)
    return dict(zip(pairs, answers, strict=True))


def _add_answer(evidence: PairEvidence, answer: JudgeAnswer | None) -> None:
    if answer is None:
        return
    evidence.verdict, evidence.judge_reason = answer.verdict, answer.reason
    if answer.verdict == "duplicate" and not answer.duplicate:
        differ = "change" if not answer.same_change else "measurement"
        evidence.judge_reason += f" (not counted: the judge also called the {differ}s different)"


def _describe(
    scorer: PairScorer,
    pair_scores: PairScores,
    groups: list[list[int]],
    scores: dict[int, float] | None,
    answers: dict[tuple[int, int], JudgeAnswer],
) -> list[DuplicateCluster]:
    keeps, keep_reasons = [], []
    for members in groups:
        if scores and any(member in scores for member in members):
            keep = max(members, key=lambda m: (scores.get(m, -math.inf), -m))
            keep_reasons.append(f"best review score ({scores[keep]:g})")
        else:
            keep = max(members, key=lambda m: (scorer.specificity(m), -m))
            distinct, length = scorer.specificity(keep)
            keep_reasons.append(
                f"most specific ({distinct} distinct terms, Experiment of {length} characters)"
            )
        keeps.append(keep)
    pairs = [
        (min(member, keep), max(member, keep))
        for members, keep in zip(groups, keeps, strict=True)
        for member in members
        if member != keep
    ]
    probabilities = pair_scores.get(pairs).tolist()
    evidence = {(e.i, e.j): e for e in scorer.evidence(pairs, probabilities)}
    clusters = []
    for members, keep, keep_reason in zip(groups, keeps, keep_reasons, strict=True):
        reasons, member_evidence = {}, {}
        for member in members:
            if member == keep:
                continue
            pair = (min(member, keep), max(member, keep))
            _add_answer(evidence[pair], answers.get(pair))
            member_evidence[member] = evidence[pair]
            reasons[member] = f"same experiment as {scorer.ideas[keep].Name}: {evidence[pair].why}"
        clusters.append(
            DuplicateCluster(
                members=members,
                keep=keep,
                keep_reason=keep_reason,
                reasons=reasons,
                evidence=member_evidence,
            )
        )
    return clusters
