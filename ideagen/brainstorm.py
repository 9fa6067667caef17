"""Drafting new seed ideas for a template: draft, self-critique, check, append.

First one planning call lists N different angles on the topic (which part of experiment.py
each changes), so that the N slots do not all draft the same idea; each slot drafts its angle,
with example ideas of the right grain in the prompt (ideagen/idea_examples.py). A small model
(the local one) plans only the names of N different techniques, and writes its idea in parts
instead of a paragraph, naming the function it changes and the result it compares from the
template's own lists (`IdeaSketch`). Each draft is then improved over up to R critique rounds
that stop early when the model says nothing is left to improve. A finished idea must be a valid
idea, pass the gate (ideagen/gate.py: plain English, grounded in the template, on the topic, no
copy of an example) and the feasibility lint (nothing the template cannot give it), and not
duplicate any idea already in the output file or the store; otherwise it is discarded and
drafted again, and counted with its reason.

Ideas are drafted concurrently. Each one that passes is saved in the store with its provenance
and appended to the output file at once, atomically, under a lock: an interrupted run loses no
finished idea, and running it again continues until the file holds N ideas from the topic.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import BaseModel, Field, create_model

from ideagen import embeddings, idea_examples
from ideagen.dedup import opening_text
from ideagen.embeddings import EmbeddingModelMissing
from ideagen.gate import Gate, TemplateTerms
from ideagen.ideafile import (
    IdeaFileError,
    append_ideas,
    load_ideas,
    locked,
    slugify,
    unique_name,
)
from ideagen.providers.base import InvalidReply, LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.results import outcome_lessons
from ideagen.review.lint import KNOWN_DATASETS, lint_idea
from ideagen.schema import DraftName, Idea, IdeaExperiment, IdeaTitle, Rating
from ideagen.store import SpendSummary, Store
from ideagen.template_prompt import TemplateContext, summarize_ideas
from ideagen.untrusted import fence
from ideagen.workers import parallel_map

if TYPE_CHECKING:
    from ideagen.evolve.niches import Bin

DEFAULT_ROUNDS = 3
# A critique round re-generates the whole idea after its critique. On the local model one round
# cut the share of drafts the gate passed from 86% to 31% and made each idea five times slower,
# the revisions drifting to one idea (bench/offline_rounds_local.txt).
DEFAULT_ROUNDS_BY_PROVIDER = {"local": 0}
DEFAULT_CONCURRENCY = {"anthropic": 8, "openai": 8, "local": 1}
# A slot that keeps producing duplicates or infeasible ideas gives up after this many drafts,
# so a weak model cannot loop forever.
MAX_DRAFTS_PER_IDEA = 4
MAX_NAME_LENGTH = 60
# Refusals a draft can be corrected for in one more call, keeping its idea: everything but
# being the same idea as another (duplicate, copies_example) or about another topic.
REPAIRABLE = frozenset(
    "length not_plain_english placeholder_title ungrounded no_measurement unknown_code "
    "foreign_data selects_on_test copies_task copies_instructions infeasible".split()
)
DRAFT_MAX_TOKENS = 1024
PLAN_MAX_TOKENS = 900
ANGLE_ATTEMPTS = 2  # drafts of a slot that follow its planned angle
PROMPT_CHARS_BESIDES_CONTEXT = 4000  # instructions and the summaries of existing ideas
SAVE_GRACE_S = 10.0  # after Ctrl-C, how long an idea being written may take to finish
CRITIQUE_MAX_TOKENS = 1400
SKETCH_MAX_CHARS = {"change": 800, "runs": 300, "expected": 250}
PLAN_LISTED_IDEAS = 8
TECHNIQUES_SPARE = 2  # techniques asked for beyond the ideas wanted, as a small model repeats


class IdeaDraft(BaseModel):
    """An idea as the model writes it; `to_idea` turns it into a valid file entry."""

    Name: DraftName
    Title: IdeaTitle
    Experiment: IdeaExperiment
    Interestingness: Rating
    Feasibility: Rating
    Novelty: Rating

    def to_idea(self) -> Idea:
        name = slugify(self.Name)[:MAX_NAME_LENGTH].strip("_")
        if name == "idea":
            name = slugify(self.Title)[:MAX_NAME_LENGTH].strip("_")
        return Idea(
            Name=name or "idea",
            Title=" ".join(self.Title.split()),
            Experiment=" ".join(self.Experiment.split()),
            Interestingness=self.Interestingness,
            Feasibility=self.Feasibility,
            Novelty=self.Novelty,
        )


class IdeaSketch(BaseModel):
    """An idea as a small model writes it: in parts, with the function of experiment.py it
    changes and the result it is judged by each chosen from what the template has (see
    `sketch_schema`); `to_idea` joins the parts into the Experiment paragraph.

    Measured on the 1.5B local model asked for a whole paragraph: half its drafts named
    functions experiment.py lacks, measured nothing it reports, or restated an example.
    """

    function: str
    # The bounds reach the decoder's grammar. Without a lower one the 1.5B model's change was
    # often one vague sentence ("apply a genetic algorithm to the training process"); without
    # an upper one a field now and then ran on to max_tokens (130 s, then as long a repair).
    change: str = Field(
        min_length=200,
        max_length=SKETCH_MAX_CHARS["change"],
        description="what to implement there: how the technique works in this code, the "
        "settings it adds and their values, in two or three sentences",
    )
    runs: str = Field(
        min_length=60,
        max_length=SKETCH_MAX_CHARS["runs"],
        description="the runs to compare with the unchanged experiment.py, each with its "
        "setting values, in one sentence",
    )
    metric: str
    expected: str = Field(
        min_length=20,
        max_length=SKETCH_MAX_CHARS["expected"],
        description="the outcome that would show the idea works, in one sentence",
    )
    Title: str = Field(min_length=20, max_length=120, description="the title of a paper about it")
    Interestingness: Rating
    Feasibility: Rating
    Novelty: Rating

    def to_idea(self) -> Idea:
        experiment = (
            f"In experiment.py, change `{self._function()}`: {self._part('change')} "
            f"Runs to compare with the unchanged experiment.py: {self._part('runs')} "
            f"Compare their {self.metric.replace('_', ' ')} with the baseline's. "
            f"Expected: {self._part('expected')}"
        )
        return IdeaDraft(
            Name=slugify(self.Title)[:MAX_NAME_LENGTH],
            Title=self.Title,
            Experiment=experiment,
            Interestingness=self.Interestingness,
            Feasibility=self.Feasibility,
            Novelty=self.Novelty,
        ).to_idea()

    def _function(self) -> str:
        """The function the change names as code, when that is one function and not the one
        chosen: the grammar has the model choose `function` before it writes the change, and
        the local model now and then wrote a change to another one ("modify the conv_block
        function" under `evaluate`; 6 of 92 sketches in the bench and demo stores)."""
        choices = get_args(type(self).model_fields["function"].annotation)
        named = [name for name in choices if _names_as_code(self.change, name)]
        return named[0] if len(named) == 1 else self.function

    def _part(self, field: str) -> str:
        """The field as whole sentences: one the grammar cut at its length limit loses its
        unfinished last sentence when it has an earlier one."""
        text = " ".join(getattr(self, field).split())
        finished = text.endswith((".", "!", "?"))
        # A margin, as the grammar counts escaped characters as the JSON spells them.
        if not finished and len(text) >= SKETCH_MAX_CHARS[field] - 10 and ". " in text:
            return text[: text.rindex(". ") + 1]
        return text if finished else f"{text}."


def _names_as_code(text: str, name: str) -> bool:
    """Whether `text` names the function or class `name` as code: in backticks, called, or
    followed by "function", "class" or "method", or anywhere when it cannot be an English word
    (it has an underscore or a capital). "evaluate" and "train" are also verbs."""
    quoted = re.escape(name)
    if re.search(rf"`{quoted}[`(]|\b{quoted}(\(|\s+(function|class|method)\b)", text):
        return True
    is_identifier = "_" in name or name[:1].isupper()
    return is_identifier and re.search(rf"(?<![\w.]){quoted}\b", text) is not None


# The paragraph IdeaSketch.to_idea writes, read back into its parts.
_COMPOSED_SKETCH = re.compile(
    r"In experiment\.py, change `(?P<function>[^`]+)`: (?P<change>.+?) "
    r"Runs to compare with the unchanged experiment\.py: (?P<runs>.+?) "
    r"Compare their (?P<metric>.+?) with the baseline's\. Expected: (?P<expected>.+)",
    re.DOTALL,
)


def sketch_schema(functions: list[str], metrics: list[str]) -> type[IdeaSketch]:
    """IdeaSketch with `function` and `metric` restricted to the template's own, so that a
    constrained decoder can only write names the template has."""
    return create_model(
        "IdeaSketch",
        __base__=IdeaSketch,
        function=(
            Literal[tuple(functions)],
            Field(description="the function or class of experiment.py the change goes into"),
        ),
        metric=(
            Literal[tuple(metrics)],
            Field(description="the result of the runs that decides whether the idea works"),
        ),
    )


def weak_model_schema(model: LanguageModel, terms: TemplateTerms) -> type[IdeaSketch] | None:
    """The parts a weak model writes an idea in, or None when it writes the paragraph: a strong
    model always does, and so does a weak one on a template with no functions or no baseline
    results to choose from."""
    if model.weak and terms.functions and terms.metric_names:
        return sketch_schema(terms.functions, terms.metric_names)
    return None


# The parts of experiment.py a plan spreads its angles over: the rows of evolve's niche grid
# (prompts/evolve_niches.txt, where each is described) except "search", which is a way of
# changing a part rather than a part. Without this, 9 of 13 local drafts on "evolutionary" were
# one idea.
PlanPart = Literal["data", "architecture", "optimisation", "regularisation", "evaluation"]


class Angle(BaseModel):
    """One direction of the plan: the part of experiment.py a slot's idea changes, and the
    idea in a sentence."""

    part: PlanPart = Field(description="the part of experiment.py it changes")
    angle: str = Field(
        min_length=1,
        max_length=400,
        description="the idea in one sentence, naming the settings, functions or layers",
    )

    def __str__(self) -> str:
        return f"change the {plan_parts()[self.part].label.lower()}: {self.angle.strip()}"


class TechniquePlan(BaseModel):
    """A small model's planning reply: techniques on the topic, by name."""

    techniques: list[Annotated[str, Field(min_length=3, max_length=60)]] = Field(
        min_length=1, max_length=12
    )


class AnglePlan(BaseModel):
    """The planning call's reply: different angles on the topic, one per idea wanted."""

    angles: list[Angle] = Field(min_length=1, max_length=20)


def plan_parts() -> dict[str, Bin]:
    from ideagen.evolve.niches import default_niches  # evolve builds on brainstorm

    rows = {row.key: row for row in default_niches().rows.bins}
    return {key: rows[key] for key in get_args(PlanPart)}


def spread_angles(planned: list[Angle], topic: str, count: int) -> list[Angle]:
    """One angle per part, in the plan's order, the first the model gave for each part; when
    the model put several on one part, the parts it left out get an angle of their own."""
    by_part: dict[str, Angle] = {}
    for angle in planned:
        by_part.setdefault(angle.part, angle)
    for part in get_args(PlanPart):
        if len(by_part) >= count:
            break
        by_part.setdefault(part, Angle(part=part, angle=f"a {topic} method applied to this part"))
    return list(by_part.values())


class Critique(BaseModel):
    """One self-critique round: what is weak, whether the idea is finished, then the improved
    idea's fields (flat, so that field-by-field decoders such as the local model's fill it
    in this order: judgment first, revision after)."""

    critique: str = Field(min_length=1, description="what is weak, in two or three sentences")
    done: bool = Field(description="yes only when nothing important is left to improve")
    Name: DraftName
    Title: IdeaTitle
    Experiment: IdeaExperiment
    Interestingness: Rating
    Feasibility: Rating
    Novelty: Rating

    def revised(self) -> Idea:
        return IdeaDraft.model_validate(self.model_dump(exclude={"critique", "done"})).to_idea()


@dataclass(frozen=True)
class BrainstormEvent:
    """Progress of one idea slot, for the screen."""

    slot: int
    kind: Literal["plan", "draft", "round", "repair", "rejected", "finished"]
    round: int = 0
    detail: str = ""


@dataclass(frozen=True)
class FinishedIdea:
    idea: Idea
    store_id: int
    rounds: int
    drafts: int


@dataclass
class BrainstormResult:
    out: Path
    topic: str
    wanted: int
    run_id: str
    earlier: list[Idea]
    new: list[FinishedIdea]
    duplicates_rejected: int = 0
    infeasible_rejected: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    drafts: int = 0
    repaired: int = 0
    angles: list[str] = field(default_factory=list)
    gave_up: int = 0
    error: str | None = None
    interrupted: bool = False
    spend: SpendSummary | None = None

    @property
    def complete(self) -> bool:
        return len(self.earlier) + len(self.new) >= self.wanted

    def to_json(self) -> dict:
        spend = self.spend
        return {
            "out": str(self.out),
            "topic": self.topic,
            "wanted": self.wanted,
            "from_earlier_runs": len(self.earlier),
            "new_ideas": [finished.idea.to_entry() for finished in self.new],
            "rounds": [finished.rounds for finished in self.new],
            "duplicates_rejected": self.duplicates_rejected,
            "infeasible_rejected": self.infeasible_rejected,
            "rejected": self.rejected,
            "drafts": self.drafts,
            "repaired": self.repaired,
            "angles": self.angles,
            "gave_up": self.gave_up,
            "complete": self.complete,
            "interrupted": self.interrupted,
            "error": self.error,
            "run_id": self.run_id,
            "spend": asdict(spend) if spend else None,
        }


class BrainstormError(Exception):
    """The run cannot start (unreadable output file...): one line that says why."""


@dataclass
class _Rejected:
    kind: str  # a GateKind, "infeasible" or "invalid_reply"
    reason: str


@dataclass
class _RunState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    new: list[FinishedIdea] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)
    drafts: int = 0
    repaired: int = 0
    gave_up: int = 0

    def count_rejection(self, kind: str) -> None:
        with self.lock:
            self.rejected[kind] = self.rejected.get(kind, 0) + 1


