"""The gate: what an idea must be before it is written, whichever model drafted it.

An idea passes when it is a real experiment in plain English of sensible length, names what
to change in the template's code and what to measure (in the template's own terms and
metrics), is on the topic it was drafted for, and is neither a copy of one of the template's
seed ideas or the few-shot examples nor a duplicate of an idea that already exists.

The rules are deterministic where words decide (lengths, letters, repetition, the template's
vocabulary) and use the MiniLM embeddings where meaning decides (the topic). Every threshold
was measured on real AI Scientist ideas against their own templates' code, ideas from other
templates and domains, and the nonsense a 135M model wrote (issue 10): see
bench/bench_gate.py, whose output is kept in bench/gate_calibration.txt.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import re
import tokenize
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from ideagen import embeddings
from ideagen.dedup import duplicates_against, opening_text
from ideagen.review.lint import GateKind, LintFlag
from ideagen.schema import Idea
from ideagen.store import Store
from ideagen.template_prompt import TemplateContext

# Measured on 449 AI Scientist ideas against their own templates and 12 nonsense drafts
# (bench/gate_calibration.txt). Lengths in words: real titles run 5-19, experiments 21-180;
# the bounds leave a margin on both sides.
TITLE_WORDS = (3, 30)
EXPERIMENT_WORDS = (15, 400)
# Plain English: share of a field's visible characters that are letters (real ideas: 0.87 or
# more), share of the Experiment's words that are English function words (real: 0.17 or more),
# and the most times three consecutive words may recur (real: at most 8; a decoding loop
# repeats itself many more times).
MIN_LETTER_SHARE = 0.6
MIN_FUNCTION_WORD_SHARE = 0.12
MAX_TRIGRAM_REPEATS = 8
# Grounding: distinct terms of the template's code names and task description the idea uses
# (terms every text uses, such as "experiment" or "model", do not count). 96% of real ideas
# use 4 or more; 9 of 12 nonsense drafts use fewer. A metric of run_0/final_info.json must be
# named (89% of real ideas do; those that do not say "evaluate the effectiveness").
MIN_TEMPLATE_TERMS = 4
COPIED_WORDS = 8  # words in a row shared with the task description that make a copy
# On topic: an idea that does not use the topic's own words must be this close in meaning
# (cosine of MiniLM embeddings of the topic and the idea's opening). Meaning separates ideas
# on and off a one- or two-word topic poorly, so this only refuses what is far from it: at
# 0.10 it keeps 92% of on-topic ideas that avoid the topic's words and refuses 30% of others.
TOPIC_SIMILARITY = 0.10

FUNCTION_WORDS = frozenset(
    "a an the of and or to in on for with by from as at is are be this that these its it "
    "each into than then which while when how between over under after before both their "
    "not no".split()
)
# Words every idea and every piece of code share; naming them grounds nothing.
GENERIC_TERMS = frozenset(
    "experiment experimental template code file python script implement implementation "
    "idea research study approach method result run use using new model data train training "
    "set value number time test evaluate evaluation performance".split()
) | frozenset(
    "over under every two three them they before after about also only more less some any "
    "all other each per just like very much many such here there what who where why been "
    "being have has had were was would could should may might must can will do does did "
    "done make made get got one first last next add change go ok take start started total "
    "so no you report propose several four whole given uses tested afford held editing default "
    "help name order open load item key type split sum top out re py true false none".split()
)
# Words of the code that are Python, not the experiment.
CODE_WORDS = frozenset(keyword.kwlist) | frozenset(
    "self init super def print range len str int float dict list tuple args kwargs main "
    "os sys np torch nn os path json".split()
)
# Title words that, alone, make a placeholder rather than a title.
PLACEHOLDER_TITLE_TERMS = frozenset(
    "new novel research idea ideas proposal title paper study experiment approach method "
    "project untitled example sample improved improving better".split()
)
# Metric names in final_info.json carry qualifiers (final_, test_, best_...) that say
# nothing about what is measured; the rest, with its usual spellings, names the metric.
METRIC_QUALIFIERS = frozenset(
    "final test train training val validation eval evaluation best total avg mean num "
    "number step per".split()
)
METRIC_SYNONYMS = {
    "acc": ("accuracy", "acc", "error"),
    "accuracy": ("accuracy", "acc", "error"),
    "loss": ("loss", "cross", "entropy", "perplexity", "nll"),
    "time": ("time", "speed", "runtime", "wall", "clock", "fast", "slow", "quick", "second"),
    "parameter": ("parameter", "param", "size"),
    "divergence": ("divergence", "kl"),
}
# Kinds of data and of people an idea can only be about when its template has them: an idea
# about sentences or patients cannot run on images of clothes. A template that names any word
# of a family has that kind of data. Words with an everyday sense ("in other words") and
# "gender" (gender-based selection is a genetic-algorithm method; a seed idea uses it) are left
# out.
DATA_KIND_FAMILIES = (
    frozenset(
        "text sentence token tokenizer vocabulary vocab language char character corpus "
        "speech".split()
    ),
    frozenset("audio speech speaker spectrogram".split()),
    frozenset("ethnicity demographic patient clinical medical customer".split()),
    frozenset("video".split()),
    frozenset("molecule protein".split()),
)
# Words that say a code name is being made, not used: "add a new function `mix_batch`".
INTRODUCING_WORDS = frozenset(
    "new create creates creating add adds adding define defines defining write writes writing "
    "implement implements implementing introduce introduces introducing include includes "
    "including accept accepts called named".split()
)
# How many words before a name may say that it is new ("implement a small helper named x").
INTRODUCING_WINDOW = 8
# Used when a template has no run_0/final_info.json to read its metrics from.
DEFAULT_METRIC_TERMS = frozenset(
    "accuracy acc error loss perplexity time speed runtime divergence score f1 recall "
    "precision auc reward".split()
)


class GateFailure(BaseModel):
    """Why an idea is refused, in words that can be shown to the user and to the model."""

    kind: GateKind
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


def words(text: str) -> list[str]:
    return text.split()


_WORD = re.compile(r"[a-z0-9]+")
_CAMEL = re.compile(r"([a-z])([A-Z])")
_STOPWORDS = FUNCTION_WORDS | frozenset(
    "those we will using use based via our new also such eg ie can what more most same".split()
)


def terms(text: str) -> list[str]:
    """Lower-case words, CamelCase and snake_case split (max_lr: max, lr), a plural -s dropped,
    function words left out: the forms in which code and prose name the same things."""
    found = []
    for word in _WORD.findall(_CAMEL.sub(r"\1 \2", text).lower()):
        if len(word) < 2 or word in _STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        found.append(word)
    return found


def same_word(a: str, b: str) -> bool:
    """Two forms of one word, for matching names in prose: evolutionary ~ evolve ~ evolving,
    augmentation ~ augment, fast ~ faster. Short words must match exactly."""
    if a == b:
        return True
    shared = len(_common_prefix(a, b))
    return shared >= 4 and shared >= min(len(a), len(b)) // 2


def mentions(term: str, said: set[str]) -> bool:
    return term in said or any(same_word(term, word) for word in said)


def names_metric(spelling: str, said: set[str]) -> bool:
    """Stricter than `mentions`: a metric's name differs from the prose form only in its
    ending (accuracy ~ accurate, fast ~ faster), never compact ~ compartment."""
    for word in said:
        shared = len(_common_prefix(spelling, word))
        if word == spelling or (shared >= 4 and shared >= min(len(spelling), len(word)) - 2):
            return True
    return False


def _common_prefix(a: str, b: str) -> str:
    for index, (left, right) in enumerate(zip(a, b, strict=False)):
        if left != right:
            return a[:index]
    return a[: min(len(a), len(b))]


def code_names(code: str) -> str:
    """The names in Python code (variables, functions, classes, attributes, short string
    constants), without its comments and docstrings: the prose there uses everyday words
    that would let any text look grounded."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return re.sub(r"#[^\n]*", " ", code)
    names = []
    for token in tokens:
        if token.type == tokenize.NAME:
            names.append(token.string)
        elif token.type == tokenize.STRING and len(token.string.split()) <= 3:
            names.append(token.string)
    return " ".join(names)


