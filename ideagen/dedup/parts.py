"""What an idea changes and what it measures.

Ideas from one template measure much the same things with much the same words, and two
ideas are one experiment only when they make the same change. Comparing the change with
the change and the measurement with the measurement tells "another change, measured the
same way" (related) from "the same change, worded differently" (duplicate) better than
comparing whole texts.

With a model (the dedup judge), the model reads each idea once and names its change and its
measurement; the answer is kept in the store under the idea's content hash, so no idea is
asked about twice. Without one, or when the model's reply is unusable, a rule-based parse
is used: each sentence of the Experiment is a measurement when one of its first words is a
measuring verb (or, after the first sentence, it names a metric), and a change otherwise;
the Name and the Title belong to the change.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from ideagen.embeddings import content_hash
from ideagen.providers.base import InvalidReply, LanguageModel, Message
from ideagen.resources import render_prompt
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.untrusted import fence

PARTS_KIND = "dedup_parts"  # the store's judgment kind for the model's answers

_SENTENCE = re.compile(r"(?<=[.;!?])\s+")
_LEAD_WORDS = 4  # a measuring verb counts among this many first words of a sentence
_MEASURING = frozenset(
    "evaluate evaluating evaluated evaluation measure measuring measured measurement compare "
    "comparing compared comparison assess assessing analyze analyzing analyse analysing "
    "analysis track tracking report reporting visualize visualise visualizing plot plotting "
    "monitor monitoring record recording quantify quantifying log logging observe observing "
    "examine examining investigate investigating study studying test testing validate "
    "benchmark benchmarking correlate correlating identify determine".split()
)
_METRIC = re.compile(r"\bmetrics?\b|\baccuracy\b|\bperplexity\b|\bKL\b", re.IGNORECASE)


class IdeaParts(BaseModel):
    change: str
    measure: str


class ModelParts(BaseModel):  # the model's answer (the docstring would be part of its schema)
    change: str = Field(
        min_length=1,
        description="what the idea changes in the experiment's code: the specific method, "
        "component or setting it adds or replaces, in one sentence",
    )
    measure: str = Field(
        min_length=1,
        description="what the idea measures to judge its change: metrics, analyses and "
        "comparisons, in one sentence",
    )


class ReadParts(BaseModel):
    """An idea's parts, where they came from, and why the model's were not used."""

    parts: IdeaParts
    source: Literal["model", "rules"]
    note: str | None = None


def split_parts(idea: Idea) -> IdeaParts:
    """The rule-based parse."""
    change = [idea.Name.replace("_", " "), idea.Title]
    measure = []
    for position, sentence in enumerate(_SENTENCE.split(idea.Experiment.strip())):
        lead = {word.lower() for word in re.findall(r"[A-Za-z]+", sentence)[:_LEAD_WORDS]}
        if lead & _MEASURING or (position > 0 and _METRIC.search(sentence)):
            measure.append(sentence)
        else:
            change.append(sentence)
    return IdeaParts(change=" ".join(change), measure=" ".join(measure))


def read_parts(idea: Idea, store: Store, model: LanguageModel | None = None) -> ReadParts:
    """The idea's parts: the model's (asked once per idea and model ever) when a model is
    given, else the rule-based parse.

    A reply that stays invalid after the provider's repairs falls back to the rule-based parse
    with a note saying so, and is not kept, so a later run asks again; a failed call (the
    connection, the key) raises ModelError as every dedup model call does.
    """
    if model is None:
        return ReadParts(parts=split_parts(idea), source="rules")
    key = parts_key(idea)
    answer = store.get_judgment(PARTS_KIND, key, model.model)
    if answer is None:
        try:
            reply = model.structured(
                [Message(role="user", content=_question(idea))],
                ModelParts,
                system=render_prompt("dedup_parts"),
                temperature=0.0,
                max_tokens=200,
                purpose="dedup parts",
            )
        except InvalidReply as error:
            note = (
                f"{idea.Name}: {model.model} gave no usable change and measure ({error}); "
                "its rule-based parse is compared instead"
            )
            return ReadParts(parts=split_parts(idea), source="rules", note=note)
        answer = reply.model_dump()
        store.put_judgment(PARTS_KIND, key, model.model, answer)
    return ReadParts(parts=IdeaParts.model_validate(answer), source="model")


def parts_key(idea: Idea) -> str:
    """The idea's content hash: what the model was shown."""
    return content_hash(f"{idea.Name}\n{idea.Title}\n{idea.Experiment}")


def _question(idea: Idea) -> str:
    shown = f"Name: {idea.Name}\nTitle: {idea.Title}\nExperiment: {idea.Experiment}"
    return f"{fence(shown)}\n\nWhat does this idea change, and what does it measure?"
