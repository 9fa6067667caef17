"""Feasibility lint: what an idea asks for that an AI Scientist template cannot give it.

The AI Scientist runs `python experiment.py --out_dir=run_i` in a copy of the template, with
no other arguments, no internet-downloaded extras and a few hours of compute at most. An idea
that needs another dataset, pretrained weights, people, days of GPU time or extra
command-line arguments will fail there (or quietly test something else), so it is flagged
before money is spent on it. The checks read the idea's Title and Experiment text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ideagen.schema import Idea

# The gate's failure kinds (ideagen/gate.py), which the review shows as flags too.
GateKind = Literal[
    "length",
    "not_plain_english",
    "placeholder_title",
    "ungrounded",
    "no_measurement",
    "unknown_code",
    "foreign_data",
    "selects_on_test",
    "copies_task",
    "copies_instructions",
    "off_topic",
    "copies_example",
    "duplicate",
]

FlagKind = Literal[
    "other_dataset",
    "imagenet",
    "external_data",
    "pretrained_weights",
    "human_study",
    "long_compute",
    "extra_arguments",
]


class LintFlag(BaseModel):
    """One thing the template cannot provide, with the words of the idea that ask for it."""

    kind: FlagKind | GateKind  # GateKind: the brainstorm gate's failures (ideagen/gate.py)
    message: str
    evidence: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class _Pattern:
    kind: FlagKind
    regex: re.Pattern[str]
    message: str


def _words(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])", re.IGNORECASE)


# Named datasets an idea might reach for. ImageNet has its own flag: it is also a sign of
# pretrained weights and of compute far beyond a template run.
KNOWN_DATASETS: dict[str, str] = {
    "FashionMNIST": r"fashion[\s_-]?mnist|f-mnist",
    "MNIST": r"mnist",
    "KMNIST": r"kmnist|kuzushiji[\s_-]?mnist",
    "EMNIST": r"emnist",
    "QMNIST": r"qmnist",
    "notMNIST": r"notmnist",
    "CIFAR-10": r"cifar[\s_-]?10",
    "CIFAR-100": r"cifar[\s_-]?100",
    "SVHN": r"svhn",
    "STL-10": r"stl[\s_-]?10",
    "CelebA": r"celeb[\s_-]?a",
    "COCO": r"(?:ms[\s_-]?)?coco",
    "Pascal VOC": r"pascal[\s_-]?voc",
    "Cityscapes": r"cityscapes",
    "LSUN": r"lsun",
    "Places365": r"places[\s_-]?365",
    "Caltech-101": r"caltech[\s_-]?(?:101|256)",
    "Omniglot": r"omniglot",
    "USPS": r"usps",
    "Oxford Flowers": r"(?:oxford[\s_-]?)?flowers[\s_-]?102",
    "Food-101": r"food[\s_-]?101",
    "WikiText": r"wiki[\s_-]?text(?:[\s_-]?(?:2|103))?",
    "Penn Treebank": r"penn[\s_-]?treebank",
    "enwik8": r"enwik8",
    "text8": r"text8",
    "OpenWebText": r"openwebtext",
    "The Pile": r"the pile",
    "GLUE": r"(?:super)?glue benchmark|superglue",
    "SQuAD": r"squad",
    "IMDB": r"imdb",
    "LibriSpeech": r"librispeech",
}

IMAGENET = _words(r"(?:tiny[\s_-]?)?imagenet(?:[\s_-]?(?:1k|21k|22k))?|ilsvrc")

SIMPLE_PATTERNS: tuple[_Pattern, ...] = (
    _Pattern(
        "external_data",
        _words(
            r"(?:an?other|additional|external|extra|second|third[\s-]party|real[\s-]world)"
            r"\s+(?:\w+\s+)?(?:datasets?|data\s+sources?|corpus|corpora|benchmarks?)"
            r"|download(?:s|ing|ed)?\s+(?:\w+\s+){0,3}(?:data|images|corpus|dataset)"
            r"|(?:collect|gather)(?:s|ing|ed)?\s+(?:new|more|real[\s-]world|human)\s+"
            r"(?:data|images|samples)"
            r"|web[\s-]?scrap\w*|scrap(?:e|es|ed|ing)\s+(?:the\s+)?(?:web|data|images)"
            r"|crawl\w*\s+(?:the\s+)?web"
        ),
        "needs data beyond the template's own dataset",
    ),
    _Pattern(
        "pretrained_weights",
        _words(
            r"pre[\s-]?trained|transfer[\s-]learning|foundation\s+models?"
            r"|resnet[\s-]?(?:50|101|152)|vit[\s-]?[bhl](?:/\d+)?|bert|roberta"
            r"|clip\s+(?:model|encoder|embeddings?)"
            r"|gpt[\s-]?[234]|llama|stable\s+diffusion|hugging\s?face|model\s+zoo"
            r"|torchvision\.models"
        ),
        "needs pretrained weights, which the template does not ship and cannot download",
    ),
    _Pattern(
        "human_study",
        _words(
            r"human\s+(?:study|studies|evaluation|evaluators?|raters?|judges?|subjects?"
            r"|participants?|annotators?|annotations?|feedback|preference)"
            r"|user\s+stud(?:y|ies)|crowd[\s-]?sourc\w*|mechanical\s+turk|mturk"
            r"|survey\s+(?:of\s+)?(?:users|participants|people)|participants"
        ),
        "needs people (a study, raters or annotators); the AI Scientist runs unattended",
    ),
    _Pattern(
        "long_compute",
        _words(
            r"(?:\d+|several|many|multiple)\s+(?:gpu[\s-]?)?(?:days|weeks)"
            r"|(?:\d{2,}|several|many)\s+(?:gpu[\s-]?)?hours"
            r"|gpu[\s-]?(?:days|weeks|months)|multi[\s-]?gpu|(?:multiple|[2-9]|\d{2,})\s+gpus"
            r"|gpu\s+cluster"
            r"|distributed\s+training|tpus?|(?:\d{4,}|[1-9]\d{2,}(?:,\d{3})*)\s+epochs"
            r"|thousands\s+of\s+epochs|(?:billions?|\d+\s*b)\s+(?:of\s+)?parameters"
            r"|train(?:ing)?\s+(?:a\s+)?large\s+language\s+models?|neural\s+architecture\s+search"
        ),
        "needs far more compute than a template run (hours of GPU time at most)",
    ),
    _Pattern(
        "extra_arguments",
        re.compile(
            r"(?:command[\s-]?line|cli)\s+(?:arguments?|flags?|options?|parameters?)"
            r"|argparse|(?:new|extra|additional)\s+(?:arguments?|flags?)\s+(?:to|for)\s+"
            r"(?:experiment\.py|the\s+script)"
            r"|(?<![\w-])--(?!out_dir\b)[a-z][a-z0-9_-]*",
            re.IGNORECASE,
        ),
        "needs extra command-line arguments; the AI Scientist runs "
        "`python experiment.py --out_dir=run_i` with no others",
    ),
)


def _dataset_regex(name: str) -> re.Pattern[str]:
    """A pattern for a dataset name that tolerates the usual spellings (Fashion-MNIST...)."""
    letters = re.sub(r"[^a-z0-9]", "", name.lower())
    known = next(
        (
            pattern
            for known_name, pattern in KNOWN_DATASETS.items()
            if re.sub(r"[^a-z0-9]", "", known_name.lower()) == letters
        ),
        None,
    )
    spelled = r"[\s_-]?".join(re.escape(char) for char in letters)
    return _words(f"{known}|{spelled}" if known else spelled)


def lint_idea(idea: Idea, template_dataset: str = "FashionMNIST") -> list[LintFlag]:
    """Every flag for one idea, in a fixed order (datasets first), at most one per kind."""
    text = f"{idea.Title}\n{idea.Experiment}"
    flags: list[LintFlag] = []
    # The template's own dataset is removed first so that "MNIST" inside "Fashion-MNIST"
    # is not mistaken for a second dataset.
    rest = _dataset_regex(template_dataset).sub(" ", text)

    imagenet = IMAGENET.search(rest)
    if imagenet:
        flags.append(
            LintFlag(
                kind="imagenet",
                message="needs ImageNet: far larger than the template's data and not available",
                evidence=imagenet.group(0),
            )
        )
    others: list[str] = []
    evidence: list[str] = []
    for name, pattern in KNOWN_DATASETS.items():
        match = _words(pattern).search(rest)
        if match:
            others.append(name)
            evidence.append(match.group(0))
            rest = rest[: match.start()] + " " * len(match.group(0)) + rest[match.end() :]
    if others:
        flags.append(
            LintFlag(
                kind="other_dataset",
                message=f"names {', '.join(others)}, but the template's dataset is "
                f"{template_dataset}",
                evidence=", ".join(evidence),
            )
        )
    for check in SIMPLE_PATTERNS:
        match = check.regex.search(text)
        if match:
            flags.append(LintFlag(kind=check.kind, message=check.message, evidence=match.group(0)))
    return flags
