"""A local literature corpus the user gives with --corpus: JSONL (one object per line with a
title and an abstract) or BibTeX, read into `Paper`s; bad input is one line naming the file,
line and field. BibTeX is parsed by hand for its few fields (title, abstract, year, url, doi):
brace and quote nesting is all it needs, and no maintained parser is installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

from pydantic import ValidationError

from ideagen.ideafile import read_user_text, unusable_json
from ideagen.review.literature import Paper, int_or_none, str_or_none


class CorpusError(Exception):
    """The --corpus file cannot be used; the message names the file, line and problem."""


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
                    year=int_or_none(entry.get("year")),
                    url=str_or_none(entry.get("url")) or _doi_url(entry.get("doi")),
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
