"""The grid of niches an evolve archive keeps its elites in, and how an idea is placed in it.

A niche is a (row, column) pair over two axes; by default what the idea changes in
experiment.py (six bins) by how far it goes from the baseline (three bins). A niche file
(JSON, same shape as prompts/evolve_niches.txt) replaces them for other templates.

The model places an idea with a written rubric (the bins' descriptions), and may name a
second row the idea changes as much; its answer is kept in the store so an idea is placed
once. Without a usable answer, or when asked to, the idea goes to the bins whose
descriptions are nearest in MiniLM embedding space."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import snowballstemmer
from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    model_validator,
)

from ideagen import embeddings
from ideagen.providers.base import InvalidReply, LanguageModel, Message
from ideagen.resources import prompt_text, render_prompt
from ideagen.review.judge import idea_for_judge
from ideagen.schema import Idea
from ideagen.store import Store

DescriptorMode = Literal["model", "embedding"]
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
JUDGMENT_KIND = "evolve.niche"
NO_SECOND_ROW = "none"
TechniqueName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)
]
FunctionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class NicheFileError(Exception):
    """A niche file cannot be used; one line naming the file, the entry and the field."""


class Bin(BaseModel):
    key: str = Field(pattern=KEY_PATTERN, max_length=40)
    label: str = Field(min_length=1, max_length=40)
    description: str = Field(min_length=1)
    # Techniques of this kind, by the names papers give them; a small model breeding a child
    # for this bin is handed one (see Evolve._technique). Optional in a niche file.
    examples: list[TechniqueName] = Field(default_factory=list, max_length=40)
    # The functions and classes of experiment.py a change of this kind goes into; a small
    # model handed one of the examples chooses among them, when the template defines them
    # all (see Evolve._reply_schema_for). Optional in a niche file.
    functions: list[FunctionName] = Field(default_factory=list, max_length=20)

    def text(self) -> str:
        return f"{self.label}: {self.description}"


class Axis(BaseModel):
    name: str = Field(pattern=KEY_PATTERN, max_length=40)
    question: str = Field(min_length=1)
    bins: list[Bin] = Field(min_length=2, max_length=12)

    @model_validator(mode="after")
    def _unique_keys(self) -> Axis:
        keys = [b.key for b in self.bins]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"bin keys must be unique; repeated: {', '.join(repeated)}")
        return self

    def keys(self) -> list[str]:
        return [b.key for b in self.bins]

    def bin(self, key: str) -> Bin:
        return next(b for b in self.bins if b.key == key)


class NicheSpec(BaseModel):
    rows: Axis
    columns: Axis

    @model_validator(mode="after")
    def _distinct_names(self) -> NicheSpec:
        if self.rows.name == self.columns.name:
            raise ValueError("the two axes need different names")
        if "reason" in (self.rows.name, self.columns.name):
            raise ValueError('"reason" cannot name an axis')
        if self.columns.name == self.also_name():
            raise ValueError(f'"{self.also_name()}" cannot name the columns')
        if NO_SECOND_ROW in self.rows.keys():
            raise ValueError(f'"{NO_SECOND_ROW}" cannot be the key of a row')
        return self

    def also_name(self) -> str:
        """The field of the model's placement that names a second row."""
        return f"also_{self.rows.name}"

    def cells(self) -> list[str]:
        return [cell(r, c) for r in self.rows.keys() for c in self.columns.keys()]

    def label(self, niche: str) -> str:
        row, column = split_cell(niche)
        return f"{self.rows.bin(row).label} / {self.columns.bin(column).label}"

    def describe(self, niche: str) -> str:
        row, column = split_cell(niche)
        return (
            f"{self.rows.question} {self.rows.bin(row).text()}\n"
            f"{self.columns.question} {self.columns.bin(column).text()}"
        )

    def fingerprint(self) -> str:
        """The grid's identity, for archive keys and cached placements; the bins' examples
        and functions are left out, as they change neither the grid nor where an idea is
        placed."""
        no_examples = {"bins": {"__all__": {"examples", "functions"}}}
        grid = self.model_dump_json(exclude={"rows": no_examples, "columns": no_examples})
        return hashlib.sha256(grid.encode()).hexdigest()[:16]


def cell(row: str, column: str) -> str:
    return f"{row}/{column}"


def split_cell(niche: str) -> tuple[str, str]:
    row, column = niche.split("/", 1)
    return row, column


def default_niches() -> NicheSpec:
    return NicheSpec.model_validate_json(prompt_text("evolve_niches"))


