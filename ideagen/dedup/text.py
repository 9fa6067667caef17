"""Words of an idea: the opening that is embedded, content terms, and TF-IDF over a set of ideas."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
from scipy import sparse

from ideagen.schema import Idea

# The opening words of "Title. Experiment" that are embedded. Ideas name their intervention
# first; on the dev set the opening scores as well as the whole text at about a third of
# the embedding cost.
OPENING_WORDS = 48

_STOPWORDS = frozenset(
    "a an the of and or to in on for with by from as at is are be this that these those we will "
    "it its into using use based via each both their our new than then also such eg ie while "
    "when which can how what more most other same".split()
)
_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")
_NORMALIZED: dict[str, str] = {}  # raw word -> term, filled as words are met


def opening_text(idea: Idea) -> str:
    words = f"{idea.Title.strip()}. {idea.Experiment.strip()}".split()
    return " ".join(words[:OPENING_WORDS])


def terms(text: str) -> list[str]:
    """Lower-case content words; CamelCase and snake_case split; a plural -s dropped; bare
    numbers left out (copies numbered copy_1, copy_2 ... are not different experiments)."""
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
    if len(word) < 2 or word in _STOPWORDS or word.isdigit():
        return ""
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def idea_terms(idea: Idea) -> list[str]:
    return terms(f"{idea.Name.replace('_', ' ')} {idea.Title} {idea.Experiment}")


class Tfidf:
    """Row-normalized TF-IDF (sublinear term frequency, smoothed IDF) fitted on the ideas at
    hand, so the template's common words weigh little; other texts (an idea's parts) are
    weighed with the same IDF."""

    def __init__(self, documents: Sequence[list[str]]):
        from sklearn.feature_extraction.text import TfidfVectorizer  # slow import, used late

        self.vectorizer = TfidfVectorizer(analyzer=_as_is, sublinear_tf=True, dtype=np.float64)
        self.idf: dict[str, float] = {}
        if not any(documents):  # no content word at all: every similarity is 0
            self.matrix = sparse.csr_matrix((len(documents), 1))
            return
        self.matrix = self.vectorizer.fit_transform(documents).tocsr()
        self.idf = dict(
            zip(self.vectorizer.get_feature_names_out(), self.vectorizer.idf_.tolist(), strict=True)
        )

    def transform(self, documents: Sequence[list[str]]) -> sparse.csr_matrix:
        if not self.idf:
            return sparse.csr_matrix((len(documents), 1))
        return self.vectorizer.transform(documents).tocsr()


def _as_is(document: list[str]) -> list[str]:
    """The analyzer for documents that are already term lists."""
    return document
