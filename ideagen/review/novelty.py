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

import json
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import httpx2
import numpy as np
from pydantic import BaseModel, Field, ValidationError

from ideagen.ideafile import read_user_text, unusable_json
from ideagen.providers.base import LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.retry import (
    LONG_WAIT_S,
    RetriesExhausted,
    RetryableError,
    RetryPolicy,
    retry_after_seconds,
)
from ideagen.schema import Idea
from ideagen.untrusted import fence

if TYPE_CHECKING:
    from ideagen.store import Store

OPENALEX_URL = "https://api.openalex.org"
S2_URL = "https://api.semanticscholar.org"
USER_AGENT = "ideagen (novelty check for AI Scientist ideas)"
HITS_PER_QUERY = 5
# Offline: corpus entries less similar than this to the idea are not shown to the model;
# when none is left the answer is "unknown".
CORPUS_MIN_SIMILARITY = 0.35
CORPUS_CANDIDATES = 5
MAX_PAPERS_SHOWN = 10

log = logging.getLogger(__name__)

NoveltyStatus = Literal["novel", "not_novel", "unknown"]


class Paper(BaseModel):
    """One search hit, the same shape whatever service or file it came from."""

    source: str
    title: str
    abstract: str = ""
    year: int | None = None
    url: str | None = None
    similarity: float | None = None

    def citation(self) -> str:
        year = f" ({self.year})" if self.year else ""
        return f"{self.title}{year}"


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


class LiteratureError(Exception):
    """A search that cannot be answered now (service down, rate limit outlasted retries)."""


class CorpusError(Exception):
    """The --corpus file cannot be used; the message names the file, line and problem."""


# literature services


# Literature services answer in seconds or not at all: shorter bounds than for model calls,
# and a long retry-after is shortened (a search is worth a try after 20 s, not an hour).
LITERATURE_RETRY = RetryPolicy(
    max_attempts=4,
    base_delay_s=1.0,
    max_delay_s=20.0,
    call_timeout_s=20.0,
    total_timeout_s=120.0,
    max_retry_after_s=20.0,
)


@dataclass
class LiteratureClient:
    """One literature service: search(query) -> papers, answers cached in the store."""

    source: str
    base_url: str
    store: Store
    retry: RetryPolicy = LITERATURE_RETRY
    headers: dict[str, str] = field(default_factory=dict)
    unreachable: str | None = None

    def search(self, query: str, limit: int = HITS_PER_QUERY) -> list[Paper]:
        cache_key = f"{query}\n{limit}"
        cached = self.store.get_literature(self.source, cache_key)
        if cached is not None:
            return [Paper.model_validate(item) for item in cached]
        if self.unreachable:
            raise LiteratureError(self.unreachable)
        payload = self._get_json(self._search_url(query, limit))
        papers = self._parse(payload)
        self.store.put_literature(
            self.source, cache_key, [paper.model_dump(mode="json") for paper in papers]
        )
        return papers

    def _search_url(self, query: str, limit: int) -> str:
        raise NotImplementedError

    def _parse(self, payload: object) -> list[Paper]:
        raise NotImplementedError

    def _get_json(self, url: str) -> object:
        headers = {"User-Agent": USER_AGENT, **self.headers}
        try:
            return self.retry.run(
                lambda timeout: self._attempt(url, headers, timeout), on_wait=self._announce
            )
        except RetriesExhausted as gave_up:
            raise LiteratureError(
                f"{self.source}: {gave_up.error.reason} after {gave_up.attempts} tries, gave up"
            ) from None

    def _attempt(self, url: str, headers: dict[str, str], timeout: float) -> object:
        try:
            response = httpx2.get(url, headers=headers, timeout=timeout, follow_redirects=True)
        except httpx2.TransportError as exc:
            # An unreachable service stays unreachable for the rest of the run: asking
            # again for every idea would only multiply the wait.
            self.unreachable = f"{self.source}: unreachable ({exc or type(exc).__name__})"
            raise LiteratureError(self.unreachable) from None
        code = response.status_code
        if code == 429 or code >= 500:
            raise RetryableError(
                "http_error", f"HTTP {code}", retry_after_seconds(response.headers)
            )
        if code >= 400:
            raise LiteratureError(f"{self.source}: HTTP {code} {response.reason_phrase}")
        try:
            return response.json()
        except ValueError:
            raise LiteratureError(f"{self.source}: the answer is not JSON") from None

    def _announce(self, error: RetryableError, attempt: int, delay: float) -> None:
        level = logging.WARNING if delay >= LONG_WAIT_S else logging.INFO
        log.log(level, "%s: %s; waiting %.0f s before trying again", self.source, error, delay)