def default_concurrency(provider: str) -> int:
    return DEFAULT_CONCURRENCY.get(provider, 4)


def default_rounds(provider: str) -> int:
    return DEFAULT_ROUNDS_BY_PROVIDER.get(provider, DEFAULT_ROUNDS)


def template_dataset(template: TemplateContext) -> str:
    """The dataset the template's code names most often (the lint's idea of 'its own data')."""
    code = template.experiment_code
    counts = {
        name: len(re.findall(rf"(?<![a-z0-9])(?:{pattern})(?![a-z0-9])", code, re.IGNORECASE))
        for name, pattern in KNOWN_DATASETS.items()
    }
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else "FashionMNIST"


def feasibility_problems(idea: Idea, dataset: str) -> list[str]:
    return [f"{flag.message} ({flag.evidence!r})" for flag in lint_idea(idea, dataset)]


def earlier_ideas(store: Store, out: Path, topic: str, template: str) -> list[Idea]:
    """Ideas of this topic that earlier runs appended to `out` and that are still in it."""
    in_file = load_ideas(out, missing_ok=True).ideas
    present = {(idea.Name, idea.Title) for idea in in_file}
    recorded = {
        (stored.idea.Name, stored.idea.Title)
        for stored in store.ideas(template=template, topic=topic)
        if stored.source_file == str(out)
    }
    return [idea for idea in in_file if (idea.Name, idea.Title) in recorded & present]


