"""A real HTTP server on 127.0.0.1 standing in for OpenAlex and Semantic Scholar.

It answers OpenAlex's `GET /works?search=...` and Semantic Scholar's
`GET /graph/v1/paper/search?query=...` in their real response shapes, from a small list of
papers it holds: a paper is a hit when it contains every word of the query (as the real
engines rank relevant papers first, this keeps the hits predictable). Faults are scripted:
a number of 429 answers (with Retry-After) before the next real one, or a storm of 429s that
never ends. Every request is logged with its path, parameters and headers.

Start one with `with running() as server: ...`; tests get a started one as the fixture
`literature_server` (tests/conftest.py), with ideagen's literature URLs pointed at it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


@dataclass
class StoredPaper:
    title: str
    abstract: str
    year: int
    doi: str


@dataclass
class LoggedRequest:
    service: str
    query: str
    params: dict[str, str]
    headers: dict[str, str]
    status: int


@dataclass
class LiteratureServer:
    papers: list[StoredPaper] = field(default_factory=list)
    requests: list[LoggedRequest] = field(default_factory=list)
    rate_limited: int = 0
    storm: bool = False
    retry_after: str = "0"
    retry_after_header: str = "Retry-After"  # or "retry-after-ms"
    base_url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_paper(self, title: str, abstract: str, year: int = 2021) -> StoredPaper:
        paper = StoredPaper(title, abstract, year, f"https://doi.org/10.5555/{len(self.papers)}")
        self.papers.append(paper)
        return paper

    def matching(self, query: str) -> list[StoredPaper]:
        words = re.findall(r"\w+", query.lower())
        hits = []
        for paper in self.papers:
            text = set(re.findall(r"\w+", f"{paper.title} {paper.abstract}".lower()))
            if words and all(word in text for word in words):
                hits.append(paper)
        return hits

    def take_fault(self) -> bool:
        with self._lock:
            if self.storm:
                return True
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return True
            return False

    def count(self, service: str) -> int:
        return sum(1 for request in self.requests if request.service == service)


def openalex_answer(papers: list[StoredPaper], limit: int) -> dict:
    results = []
    for number, paper in enumerate(papers[:limit]):
        inverted: dict[str, list[int]] = {}
        for position, word in enumerate(paper.abstract.split()):
            inverted.setdefault(word, []).append(position)
        results.append(
            {
                "id": f"https://openalex.org/W{1000 + number}",
                "doi": paper.doi,
                "title": paper.title,
                "display_name": paper.title,
                "publication_year": paper.year,
                "relevance_score": 10.0 - number,
                "abstract_inverted_index": inverted or None,
                "cited_by_count": 3,
            }
        )
    return {
        "meta": {"count": len(papers), "db_response_time_ms": 4, "page": 1, "per_page": limit},
        "results": results,
        "group_by": [],
    }


def semantic_scholar_answer(papers: list[StoredPaper], limit: int) -> dict:
    data = [
        {
            "paperId": f"{number:040x}",
            "title": paper.title,
            "abstract": paper.abstract,
            "year": paper.year,
            "url": f"https://www.semanticscholar.org/paper/{number:040x}",
        }
        for number, paper in enumerate(papers[:limit])
    ]
    answer: dict = {"total": len(papers), "offset": 0, "data": data}
    if len(papers) > limit:
        answer["next"] = limit
    return answer


def _handler_for(server_state: LiteratureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {key: values[0] for key, values in parse_qs(url.query).items()}
            if url.path == "/works":
                service, query = "openalex", params.get("search", "")
                limit = int(params.get("per-page", "25"))
            elif url.path == "/graph/v1/paper/search":
                service, query = "semantic_scholar", params.get("query", "")
                limit = int(params.get("limit", "10"))
            else:
                self._send(404, {"error": "not found"}, "other", "", params)
                return
            if server_state.take_fault():
                self._send(429, {"message": "Too Many Requests"}, service, query, params)
                return
            hits = server_state.matching(query)
            if service == "openalex":
                body = openalex_answer(hits, limit)
            else:
                body = semantic_scholar_answer(hits, limit)
            self._send(200, body, service, query, params)

        def _send(self, status: int, body: dict, service: str, query: str, params: dict) -> None:
            server_state.requests.append(
                LoggedRequest(
                    service,
                    query,
                    params,
                    {name.lower(): value for name, value in self.headers.items()},
                    status,
                )
            )
            payload = json.dumps(body).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 429:
                self.send_header(server_state.retry_after_header, server_state.retry_after)
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@contextmanager
def running() -> Iterator[LiteratureServer]:
    """A started server (its base_url set), shut down on exit."""
    state = LiteratureServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
