"""Novelty: is there already a paper that did this idea?

Online, the model writes a few search queries per idea; OpenAlex (no key) and Semantic
Scholar (`S2_API_KEY` optional) are searched, every answer cached in the store; the model
then reads the hits and says whether one of them already did the idea. Offline, a local
corpus the user gives (JSONL of title/abstract, or BibTeX) is searched with the embeddings
and the model reads the closest entries the same way.

Three outcomes, never two: "not_novel" always names the paper that did it; finding
nothing (zero hits, unreachable services, a corpus with nothing close) is "unknown", never
"novel". What "unknown" becomes in the AI Scientist's boolean `novel` is the caller's choice.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from ideagen.providers.base import LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.retry import RetryPolicy
from ideagen.review.corpus import CorpusError, load_corpus
from ideagen.review.corpus_index import CorpusIndex
from ideagen.review.literature import (
    HITS_PER_QUERY,
    LITERATURE_RETRY,
    LiteratureClient,
    LiteratureError,
    OpenAlexClient,
    Paper,
    SemanticScholarClient,
    online_clients,
)
from ideagen.schema import Idea
from ideagen.untrusted import fence

__all__ = [  # what callers import from here, wherever it now lives
    "HITS_PER_QUERY",
    "LITERATURE_RETRY",
    "CorpusError",
    "CorpusIndex",
    "LiteratureClient",
    "LiteratureError",
    "NoveltyAnswer",
    "NoveltyChecker",
    "NoveltyResult",
    "OpenAlexClient",
    "Paper",
    "RetryPolicy",
    "SearchQueries",
    "SemanticScholarClient",
    "idea_text",
    "load_corpus",
    "online_clients",
]

# Offline: corpus entries less similar than this to the idea are not shown to the model;
# when none is left the answer is "unknown".
CORPUS_MIN_SIMILARITY = 0.35
MAX_PAPERS_SHOWN = 10

log = logging.getLogger(__name__)

NoveltyStatus = Literal["novel", "not_novel", "unknown"]


class NoveltyResult(BaseModel):
    """The verdict for one idea, with the evidence behind it."""

    status: NoveltyStatus
    reason: str
    paper: Paper | None = None
    queries: list[str] = Field(default_factory=list)
    papers: list[Paper] = Field(default_factory=list)
    mode: Literal["online", "offline", "off"] = "off"


class SearchQueries(BaseModel):
    """What the model answers when asked for literature queries (flat, so that even the
    small local model, which fills fields one by one, can answer)."""

    query: str = Field(min_length=1)
    other_query: str | None = None

    def all(self) -> list[str]:
        return [q for q in (self.query, self.other_query) if q and q.strip()]


class NoveltyAnswer(BaseModel):
    """What the model answers after reading the hits: `paper` is the number of the listed
    paper that already did the idea, 0 when none did."""

    reason: str = Field(min_length=1)
    verdict: Literal["novel", "not_novel"]
    paper: int = Field(ge=0, le=MAX_PAPERS_SHOWN)


def idea_text(idea: Idea) -> str:
    return f"{idea.Title}. {idea.Experiment}"


# the check


@dataclass
class NoveltyChecker:
    """Checks ideas one at a time, online (clients) or offline (corpus)."""

    model: LanguageModel
    clients: list[LiteratureClient] = field(default_factory=list)
    corpus: CorpusIndex | None = None

    @property
    def mode(self) -> Literal["online", "offline"]:
        return "offline" if self.corpus is not None else "online"

    def check(self, idea: Idea) -> NoveltyResult:
        if self.corpus is not None:
            return self._check_offline(idea)
        return self._check_online(idea)

    def _check_online(self, idea: Idea) -> NoveltyResult:
        down = [client.unreachable for client in self.clients if client.unreachable]
        if down and len(down) == len(self.clients):
            # No service can answer: writing queries would only spend model calls.
            return NoveltyResult(
                status="unknown", reason=f"no papers found ({'; '.join(down)})", mode="online"
            )
        try:
            queries = self._write_queries(idea)
        except ModelError as exc:
            return NoveltyResult(status="unknown", reason=f"no queries: {exc}", mode="online")
        hit_lists: list[list[Paper]] = []
        failures: list[str] = []
        for query in queries:
            for client in self.clients:
                try:
                    hit_lists.append(client.search(query))
                except LiteratureError as exc:
                    if str(exc) not in failures:
                        failures.append(str(exc))
        papers = _interleave(hit_lists)
        if not papers:
            why = "; ".join(failures) if failures else "zero hits for every query"
            return NoveltyResult(
                status="unknown", reason=f"no papers found ({why})", queries=queries, mode="online"
            )
        result = self._verdict(idea, papers)
        return result.model_copy(update={"queries": queries, "mode": "online"})

    def _check_offline(self, idea: Idea) -> NoveltyResult:
        assert self.corpus is not None
        nearest = self.corpus.search(idea_text(idea))
        close = [p for p in nearest if (p.similarity or 0) >= CORPUS_MIN_SIMILARITY]
        if not close:
            best = nearest[0].similarity if nearest else 0.0
            return NoveltyResult(
                status="unknown",
                reason=f"nothing close in the corpus (best similarity {best:.2f})",
                papers=nearest[:3],
                mode="offline",
            )
        result = self._verdict(idea, close)
        return result.model_copy(update={"mode": "offline"})

    def _write_queries(self, idea: Idea) -> list[str]:
        answer = self.model.structured(
            [Message(role="user", content=_idea_block(idea))],
            SearchQueries,
            system=render_prompt("review_novelty_query"),
            temperature=0.0,
            max_tokens=300,
            purpose="review.novelty_queries",
        )
        queries = [" ".join(q.split())[:200] for q in answer.all()]
        return list(dict.fromkeys(queries)) or [idea.Title]

    def _verdict(self, idea: Idea, papers: list[Paper]) -> NoveltyResult:
        papers = papers[:MAX_PAPERS_SHOWN]
        listing = "\n\n".join(
            f"[{number}] {paper.citation()}\n{_shorten(paper.abstract, 600) or '(no abstract)'}"
            for number, paper in enumerate(papers, start=1)
        )
        prompt = f"{_idea_block(idea)}\n\nPapers found:\n\n{fence(listing, 'list of papers')}"
        try:
            answer = self.model.structured(
                [Message(role="user", content=prompt)],
                NoveltyAnswer,
                system=render_prompt("review_novelty_verdict"),
                temperature=0.0,
                max_tokens=400,
                purpose="review.novelty_verdict",
            )
        except ModelError as exc:
            return NoveltyResult(status="unknown", reason=f"no verdict: {exc}", papers=papers)
        if answer.verdict == "novel":
            return NoveltyResult(status="novel", reason=answer.reason, papers=papers)
        if not 1 <= answer.paper <= len(papers):
            # "Not novel" without a paper is not evidence; it stays an open question.
            return NoveltyResult(
                status="unknown",
                reason=f"judged not novel without naming a listed paper: {answer.reason}",
                papers=papers,
            )
        return NoveltyResult(
            status="not_novel", reason=answer.reason, paper=papers[answer.paper - 1], papers=papers
        )


def _interleave(hit_lists: list[list[Paper]]) -> list[Paper]:
    """Best hits of every search first (round robin), each title once."""
    papers: list[Paper] = []
    seen: set[str] = set()
    for rank in range(max((len(hits) for hits in hit_lists), default=0)):
        for hits in hit_lists:
            if rank < len(hits):
                key = re.sub(r"\W+", " ", hits[rank].title.lower()).strip()
                if key not in seen:
                    seen.add(key)
                    papers.append(hits[rank])
    return papers


def _idea_block(idea: Idea) -> str:
    return fence(f"Idea title: {idea.Title}\nExperiment: {idea.Experiment}")


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
