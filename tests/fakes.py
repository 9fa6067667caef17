"""The scripted models tests answer with, behind the loopback server (testkit/loopback.py).

Each one tells calls apart by the purpose ideagen sends with every request, never by prompt
wording, and answers from what the request shows, as a model would.
"""

from __future__ import annotations

import json
import re
import shutil
import zlib
from pathlib import Path

from ideagen.schema import Idea
from testkit.ideas import IDEA_BANK, idea_json
from testkit.loopback import ReceivedRequest, Reply

TEMPLATE = Path(__file__).resolve().parents[1] / "template"
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


# A fake AI Scientist checkout: its results folders as SakanaAI/AI-Scientist writes them.


def final_info(per_seed: dict[str, list[float]]) -> dict:
    """The template's final_info.json: means, standard errors of the mean, per-seed values
    (template/experiment.py writes exactly these three blocks)."""
    means = {k: sum(v) / len(v) for k, v in per_seed.items()}
    stderrs = {}
    for key, values in per_seed.items():
        n = len(values)
        var = sum((x - means[key]) ** 2 for x in values) / (n - 1) if n > 1 else 0.0
        stderrs[key] = (var / n) ** 0.5
    return {"FashionMNIST": {"means": means, "stderrs": stderrs, "final_info_dict": per_seed}}


def seeds(accuracy: tuple[float, float], loss: tuple[float, float]) -> dict[str, list[float]]:
    return {
        "test_accuracy": list(accuracy),
        "test_loss": list(loss),
        "final_train_loss": [0.3, 0.31],
        "train_time": [40.0, 42.0],
    }


BASELINE = seeds((0.930, 0.932), (0.280, 0.282))  # mean 0.931, stderr 0.001


class AIScientistCheckout:
    """An AI Scientist folder with the template installed and ideas run through it."""

    def __init__(self, root: Path, experiment: str = "fashion_mnist"):
        self.root = root
        self.experiment = experiment
        self.template = root / "templates" / experiment
        self.results = root / "results" / experiment
        shutil.copytree(TEMPLATE, self.template, ignore=shutil.ignore_patterns("__*"))
        (self.template / "run_0" / "final_info.json").write_text(json.dumps(final_info(BASELINE)))
        self.results.mkdir(parents=True)

    def idea_folder(self, idea: Idea, stamp: str, with_run_0: bool = True) -> Path:
        # launch_scientist.py lines 166-171: results/<experiment>/<timestamp>_<Name>, a copy
        # of the template folder (run_0 included)
        folder = self.results / f"{stamp}_{idea.Name}"
        shutil.copytree(self.template, folder)
        if not with_run_0:
            shutil.rmtree(folder / "run_0")
            return folder
        # lines 180-185: notes.txt opens with the title and the experiment
        (folder / "notes.txt").write_text(
            f"# Title: {idea.Title}\n# Experiment description: {idea.Experiment}\n"
            f"## Run 0: Baseline\nResults: {{...}}\nDescription: Baseline results.\n"
        )
        return folder

    @staticmethod
    def run(folder: Path, number: int, per_seed: dict[str, list[float]] | None) -> None:
        # perform_experiments.py lines 33-36: run_<i>.py is copied for every attempt; lines
        # 52-56: a failed run's folder is removed, so only a success leaves final_info.json
        shutil.copy(folder / "experiment.py", folder / f"run_{number}.py")
        if per_seed is not None:
            (folder / f"run_{number}").mkdir()
            (folder / f"run_{number}" / "final_info.json").write_text(
                json.dumps(final_info(per_seed), indent=2)
            )

    @staticmethod
    def paper(folder: Path, idea: Idea, overall: int | None, decision: str | None) -> None:
        # perform_writeup.py line 512: <folder>/<Name>.pdf; launch_scientist.py lines 277-279:
        # review.txt is json.dumps(review, indent=4) with perform_review.py's fields
        (folder / f"{idea.Name}.pdf").write_bytes(b"%PDF-1.5\n%%EOF\n")
        if overall is None:
            return
        review = {
            "Summary": "The paper studies a change to the CNN.",
            "Strengths": ["Clear setup."],
            "Weaknesses": ["Small effect."],
            "Originality": 2,
            "Quality": 2,
            "Clarity": 3,
            "Significance": 2,
            "Questions": ["Why this value?"],
            "Limitations": ["One dataset."],
            "Ethical Concerns": False,
            "Soundness": 2,
            "Presentation": 3,
            "Contribution": 2,
            "Overall": overall,
            "Confidence": 4,
            "Decision": decision,
        }
        (folder / "review.txt").write_text(json.dumps(review, indent=4))
