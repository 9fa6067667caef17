"""A model's verdict on the pairs the scores leave uncertain, cached in the store."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field

from ideagen.embeddings import content_hash
from ideagen.providers.base import LanguageModel, Message
from ideagen.resources import render_prompt
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.untrusted import fence

# With --judge, pairs whose probability lies within this distance of the threshold are asked.
UNCERTAIN_BAND = 0.25
JUDGE_KIND = "dedup_judge"  # the store's judgment kind for the answers

Verdict = Literal["duplicate", "related", "distinct"]


# The fields are generated in this order: a small model names each idea's change and answers
# the two deciding questions before it gives a verdict, so the verdict follows from what it
# wrote rather than from how alike the two texts read.
# The length bounds keep a local model's answer short; the local grammar enforces them (they
# had run to 130-215 tokens; bounded, a call took 19.8 s on 2 idle cores,
# bench/dedup_judge_local.txt).
class JudgeAnswer(BaseModel):
    change_a: str = Field(
        max_length=80, description="what idea A changes in the experiment, in at most 8 words"
    )
    change_b: str = Field(
        max_length=80, description="what idea B changes in the experiment, in at most 8 words"
    )
    same_change: bool = Field(description="whether A and B make the same change by one method")
    same_measurement: bool = Field(description="whether A and B measure the same thing")
    verdict: Verdict
    reason: str = Field(
        max_length=200,
        description="one sentence of at most 20 words: which change and measurement decided it",
    )

    @property
    def duplicate(self) -> bool:
        # A duplicate counts only when the verdict agrees with the model's own two answers: a
        # small model that says "duplicate" of two changes it called different is not trusted.
        return self.verdict == "duplicate" and self.same_change and self.same_measurement


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
        answer = store.get_judgment(JUDGE_KIND, key, judge.model)
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
            store.put_judgment(JUDGE_KIND, key, judge.model, answer)
        answers.append(JudgeAnswer.model_validate(answer))
    return answers


def judgment_key(left: Idea, right: Idea) -> str:
    """The same for (a, b) and (b, a): the two ideas' content hashes, sorted, and the judge's
    question (its prompt and answer schema), so that a reworded judge is asked afresh."""
    hashes = sorted(content_hash(f"{idea.Title}\n{idea.Experiment}") for idea in (left, right))
    return hashlib.sha256("|".join([*hashes, _question_version()]).encode()).hexdigest()


@functools.cache
def _question_version() -> str:
    schema = json.dumps(JudgeAnswer.model_json_schema(), sort_keys=True)
    return content_hash(render_prompt("dedup_judge") + schema)


def _question(left: Idea, right: Idea) -> str:
    def show(label: str, idea: Idea) -> str:
        shown = f"Name: {idea.Name}\nTitle: {idea.Title}\nExperiment: {idea.Experiment}"
        return f"Idea {label}:\n{fence(shown)}"

    return (
        f"{show('A', left)}\n\n{show('B', right)}\n\n"
        "What does each idea change? Is it the same change? Do they measure the same thing? "
        "Then: are A and B duplicates?"
    )
