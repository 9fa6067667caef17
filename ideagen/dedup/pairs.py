"""Pair features: how alike two ideas are in meaning and in distinctive wording.

Each pair is scored from two measured signals:

- meaning: cosine of MiniLM embeddings of the idea's opening (Title and the start of the
  Experiment, where the intervention is named);
- wording: TF-IDF cosine over Name, Title and Experiment, with IDF computed over the ideas at
  hand, so the template's common words weigh little and distinctive terms weigh much.

A logistic combiner turns them into a probability. Its coefficients and the threshold were
chosen by leave-one-template-out cross-validation on a hand-labelled dev set (see
bench/bench_dedup.py): signals that helped within a template but not on a template the fit
never saw (how alike an idea's neighbours are; change and measure compared separately) were
left out of the score. Those part-by-part similarities are still measured for every merge, as
evidence a reader can check: from the model's reading of each idea when a model is given
(parts.py), else from the rule-based parse.

Wording needs enough ideas at hand for IDF to tell a template's common words from distinctive
ones. Among fewer than MIN_IDEAS_FOR_WORDING (a new seed file, evolve's first children), a
pair is a duplicate only when meaning alone says so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from ideagen.dedup.linkage import LinearScore
from ideagen.dedup.neighbours import nearest
from ideagen.dedup.parts import ReadParts, read_parts, split_parts
from ideagen.dedup.text import Tfidf, idea_terms, opening_text, terms
from ideagen.embeddings import embed
from ideagen.providers.base import LanguageModel
from ideagen.schema import Idea
from ideagen.store import Store

CANDIDATES = 20  # nearest ideas per idea whose pairs are scored

FEATURES = ("meaning", "wording")
# Fitted by `python bench/bench_dedup.py --fit` on all of bench/dedup_devset.jsonl: logistic
# regression (scikit-learn, L2, standardized features), written back on the raw features.
COEFFICIENTS = np.array([10.392, 8.607])
INTERCEPT = -12.075
# Each dev pair scored among 0-14 other ideas of its template, the combiner's precision was
# .52-.65 (.83 among all of them); with meaning alone required to agree, .83-.88. Meaning alone
# is no substitute: it calls three pairs of the template's six seeds duplicates (themes shared,
# experiments not), which wording keeps apart (bench/bench_dedup.py, "small files"). Linkage
# never sums the rows of groups this small (MAX_CROSS_PAIRS), so its linear score is unchanged.
MIN_IDEAS_FOR_WORDING = 24
# Meaning alone, printed by `bench_dedup.py --fit`: the slope of a logistic regression on all
# dev pairs, and the intercept that puts DEFAULT_THRESHOLD at the best cut of the cosine.
MEANING_COEFFICIENT = 5.710
MEANING_INTERCEPT = -4.793


class PairEvidence(BaseModel):
    """Why two ideas were (or were not) judged the same experiment."""

    i: int
    j: int
    score: float = Field(description="probability that the pair is a duplicate")
    meaning: float = Field(description="embedding cosine of the two openings")
    wording: float = Field(description="TF-IDF cosine of the whole ideas")
    change: float = Field(description="TF-IDF cosine of what the ideas change")
    measure: float = Field(description="TF-IDF cosine of what the ideas measure")
    parts_from: Literal["model", "rules"] = Field(
        default="rules",
        description="whose change and measure were compared: the model's reading of both "
        "ideas, or the rule-based parse of both",
    )
    parts_note: str | None = Field(
        default=None, description="why the rule-based parse was compared although a model was"
    )
    shared_terms: list[str] = Field(description="the rarest terms both ideas use")
    meaning_must_agree: bool = Field(
        default=False,
        description="too few ideas at hand to weigh wording alone: meaning alone had to agree",
    )
    verdict: str | None = Field(default=None, description="the judge model's answer")
    judge_reason: str | None = Field(default=None, description="the judge's one-line reason")

    @property
    def why(self) -> str:
        text = (
            f"meaning {self.meaning:.2f}, wording {self.wording:.2f}; "
            f"change {self.change:.2f}, measure {self.measure:.2f}"
        )
        if self.meaning_must_agree:
            text += f"; among fewer than {MIN_IDEAS_FOR_WORDING} ideas, meaning alone must agree"
        if self.shared_terms:
            text += f"; shared: {', '.join(self.shared_terms)}"
        if self.parts_from == "model":
            text += "; parts read by the model"
        if self.parts_note:
            text += f"; {self.parts_note}"
        if self.verdict is not None:
            text += f"; judge: {self.verdict}"
            if self.judge_reason:
                text += f" ({self.judge_reason})"
        return text


def probability(features: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(features @ COEFFICIENTS + INTERCEPT)))


def meaning_probability(meaning: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(meaning * MEANING_COEFFICIENT + MEANING_INTERCEPT)))


class PairScorer:
    """Scores pairs of ideas within one context (the ideas being deduplicated together).

    The context matters: IDF comes from it, and candidate pairs are each idea's CANDIDATES
    nearest ideas by meaning, so no all-pairs product is ever formed. With `parts_model`, the
    change and measure of an idea whose parts are compared are the model's reading of it.
    """

    def __init__(
        self, ideas: Sequence[Idea], store: Store, parts_model: LanguageModel | None = None
    ):
        self.ideas = list(ideas)
        self.few_ideas = len(self.ideas) < MIN_IDEAS_FOR_WORDING
        self.store = store
        self.parts_model = parts_model
        self._read: dict[int, ReadParts] = {}  # idea index -> its parts, read when first compared
        openings = [opening_text(idea) for idea in self.ideas]
        self.vectors = embed(openings, store)
        self.term_lists = [idea_terms(idea) for idea in self.ideas]
        tfidf = Tfidf(self.term_lists)
        self.idf = tfidf.idf
        self.tfidf = tfidf.matrix
        self._tfidf = tfidf
        # Ideas with the same opening have the same vector: the neighbour search runs over one
        # idea per opening, or 21 copies of one opening would fill each other's candidates
        # and hide every other idea from them.
        first_with = {}
        self.representative = np.array(
            [first_with.setdefault(text, k) for k, text in enumerate(openings)]
        )
        self.distinct = np.unique(self.representative)
        neighbours, _ = nearest(self.vectors[self.distinct], CANDIDATES)
        self.neighbours = np.where(neighbours >= 0, self.distinct[neighbours], -1)

    def candidate_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each idea with its opening's first idea, and each opening's first idea with the
        first ideas of its nearest openings; every pair once (i < j)."""
        count = len(self.ideas)
        rows = np.concatenate(
            [np.arange(count), np.repeat(self.distinct, self.neighbours.shape[1])]
        )
        cols = np.concatenate([self.representative, self.neighbours.ravel()])
        valid = (cols >= 0) & (rows != cols)
        low, high = np.minimum(rows, cols)[valid], np.maximum(rows, cols)[valid]
        unique = np.unique(low.astype(np.int64) * count + high)
        return unique // count, unique % count

    def features(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """One row per pair, one column per name in FEATURES."""
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        meaning = np.einsum("ij,ij->i", self.vectors[i], self.vectors[j])
        return np.column_stack([meaning, row_dots(self.tfidf, i, j)])

    def read_parts(self, index: int) -> ReadParts:
        """The idea's change and measure, read once per scorer (and by the model once ever)."""
        if index not in self._read:
            self._read[index] = read_parts(self.ideas[index], self.store, self.parts_model)
        return self._read[index]

    def part_similarities(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """One row per pair: TF-IDF cosine of what the ideas change, and of what they measure.

        A pair is compared by the model's parts when the model read both ideas, else both
        sides by the rule-based parse (a model's sentence against a parse of the whole text
        would measure the difference of the two readings).
        """
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        needed = np.unique(np.concatenate([i, j]))
        position = {index: k for k, index in enumerate(needed.tolist())}
        left = np.array([position[index] for index in i.tolist()], dtype=np.int64)
        right = np.array([position[index] for index in j.tolist()], dtype=np.int64)
        read = [self.read_parts(index) for index in needed.tolist()]
        by_model = np.array(
            [read[a].source == read[b].source == "model" for a, b in zip(left, right, strict=True)],
            dtype=bool,
        )
        similarities = np.zeros((len(i), 2))
        rules = [
            r.parts if r.source == "rules" else split_parts(self.ideas[index])
            for r, index in zip(read, needed.tolist(), strict=True)
        ]
        choices = [(rules, ~by_model), ([r.parts for r in read], by_model)]
        for parts, chosen in choices:
            if chosen.any():
                change = self._tfidf.transform([terms(part.change) for part in parts])
                measure = self._tfidf.transform([terms(part.measure) for part in parts])
                a, b = left[chosen], right[chosen]
                similarities[chosen] = np.column_stack(
                    [row_dots(change, a, b), row_dots(measure, a, b)]
                )
        return similarities

    def score(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        features = self.features(i, j)
        if self.few_ideas:
            return np.minimum(probability(features), meaning_probability(features[:, 0]))
        return probability(features)

    def linear_score(self) -> LinearScore:
        """The score as linkage sees it: each feature is a dot product of per-idea rows."""
        return LinearScore([self.vectors, self.tfidf], COEFFICIENTS.tolist(), INTERCEPT)

    def evidence(self, pairs: list[tuple[int, int]], scores: list[float]) -> list[PairEvidence]:
        """What the pairs' scores rest on, computed for all pairs at once."""
        if not pairs:
            return []
        first, second = (np.array(side) for side in zip(*pairs, strict=True))
        rows = np.column_stack(
            [self.features(first, second), self.part_similarities(first, second)]
        )
        evidence = []
        for (i, j), score, row in zip(pairs, scores, rows.tolist(), strict=True):
            read = (self.read_parts(i), self.read_parts(j))
            notes = [side.note for side in read if side.note]
            evidence.append(
                PairEvidence(
                    i=i,
                    j=j,
                    score=score,
                    meaning=row[0],
                    wording=row[1],
                    change=row[2],
                    measure=row[3],
                    parts_from="model" if all(side.source == "model" for side in read) else "rules",
                    parts_note="; ".join(notes) or None,
                    shared_terms=self.shared_terms(i, j),
                    meaning_must_agree=self.few_ideas,
                )
            )
        return evidence

    def shared_terms(self, i: int, j: int, count: int = 4) -> list[str]:
        """The rarest terms (highest IDF here) that both ideas use."""
        shared = set(self.term_lists[i]) & set(self.term_lists[j])
        return sorted(shared, key=lambda term: (-self.idf[term], term))[:count]

    def specificity(self, index: int) -> tuple[int, int]:
        """Distinct terms in the idea, then the Experiment's length: more is more specific."""
        return len(set(self.term_lists[index])), len(self.ideas[index].Experiment)


def row_dots(matrix: sparse.csr_matrix, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Dot products of rows i[k] and j[k]; 0 where j[k] is -1 (no such row)."""
    dots = np.zeros(len(i))
    valid = j >= 0
    i, j = i[valid], j[valid]
    if len(i) > SMALL_BATCH:
        dots[valid] = np.asarray(matrix[i].multiply(matrix[j]).sum(axis=1)).ravel()
    elif len(i):
        # scipy's row indexing costs about a millisecond a call, too much for the many small
        # batches linkage asks for: match the two sides' (pair, column) keys directly
        left_pair, left_column, left_value = _gather(matrix, i)
        right_pair, right_column, right_value = _gather(matrix, j)
        width = matrix.shape[1]
        _, left, right = np.intersect1d(
            left_pair * width + left_column,
            right_pair * width + right_column,
            assume_unique=True,
            return_indices=True,
        )
        products = left_value[left] * right_value[right]
        dots[valid] = np.bincount(left_pair[left], weights=products, minlength=len(i))
    return dots


SMALL_BATCH = 4096  # pairs up to which row_dots matches entries itself


def _gather(matrix: sparse.csr_matrix, rows: np.ndarray):
    """The stored entries of `rows`: for each, its position in `rows`, column and value."""
    starts = matrix.indptr[rows]
    lengths = matrix.indptr[rows + 1] - starts
    owner = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    firsts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + np.arange(len(owner)) - firsts
    return owner, matrix.indices[positions].astype(np.int64), matrix.data[positions]