def load_niches(path: Path) -> NicheSpec:
    """A niche file, or NicheFileError naming the file and the first bad field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NicheFileError(f"{path}: no such niche file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NicheFileError(f"{path}: not valid JSON: {exc}") from None
    try:
        return NicheSpec.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise NicheFileError(f"{path}: {where}: {error['msg']}") from None


@dataclass(frozen=True)
class Placement:
    niche: str
    source: Literal["model", "embedding", "cache"]
    reason: str = ""
    # A second niche the idea belongs to as much, in another row at the same column; only
    # the model names one. An idea that loses its niche may still be the elite of this one.
    also: str | None = None


class NichePlacer:
    """Places ideas in the grid: the model's rubric answer, cached, or the embedding fallback."""

    def __init__(self, spec: NicheSpec, store: Store, mode: DescriptorMode = "model"):
        self.spec = spec
        self.store = store
        self.mode = mode
        self._answer_type = _answer_type(spec)
        self._bin_vectors: tuple[np.ndarray, np.ndarray] | None = None

    def place(self, idea: Idea, model: LanguageModel) -> Placement:
        """Raises ModelError (not InvalidReply) when the model cannot be reached at all."""
        if self.mode == "embedding":
            return self.nearest(idea)
        key = hashlib.sha256(
            f"{self.spec.fingerprint()}\n{idea.Title}\n{idea.Experiment}".encode()
        ).hexdigest()
        model_id = f"{model.provider}:{model.model}"
        known = self.store.get_judgment(JUDGMENT_KIND, key, model_id)
        if known is not None and known.get("niche") in self.spec.cells():
            also = known.get("also")
            return Placement(
                known["niche"],
                "cache",
                known.get("reason", ""),
                also if also in self.spec.cells() else None,
            )
        try:
            answer = model.structured(
                [Message(role="user", content=f"The idea to place:\n{idea_for_judge(idea)}")],
                self._answer_type,
                system=self.rubric(),
                temperature=0.0,
                max_tokens=300,
                purpose="evolve.niche",
            )
        except InvalidReply as exc:
            fallback = self.nearest(idea)
            return Placement(fallback.niche, "embedding", f"model answer unusable: {exc}")
        row, column = getattr(answer, self.spec.rows.name), getattr(answer, self.spec.columns.name)
        also_row = getattr(answer, self.spec.also_name())
        niche = cell(row, column)
        also = cell(also_row, column) if also_row not in (NO_SECOND_ROW, row) else None
        self.store.put_judgment(
            JUDGMENT_KIND, key, model_id, {"niche": niche, "reason": answer.reason, "also": also}
        )
        return Placement(niche, "model", answer.reason, also)

    def rubric(self) -> str:
        def listing(axis: Axis) -> str:
            return "\n".join(f'- "{b.key}": {b.text()}' for b in axis.bins)

        return render_prompt(
            "evolve_niche",
            row_name=self.spec.rows.name,
            row_question=self.spec.rows.question,
            row_bins=listing(self.spec.rows),
            also_name=self.spec.also_name(),
            no_second_row=NO_SECOND_ROW,
            column_name=self.spec.columns.name,
            column_question=self.spec.columns.question,
            column_bins=listing(self.spec.columns),
        )

    def nearest(self, idea: Idea) -> Placement:
        """The bins whose descriptions are nearest to the idea's title and experiment."""
        rows, _ = self._vectors()
        vector = self._vector(idea)
        row = self.spec.rows.bins[int(np.argmax(rows @ vector))].key
        return Placement(cell(row, self._column(vector)), "embedding", "nearest niche description")

    def in_row(self, idea: Idea, row: str, reason: str) -> Placement:
        """The idea in a row already known, at the column whose description is nearest."""
        return Placement(cell(row, self._column(self._vector(idea))), "embedding", reason)

    def _vector(self, idea: Idea) -> np.ndarray:
        return embeddings.embed([f"{idea.Title}. {idea.Experiment}"], self.store)[0]

    def _column(self, vector: np.ndarray) -> str:
        _, columns = self._vectors()
        return self.spec.columns.bins[int(np.argmax(columns @ vector))].key

    def _vectors(self) -> tuple[np.ndarray, np.ndarray]:
        if self._bin_vectors is None:
            self._bin_vectors = (
                embeddings.embed([b.text() for b in self.spec.rows.bins], self.store),
                embeddings.embed([b.text() for b in self.spec.columns.bins], self.store),
            )
        return self._bin_vectors


def names_technique(text: str, technique: str) -> bool:
    """Whether `text` names `technique`: each of its words of four letters or more appears
    there in some form. Words are compared by the first five letters of their Snowball
    stems: the stem lets "Linear Probing" name "linear probes" (a local child's title the
    first five letters alone missed), the five letters let "normalization" name
    "normalisation" (stems "normal" and "normalis"). (MiniLM is no judge of this: it rates
    "Mixup Between Training Images" nearer "training on a fraction of the images" than
    "mixup".)"""
    # One stemmer per call: a Snowball stemmer keeps the word it works on, and evolve's
    # workers call this at the same time.
    stemmer = snowballstemmer.stemmer("english")

    def stems(words: str) -> set[str]:
        long_words = [word for word in re.findall(r"[a-z]+", words.lower()) if len(word) >= 4]
        return {stem[:5] for stem in stemmer.stemWords(long_words)}

    words = stems(technique)
    return bool(words) and words <= stems(text)


def _answer_type(spec: NicheSpec) -> type[BaseModel]:
    """The model's answer: its reason first, then one bin key per axis, then the row it also
    belongs to or "none" (enforced by schema)."""
    return create_model(
        "NichePlacement",
        reason=(str, Field(min_length=1, description="one sentence: what the idea changes")),
        **{
            axis.name: (Literal[tuple(axis.keys())], Field(description=axis.question))
            for axis in (spec.rows, spec.columns)
        },
        **{
            spec.also_name(): (
                Literal[(*spec.rows.keys(), NO_SECOND_ROW)],
                Field(description="another row the idea changes as much, or none"),
            )
        },
    )