def plain_english_problems(idea: Idea) -> list[GateFailure]:
    """Lengths, letters, real sentences, no decoding loops, a real title."""
    failures = []
    title_words, experiment_words = len(words(idea.Title)), len(words(idea.Experiment))
    if not TITLE_WORDS[0] <= title_words <= TITLE_WORDS[1]:
        failures.append(
            GateFailure(
                kind="length",
                message=f"the Title has {title_words} words; a title has "
                f"{TITLE_WORDS[0]} to {TITLE_WORDS[1]}",
            )
        )
    if not EXPERIMENT_WORDS[0] <= experiment_words <= EXPERIMENT_WORDS[1]:
        failures.append(
            GateFailure(
                kind="length",
                message=f"the Experiment has {experiment_words} words; an experiment "
                f"described well takes {EXPERIMENT_WORDS[0]} to {EXPERIMENT_WORDS[1]}",
            )
        )
    for field_name in ("Title", "Experiment"):
        share = letter_share(getattr(idea, field_name))
        if share < MIN_LETTER_SHARE:
            failures.append(
                GateFailure(
                    kind="not_plain_english",
                    message=f"the {field_name} is mostly digits or symbols "
                    f"({share:.0%} letters), not words",
                )
            )
    if experiment_words >= EXPERIMENT_WORDS[0]:
        share = function_word_share(idea.Experiment)
        if share < MIN_FUNCTION_WORD_SHARE:
            failures.append(
                GateFailure(
                    kind="not_plain_english",
                    message=f"the Experiment is not written in sentences ({share:.0%} of its "
                    "words are words like 'the', 'of', 'and')",
                )
            )
    sentence = repeated_sentence(idea.Experiment)
    if sentence:
        failures.append(
            GateFailure(
                kind="not_plain_english",
                message=f"the Experiment says the same sentence twice ({sentence!r})",
            )
        )
    repeated, count = most_repeated_trigram(f"{idea.Title} {idea.Experiment}")
    if count > MAX_TRIGRAM_REPEATS:
        failures.append(
            GateFailure(
                kind="not_plain_english",
                message=f"the text repeats itself ({repeated!r} {count} times)",
            )
        )
    if not placeholder_free(idea.Title):
        failures.append(
            GateFailure(
                kind="placeholder_title",
                message=f"the Title {idea.Title!r} names no subject",
            )
        )
    return failures