class Brainstorm:
    """One run of `ideagen brainstorm`; `run()` drafts until FILE holds `count` topic ideas."""

    def __init__(
        self,
        model: LanguageModel,
        store: Store,
        template: TemplateContext,
        *,
        topic: str,
        count: int,
        out: Path,
        rounds: int | None = None,
        concurrency: int | None = None,
        fresh: bool = False,
        run_id: str | None = None,
        report: Callable[[BrainstormEvent], None] | None = None,
    ):
        if count < 1:
            raise BrainstormError(f"-n must be at least 1, got {count}")
        rounds = default_rounds(model.provider) if rounds is None else rounds
        if rounds < 0:
            raise BrainstormError(f"--rounds must be 0 or more, got {rounds}")
        self.model = model
        self.store = store
        self.template = template
        self.topic = topic.strip()
        self.count = count
        self.out = Path(out).resolve()
        self.rounds = rounds
        self.concurrency = max(1, concurrency or default_concurrency(model.provider))
        self.fresh = fresh
        self.run_id = run_id or self.new_run_id()
        self.report = report or (lambda event: None)
        self.dataset = template_dataset(template)
        # The role and rules are as unchanging as the template's code, so they join it in the
        # cached prefix rather than being billed again on every call.
        role = render_prompt("brainstorm_system", template_system=template.system)
        self.gate = Gate(
            template, store, topic=self.topic, examples=idea_examples.gate_examples(template)
        )
        self.seeds = idea_examples.template_seeds(template)
        # A small model copies the example it is shown: seeds on the topic are only listed
        # among the existing ideas (measured: 2 of 2 drafts on "evolutionary" restated the one
        # evolutionary seed shown in full).
        off_topic_seeds = [seed for seed in self.seeds if not self.gate.names_topic(seed)]
        examples = idea_examples.few_shot_block(template, off_topic_seeds)
        self._context = f"{role}\n\n{examples}\n\n{template.cached_prefix()}"
        self._context += outcome_lessons(store, template.name)
        # bench/bench_offline_ideas.py: the 1.5B local model fixed 0 of 5 drafts it was asked
        # to repair, each call as slow as a new draft; it redrafts instead.
        self._repairs = not model.weak
        self._sketch = weak_model_schema(model, self.gate.template_terms)
        self._angles: list[str] = []
        self._cache_primed = threading.Event()
        self._state = _RunState()
        try:
            self.earlier = (
                [] if fresh else earlier_ideas(store, self.out, self.topic, template.name)[:count]
            )
        except IdeaFileError as exc:
            raise BrainstormError(str(exc)) from None

    def estimate(self) -> tuple[int, int, int]:
        """(calls, characters per call, reply tokens per call) at most, for the cost estimate:
        the plan, then a draft and every critique round for each missing idea, none redrafted."""
        missing = max(0, self.count - len(self.earlier))
        prompt_chars = len(self._context) + PROMPT_CHARS_BESIDES_CONTEXT
        calls = 1 + missing * (1 + self.rounds) if missing else 0
        return calls, prompt_chars, CRITIQUE_MAX_TOKENS

    @staticmethod
    def new_run_id() -> str:
        return f"brainstorm-{uuid.uuid4().hex[:12]}"

    def run(self) -> BrainstormResult:
        state = self._state
        result = BrainstormResult(
            self.out, self.topic, self.count, self.run_id, self.earlier, state.new
        )
        missing = self.count - len(result.earlier)
        if missing > 0:
            threading.Thread(target=_preload_embedding_model, daemon=True).start()
            try:
                self._angles = self._plan(missing)
            except ModelError as error:
                result.error = str(error)
            except KeyboardInterrupt:
                result.interrupted = True
            result.angles = list(self._angles)
            if result.error is None and not result.interrupted:
                self._draft_concurrently(missing, result)
        result.duplicates_rejected = state.rejected.get("duplicate", 0)
        result.infeasible_rejected = state.rejected.get("infeasible", 0)
        result.rejected = dict(state.rejected)
        result.drafts = state.drafts
        result.repaired = state.repaired
        result.gave_up = state.gave_up
        result.spend = self.spend()
        return result

    def _draft_concurrently(self, missing: int, result: BrainstormResult) -> None:
        state = self._state
        slots = range(1, missing + 1)
        try:
            parallel_map(self._draft_one, slots, self.concurrency, stop=state.stop)
        except (ModelError, IdeaFileError, EmbeddingModelMissing) as error:
            result.error = str(error)
        except KeyboardInterrupt:
            result.interrupted = True
            # An idea being written finishes its write (the lock is held for nothing else);
            # slots waiting on the network are abandoned with the process.
            if state.lock.acquire(timeout=SAVE_GRACE_S):
                state.lock.release()

    def _plan(self, missing: int) -> list[str]:
        """Different angles for the slots, or none when the model cannot give a valid plan
        (the slots then draft freely, as they would without a plan)."""
        if self.model.weak and self._sketch is None:
            # A template without a baseline run to read metrics from. Measured on the 1.5B
            # local model: asked for angles, it described the parts rather than applying the
            # topic to them; given the parts directly, it costs no call.
            return [str(angle) for angle in spread_angles([], self.topic, missing)]
        self.report(BrainstormEvent(0, "plan"))
        # Recorded as sub-run 0 of the run, so that the run's spend includes it.
        model = self._slot_model(0)
        if self._sketch is not None:
            return self._plan_techniques(model, missing)
        prompt = render_prompt(
            "brainstorm_plan",
            topic=self.topic,
            count=missing,
            parts="\n".join(
                f"- {key}: {part.label} ({part.description})" for key, part in plan_parts().items()
            ),
            existing_ideas=fence(summarize_ideas(self._known_ideas()), "list of existing ideas"),
            metrics=self.gate.template_terms.metric_list(),
        )
        try:
            plan = self._ask(model, prompt, AnglePlan, "brainstorm-plan", PLAN_MAX_TOKENS)
        except InvalidReply as error:
            self.report(BrainstormEvent(0, "rejected", 0, f"no plan: {error}"))
            return []
        return [str(angle) for angle in spread_angles(plan.angles, self.topic, missing)]

    def _plan_techniques(self, model: LanguageModel, missing: int) -> list[str]:
        """A small model's plan: only the names of different techniques on the topic, which
        it lists well. Measured on the 1.5B local model: given no plan, its slots wrote one
        idea again and again (4 of 8 drafts on "data augmentation" were duplicates)."""
        prompt = render_prompt(
            "brainstorm_techniques",
            topic=self.topic,
            count=missing + TECHNIQUES_SPARE,
            written=self._recent_titles(),
        )
        try:
            plan = self._ask(model, prompt, TechniquePlan, "brainstorm-plan", PLAN_MAX_TOKENS)
        except InvalidReply as error:
            self.report(BrainstormEvent(0, "rejected", 0, f"no plan: {error}"))
            return []
        # A coder model often writes a name as an identifier (elastic_transform), which the
        # drafts then use as if experiment.py had it.
        names = [" ".join(name.replace("_", " ").split()) for name in plan.techniques]
        distinct = {name.lower(): name for name in names}
        return [f"the technique {name}" for name in list(distinct.values())[:missing]]

    def _angle_for(self, slot: int, attempt: int) -> str:
        # After two refusals the angle itself may be the problem: the slot then drafts freely.
        if not self._angles or attempt > ANGLE_ATTEMPTS:
            return ""
        angle = self._angles[(slot - 1) % len(self._angles)]
        return f"\nThe angle this idea takes (from the plan): {angle}\n"

    def _draft_one(self, slot: int) -> FinishedIdea | None:
        try:
            return self._draft_until_accepted(slot)
        except _Stopped:
            return None

    def spend(self) -> SpendSummary:
        """What the run's calls cost so far, over all its idea slots."""
        return self.store.spend(self.run_id)

    def _slot_model(self, slot: int) -> LanguageModel:
        """The run's model, recording its calls under the slot's own run id, so that each
        idea's tokens and cost are known exactly even while slots run side by side."""
        return self.model.for_run(slot_run_id(self.run_id, slot))

    def _draft_until_accepted(self, slot: int) -> FinishedIdea | None:
        model = self._slot_model(slot)
        if slot > 1:
            # Calls sent before the first one has written the prompt cache would all miss it
            # and each pay to write it again; one call latency of waiting is cheaper.
            while not self._cache_primed.wait(0.1):
                if self._state.stop.is_set():
                    return None
        feedback: list[str] = []
        for attempt in range(1, MAX_DRAFTS_PER_IDEA + 1):
            if self._state.stop.is_set():
                return None
            try:
                drafted = self._draft_and_refine(model, slot, attempt, feedback)
            except InvalidReply as error:
                # A reply that stayed invalid after repair is one bad draft, not a broken
                # connection: draft again (small local models need this now and then).
                self._state.count_rejection("invalid_reply")
                self.report(BrainstormEvent(slot, "rejected", 0, str(error)))
                continue
            if drafted is None:
                return None
            idea, rounds_used = drafted
            outcome = self._check_and_save(idea, rounds_used, attempt, slot)
            if self._repairs and isinstance(outcome, _Rejected) and outcome.kind in REPAIRABLE:
                self.report(BrainstormEvent(slot, "repair", 0, outcome.reason))
                repaired = self._repair(model, idea, outcome.reason)
                if repaired is not None:
                    outcome = self._check_and_save(repaired, rounds_used, attempt, slot)
                    if isinstance(outcome, FinishedIdea):
                        with self._state.lock:
                            self._state.repaired += 1
            if isinstance(outcome, _Rejected):
                self._state.count_rejection(outcome.kind)
            if isinstance(outcome, FinishedIdea):
                self.report(BrainstormEvent(slot, "finished", rounds_used, outcome.idea.Name))
                return outcome
            self.report(BrainstormEvent(slot, "rejected", rounds_used, outcome.reason))
            feedback.append(f"A previous draft was rejected: {outcome.reason}")
        with self._state.lock:
            self._state.gave_up += 1
        return None

    def _draft_and_refine(
        self, model: LanguageModel, slot: int, attempt: int, feedback: list[str]
    ) -> tuple[Idea, int] | None:
        self.report(BrainstormEvent(slot, "draft"))
        with self._state.lock:
            self._state.drafts += 1
        idea = self._draft(model, slot, attempt, feedback)
        rounds_used = 0
        for round_number in range(1, self.rounds + 1):
            if self._state.stop.is_set():
                return None
            self.report(BrainstormEvent(slot, "round", round_number))
            problems = feasibility_problems(idea, self.dataset) + [
                str(failure) for failure in self.gate.check(idea)
            ]
            checks = (
                "\nAutomated checks found problems that must be fixed:\n"
                + "\n".join(f"- {problem}" for problem in problems)
                + "\n"
                if problems
                else ""
            )
            prompt = render_prompt(
                "brainstorm_critique",
                topic=self.topic,
                round=round_number,
                rounds=self.rounds,
                idea_json=json.dumps(draft_fields(idea), indent=2, ensure_ascii=False),
                checks=checks,
            )
            critique = self._ask(
                model, prompt, Critique, "brainstorm-critique", CRITIQUE_MAX_TOKENS
            )
            rounds_used = round_number
            revised = critique.revised()
            finished = critique.done and not problems
            if not critique.done or problems:
                idea = revised
            if finished:
                break
        return idea, rounds_used

    def _draft(self, model: LanguageModel, slot: int, attempt: int, feedback: list[str]) -> Idea:
        feedback_lines = "\n" + "\n".join(feedback) + "\n" if feedback else ""
        if self._sketch is not None:
            prompt = render_prompt(
                "brainstorm_sketch",
                topic=self.topic,
                angle=self._angle_for(slot, attempt),
                feedback=feedback_lines,
            )
            sketch = self._ask(model, prompt, self._sketch, "brainstorm-draft", DRAFT_MAX_TOKENS)
            return sketch.to_idea()
        prompt = render_prompt(
            "brainstorm_draft",
            topic=self.topic,
            angle=self._angle_for(slot, attempt),
            existing_ideas=fence(summarize_ideas(self._known_ideas()), "list of existing ideas"),
            feedback=feedback_lines,
            metrics=self.gate.template_terms.metric_list(),
            functions=", ".join(self.gate.template_terms.functions) or "none",
        )
        draft = self._ask(model, prompt, IdeaDraft, "brainstorm-draft", DRAFT_MAX_TOKENS)
        return draft.to_idea()

    def _repair(self, model: LanguageModel, idea: Idea, problems: str) -> Idea | None:
        """The draft corrected for what the checks found, or None when the reply is invalid."""
        prompt = repair_prompt(self.topic, idea, problems, self.gate)
        try:
            reply = self._ask(model, prompt, IdeaDraft, "brainstorm-repair", DRAFT_MAX_TOKENS)
        except InvalidReply:
            return None
        return reply.to_idea()

    def _ask(self, model: LanguageModel, prompt: str, schema: type, purpose: str, max_tokens: int):
        if self._state.stop.is_set():
            raise _Stopped
        try:
            return model.structured(
                [Message(role="user", content=prompt)],
                schema,
                context=self._context,
                max_tokens=max_tokens,
                purpose=purpose,
            )
        finally:
            self._cache_primed.set()

    def _known_ideas(self) -> list[Idea]:
        """What the model is told exists: the template's seeds, then every existing idea."""
        with self._state.lock:
            existing = self._existing_ideas(load_ideas(self.out, missing_ok=True).ideas)
        listed = {(idea.Name, idea.Title) for idea in existing}
        return [s for s in self.seeds if (s.Name, s.Title) not in listed] + existing

    def _recent_titles(self) -> str:
        """The latest ideas written for the template, for a small model's plan to steer clear
        of (it is shown no seeds in full, as it copies their words)."""
        with self._state.lock:
            existing = self._existing_ideas(load_ideas(self.out, missing_ok=True).ideas)
        recent = existing[-PLAN_LISTED_IDEAS:]
        if not recent:
            return ""
        listed = fence("\n".join(f"- {idea.Title}" for idea in recent), "list of existing ideas")
        return f"\nIdeas already written; yours must differ from each of them:\n{listed}\n"

    def _existing_ideas(self, in_file: list[Idea]) -> list[Idea]:
        """The template's ideas in the store, then those in the output file, each once."""
        stored = [s.idea for s in self.store.ideas(template=self.template.name)]
        seen: set[tuple[str, str]] = set()
        existing = []
        for idea in stored + in_file:
            key = (idea.Name, idea.Title)
            if key not in seen:
                seen.add(key)
                existing.append(idea)
        return existing

    def _own_name(self, idea: Idea) -> Idea:
        """The idea under a Name no example has: a small model often reuses the Name of a seed
        it was shown for an idea of its own (the gate still refuses a restated example)."""
        taken = {example.Name for example in self.gate.examples}
        if idea.Name not in taken:
            return idea
        from_title = slugify(idea.Title)[:MAX_NAME_LENGTH].strip("_") or "idea"
        return idea.model_copy(update={"Name": unique_name(from_title, taken)})

    def _check_and_save(self, idea: Idea, rounds_used: int, attempt: int, slot: int):
        idea = self._own_name(idea)
        failures = self.gate.check(idea)
        if failures:
            return _Rejected(failures[0].kind, "; ".join(str(failure) for failure in failures))
        problems = feasibility_problems(idea, self.dataset)
        if problems:
            return _Rejected("infeasible", "not feasible with the template: " + "; ".join(problems))
        # Embedded here, outside the lock, so that slots do not queue for the model; the check
        # below then finds the vector in the store's cache.
        embeddings.embed([opening_text(idea)], self.store)
        # The file lock, held from the re-read to the write, keeps other processes appending
        # to the same file from dropping this idea or duplicating it.
        with self._state.lock, locked(self.out):
            if self._state.stop.is_set():
                raise _Stopped
            loaded = load_ideas(self.out, missing_ok=True)
            existing = self._existing_ideas(loaded.ideas)
            duplicate = self.gate.distinct(idea, existing)
            if duplicate is not None:
                return _Rejected("duplicate", duplicate.message)
            taken = {e.get("Name") for e in loaded.entries if isinstance(e, dict)}
            idea = idea.model_copy(update={"Name": unique_name(idea.Name, taken)})
            spend = self.store.spend(slot_run_id(self.run_id, slot))
            store_id = self.store.add_idea(
                idea,
                source_file=str(self.out),
                topic=self.topic,
                model=f"{self.model.provider}:{self.model.model}",
                template=self.template.name,
                rounds=rounds_used,
                tokens=spend.tokens_in + spend.tokens_out,
                cost_usd=spend.cost_usd,
                run_id=self.run_id,
            )
            append_ideas(self.out, [idea])
            finished = FinishedIdea(idea, store_id, rounds_used, attempt)
            self._state.new.append(finished)
            return finished


