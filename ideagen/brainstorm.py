"""Drafting new seed ideas for a template: draft, self-critique, check, append.

Each idea is drafted by the model, then improved over up to R critique rounds that stop early
when the model says nothing is left to improve. A finished idea must be a valid idea, pass the
feasibility lint (nothing the template cannot give it) and not duplicate any idea already in
the output file or the store; otherwise it is discarded and drafted again, and counted.

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
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ideagen import embeddings
from ideagen.dedup import duplicates_against, opening_text
from ideagen.embeddings import EmbeddingModelMissing
from ideagen.ideafile import (
    IdeaFile,
    IdeaFileError,
    atomic_write_text,
    load_ideas,
    slugify,
    unique_name,
)
from ideagen.providers.base import InvalidReply, LanguageModel, Message, ModelError
from ideagen.resources import render_prompt
from ideagen.results import outcome_lessons
from ideagen.review.lint import KNOWN_DATASETS, lint_idea
from ideagen.schema import Idea
from ideagen.store import SpendSummary, Store
from ideagen.template_context import TemplateContext, summarize_ideas

DEFAULT_ROUNDS = 3
DEFAULT_CONCURRENCY = {"anthropic": 8, "openai": 8, "local": 1}
# A slot that keeps producing duplicates or infeasible ideas gives up after this many drafts,
# so a weak model cannot loop forever.
MAX_DRAFTS_PER_IDEA = 4
MAX_NAME_LENGTH = 60
DRAFT_MAX_TOKENS = 1024
CRITIQUE_MAX_TOKENS = 1400


IdeaName = Annotated[
    str, Field(min_length=1, max_length=100, description="a short lowercase identifier")
]
IdeaTitle = Annotated[str, Field(min_length=1, description="the title of a paper about the idea")]
IdeaExperiment = Annotated[
    str,
    Field(
        min_length=1,
        description="what to change in experiment.py and what to measure, in one paragraph",
    ),
]
Rating = Annotated[int, Field(ge=1, le=10)]


class IdeaDraft(BaseModel):
    """An idea as the model writes it; `to_idea` turns it into a valid file entry."""

    Name: IdeaName
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


class Critique(BaseModel):
    """One self-critique round: what is weak, whether the idea is finished, then the improved
    idea's fields (flat, so that field-by-field decoders such as the local model's fill it
    in this order: judgment first, revision after)."""

    critique: str = Field(min_length=1, description="what is weak, in two or three sentences")
    done: bool = Field(description="yes only when nothing important is left to improve")
    Name: IdeaName
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
    kind: Literal["draft", "round", "rejected", "finished"]
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
    kind: Literal["duplicate", "infeasible"]
    reason: str


@dataclass
class _RunState:
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    new: list[FinishedIdea] = field(default_factory=list)
    duplicates: int = 0
    infeasible: int = 0
    gave_up: int = 0


def default_concurrency(provider: str) -> int:
    return DEFAULT_CONCURRENCY.get(provider, 4)


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
        rounds: int = DEFAULT_ROUNDS,
        concurrency: int | None = None,
        fresh: bool = False,
        run_id: str | None = None,
        report: Callable[[BrainstormEvent], None] | None = None,
    ):
        if count < 1:
            raise BrainstormError(f"-n must be at least 1, got {count}")
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
        self._context = f"{role}\n\n{template.cached_prefix()}"
        self._context += outcome_lessons(store, template.name)
        self._cache_primed = threading.Event()
        self._state = _RunState()
        try:
            self.earlier = (
                [] if fresh else earlier_ideas(store, self.out, self.topic, template.name)[:count]
            )
        except IdeaFileError as exc:
            raise BrainstormError(str(exc)) from None

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
            self._draft_concurrently(missing, result)
        result.duplicates_rejected = state.duplicates
        result.infeasible_rejected = state.infeasible
        result.gave_up = state.gave_up
        result.spend = self.spend()
        return result

    def _draft_concurrently(self, missing: int, result: BrainstormResult) -> None:
        state = self._state
        workers = min(self.concurrency, missing)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="brainstorm")
        futures: list[Future] = [
            pool.submit(self._draft_one, slot) for slot in range(1, missing + 1)
        ]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if not f.cancelled() and f.exception() is not None]
            if failed:
                state.stop.set()
                for future in futures:
                    future.cancel()
                wait(futures)
                error = failed[0].exception()
                if not isinstance(error, ModelError | IdeaFileError | EmbeddingModelMissing):
                    raise error
                result.error = str(error)
        except KeyboardInterrupt:
            state.stop.set()
            for future in futures:
                future.cancel()
            result.interrupted = True
            wait(futures)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

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
                drafted = self._draft_and_refine(model, slot, feedback)
            except InvalidReply as error:
                # A reply that stayed invalid after repair is one bad draft, not a broken
                # connection: draft again (small local models need this now and then).
                self.report(BrainstormEvent(slot, "rejected", 0, str(error)))
                continue
            if drafted is None:
                return None
            idea, rounds_used = drafted
            outcome = self._check_and_save(idea, rounds_used, attempt, slot)
            if isinstance(outcome, FinishedIdea):
                self.report(BrainstormEvent(slot, "finished", rounds_used, outcome.idea.Name))
                return outcome
            self.report(BrainstormEvent(slot, "rejected", rounds_used, outcome.reason))
            feedback.append(f"A previous draft was rejected: {outcome.reason}")
        with self._state.lock:
            self._state.gave_up += 1
        return None

    def _draft_and_refine(
        self, model: LanguageModel, slot: int, feedback: list[str]
    ) -> tuple[Idea, int] | None:
        self.report(BrainstormEvent(slot, "draft"))
        prompt = render_prompt(
            "brainstorm_draft",
            topic=self.topic,
            existing_ideas=summarize_ideas(self._known_ideas()),
            feedback="\n" + "\n".join(feedback) + "\n" if feedback else "",
        )
        draft = self._ask(model, prompt, IdeaDraft, "brainstorm-draft", DRAFT_MAX_TOKENS)
        idea = draft.to_idea()
        rounds_used = 0
        for round_number in range(1, self.rounds + 1):
            if self._state.stop.is_set():
                return None
            self.report(BrainstormEvent(slot, "round", round_number))
            problems = feasibility_problems(idea, self.dataset)
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
        with self._state.lock:
            return self._existing_ideas(load_ideas(self.out, missing_ok=True).ideas)

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

    def _check_and_save(self, idea: Idea, rounds_used: int, attempt: int, slot: int):
        problems = feasibility_problems(idea, self.dataset)
        if problems:
            with self._state.lock:
                self._state.infeasible += 1
            return _Rejected("infeasible", "not feasible with the template: " + "; ".join(problems))
        # Embedded here, outside the lock, so that slots do not queue for the model; the check
        # below then finds the vector in the store's cache.
        embeddings.embed([opening_text(idea)], self.store)
        with self._state.lock:
            loaded = load_ideas(self.out, missing_ok=True)
            existing = self._existing_ideas(loaded.ideas)
            matches = duplicates_against([idea], existing, self.store)
            if matches:
                self._state.duplicates += 1
                duplicate_of = existing[matches[0].j]
                return _Rejected(
                    "duplicate", f"it duplicated the existing idea {duplicate_of.summary()!r}"
                )
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
            append_ideas(self.out, loaded, [idea])
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


def append_ideas(path: Path, loaded: IdeaFile, ideas: list[Idea]) -> list[Idea]:
    """Append ideas in one atomic write, keeping every existing entry (valid or not) exactly
    and the file's layout; a Name already in the file gets a suffix. Returns what was written."""
    entries = list(loaded.entries)
    taken = {entry.get("Name") for entry in entries if isinstance(entry, dict)}
    written = []
    for idea in ideas:
        idea = idea.model_copy(update={"Name": unique_name(idea.Name, taken)})
        taken.add(idea.Name)
        entries.append(idea.to_entry())
        written.append(idea)
    if written:
        atomic_write_text(path, loaded.style.render(entries))
    return written