def letter_share(text: str) -> float:
    visible = [char for char in text if not char.isspace()]
    return sum(char.isalpha() for char in visible) / len(visible) if visible else 0.0


def function_word_share(text: str) -> float:
    tokens = re.findall(r"[a-z]+", text.lower())
    return sum(token in FUNCTION_WORDS for token in tokens) / len(tokens) if tokens else 0.0


def most_repeated_trigram(text: str) -> tuple[str, int]:
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    counts: dict[tuple[str, ...], int] = {}
    for index in range(len(tokens) - 2):
        key = tuple(tokens[index : index + 3])
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "", 0
    best = max(counts, key=lambda key: counts[key])
    return " ".join(best), counts[best]


def repeated_sentence(text: str) -> str | None:
    """The first sentence of six words or more that the text says twice, if any."""
    seen: set[str] = set()
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        key = " ".join(re.findall(r"[a-z0-9]+", sentence.lower()))
        if len(key.split()) < 6:
            continue
        if key in seen:
            return sentence.strip()
        seen.add(key)
    return None


def placeholder_free(title: str) -> bool:
    return any(term not in PLACEHOLDER_TITLE_TERMS for term in terms(title))


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


class TemplateTerms:
    """What a template's code and task description give an idea to name: its vocabulary,
    and the metrics its runs report."""

    def __init__(self, template: TemplateContext, metric_names: Sequence[str] | None = None):
        self.template = template
        self.metric_names = (
            list(metric_names) if metric_names is not None else final_info_metrics(template.folder)
        )

    @cached_property
    def vocabulary(self) -> frozenset[str]:
        text = f"{code_names(self.template.experiment_code)}\n{self.template.task_description}"
        return (
            frozenset(term for term in terms(text) if not term.isdigit() and term not in CODE_WORDS)
            - GENERIC_TERMS
        )

    @cached_property
    def metrics(self) -> dict[str, frozenset[str]]:
        """Each metric of run_0/final_info.json, with the words that name it in prose."""
        found: dict[str, frozenset[str]] = {}
        for key in self.metric_names:
            names = [term for term in terms(key.replace("_", " ")) if term]
            core = [term for term in names if term not in METRIC_QUALIFIERS] or names
            spellings = {spelling for term in core for spelling in METRIC_SYNONYMS.get(term, ())}
            found[key] = frozenset(core) | spellings
        return found

    @cached_property
    def code_identifiers(self) -> frozenset[str]:
        """Every name experiment.py uses or defines, its metrics, and the code names its task
        description mentions: what an idea may refer to as already there."""
        text = f"{code_names(self.template.experiment_code)} {self.template.task_description}"
        names = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)
        return frozenset(name.lower() for name in [*names, *self.metric_names])

    @cached_property
    def _tree(self) -> ast.Module | None:
        try:
            return ast.parse(self.template.experiment_code)
        except SyntaxError:
            return None

    @cached_property
    def functions(self) -> list[str]:
        """The functions and classes experiment.py defines at the top level."""
        body = self._tree.body if self._tree else []
        return [node.name for node in body if isinstance(node, _DEFINITIONS)]

    @cached_property
    def task_spans(self) -> frozenset[tuple[str, ...]]:
        """The task description's runs of words, less those that only list what the runs
        report: the local model's "compare the test accuracy, test loss, final training loss
        and training time" names the results, it does not copy the task (two of the demo's
        children were refused for it)."""
        metric_words = {word for key in self.metric_names for word in key.lower().split("_")}
        metric_words |= set().union(*self.metrics.values())
        prefixes = {word[:5] for word in metric_words}

        def lists_metrics(span: tuple[str, ...]) -> bool:
            return all(word in FUNCTION_WORDS or word[:5] in prefixes for word in span)

        spans = word_spans(self.template.task_description)
        return frozenset(span for span in spans if not lists_metrics(span))

    @cached_property
    def absent_data_kinds(self) -> frozenset[str]:
        """The words of DATA_KIND_FAMILIES whose family the code and task never mention."""
        text = f"{self.template.experiment_code}\n{self.template.task_description}"
        template_words = set(terms(text))
        has = frozenset().union(*(f for f in DATA_KIND_FAMILIES if f & template_words))
        return frozenset().union(*DATA_KIND_FAMILIES) - has

    @cached_property
    def callables(self) -> frozenset[str]:
        """Every function, method and class experiment.py defines, at any depth."""
        nodes = ast.walk(self._tree) if self._tree else ()
        return frozenset(node.name.lower() for node in nodes if isinstance(node, _DEFINITIONS))

    def metric_list(self) -> str:
        """The metrics as a prompt names them."""
        return ", ".join(self.metric_names) or "the results it reports"

    def used(self, idea: Idea) -> list[str]:
        """The template's terms the idea uses, in order of first use."""
        seen = dict.fromkeys(terms(f"{idea.Title} {idea.Experiment}"))
        return [term for term in seen if term in self.vocabulary]

    def measured(self, idea: Idea) -> list[str]:
        """The metrics the idea says it measures (any measurement word when the template
        has no baseline run to read metrics from)."""
        said = set(terms(idea.Experiment))
        if not self.metrics:
            return sorted(term for term in DEFAULT_METRIC_TERMS if names_metric(term, said))
        return [
            key
            for key, spellings in self.metrics.items()
            if any(names_metric(spelling, said) for spelling in spellings)
        ]


