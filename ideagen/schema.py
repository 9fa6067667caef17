"""The AI Scientist v1 idea: the typed model, and precise problems for entries that break it.

An idea file is a JSON list of objects. Each object has `Name`, `Title`, `Experiment`,
three 1-10 integer ratings and, after a novelty check, `novel`. Unknown keys are kept
in their original order so that a file round-trips exactly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

NAME_PATTERN = re.compile(r"[a-z0-9_]+")  # used with fullmatch: "$" would accept "abc\n"
RATING_FIELDS = ("Interestingness", "Feasibility", "Novelty")
TEXT_FIELDS = ("Name", "Title", "Experiment")
REQUIRED_FIELDS = TEXT_FIELDS + RATING_FIELDS
# An idea is a few hundred to a few thousand characters; a field far longer is a mistake (a
# pasted log, a generated file) that a paid model would bill on every call showing it.
MAX_FIELD_CHARS = 20_000

# The parts of an idea, declared once: the file's Idea, the model's draft and critique, and the
# judge's scores are composed from them, so every schema a provider is sent says the same thing.
# The local model's grammar turns a Rating's bounds into the enum 1..10.
Rating = Annotated[int, Field(ge=1, le=10)]
IdeaTitle = Annotated[str, Field(min_length=1, description="the title of a paper about the idea")]
IdeaExperiment = Annotated[
    str,
    Field(
        min_length=1,
        description="what to change in experiment.py and what to measure, in one paragraph",
    ),
]
# What the model writes as a name; `IdeaDraft.to_idea` slugifies it into a file Name.
DraftName = Annotated[
    str, Field(min_length=1, max_length=100, description="a short lowercase identifier")
]
IdeaName = Annotated[str, Field(pattern=rf"^{NAME_PATTERN.pattern}$")]


class Idea(BaseModel):
    """One idea. Extra keys are allowed and kept; `key_order` remembers the file's order."""

    model_config = ConfigDict(extra="allow", strict=True)

    Name: IdeaName
    Title: IdeaTitle
    Experiment: IdeaExperiment
    Interestingness: Rating
    Feasibility: Rating
    Novelty: Rating
    novel: bool | None = None

    _key_order: list[str] = PrivateAttr(default_factory=list)

    @field_validator("Title", "Experiment")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("is blank")
        return value

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Idea:
        idea = cls.model_validate(entry)
        idea._key_order = list(entry.keys())
        return idea

    def to_entry(self) -> dict[str, Any]:
        """The JSON object for this idea: original keys in original order, new keys after."""
        values = self.model_dump(exclude_none=False)
        if self.novel is None and "novel" not in self._original_keys():
            values.pop("novel")
        order = [k for k in self._original_keys() if k in values]
        order += [k for k in values if k not in order]
        return {key: values[key] for key in order}

    def _original_keys(self) -> list[str]:
        return self._key_order

    def summary(self) -> str:
        """A compact one-line form used in prompts and tables."""
        return f"{self.Name}: {self.Title}"


Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an idea file, precise enough to find and fix by hand."""

    file: str
    message: str
    index: int | None = None
    name: str | None = None
    field: str | None = None
    severity: Severity = "error"

    def __str__(self) -> str:
        where = self.file
        if self.index is not None:
            where += f": entry {self.index}"
            if self.name:
                shown = self.name if self.name.isprintable() else json_repr(self.name)
                where += f" ({shown})"
        if self.field:
            where += f": {self.field}"
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{prefix}{where}: {self.message}"


def describe_entry_problems(file: str, index: int, entry: Any) -> list[Problem]:
    """Every schema problem of one raw entry, phrased for a person (not pydantic's wording)."""
    if not isinstance(entry, dict):
        return [Problem(file, f"is a {_json_type(entry)}, expected an object", index=index)]
    name = entry.get("Name") if isinstance(entry.get("Name"), str) else None
    problems: list[Problem] = []

    def add(field: str, message: str) -> None:
        problems.append(Problem(file, message, index=index, name=name, field=field))

    for field in REQUIRED_FIELDS:
        if field not in entry:
            add(field, "is missing")
    for field in TEXT_FIELDS:
        value = entry.get(field)
        if field not in entry:
            continue
        if not isinstance(value, str):
            add(field, f"is a {_json_type(value)}, expected a string")
        elif not value.strip():
            add(field, "is empty")
        elif field == "Name" and not NAME_PATTERN.fullmatch(value):
            add(field, f"{value!r} must match ^[a-z0-9_]+$ (lowercase letters, digits, _)")
    for field in RATING_FIELDS:
        if field not in entry:
            continue
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, int):
            add(field, f"{json_repr(value)} is a {_json_type(value)}, expected an integer 1-10")
        elif value < 1:
            add(field, f"{json_repr(value)} is below 1")
        elif value > 10:
            add(field, f"{json_repr(value)} is above 10")
    novel = entry.get("novel")
    if "novel" in entry and not isinstance(novel, bool):
        add("novel", f"{json_repr(novel)} is a {_json_type(novel)}, expected true or false")
    return problems


def size_warnings(file: str, index: int, entry: Any) -> list[Problem]:
    """A warning for each text field far longer than any real idea (paid for on every call)."""
    if not isinstance(entry, dict):
        return []
    name = entry.get("Name") if isinstance(entry.get("Name"), str) else None
    return [
        Problem(
            file,
            f"{len(entry[field]):,} characters; real ideas have a few thousand at most, "
            f"and ideas over {MAX_FIELD_CHARS:,} are not sent to a paid model",
            index=index,
            name=name,
            field=field,
            severity="warning",
        )
        for field in TEXT_FIELDS
        if isinstance(entry.get(field), str) and len(entry[field]) > MAX_FIELD_CHARS
    ]


def oversized(idea: Idea) -> str | None:
    """The first text field over MAX_FIELD_CHARS, or None."""
    return next((f for f in TEXT_FIELDS if len(getattr(idea, f)) > MAX_FIELD_CHARS), None)


def validation_problem(file: str, index: int, entry: Any, error: ValidationError) -> Problem:
    """pydantic's objection to an entry the checks above let through, as one Problem."""
    item = error.errors()[0]
    field = ".".join(str(part) for part in item["loc"]) or None
    name = entry.get("Name") if isinstance(entry, dict) else None
    name = name if isinstance(name, str) and NAME_PATTERN.fullmatch(name) else None
    return Problem(file, " ".join(item["msg"].split()), index=index, name=name, field=field)


def duplicate_name_warnings(file: str, entries: list[Any]) -> list[Problem]:
    seen: dict[str, int] = {}
    warnings = []
    for index, entry in enumerate(entries):
        name = entry.get("Name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            warnings.append(
                Problem(
                    file,
                    f"duplicate Name, first used by entry {seen[name]}",
                    index=index,
                    name=name,
                    field="Name",
                    severity="warning",
                )
            )
        else:
            seen[name] = index
    return warnings


def json_repr(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"