class OpenAlexClient(LiteratureClient):
    def _search_url(self, query: str, limit: int) -> str:
        params = {"search": query, "per-page": str(limit)}
        return f"{self.base_url.rstrip('/')}/works?{urllib.parse.urlencode(params)}"

    def _parse(self, payload: object) -> list[Paper]:
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise LiteratureError(f"{self.source}: unexpected answer (no results list)")
        papers = []
        for work in results:
            if not isinstance(work, dict):
                continue
            title = work.get("title") or work.get("display_name")
            if not isinstance(title, str) or not title.strip():
                continue
            doi = work.get("doi")
            papers.append(
                Paper(
                    source=self.source,
                    title=title.strip(),
                    abstract=_abstract_from_inverted_index(work.get("abstract_inverted_index")),
                    year=_int_or_none(work.get("publication_year")),
                    url=doi if isinstance(doi, str) and doi else _str_or_none(work.get("id")),
                )
            )
        return papers


class SemanticScholarClient(LiteratureClient):
    def _search_url(self, query: str, limit: int) -> str:
        params = {"query": query, "limit": str(limit), "fields": "title,abstract,year,url"}
        base = self.base_url.rstrip("/")
        return f"{base}/graph/v1/paper/search?{urllib.parse.urlencode(params)}"

    def _parse(self, payload: object) -> list[Paper]:
        if not isinstance(payload, dict):
            raise LiteratureError(f"{self.source}: unexpected answer (not an object)")
        data = payload.get("data", [])
        if not isinstance(data, list):
            raise LiteratureError(f"{self.source}: unexpected answer (data is not a list)")
        papers = []
        for item in data:
            if not isinstance(item, dict) or not isinstance(item.get("title"), str):
                continue
            url = _str_or_none(item.get("url"))
            if url is None and isinstance(item.get("paperId"), str):
                url = f"https://www.semanticscholar.org/paper/{item['paperId']}"
            papers.append(
                Paper(
                    source=self.source,
                    title=item["title"].strip(),
                    abstract=item.get("abstract") or "",
                    year=_int_or_none(item.get("year")),
                    url=url,
                )
            )
        return papers


def online_clients(store: Store, retry: RetryPolicy | None = None) -> list[LiteratureClient]:
    """OpenAlex and Semantic Scholar; base URLs from IDEAGEN_OPENALEX_URL / IDEAGEN_S2_URL."""
    retry = retry or LITERATURE_RETRY
    s2_headers = {}
    if os.environ.get("S2_API_KEY"):
        s2_headers["x-api-key"] = os.environ["S2_API_KEY"]
    return [
        OpenAlexClient(
            "openalex", os.environ.get("IDEAGEN_OPENALEX_URL", OPENALEX_URL), store, retry
        ),
        SemanticScholarClient(
            "semantic_scholar",
            os.environ.get("IDEAGEN_S2_URL", S2_URL),
            store,
            retry,
            headers=s2_headers,
        ),
    ]


def _abstract_from_inverted_index(index: object) -> str:
    """OpenAlex ships abstracts as {word: [positions]}; put the words back in order."""
    if not isinstance(index, dict):
        return ""
    placed: dict[int, str] = {}
    for word, positions in index.items():
        if isinstance(positions, list):
            for position in positions:
                if isinstance(position, int):
                    placed[position] = word
    return " ".join(placed[position] for position in sorted(placed))


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


# the local corpus


