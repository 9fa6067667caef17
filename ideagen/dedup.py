"""Finding ideas that are the same experiment.

Two ideas are duplicates when a researcher would run them as the same experiment: the same
intervention and the same measurement, differing in wording, details or a small extension.
Ideas from one template share most of their words and much of their meaning (the same code,
the same metrics), so one cosine threshold cannot tell "the same experiment" from "another
change to the same part". Each pair is scored from four measured signals:

- meaning: cosine of MiniLM embeddings of the idea's opening (Title and the start of the
  Experiment, where the intervention is named);
- wording: TF-IDF cosine over Name, Title and Experiment, with IDF computed over the ideas at
  hand, so the template's common words weigh little and distinctive terms weigh much;
- and, for each, how similar both ideas typically are to their nearest other ideas. A pair
  that is no closer than its neighbourhood is a family resemblance, not a duplicate.

A logistic combiner (coefficients fitted on a hand-labelled dev set, see bench/bench_dedup.py)
turns the four into a probability. Candidate pairs come from each idea's nearest neighbours,
so 10,000 ideas are never compared all-pairs in Python. Groups are merged by average linkage
with a floor: two groups join only when their members are duplicates on average and no cross
pair is far below the threshold, so a chain of near pairs does not become one group.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from scipy import sparse

from ideagen.embeddings import content_hash, embed
from ideagen.providers.base import LanguageModel, Message
from ideagen.resources import render_prompt
from ideagen.schema import Idea
from ideagen.store import Store

# The opening words of "Title. Experiment" that are embedded. Ideas name their intervention
# first; on the dev set the opening scores as well as the whole text at about a third of
# the embedding cost.
OPENING_WORDS = 48
NEIGHBOURS = 10  # nearest other ideas that describe an idea's neighbourhood
CANDIDATES = 20  # nearest ideas per idea whose pairs are scored
# Typical neighbourhood similarity on the dev set; stands in for missing neighbours when a
# file has fewer than NEIGHBOURS other ideas.
PRIOR_NEIGHBOUR_MEANING = 0.65
PRIOR_NEIGHBOUR_WORDING = 0.22

# Fitted by `python bench/bench_dedup.py --fit` on bench/dedup_devset.jsonl: logistic
# regression on standardized features, L2 penalty 1.0, then unstandardized. Feature order:
# meaning, neighbourhood meaning, wording, neighbourhood wording.
COEFFICIENTS = np.array([11.498, -1.163, 8.103, -9.410])
INTERCEPT = -9.435
# Probability above which a pair is a duplicate: the median of the thresholds that maximised
# F1 on the training folds of the dev-set cross-validation.
DEFAULT_THRESHOLD = 0.36
# A merged group may hold a pair this far below the threshold if the group's average holds.
LINK_FLOOR_SLACK = 0.2
# With --judge, pairs whose probability lies within this distance of the threshold are asked.
UNCERTAIN_BAND = 0.25

Verdict = Literal["duplicate", "related", "distinct"]

_STOPWORDS = frozenset(
    "a an the of and or to in on for with by from as at is are be this that these those we will "
    "it its into using use based via each both their our new than then also such eg ie while "
    "when which can how what more most other same".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")
_NORMALIZED: dict[str, str] = {}  # raw word -> term, filled as words are met


class PairEvidence(BaseModel):
    """Why two ideas were (or were not) judged the same experiment."""

    i: int
    j: int
    score: float = Field(description="probability that the pair is a duplicate")
    meaning: float
    meaning_nearby: float
    wording: float
    shared_terms: list[str]
    verdict: Verdict | None = Field(default=None, description="the judge model's answer")

    @property
    def why(self) -> str:
        text = (
            f"meaning {self.meaning:.2f} (nearby ideas {self.meaning_nearby:.2f}), "
            f"wording {self.wording:.2f}"
        )
        if self.shared_terms:
            text += f"; shared: {', '.join(self.shared_terms)}"
        if self.verdict is not None:
            text += f"; judge: {self.verdict}"
        return text


class DuplicateCluster(BaseModel):
    """Ideas that are one experiment, and the one to keep."""

    members: list[int]
    keep: int
    keep_reason: str
    reasons: dict[int, str] = Field(description="for each other member, why it joins `keep`")


class DedupResult(BaseModel):
    clusters: list[DuplicateCluster]
    threshold: float
    pairs_scored: int
    pairs_judged: int = 0

    def index_groups(self) -> list[list[int]]:
        return [cluster.members for cluster in self.clusters]


class DuplicateMatch(BaseModel):
    """An idea (index `i` in the new list) that duplicates an existing one (index `j`)."""

    i: int
    j: int
    score: float
    why: str


class JudgeAnswer(BaseModel):
    verdict: Verdict
    reason: str


def opening_text(idea: Idea) -> str:
    words = f"{idea.Title.strip()}. {idea.Experiment.strip()}".split()
    return " ".join(words[:OPENING_WORDS])


def terms(text: str) -> list[str]:
    """Lower-case content words; CamelCase and snake_case split; a plural -s dropped."""
    words = []
    for raw in _WORD.findall(_CAMEL.sub(r"\1 \2", text).lower()):
        word = _NORMALIZED.get(raw)
        if word is None:
            word = _NORMALIZED[raw] = _normalize(raw)
        if word:
            words.append(word)
    return words


def _normalize(word: str) -> str:
    """The word as a term, or "" for a stopword."""
    if len(word) < 2 or word in _STOPWORDS:
        return ""
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def idea_terms(idea: Idea) -> list[str]:
    return terms(f"{idea.Name.replace('_', ' ')} {idea.Title} {idea.Experiment}")


class PairScorer:
    """Scores pairs of ideas within one context (the ideas being deduplicated together).

    The context matters: IDF and neighbourhood similarity come from it. Each idea's
    neighbourhood is its CANDIDATES nearest ideas by meaning; its typical wording similarity
    is taken over the same ideas, so no all-pairs TF-IDF product is ever formed.
    """

    def __init__(self, ideas: Sequence[Idea], store: Store):
        self.ideas = list(ideas)
        self.vectors = embed([opening_text(idea) for idea in self.ideas], store)
        self.term_lists = [idea_terms(idea) for idea in self.ideas]
        self.tfidf, self.idf = _tfidf(self.term_lists)
        self.neighbours, self.neighbour_meaning = _nearest(self.vectors, CANDIDATES)
        self.neighbour_wording = _row_dots(
            self.tfidf,
            np.repeat(np.arange(len(self.ideas)), self.neighbours.shape[1]),
            self.neighbours.ravel(),
        ).reshape(self.neighbours.shape)
        self.neighbour_wording[self.neighbours < 0] = -np.inf

    def candidate_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Each idea with its nearest ideas, every pair once (i < j)."""
        rows = np.repeat(np.arange(len(self.ideas)), self.neighbours.shape[1])
        cols = self.neighbours.ravel()
        valid = cols >= 0
        low, high = np.minimum(rows, cols)[valid], np.maximum(rows, cols)[valid]
        unique = np.unique(low.astype(np.int64) * len(self.ideas) + high)
        return unique // len(self.ideas), unique % len(self.ideas)

    def features(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """One row per pair: meaning, neighbourhood meaning, wording, neighbourhood wording."""
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        meaning = np.einsum("ij,ij->i", self.vectors[i], self.vectors[j])
        wording = self._wording(i, j)
        meaning_nearby = 0.5 * (
            self._nearby(self.neighbour_meaning, i, j, PRIOR_NEIGHBOUR_MEANING)
            + self._nearby(self.neighbour_meaning, j, i, PRIOR_NEIGHBOUR_MEANING)
        )
        wording_nearby = 0.5 * (
            self._nearby(self.neighbour_wording, i, j, PRIOR_NEIGHBOUR_WORDING)
            + self._nearby(self.neighbour_wording, j, i, PRIOR_NEIGHBOUR_WORDING)
        )
        return np.column_stack([meaning, meaning_nearby, wording, wording_nearby])

    def score(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return probability(self.features(i, j))

    def evidence(self, pairs: list[tuple[int, int]], scores: list[float]) -> list[PairEvidence]:
        """What the pairs' scores rest on, computed for all pairs at once."""
        if not pairs:
            return []
        first, second = (np.array(side) for side in zip(*pairs, strict=True))
        rows = self.features(first, second)
        return [
            PairEvidence(
                i=i,
                j=j,
                score=score,
                meaning=float(row[0]),
                meaning_nearby=float(row[1]),
                wording=float(row[2]),
                shared_terms=self.shared_terms(i, j),
            )
            for (i, j), score, row in zip(pairs, scores, rows, strict=True)
        ]

    def shared_terms(self, i: int, j: int, count: int = 4) -> list[str]:
        """The rarest terms (highest IDF here) that both ideas use."""
        shared = set(self.term_lists[i]) & set(self.term_lists[j])
        return sorted(shared, key=lambda term: (-self.idf[term], term))[:count]

    def specificity(self, index: int) -> tuple[int, int]:
        """Distinct terms in the idea, then the Experiment's length: more is more specific."""
        return len(set(self.term_lists[index])), len(self.ideas[index].Experiment)

    def _wording(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """TF-IDF cosines, read from the neighbour table where the pair is in it."""
        wording = np.full(len(i), np.nan)
        for owner, partner in ((i, j), (j, i)):
            match = self.neighbours[owner] == partner[:, None]
            found = match.any(axis=1) & np.isnan(wording)
            wording[found] = self.neighbour_wording[owner[found]][match[found]]
        missing = np.isnan(wording)
        wording[missing] = _row_dots(self.tfidf, i[missing], j[missing])
        return wording

    def _nearby(self, table: np.ndarray, owner: np.ndarray, partner: np.ndarray, prior: float):
        """Mean similarity of `owner` to its NEIGHBOURS nearest ideas other than `partner`."""
        sims = np.where(self.neighbours[owner] == partner[:, None], -np.inf, table[owner])
        top = -np.sort(-sims, axis=1)[:, :NEIGHBOURS]
        return np.where(np.isfinite(top), top, prior).mean(axis=1)


def probability(features: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(features @ COEFFICIENTS + INTERCEPT)))


def find_duplicates(
    ideas: Sequence[Idea],
    store: Store,
    threshold: float | None = None,
    judge: LanguageModel | None = None,
    scores: dict[int, float] | None = None,
) -> DedupResult:
    """Groups of ideas that are the same experiment, each with the member to keep.

    `scores` (index -> review score), when given, decides which member is kept; otherwise the
    most specific Experiment is kept. `judge` is asked about the pairs near the threshold.
    """
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    if len(ideas) < 2:
        return DedupResult(clusters=[], threshold=threshold, pairs_scored=0)
    scorer = PairScorer(ideas, store)
    first, second = scorer.candidate_pairs()
    probabilities = scorer.score(first, second)
    verdicts: dict[tuple[int, int], Verdict] = {}
    if judge is not None:
        verdicts = _ask_judge(scorer, first, second, probabilities, threshold, judge, store)
    pair_score = _PairScores(scorer, first, second, probabilities, verdicts)
    groups = _link(pair_score, threshold)
    clusters = _describe(scorer, pair_score, groups, scores)
    return DedupResult(
        clusters=clusters,
        threshold=threshold,
        pairs_scored=len(first),
        pairs_judged=len(verdicts),
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
    scorer = PairScorer([*ideas, *existing], store)
    first, second = scorer.candidate_pairs()
    across = (first < len(ideas)) & (second >= len(ideas))
    first, second = first[across], second[across]
    probabilities = scorer.score(first, second)
    verdicts: dict[tuple[int, int], Verdict] = {}
    if judge is not None:
        verdicts = _ask_judge(scorer, first, second, probabilities, threshold, judge, store)
    found = [
        ((a, b), p)
        for a, b, p in zip(first.tolist(), second.tolist(), probabilities.tolist(), strict=True)
        if (verdicts[(a, b)] == "duplicate" if (a, b) in verdicts else p >= threshold)
    ]
    matches = []
    for evidence in scorer.evidence([pair for pair, _ in found], [p for _, p in found]):
        evidence.verdict = verdicts.get((evidence.i, evidence.j))
        matches.append(
            DuplicateMatch(
                i=evidence.i, j=evidence.j - len(ideas), score=evidence.score, why=evidence.why
            )
        )
    return sorted(matches, key=lambda match: -match.score)


class _PairScores:
    """Pair probabilities: the scored candidates, judge verdicts, and any other pair on demand."""

    def __init__(
        self,
        scorer: PairScorer,
        first: np.ndarray,
        second: np.ndarray,
        probabilities: np.ndarray,
        verdicts: dict[tuple[int, int], Verdict],
    ):
        self.scorer = scorer
        self.known = {
            (a, b): p
            for a, b, p in zip(first.tolist(), second.tolist(), probabilities.tolist(), strict=True)
        }
        self.verdicts = verdicts
        for pair, verdict in verdicts.items():
            self.known[pair] = 1.0 if verdict == "duplicate" else 0.0

    def edges(self, threshold: float) -> list[tuple[float, int, int]]:
        return sorted(
            ((p, a, b) for (a, b), p in self.known.items() if p >= threshold), reverse=True
        )

    def block(self, left: list[int], right: list[int]) -> np.ndarray:
        pairs = [(min(a, b), max(a, b)) for a in left for b in right]
        self.score_unknown(pairs)
        return np.array([self.known[pair] for pair in pairs])

    def score_unknown(self, pairs: list[tuple[int, int]]) -> None:
        unknown = list({pair for pair in pairs if pair not in self.known})
        if unknown:
            rows, cols = np.array(unknown).T
            for pair, p in zip(unknown, self.scorer.score(rows, cols).tolist(), strict=True):
                self.known[pair] = p


def _link(pair_score: _PairScores, threshold: float) -> list[list[int]]:
    """Average linkage over the duplicate edges, with a floor on every cross pair."""
    edges = pair_score.edges(threshold)
    pair_score.score_unknown(_pairs_within_components(edges))
    group_of: dict[int, list[int]] = {}
    for _, a, b in edges:
        left, right = group_of.get(a, [a]), group_of.get(b, [b])
        if left is right:
            continue
        cross = pair_score.block(left, right)
        if cross.mean() < threshold or cross.min() < threshold - LINK_FLOOR_SLACK:
            continue
        merged = sorted(left + right)
        for member in merged:
            group_of[member] = merged
    unique = {id(group): group for group in group_of.values()}
    return sorted(unique.values(), key=lambda group: group[0])


def _pairs_within_components(
    edges: list[tuple[float, int, int]], largest: int = 64
) -> list[tuple[int, int]]:
    """Every pair inside each connected set of edges (up to `largest` ideas): the pairs that
    linkage may ask about, so they are scored in one batch rather than merge by merge."""
    parent: dict[int, int] = {}

    def root(node: int) -> int:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for _, a, b in edges:
        parent[root(a)] = root(b)
    components: dict[int, list[int]] = {}
    for node in parent:
        components.setdefault(root(node), []).append(node)
    return [
        (min(a, b), max(a, b))
        for members in components.values()
        if len(members) <= largest
        for k, a in enumerate(members)
        for b in members[k + 1 :]
    ]


def _describe(
    scorer: PairScorer,
    pair_score: _PairScores,
    groups: list[list[int]],
    scores: dict[int, float] | None,
) -> list[DuplicateCluster]:
    keeps, reasons_for = [], []
    for members in groups:
        if scores and any(member in scores for member in members):
            keep = max(members, key=lambda m: (scores.get(m, -math.inf), -m))
            reasons_for.append(f"best review score ({scores[keep]:g})")
        else:
            keep = max(members, key=lambda m: (scorer.specificity(m), -m))
            distinct, length = scorer.specificity(keep)
            reasons_for.append(
                f"most specific ({distinct} distinct terms, Experiment of {length} characters)"
            )
        keeps.append(keep)
    pairs = [
        (min(member, keep), max(member, keep))
        for members, keep in zip(groups, keeps, strict=True)
        for member in members
        if member != keep
    ]
    probabilities = [pair_score.block([a], [b])[0] for a, b in pairs]
    evidence = {(e.i, e.j): e for e in scorer.evidence(pairs, probabilities)}
    clusters = []
    for members, keep, keep_reason in zip(groups, keeps, reasons_for, strict=True):
        reasons = {}
        for member in members:
            if member == keep:
                continue
            pair = (min(member, keep), max(member, keep))
            evidence[pair].verdict = pair_score.verdicts.get(pair)
            name = scorer.ideas[keep].Name
            reasons[member] = f"same experiment as {name}: {evidence[pair].why}"
        clusters.append(
            DuplicateCluster(members=members, keep=keep, keep_reason=keep_reason, reasons=reasons)
        )
    return clusters


def _ask_judge(
    scorer: PairScorer,
    first: np.ndarray,
    second: np.ndarray,
    probabilities: np.ndarray,
    threshold: float,
    judge: LanguageModel,
    store: Store,
) -> dict[tuple[int, int], Verdict]:
    """The judge's verdict on each candidate pair in the uncertain band, cached in the store.

    A failed call raises ModelError; verdicts already given stay in the store for the rerun.
    """
    definition = render_prompt("dedup_judge")
    verdicts: dict[tuple[int, int], Verdict] = {}
    uncertain = np.abs(probabilities - threshold) < UNCERTAIN_BAND
    for a, b in zip(first[uncertain].tolist(), second[uncertain].tolist(), strict=True):
        left, right = scorer.ideas[a], scorer.ideas[b]
        key = judgment_key(left, right)
        answer = store.get_judgment("dedup", key, judge.model)
        if answer is None:
            reply = judge.structured(
                [Message(role="user", content=_judge_question(left, right))],
                JudgeAnswer,
                system=definition,
                temperature=0.0,
                max_tokens=300,
                purpose="dedup judge",
            )
            answer = reply.model_dump()
            store.put_judgment("dedup", key, judge.model, answer)
        verdicts[(a, b)] = JudgeAnswer.model_validate(answer).verdict
    return verdicts


def judgment_key(left: Idea, right: Idea) -> str:
    """The same for (a, b) and (b, a): the two ideas' content hashes, sorted."""
    hashes = sorted(content_hash(f"{idea.Title}\n{idea.Experiment}") for idea in (left, right))
    return hashlib.sha256("|".join(hashes).encode()).hexdigest()


def _judge_question(left: Idea, right: Idea) -> str:
    def show(label: str, idea: Idea) -> str:
        return f"Idea {label}: {idea.Name}\nTitle: {idea.Title}\nExperiment: {idea.Experiment}"

    return f"{show('A', left)}\n\n{show('B', right)}\n\nAre A and B duplicates?"


def _tfidf(term_lists: list[list[str]]) -> tuple[sparse.csr_matrix, dict[str, float]]:
    """Row-normalized TF-IDF (sublinear term frequency, smoothed IDF over these documents)."""
    vocabulary: dict[str, int] = {}
    indptr, indices, counts = [0], [], []
    for words in term_lists:
        for word, count in Counter(words).items():
            indices.append(vocabulary.setdefault(word, len(vocabulary)))
            counts.append(count)
        indptr.append(len(indices))
    matrix = sparse.csr_matrix(
        (1.0 + np.log(np.asarray(counts, dtype=np.float64)), indices, indptr),
        shape=(len(term_lists), len(vocabulary)),
    )
    document_frequency = np.bincount(matrix.indices, minlength=len(vocabulary))
    idf = np.log((len(term_lists) + 1) / (document_frequency + 1)) + 1.0
    matrix = matrix @ sparse.diags(idf)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix
    return matrix.tocsr(), dict(zip(vocabulary, idf.tolist(), strict=True))


def _row_dots(matrix: sparse.csr_matrix, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Dot products of rows i[k] and j[k]; 0 where j[k] is -1 (no such row)."""
    dots = np.zeros(len(i))
    valid = j >= 0
    if valid.sum() > 64:
        dots[valid] = np.asarray(matrix[i[valid]].multiply(matrix[j[valid]]).sum(axis=1)).ravel()
        return dots
    # a few pairs: intersecting two rows directly beats building sub-matrices
    pointers, columns, values = matrix.indptr, matrix.indices, matrix.data
    for k in np.nonzero(valid)[0]:
        left = slice(pointers[i[k]], pointers[i[k] + 1])
        right = slice(pointers[j[k]], pointers[j[k] + 1])
        _, in_left, in_right = np.intersect1d(
            columns[left], columns[right], assume_unique=True, return_indices=True
        )
        dots[k] = values[left][in_left] @ values[right][in_right]
    return dots


def _nearest(vectors: np.ndarray, count: int, block: int = 2048):
    """Each row's `count` most similar other rows (indices, cosines), most similar first.

    Rows with fewer other rows are padded with index -1 and similarity -inf.
    """
    n = len(vectors)
    width = min(count, n - 1)
    indices = np.full((n, count), -1, dtype=np.int64)
    sims = np.full((n, count), -np.inf, dtype=np.float64)
    if width <= 0:
        return indices, sims
    for start in range(0, n, block):
        stop = min(start + block, n)
        cosines = vectors[start:stop] @ vectors.T
        cosines[np.arange(stop - start), np.arange(start, stop)] = -np.inf
        top, top_sims = _top_per_row(cosines, width)
        indices[start:stop, :width] = top
        sims[start:stop, :width] = top_sims
    return indices, sims


def _top_per_row(cosines: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The `width` largest entries of each row, largest first.

    A full selection over every row is slow for wide blocks, so each row's cut-off is first
    estimated from a sample of columns; only rows left with too few entries above their
    cut-off are selected exactly.
    """
    rows_count, columns = cosines.shape
    top = np.empty((rows_count, width), dtype=np.int64)
    top_sims = np.empty((rows_count, width))
    exact = np.ones(rows_count, dtype=bool)
    sample_size = 512
    if columns > 4 * sample_size:
        sample = np.random.default_rng(0).choice(columns, sample_size, replace=False)
        # the 3rd largest of 512 sampled columns leaves about 3 * columns / 512 entries above
        cutoff = -np.partition(-cosines[:, sample], 2, axis=1)[:, 2]
        rows, cols = np.nonzero(cosines >= cutoff[:, None])
        values = cosines[rows, cols]
        order = np.lexsort((-values, rows))
        rows, cols, values = rows[order], cols[order], values[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        kept = rank < width
        top[rows[kept], rank[kept]] = cols[kept]
        top_sims[rows[kept], rank[kept]] = values[kept]
        exact = np.bincount(rows, minlength=rows_count) < width
    if exact.any():
        subset = cosines[exact]
        if width < columns:
            chosen = np.argpartition(-subset, width - 1, axis=1)[:, :width]
        else:
            chosen = np.argsort(-subset, axis=1)[:, :width]
        chosen_sims = np.take_along_axis(subset, chosen, axis=1)
        order = np.argsort(-chosen_sims, axis=1)
        top[exact] = np.take_along_axis(chosen, order, axis=1)
        top_sims[exact] = np.take_along_axis(chosen_sims, order, axis=1)
    return top, top_sims