_BACKTICKED = re.compile(r"`([a-z_][a-z0-9_]*)(?:\([^`]*\))?`")
_SNAKE_CASE = re.compile(r"(?<![\w.`])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w`])")
_CALLED = re.compile(r"(?<![\w.`])([a-z_][a-z0-9_]*)\(\)")


def referenced_code_names(text: str) -> dict[str, int]:
    """The lower-case code names the text uses (`backticked`, snake_case or called()), each
    with the position of its first use. Dotted and CamelCase names are library API (nn.Dropout,
    AdamW) rather than the template's."""
    found: dict[str, int] = {}
    for pattern in (_BACKTICKED, _SNAKE_CASE, _CALLED):
        for match in pattern.finditer(text):
            name = match.group(1)
            found[name] = min(found.get(name, match.start()), match.start())
    return found


def introduced_as_new(text: str, name: str, position: int) -> bool:
    """Whether the words just before a name, in its sentence, say it is being made, or a
    value is given to it (`seq_length=64`)."""
    if re.match(r"\s*=", text[position + len(name) :]):
        return True
    sentence_start = max(text.rfind(mark, 0, position) for mark in ".;:") + 1
    before = re.findall(r"[a-z]+", text[sentence_start:position].lower())
    return bool(INTRODUCING_WORDS.intersection(before[-INTRODUCING_WINDOW:]))


