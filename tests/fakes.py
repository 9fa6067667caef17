"""The scripted models tests answer with, behind the loopback server (testkit/loopback.py).

Each one tells calls apart by the purpose ideagen sends with every request, never by prompt
wording, and answers from what the request shows, as a model would.
"""

from __future__ import annotations

import json
import re
import zlib

from testkit.ideas import IDEA_BANK, idea_json
from testkit.loopback import ReceivedRequest, Reply

REVIEW_PURPOSES = {
    "review.judge": "judge",
    "review.pairwise": "pairwise",
    "review.novelty_queries": "queries",
    "review.novelty_verdict": "verdict",
}


def idea_in(text: str) -> dict:
    """The idea JSON the judge was shown inside a request."""
    start = text.index("{")
    data, _ = json.JSONDecoder().raw_decode(text[start:])
    return data


def quality(name: str) -> int:
    """A stable per-idea score the scripted judge gives, 1-10."""
    return zlib.crc32(name.encode()) % 10 + 1


class ScriptedReviewer:
    """Answers review requests as a model would: which call it is comes from the request's
    purpose, the answer from the idea shown in it.

    judge: scores from `quality(Name)`; pairwise: prefers the higher quality (or always the
    first idea shown, with `position_bias`); queries: the idea's title words; verdict:
    `not_novel` naming paper `verdict_paper` when set and its title shares two words with
    the idea's, else novel.
    """

    def __init__(self, position_bias: bool = False, verdict_paper: int | None = None):
        self.position_bias = position_bias
        self.verdict_paper = verdict_paper
        self.seen: dict[str, list[ReceivedRequest]] = {}

    def __call__(self, request: ReceivedRequest) -> str:
        kind, user = REVIEW_PURPOSES.get(request.purpose), request.last_user_text
        if kind == "judge":
            answer = self._judge(idea_in(user))
        elif kind == "pairwise":
            answer = self._pairwise(user)
        elif kind == "queries":
            title = re.search(r"Idea title: (.*)", user).group(1)
            answer = {"query": " ".join(title.split()[:3]), "other_query": None}
        elif kind == "verdict":
            if self.verdict_paper is None or not self._names_the_idea(user):
                answer = {"reason": "nothing listed does it", "verdict": "novel", "paper": 0}
            else:
                answer = {"reason": "same", "verdict": "not_novel", "paper": self.verdict_paper}
        else:
            raise AssertionError(f"unexpected request with purpose {request.purpose!r}")
        self.seen.setdefault(kind, []).append(request)
        return json.dumps(answer)

    def _names_the_idea(self, prompt: str) -> bool:
        """Whether paper `verdict_paper` shares two title words with the idea (a paper number
        that is not listed is answered as it is, to test that case)."""
        listed = re.search(rf"^\[{self.verdict_paper}\] (.*)$", prompt, re.MULTILINE)
        if listed is None:
            return True
        idea_title = re.search(r"Idea title: (.*)", prompt).group(1)
        shared = set(idea_title.lower().split()) & set(listed.group(1).lower().split())
        return len(shared - {"for", "of", "the", "a", "on"}) >= 2

    def _judge(self, idea: dict) -> dict:
        score = quality(idea["Name"])
        return {
            "Interestingness": score,
            "interestingness_rationale": f"interest of {idea['Name']}",
            "Feasibility": 11 - score,
            "feasibility_rationale": "fits the template",
            "Novelty": max(1, score - 1),
            "novelty_rationale": "some prior work",
        }

    def _pairwise(self, text: str) -> dict:
        names = re.findall(r'"Name": "([a-z0-9_]+)"', text)
        if self.position_bias:
            return {"better": "A", "reason": "first"}
        better = "A" if quality(names[0]) >= quality(names[1]) else "B"
        return {"better": better, "reason": "higher quality"}


class ChatPartner:
    """Proposes ideas from IDEA_BANK in fenced JSON in conversation, revises on request."""

    def __init__(self) -> None:
        self.next_idea = 0

    def __call__(self, request: ReceivedRequest) -> Reply:
        text = request.last_user_text
        if request.purpose == "chat-refine":
            shown = json.loads(text[text.index("{") : text.index("}") + 1])
            shown["Experiment"] += " Use only two epochs to keep it cheap."
            shown["Feasibility"] = 9
            return Reply(json.dumps(shown))
        blocks = []
        for _ in range(2):
            name, title, experiment = IDEA_BANK[self.next_idea]
            self.next_idea += 1
            blocks.append("```json\n" + json.dumps(idea_json(name, title, experiment)) + "\n```")
        return Reply(
            "Here are two directions worth trying.\n\n"
            + blocks[0]
            + "\n\nThe second one is cheaper:\n\n"
            + blocks[1]
            + '\n\nA broken one: ```json\n{"Name": "x"}\n```'
        )
