"""A local corpus with its embeddings, searched by cosine similarity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ideagen.review.literature import Paper

if TYPE_CHECKING:
    from ideagen.store import Store

CORPUS_CANDIDATES = 5


@dataclass
class CorpusIndex:
    """A local corpus with its embeddings, searched by cosine similarity."""

    papers: list[Paper]
    vectors: np.ndarray
    store: Store

    @classmethod
    def build(cls, papers: list[Paper], store: Store) -> CorpusIndex:
        from ideagen.embeddings import embed

        return cls(papers, embed([_paper_text(paper) for paper in papers], store), store)

    def search(self, text: str, limit: int = CORPUS_CANDIDATES) -> list[Paper]:
        from ideagen.embeddings import embed

        query = embed([text], self.store)[0]
        similarities = self.vectors @ query
        best = np.argsort(-similarities)[:limit]
        return [
            self.papers[i].model_copy(update={"similarity": round(float(similarities[i]), 4)})
            for i in best
        ]


def _paper_text(paper: Paper) -> str:
    return f"{paper.title}. {paper.abstract}".strip()