def unknown_code_names(idea: Idea, template_terms: TemplateTerms) -> list[str]:
    """Names the idea uses as if experiment.py had them, which it does not."""
    text = f"{idea.Title}. {idea.Experiment}"
    known = set(template_terms.code_identifiers) | {idea.Name}
    functions = set(template_terms.callables)
    unknown = []
    for name, position in referenced_code_names(text).items():
        if introduced_as_new(text, name, position):
            known.add(name)
            functions.add(name)
        elif called_a_function(text, name):
            if name not in functions:
                unknown.append(name)
        elif name not in known and name.removesuffix("s") not in known:
            unknown.append(name)
    return unknown


def called_a_function(text: str, name: str) -> bool:
    """Whether the text calls `name` a function or method, or writes it as a call."""
    quoted = rf"`?{re.escape(name)}(?:\(\))?`?"
    return bool(
        re.search(rf"{quoted}\s+(?:function|method)|(?:function|method)\s+{quoted}", text)
        or re.search(rf"(?<![\w.]){re.escape(name)}\(\)", text)
    )


def foreign_data_terms(idea: Idea, template_terms: TemplateTerms) -> list[str]:
    """Kinds of data or people the idea is about that the template's code and task never
    mention."""
    said = dict.fromkeys(terms(f"{idea.Title} {idea.Experiment}"))
    return [term for term in said if term in template_terms.absent_data_kinds]