def load_corpus(path: str | Path) -> list[Paper]:
    """Titles and abstracts from a JSONL file (one object per line) or a BibTeX file."""
    path = Path(path)
    text = read_user_text(path, "a .jsonl or .bib file", CorpusError)
    looks_bibtex = path.suffix.lower() in {".bib", ".bibtex"} or text.lstrip().startswith("@")
    papers = _parse_bibtex(path, text) if looks_bibtex else _parse_jsonl(path, text)
    if not papers:
        raise CorpusError(f"{path}: no entries with a title")
    return papers


def _parse_jsonl(path: Path, text: str) -> list[Paper]:
    papers = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(
                f"{path}: line {number}: invalid JSON at column {exc.colno}: {exc.msg}"
            ) from None
        except (RecursionError, ValueError) as exc:
            raise CorpusError(f"{path}: line {number}: {unusable_json(exc)}") from None
        if not isinstance(entry, dict):
            raise CorpusError(f"{path}: line {number}: expected an object with title, abstract")
        title = entry.get("title")
        if not isinstance(title, str) or not title.strip():
            raise CorpusError(f"{path}: line {number}: title: missing or not a string")
        abstract = entry.get("abstract", "")
        if not isinstance(abstract, str):
            raise CorpusError(f"{path}: line {number}: abstract: not a string")
        try:
            papers.append(
                Paper(
                    source="corpus",
                    title=title.strip(),
                    abstract=abstract.strip(),
                    year=_int_or_none(entry.get("year")),
                    url=_str_or_none(entry.get("url")) or _doi_url(entry.get("doi")),
                )
            )
        except ValidationError as exc:
            raise CorpusError(f"{path}: line {number}: {exc.errors()[0]['msg']}") from None
    return papers


BIBTEX_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]*)\s*,", re.IGNORECASE)
BIBTEX_FIELD = re.compile(r"(\w+)\s*=\s*", re.IGNORECASE)


def _parse_bibtex(path: Path, text: str) -> list[Paper]:
    papers = []
    for match in BIBTEX_ENTRY.finditer(text):
        kind = match.group(1).lower()
        if kind in {"comment", "preamble", "string"}:
            continue
        line = text.count("\n", 0, match.start()) + 1
        fields = _bibtex_fields(path, text, match.end(), line)
        title = _clean_bibtex(fields.get("title", ""))
        if not title:
            continue
        year = re.search(r"\d{4}", fields.get("year", ""))
        papers.append(
            Paper(
                source="corpus",
                title=title,
                abstract=_clean_bibtex(fields.get("abstract", "")),
                year=int(year.group(0)) if year else None,
                url=_clean_bibtex(fields.get("url", "")) or _doi_url(fields.get("doi")),
            )
        )
    return papers


def _bibtex_fields(path: Path, text: str, start: int, line: int) -> dict[str, str]:
    """The `name = {value}` / `name = "value"` / `name = 123` pairs of one entry."""
    fields: dict[str, str] = {}
    position = start
    while position < len(text):
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "}":
            return fields
        match = BIBTEX_FIELD.match(text, position)
        if not match:
            raise CorpusError(f"{path}: entry at line {line}: cannot read the fields")
        name = match.group(1).lower()
        position = match.end()
        if position < len(text) and text[position] in '{"':
            value, position = _bibtex_value(path, text, position, line)
        else:
            end = position
            while end < len(text) and text[end] not in ",}\n":
                end += 1
            value, position = text[position:end].strip(), end
        fields[name] = value
    raise CorpusError(f"{path}: entry at line {line}: not closed with }}")


def _bibtex_value(path: Path, text: str, position: int, line: int) -> tuple[str, int]:
    closing = "}" if text[position] == "{" else '"'
    depth, index = 0, position
    while index < len(text):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if closing == "}" and depth == 0:
                return text[position + 1 : index], index + 1
        elif char == '"' and closing == '"' and index > position and depth == 0:
            return text[position + 1 : index], index + 1
        index += 1
    raise CorpusError(f"{path}: entry at line {line}: a field value is not closed")


def _clean_bibtex(value: str) -> str:
    return " ".join(value.replace("{", "").replace("}", "").split())


def _doi_url(doi: object) -> str | None:
    if not isinstance(doi, str) or not doi.strip():
        return None
    doi = doi.strip()
    return doi if doi.startswith("http") else f"https://doi.org/{doi}"


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