class _Stopped(Exception):
    """The run is stopping (interrupt or another slot's fatal error): abandon this draft."""


def _preload_embedding_model() -> None:
    """Load the duplicate check's model while the first drafts are being written, instead of
    after them; a failure here shows up, with its message, at the first duplicate check."""
    try:
        embeddings.load_model()
    except EmbeddingModelMissing:
        pass


def slot_run_id(run_id: str, slot: int) -> str:
    """A sub-run of `run_id` in the store's sense, so `store.spend(run_id)` includes it."""
    return f"{run_id}/{slot}"


def draft_fields(idea: Idea) -> dict:
    """The fields the model writes, for showing an idea back to it."""
    entry = idea.to_entry()
    return {key: entry[key] for key in IdeaDraft.model_fields}


def repair_prompt(topic: str, idea: Idea, problems: str, gate: Gate) -> str:
    """The request to correct a refused idea for exactly what the checks found (`problems`:
    the failures joined by "; ", as the checks report them)."""
    return render_prompt(
        "brainstorm_repair",
        topic=topic,
        idea_json=json.dumps(draft_fields(idea), indent=2, ensure_ascii=False),
        problems="\n".join(f"- {problem}" for problem in problems.split("; ")),
        metrics=gate.template_terms.metric_list(),
    )


def sketch_fields(idea: Idea) -> dict:
    """An idea as a weak model writes it, for showing it back to one: the parts of an idea that
    `IdeaSketch.to_idea` composed, else its draft fields. Shown the composed paragraph, the 1.5B
    model copied its joining phrases into its own parts, so its child said them twice."""
    parts = _COMPOSED_SKETCH.fullmatch(idea.Experiment)
    if parts is None:
        return draft_fields(idea)
    fields = parts.groupdict() | {"metric": parts["metric"].replace(" ", "_")}
    ratings = {key: getattr(idea, key) for key in ("Interestingness", "Feasibility", "Novelty")}
    return fields | {"Title": idea.Title} | ratings
