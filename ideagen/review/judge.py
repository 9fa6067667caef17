"""The independent judge: fresh-context scores per idea, and an optional pairwise tournament.

Each idea is scored in its own call that sees only the rubric, the template description
and that idea's Name, Title and Experiment: never the author's ratings, never the other
ideas, so one idea's score cannot leak into another's.

The tournament (`--rank`) pairs ideas Swiss-style: each round, ideas with similar records
meet, and no pair meets twice. Every pair is asked in both orders so that a judge that
prefers whichever idea it sees first gains nothing from it; the answers are fitted with
the Bradley-Terry model, whose strengths order the ideas.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from ideagen.providers.base import LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.schema import RATING_FIELDS, Idea, Rating
from ideagen.untrusted import fence

NO_TEMPLATE = (
    "The template is not described here: assume a small experiment script on one GPU or a "
    "CPU, a few minutes per run, its own dataset only, and no internet."
)


class JudgeScore(BaseModel):
    """The judge's answer for one idea: three 1-10 ratings, each with its reason."""

    # Each reason comes before its score, so the model argues first and scores after.
    interestingness_rationale: str = Field(min_length=1)
    Interestingness: Rating
    feasibility_rationale: str = Field(min_length=1)
    Feasibility: Rating
    novelty_rationale: str = Field(min_length=1)
    Novelty: Rating

    def ratings(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in RATING_FIELDS}

    def rationales(self) -> dict[str, str]:
        return {name: getattr(self, f"{name.lower()}_rationale") for name in RATING_FIELDS}

    @property
    def mean(self) -> float:
        return sum(self.ratings().values()) / len(RATING_FIELDS)


# A bound that reaches the local model's decoder grammar: its rationales now and then ran on
# past max_tokens three attempts running, and the idea went unscored. Scores kept in the store
# are read back as JudgeScore, without it.
RATIONALE_MAX_CHARS = 400


class JudgeReply(JudgeScore):
    """JudgeScore as the judge is asked for it, each rationale at most RATIONALE_MAX_CHARS."""

    interestingness_rationale: str = Field(min_length=1, max_length=RATIONALE_MAX_CHARS)
    feasibility_rationale: str = Field(min_length=1, max_length=RATIONALE_MAX_CHARS)
    novelty_rationale: str = Field(min_length=1, max_length=RATIONALE_MAX_CHARS)


class PairwiseChoice(BaseModel):
    reason: str = Field(min_length=1)
    better: Literal["A", "B"]


def template_section(task_description: str | None) -> str:
    if not task_description:
        return NO_TEMPLATE
    return f"The experiment template the idea must be carried out in:\n{task_description.strip()}"


def idea_for_judge(idea: Idea) -> str:
    """Only what the judge may see (the author's ratings and any extra keys stay hidden),
    fenced as data."""
    return fence(
        json.dumps(
            {"Name": idea.Name, "Title": idea.Title, "Experiment": idea.Experiment},
            indent=2,
            ensure_ascii=False,
        )
    )


@dataclass
class Judge:
    model: LanguageModel
    task_description: str | None = None

    def score(self, idea: Idea) -> JudgeScore:
        """Raises ModelError when the model cannot give a valid answer."""
        return self.model.structured(
            [Message(role="user", content=f"The idea to score:\n{idea_for_judge(idea)}")],
            JudgeReply,
            system=render_prompt(
                "review_rubric", template_section=template_section(self.task_description)
            ),
            temperature=0.0,
            max_tokens=600,
            purpose="review.judge",
        )

    def compare(self, first: Idea, second: Idea) -> PairwiseChoice:
        prompt = f"Idea A:\n{idea_for_judge(first)}\n\nIdea B:\n{idea_for_judge(second)}"
        return self.model.structured(
            [Message(role="user", content=prompt)],
            PairwiseChoice,
            system=render_prompt(
                "review_pairwise", template_section=template_section(self.task_description)
            ),
            temperature=0.0,
            max_tokens=200,
            purpose="review.pairwise",
        )


# the tournament


