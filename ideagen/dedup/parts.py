"""What an idea changes and what it measures, read from its text.

Ideas from one template measure much the same things with much the same words, and two
ideas are one experiment only when they make the same change. Comparing the change with
the change and the measurement with the measurement tells "another change, measured the
same way" (related) from "the same change, worded differently" (duplicate) better than
comparing whole texts. The parse is rule-based: each sentence of the Experiment is a
measurement when one of its first words is a measuring verb (or, after the first sentence,
it names a metric), and a change otherwise; the Name and the Title belong to the change.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from ideagen.schema import Idea

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


def split_parts(idea: Idea) -> IdeaParts:
    change = [idea.Name.replace("_", " "), idea.Title]
    measure = []
    for position, sentence in enumerate(_SENTENCE.split(idea.Experiment.strip())):
        lead = {word.lower() for word in re.findall(r"[A-Za-z]+", sentence)[:_LEAD_WORDS]}
        if lead & _MEASURING or (position > 0 and _METRIC.search(sentence)):
            measure.append(sentence)
        else:
            change.append(sentence)
    return IdeaParts(change=" ".join(change), measure=" ".join(measure))
