"""A model's verdict on the pairs the scores leave uncertain, cached in the store."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel

from ideagen.embeddings import content_hash
from ideagen.providers.base import LanguageModel, Message
from ideagen.resources import render_prompt
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.untrusted import fence

# With --judge, pairs whose probability lies within this distance of the threshold are asked.
UNCERTAIN_BAND = 0.25

Verdict = Literal["duplicate", "related", "distinct"]


class JudgeAnswer(BaseModel):
    verdict: Verdict
    reason: str


def ask_judge(
    pairs: list[tuple[Idea, Idea]], judge: LanguageModel, store: Store
) -> list[JudgeAnswer]:
    """The judge's answer for each pair, asked once per pair and model ever.

    A failed call raises ModelError; answers already given stay in the store for the rerun.
    """
    definition = render_prompt("dedup_judge")
    answers = []
    for left, right in pairs:
        key = judgment_key(left, right)
        answer = store.get_judgment("dedup", key, judge.model)
        if answer is None:
            reply = judge.structured(
                [Message(role="user", content=_question(left, right))],
                JudgeAnswer,
                system=definition,
                temperature=0.0,
                max_tokens=300,
                purpose="dedup judge",
            )
            answer = reply.model_dump()
            store.put_judgment("dedup", key, judge.model, answer)
        answers.append(JudgeAnswer.model_validate(answer))
    return answers


def judgment_key(left: Idea, right: Idea) -> str:
    """The same for (a, b) and (b, a): the two ideas' content hashes, sorted."""
    hashes = sorted(content_hash(f"{idea.Title}\n{idea.Experiment}") for idea in (left, right))
    return hashlib.sha256("|".join(hashes).encode()).hexdigest()


def _question(left: Idea, right: Idea) -> str:
    def show(label: str, idea: Idea) -> str:
        shown = f"Name: {idea.Name}\nTitle: {idea.Title}\nExperiment: {idea.Experiment}"
        return f"Idea {label}:\n{fence(shown)}"

    return f"{show('A', left)}\n\n{show('B', right)}\n\nAre A and B duplicates?"