def final_info_metrics(folder: Path) -> list[str]:
    """The metric names of the template's baseline run, or [] when it has none readable."""
    try:
        info = json.loads((folder / "run_0" / "final_info.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    names: list[str] = []
    if isinstance(info, dict):
        for dataset in info.values():
            means = dataset.get("means") if isinstance(dataset, dict) else None
            if isinstance(means, dict):
                names += [name for name in means if name not in names]
    return names


# Something that selects or tunes (a fitness, early stopping, a search, a pick of the best),
# then, before the sentence ends and before any word of reporting, the test data as what it
# goes by: "fitness is the test accuracy", "select the best width on the test set". Reporting
# the test accuracy of what was selected is what the test data is for, and passes.
_SELECTS_ON_TEST = re.compile(
    r"(?<![a-z])(?:fitness|select\w*|early[\s-]stop\w*|tun(?:e|es|ed|ing)|choos\w*|chosen"
    r"|pick\w*|rank\w*|maximi[sz]\w*|minimi[sz]\w*)"
    r"(?:(?!test|evaluat|report|measur|compar|assess|final|never|\bnot?\b|instead|rather"
    r"|\band\b|\bthen\b)[^.;]){0,60}?"
    r"(?:\b(?:by|on|using|from|as|is|be|are|of|via|to|with|against|monitor(?:s|ing)?)\s+"
    r"|(?<=maximi[sz]e\s)|(?<=minimi[sz]e\s)|(?<=maximi[sz]es\s)|(?<=minimi[sz]es\s))"
    r"(?:the\s+|its\s+|their\s+|a\s+)?test(?:[\s_-](?:set|data|split|accuracy|loss|error"
    r"|performance|images|score))",
    re.IGNORECASE,
)


def selects_on_test_data(idea: Idea) -> str | None:
    """The words where the idea selects or tunes on the test data, or None."""
    match = _SELECTS_ON_TEST.search(idea.Experiment)
    return match.group(0) if match else None


def word_spans(text: str) -> frozenset[tuple[str, ...]]:
    """Every COPIED_WORDS words in a row of `text`, lower-cased."""
    said = _WORD.findall(text.lower())
    return frozenset(tuple(said[i : i + COPIED_WORDS]) for i in range(len(said) - COPIED_WORDS + 1))


def copied_span(text: str, spans: frozenset[tuple[str, ...]]) -> str | None:
    """The first COPIED_WORDS words in a row of `text` that are among `spans`, or None."""
    said = _WORD.findall(text.lower())
    for i in range(len(said) - COPIED_WORDS + 1):
        if tuple(said[i : i + COPIED_WORDS]) in spans:
            return " ".join(said[i : i + COPIED_WORDS])
    return None


def copied_from_task(idea: Idea, template_terms: TemplateTerms) -> str | None:
    """Words the Experiment copies from the template's task description: a small model pads
    its runs with the task's own sentences ("takes about a minute on two CPU cores, so an
    idea can afford several runs")."""
    return copied_span(idea.Experiment, template_terms.task_spans)


def grounding_problems(idea: Idea, template_terms: TemplateTerms) -> list[GateFailure]:
    failures = []
    used = template_terms.used(idea)
    if len(used) < MIN_TEMPLATE_TERMS:
        shown = ", ".join(used) if used else "none"
        failures.append(
            GateFailure(
                kind="ungrounded",
                message=f"it names {len(used)} of the things in experiment.py ({shown}); "
                f"say what to change there (at least {MIN_TEMPLATE_TERMS} of its settings, "
                "layers or steps)",
            )
        )
    unknown = unknown_code_names(idea, template_terms)
    if unknown:
        shown = ", ".join(f"`{name}`" for name in unknown)
        defined = ", ".join(template_terms.functions) or "none"
        failures.append(
            GateFailure(
                kind="unknown_code",
                message=f"it uses {shown} as if experiment.py had it, and it does not (its "
                f"functions: {defined}); name what is there, or say that it adds a new one",
            )
        )
    foreign = foreign_data_terms(idea, template_terms)
    if foreign:
        failures.append(
            GateFailure(
                kind="foreign_data",
                message=f"it is about {', '.join(foreign)}, which the template's data does not "
                "have (its code and task description never mention it)",
            )
        )
    copied = copied_from_task(idea, template_terms)
    if copied:
        failures.append(
            GateFailure(
                kind="copies_task",
                message=f"it copies the template's task description ({copied!r}); say what "
                "this idea changes and measures instead",
            )
        )
    on_test = selects_on_test_data(idea)
    if on_test:
        failures.append(
            GateFailure(
                kind="selects_on_test",
                message=f"it selects or tunes on the test data ({on_test!r}); score the "
                "choice on images held out from the training data, and keep the test data "
                "for the reported result",
            )
        )
    if not template_terms.measured(idea):
        metrics = ", ".join(template_terms.metrics) or ", ".join(sorted(DEFAULT_METRIC_TERMS))
        failures.append(
            GateFailure(
                kind="no_measurement",
                message=f"the Experiment measures none of the template's results ({metrics})",
            )
        )
    return failures


class Gate:
    """The checks for one template (and, when drafting, one topic)."""

    def __init__(
        self,
        template: TemplateContext,
        store: Store,
        *,
        topic: str | None = None,
        examples: Sequence[Idea] = (),
        instructions: Sequence[str] = (),
    ):
        """`instructions`: what the drafting model is told to do, which an idea must not
        restate (a small model answered evolve's crossover prompt with the prompt itself)."""
        self.template = template
        self.store = store
        self.topic = " ".join(topic.split()) if topic else None
        self.template_terms = TemplateTerms(template)
        self.examples = list(examples)
        self.instruction_spans = frozenset().union(*(word_spans(text) for text in instructions))

    def check(self, idea: Idea) -> list[GateFailure]:
        """Every failure of one idea except duplication of existing ideas (see `distinct`)."""
        failures = plain_english_problems(idea)
        failures += grounding_problems(idea, self.template_terms)
        if self.topic:
            failures += self.topic_problems(idea)
        failures += self.copy_problems(idea)
        failures += self.instruction_problems(idea)
        return failures

    def instruction_problems(self, idea: Idea) -> list[GateFailure]:
        copied = copied_span(f"{idea.Title}. {idea.Experiment}", self.instruction_spans)
        if copied is None:
            return []
        return [
            GateFailure(
                kind="copies_instructions",
                message=f"it restates its instructions ({copied!r}) instead of carrying them "
                "out; say what this idea changes and measures",
            )
        ]

    def topic_terms(self) -> list[str]:
        return [term for term in terms(self.topic or "") if term not in GENERIC_TERMS]

    def topic_similarity(self, idea: Idea) -> float:
        vectors = embeddings.embed([self.topic or "", opening_text(idea)], self.store)
        return float(np.dot(vectors[0], vectors[1]))

    def names_topic(self, idea: Idea) -> bool:
        """Whether the idea uses every word of the topic (in some form)."""
        topic_terms = self.topic_terms()
        said = set(terms(f"{idea.Title} {idea.Experiment}"))
        return bool(topic_terms) and all(mentions(term, said) for term in topic_terms)

    def topic_problems(self, idea: Idea) -> list[GateFailure]:
        if self.names_topic(idea):
            return []
        similarity = self.topic_similarity(idea)
        if similarity >= TOPIC_SIMILARITY:
            return []
        return [
            GateFailure(
                kind="off_topic",
                message=f"it is not about {self.topic!r} (it never names it, and its meaning "
                f"is {similarity:.2f} close to it; ideas on the topic are at least "
                f"{TOPIC_SIMILARITY})",
            )
        ]

    def copy_problems(self, idea: Idea) -> list[GateFailure]:
        if not self.examples:
            return []
        same_title = [e for e in self.examples if same_title_as(e, idea)]
        matches = duplicates_against([idea], self.examples, self.store)
        if not same_title and not matches:
            return []
        copied = same_title[0] if same_title else self.examples[matches[0].j]
        return [
            GateFailure(
                kind="copies_example",
                message=f"it restates the example idea {copied.summary()!r}",
            )
        ]

    def distinct(self, idea: Idea, existing: Sequence[Idea]) -> GateFailure | None:
        """A failure when `idea` is the same experiment as one of `existing`."""
        matches = duplicates_against([idea], list(existing), self.store)
        if not matches:
            return None
        return GateFailure(
            kind="duplicate",
            message=f"it duplicated the existing idea {existing[matches[0].j].summary()!r}",
        )


def same_title_as(first: Idea, second: Idea) -> bool:
    """Whether two ideas carry one title, case and spacing aside."""
    return " ".join(first.Title.casefold().split()) == " ".join(second.Title.casefold().split())


def review_flags(idea: Idea, gate: Gate | None) -> list[LintFlag]:
    """The gate's failures as review flags. Without the template, only what needs none (plain
    English, lengths); no topic (a reviewed file has none) and no copy check (an AI Scientist
    ideas.json starts with its own seed ideas)."""
    failures = gate.check(idea) if gate else plain_english_problems(idea)
    return [LintFlag(kind=f.kind, message=f.message, evidence=f.message) for f in failures]
