"""Groups from scored pairs: average linkage with a floor, over the sparse candidate pairs.

Hand-written because scipy's and scikit-learn's average linkage need every pairwise distance
(10,000 ideas: 50 million pairs). This one starts from the candidate pairs and bounds the
work of each merge. Two small groups are compared pair by pair: every cross pair scored,
their average and a floor checked, so a chain of near pairs does not become one group. Two
groups with more than MAX_CROSS_PAIRS cross pairs are compared through their summed rows:
the score's log-odds are linear in dot products (LinearScore), so their mean over all cross
pairs is exact at the cost of one dot product per signal. 10,000 near-copies of one idea,
where one group takes in everything, then cost about what 10,000 distinct ideas do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

# Groups with more cross pairs than this are compared through their summed rows.
MAX_CROSS_PAIRS = 256
# Components up to this size have all their pairs scored in one batch before linkage.
BATCH_COMPONENT = 64

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
Rows = np.ndarray | sparse.csr_matrix


@dataclass
class LinearScore:
    """A pair score whose log-odds are intercept + sum of weight * (rows[a] . rows[b])."""

    matrices: list[Rows]
    weights: list[float]
    intercept: float


class PairScores:
    """Pair probabilities: the scored candidates, fixed answers (a judge's), and any other
    pair scored on demand by `scorer`."""

    def __init__(
        self,
        count: int,
        first: np.ndarray,
        second: np.ndarray,
        probabilities: np.ndarray,
        scorer: Scorer,
        fixed: dict[tuple[int, int], float] | None = None,
    ):
        self.count = count
        self.scorer = scorer
        pairs = zip(first.tolist(), second.tolist(), strict=True)
        self.known = dict(zip(pairs, probabilities.tolist(), strict=True))
        self.known.update(fixed or {})

    def edges(self, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """Pairs at or above the threshold, strongest first (ties by index): (a, b) arrays."""
        pairs = np.array(list(self.known), dtype=np.int64).reshape(-1, 2)
        probabilities = np.fromiter(self.known.values(), dtype=np.float64, count=len(pairs))
        above = probabilities >= threshold
        pairs, probabilities = pairs[above], probabilities[above]
        order = np.lexsort((pairs[:, 1], pairs[:, 0], -probabilities))
        return pairs[order, 0], pairs[order, 1]

    def get(self, pairs: list[tuple[int, int]]) -> np.ndarray:
        """Probabilities of (a, b) pairs with a < b, scoring the unknown ones in one batch."""
        unknown = list({pair for pair in pairs if pair not in self.known})
        if unknown:
            rows, cols = np.array(unknown).T
            self.known.update(zip(unknown, self.scorer(rows, cols).tolist(), strict=True))
        return np.array([self.known[pair] for pair in pairs])


def average_linkage(
    scores: PairScores, linear: LinearScore, threshold: float, floor: float
) -> list[list[int]]:
    """Groups of two or more, sorted by first member: pairs are merged strongest first; two
    groups join when their cross pairs average at least `threshold` and, for small groups,
    none lies below `floor`."""
    first, second = scores.edges(threshold)
    _score_small_components(scores, first, second)
    sums = _GroupSums(linear)
    group_of = np.arange(scores.count)
    members: dict[int, list[int]] = {}
    for a, b in zip(first.tolist(), second.tolist(), strict=True):
        left_id, right_id = int(group_of[a]), int(group_of[b])
        if left_id == right_id:
            continue
        left, right = members.get(left_id, [a]), members.get(right_id, [b])
        if len(left) * len(right) <= MAX_CROSS_PAIRS:
            lefts, rights = np.repeat(left, len(right)), np.tile(right, len(left))
            low, high = np.minimum(lefts, rights).tolist(), np.maximum(lefts, rights).tolist()
            cross = scores.get(list(zip(low, high, strict=True)))
            if cross.mean() < threshold or cross.min() < floor:
                continue
        elif sums.mean_probability(left_id, len(left), right_id, len(right)) < threshold:
            continue
        if len(left) < len(right):
            left_id, right_id, left, right = right_id, left_id, right, left
        group_of[right] = left_id
        members[left_id] = left + right
        members.pop(right_id, None)
        sums.merge(left_id, right_id, len(left) + len(right))
    return sorted((sorted(group) for group in members.values()), key=lambda group: group[0])


class _GroupSums:
    """Each group's summed rows, per signal of the linear score; a group is named by the id
    of a member, and a single idea's sums are its own rows. Sums of sparse rows stay sparse
    until the group has DENSE_FROM members: one dense vector per large group is cheap to
    add to and to take dot products with, where scipy's sparse operations cost about a
    millisecond each."""

    DENSE_FROM = 16

    def __init__(self, linear: LinearScore):
        self.linear = linear
        self.sums: dict[int, list[Rows]] = {}

    def of(self, group: int) -> list[Rows]:
        if group not in self.sums:
            self.sums[group] = [matrix[group : group + 1] for matrix in self.linear.matrices]
        return self.sums[group]

    def merge(self, kept: int, gone: int, size: int) -> None:
        merged = []
        for x, y in zip(self.of(kept), self.of(gone), strict=True):
            if sparse.issparse(x) and sparse.issparse(y):
                total = x + y
                merged.append(total.toarray().ravel() if size >= self.DENSE_FROM else total)
            elif sparse.issparse(x) or sparse.issparse(y):
                dense, row = (y, x) if sparse.issparse(x) else (x, y)
                total = np.array(dense, dtype=np.float64).ravel()
                total[row.indices] += row.data
                merged.append(total)
            else:
                merged.append(np.ravel(x) + np.ravel(y))
        self.sums[kept] = merged
        self.sums.pop(gone, None)

    def mean_probability(self, left: int, left_size: int, right: int, right_size: int):
        """The probability at the mean log-odds over every pair across the two groups."""
        dots = [_dot(x, y) for x, y in zip(self.of(left), self.of(right), strict=True)]
        mean = np.dot(self.linear.weights, dots) / (left_size * right_size)
        return 1.0 / (1.0 + np.exp(-(mean + self.linear.intercept)))


def _dot(x: Rows, y: Rows) -> float:
    if sparse.issparse(x) and sparse.issparse(y):
        return float(x.multiply(y).sum())
    if sparse.issparse(x) or sparse.issparse(y):
        dense, row = (y, x) if sparse.issparse(x) else (x, y)
        return float(np.ravel(dense)[row.indices] @ row.data)
    return float(np.ravel(x) @ np.ravel(y))


def _score_small_components(scores: PairScores, first: np.ndarray, second: np.ndarray) -> None:
    """Score every pair inside each connected set of edges of up to BATCH_COMPONENT ideas:
    the pairs linkage may ask about, in one batch rather than merge by merge."""
    if not len(first):
        return
    graph = sparse.coo_matrix(
        (np.ones(len(first)), (first, second)), shape=(scores.count, scores.count)
    )
    _, labels = connected_components(graph, directed=False)
    touched = np.unique(np.concatenate([first, second]))
    sizes = np.bincount(labels[touched])
    small = touched[sizes[labels[touched]] <= BATCH_COMPONENT]
    small = small[np.argsort(labels[small], kind="stable")]
    bounds = np.flatnonzero(np.diff(labels[small])) + 1
    pairs = []
    for component in np.split(small, bounds):
        members = component.tolist()
        pairs += [(x, y) for k, x in enumerate(members) for y in members[k + 1 :]]
    scores.get(pairs)