@dataclass(frozen=True)
class Comparison:
    """One question asked: `shown_first` was idea A. `winner` is None when the call failed."""

    shown_first: int
    shown_second: int
    winner: int | None
    reason: str = ""


@dataclass
class Tournament:
    strengths: list[float]
    rounds: list[list[tuple[int, int]]] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)

    def score(self, index: int) -> float:
        """Log-strength: 0 is average, +0.7 is about twice as likely to be preferred."""
        return round(math.log(self.strengths[index]), 3)


def default_rounds(count: int) -> int:
    """Enough rounds for a Swiss system to separate `count` players, never more than n-1."""
    if count < 2:
        return 0
    return min(count - 1, math.ceil(math.log2(count)) + 1)


def swiss_pairings(
    points: list[float], seeds: list[float], played: set[frozenset[int]]
) -> list[tuple[int, int]]:
    """Pair players with similar points (seed breaks ties), never two who already met.

    Greedy from the top: each unpaired player meets the nearest one below it not yet met.
    A player left without a partner sits the round out.
    """
    order = sorted(range(len(points)), key=lambda i: (-points[i], -seeds[i], i))
    paired: set[int] = set()
    pairs = []
    for position, player in enumerate(order):
        if player in paired:
            continue
        for opponent in order[position + 1 :]:
            if opponent not in paired and frozenset((player, opponent)) not in played:
                pairs.append((player, opponent))
                paired.update((player, opponent))
                break
    return pairs


def bradley_terry(count: int, wins: list[tuple[int, int]], iterations: int = 200) -> list[float]:
    """Strengths from (winner, loser) pairs by the minorization-maximization updates.

    Each player also gets one virtual win and one virtual loss against an average player,
    so that a player who won (or lost) every game still has a finite strength.
    """
    win_counts = np.ones(count)
    games = np.zeros((count, count))
    for winner, loser in wins:
        win_counts[winner] += 1
        games[winner, loser] += 1
        games[loser, winner] += 1
    strengths = np.ones(count)
    for _ in range(iterations):
        pair_sums = strengths[:, None] + strengths[None, :]
        denominators = (games / pair_sums).sum(axis=1) + 2.0 / (strengths + 1.0)
        updated = win_counts / denominators
        updated /= math.exp(np.log(updated).mean())
        if np.max(np.abs(updated - strengths)) < 1e-9:
            strengths = updated
            break
        strengths = updated
    return [float(value) for value in strengths]


def run_tournament(
    judge: Judge,
    ideas: list[Idea],
    seeds: list[float],
    rounds: int | None = None,
    on_comparison: Callable[[Comparison], None] | None = None,
) -> Tournament:
    """Swiss rounds, each pair asked in both orders, then Bradley-Terry strengths."""
    count = len(ideas)
    rounds = default_rounds(count) if rounds is None else rounds
    points = [0.0] * count
    played: set[frozenset[int]] = set()
    tournament = Tournament(strengths=[1.0] * count)
    for _ in range(rounds):
        pairs = swiss_pairings(points, seeds, played)
        if not pairs:
            break
        tournament.rounds.append(pairs)
        for first, second in pairs:
            played.add(frozenset((first, second)))
            for shown_first, shown_second in ((first, second), (second, first)):
                comparison = _ask(judge, ideas, shown_first, shown_second)
                tournament.comparisons.append(comparison)
                if comparison.winner is not None:
                    points[comparison.winner] += 0.5
                if on_comparison:
                    on_comparison(comparison)
    wins = [
        (c.winner, c.shown_second if c.winner == c.shown_first else c.shown_first)
        for c in tournament.comparisons
        if c.winner is not None
    ]
    tournament.strengths = bradley_terry(count, wins)
    return tournament


def _ask(judge: Judge, ideas: list[Idea], shown_first: int, shown_second: int) -> Comparison:
    try:
        choice = judge.compare(ideas[shown_first], ideas[shown_second])
    except ModelError as exc:
        return Comparison(shown_first, shown_second, None, f"failed: {exc}")
    winner = shown_first if choice.better == "A" else shown_second
    return Comparison(shown_first, shown_second, winner, choice.reason)
