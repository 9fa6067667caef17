"""Literature search services: OpenAlex (no key) and Semantic Scholar (`S2_API_KEY`
optional) over httpx, with the shared retry policy; every answer is cached in the store."""

from __future__ import annotations

import logging
import os
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx2
from pydantic import BaseModel

from ideagen.retry import (
    LONG_WAIT_S,
    RetriesExhausted,
    RetryableError,
    RetryPolicy,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from ideagen.store import Store

OPENALEX_URL = "https://api.openalex.org"
S2_URL = "https://api.semanticscholar.org"
USER_AGENT = "ideagen (novelty check for AI Scientist ideas)"
HITS_PER_QUERY = 5

log = logging.getLogger(__name__)


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


class LiteratureError(Exception):
    """A search that cannot be answered now (service down, rate limit outlasted retries)."""


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
                    year=int_or_none(work.get("publication_year")),
                    url=doi if isinstance(doi, str) and doi else str_or_none(work.get("id")),
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
            url = str_or_none(item.get("url"))
            if url is None and isinstance(item.get("paperId"), str):
                url = f"https://www.semanticscholar.org/paper/{item['paperId']}"
            papers.append(
                Paper(
                    source=self.source,
                    title=item["title"].strip(),
                    abstract=item.get("abstract") or "",
                    year=int_or_none(item.get("year")),
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


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
