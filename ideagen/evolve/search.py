"""`ideagen evolve`: MAP-Elites over ideas, with the model as breeder and as judge.

Seeds (the template's seed ideas, the output file, the store's ideas on the topic) enter
first; then each step breeds one child from the elites: a mutation (sharpen it, change its
mechanism, change what it measures, move it to an empty niche) or a crossover of two elites,
or, while the grid is nearly empty, a fresh idea for an empty niche. Every child passes the
same checks as `brainstorm` (a valid idea, the feasibility lint, no duplicate of an idea the
archive has judged) and is then placed in a niche and scored by the review judge. A niche
holds up to `per_niche` elites (three by default, see archive.py): while it has room the child
enters. In a full one it challenges the niche's weakest elite (a sharpened child, its own
parent): a child the rubric rates below the incumbent loses at once; otherwise the two meet
in the pairwise comparison, asked in both orders, and the child replaces the incumbent only
when it wins (a split verdict goes to the rubric score, and a tie keeps the incumbent). A
weak model, whose pairwise verdicts mostly split, is asked in pairs only on a tie. An idea
the model places in two rows (a search over the learning rate changes optimisation too)
that loses its niche tries the niche of its second row, at the same column: it enters if
that has room, and otherwise challenges its weakest elite if the rubric rates it above. Both
judgments must favour the child: the pairwise question costs two calls, and with the rubric
already against the child those calls breed more children instead (in a 24-call run of the
local model, 4 calls went to two seeds the rubric had already rated below the elite).

The budget (model calls or dollars) covers every session of the archive, so a run that was
interrupted continues where it stopped when started again with the same command. Every
attempt at a call counts, repairs and retries too, and none starts past the budget. A step
starts only with the calls to finish it promised, so the budget cuts a bred child off before
its score only when a repair inside the step has used up that promise.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from ideagen import embeddings
from ideagen.brainstorm import (
    DRAFT_MAX_TOKENS,
    REPAIRABLE,
    IdeaDraft,
    IdeaSketch,
    default_concurrency,
    draft_fields,
    feasibility_problems,
    repair_prompt,
    sketch_fields,
    sketch_schema,
    template_dataset,
    weak_model_schema,
)
from ideagen.dedup import duplicates_against, opening_text
from ideagen.embeddings import EmbeddingModelMissing
from ideagen.evolve.archive import (
    DEFAULT_PER_NICHE,
    ELITE,
    LOST,
    Archive,
    ArchiveCounts,
    archive_key,
    archive_run_id,
)
from ideagen.evolve.niches import (
    DescriptorMode,
    NichePlacer,
    NicheSpec,
    Placement,
    default_niches,
    names_technique,
    split_cell,
)
from ideagen.gate import Gate, same_title_as
from ideagen.ideafile import IdeaFileError, atomic_write_text, load_ideas, unique_name
from ideagen.providers.base import InvalidReply, LanguageModel, Message, ModelError
from ideagen.resources import prompt_text, render_prompt
from ideagen.review.judge import Judge, JudgeScore, run_tournament
from ideagen.schema import Idea
from ideagen.store import ArchiveEntry, SpendSummary, Store
from ideagen.template_prompt import TemplateContext, summarize_ideas
from ideagen.untrusted import fence

MUTATIONS = ("sharpen", "mechanism", "measure", "move")
# The row whose techniques are measurements, in the default grid and in a niche file that
# keeps its key: a measure child's technique comes from it.
MEASURE_ROW = "evaluation"
OPERATORS = (*MUTATIONS, "crossover")
# A weak model does not sharpen: of the local model's sharpened children, 1 in 10 entered the
# archive (bench runs 11-22 of bench/evolve_local.txt and a demo run; every other operator
# 4 in 15 or better). The local judge rates its rewrite of a stronger model's idea below the
# original, and its rewrite of its own idea is mostly a duplicate; the calls go to children
# that can fill a niche.
WEAK_MODEL_OPERATORS = tuple(op for op in OPERATORS if op != "sharpen")
CROSSOVER_SHARE = 0.25
# Moving to an empty niche is the one mutation that widens the grid: favour it while the
# grid has holes.
MOVE_WEIGHT = 2.0
MIN_NICHES_TO_BREED = 2
# A child that keeps the title of an idea the archive holds (a crossover of the local model
# kept its first parent's, in run 22 of bench/evolve_local.txt) would give the output two
# ideas of one title; it is refused as a duplicate, and a model that repairs retitles it.
SAME_TITLE = "same_title"
DEFAULT_MAX_SEEDS = 24
StopReason = Literal["budget", "interrupted", "error"]


class EvolveError(Exception):
    """The run cannot start; one line that says why."""


class BudgetSpent(Exception):
    """The archive's budget of calls or dollars is used up."""


class _Stopped(Exception):
    """The run is stopping (Ctrl-C or another worker's fatal error): abandon this step."""


@dataclass(frozen=True)
class EvolveEvent:
    """What one worker just did, for the screen."""

    worker: int
    kind: Literal["working", "entered", "replaced", "lost", "rejected", "invalid"]
    operator: str = ""
    niche: str = ""
    detail: str = ""


@dataclass
class SessionCounts:
    """This session's outcomes (the archive's totals over all sessions are in `ArchiveCounts`)."""

    bred: int = 0
    seeds: int = 0
    entered: int = 0
    replaced: int = 0
    lost: int = 0
    duplicate: int = 0
    infeasible: int = 0
    gate: int = 0
    invalid: int = 0
    repaired: int = 0  # children that passed the checks after one repair call
    cut: int = 0  # children bred but not judged: a repair used the call promised to the score


@dataclass
class EvolveResult:
    out: Path
    topic: str
    archive: str
    run_id: str
    elites: list[ArchiveEntry]
    cells: int
    totals: ArchiveCounts
    session: SessionCounts
    spend: SpendSummary
    stopped: StopReason
    kept: int = 0  # the out file's other entries, written after the elites
    error: str | None = None

    def to_json(self) -> dict:
        return {
            "out": str(self.out),
            "topic": self.topic,
            "archive": self.archive,
            "run_id": self.run_id,
            "niches_filled": len({e.niche for e in self.elites}),
            "niches": self.cells,
            "other_entries_kept": self.kept,
            "elites": [
                {"niche": e.niche, "score": e.score, "Name": e.idea.Name, "Title": e.idea.Title}
                for e in self.elites
            ],
            "archive_totals": asdict(self.totals),
            "this_session": asdict(self.session),
            "spend": asdict(self.spend),
            "stopped": self.stopped,
            "error": self.error,
        }


class Budget:
    """The archive's spend limit, checked before every model call.

    Counted from the store's call records of every session of the archive, and asked before
    every attempt at a call, repairs and retries included, so a run never makes more calls
    than --budget-calls. A step is promised the calls it needs to finish (breed, place,
    score) before it starts, so the budget does not stop a child between its breeding and
    its score; a step that does not fit is not started. Only a repair inside the step can
    use up its promise: when the budget has no call left for the score, the child is counted
    as cut and not judged.
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        max_calls: int | None,
        max_cost: float | None,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.max_calls = max_calls
        self.max_cost = max_cost
        self.stop = stop
        self._lock = threading.Lock()
        self._in_flight = 0
        self._reserved = 0  # calls promised to steps under way, not yet started
        self._held = threading.local()  # the part of `_reserved` this worker thread holds

    def spent(self) -> SpendSummary:
        return self.store.spend(self.run_id)

    def exhausted(self, pending: int = 0) -> bool:
        """True when no call can start, with `pending` calls started or promised elsewhere."""
        spent = self.spent()
        if self.max_calls is not None and spent.calls + pending >= self.max_calls:
            return True
        return self.max_cost is not None and spent.cost_usd >= self.max_cost

    def _fits(self, calls: int) -> bool:
        """Whether `calls` more can start after every call in flight or promised (under the
        lock)."""
        return not self.exhausted(self._in_flight + self._reserved + calls - 1)

    @contextmanager
    def promise(self, calls: int) -> Iterator[None]:
        """Promise this thread's next `calls` calls to one step, or raise BudgetSpent when
        they do not all fit; what the step does not use is given back when it ends."""
        with self._lock:
            if self.stop.is_set():
                raise _Stopped
            if not self._fits(calls):
                raise BudgetSpent
            self._reserved += calls
            self._held.calls = calls
        try:
            yield
        finally:
            with self._lock:
                self._reserved -= self._held.calls
                self._held.calls = 0

    def extend(self, calls: int) -> bool:
        """Add `calls` to this thread's reservation if they fit; False, holding nothing
        more, if they do not."""
        with self._lock:
            if not self._fits(calls):
                return False
            self._reserved += calls
            self._held.calls += calls
            return True

    def reserve(self, estimate_usd: float) -> float:
        """One attempt at a call starts (the model asks, as its CallBudget): from this
        thread's promise when it holds one, else only if it fits after every call in flight
        or promised."""
        with self._lock:
            if self.stop.is_set():
                raise _Stopped
            if getattr(self._held, "calls", 0) > 0:
                self._held.calls -= 1
                self._reserved -= 1
                if self.exhausted():
                    raise BudgetSpent
            elif self.exhausted(self._in_flight + self._reserved):
                raise BudgetSpent
            self._in_flight += 1
        return estimate_usd

    def release(self, reservation: float) -> None:
        with self._lock:
            self._in_flight -= 1


@dataclass(frozen=True)
class Seed:
    idea: Idea
    source: Literal["template", "file", "store"]
    idea_id: int | None = None


@dataclass(frozen=True)
class Technique:
    """A technique handed to a small model to build a child on, and the row it is from."""

    row: str
    name: str


@dataclass(frozen=True)
class Task:
    operator: str  # seed, fill, crossover or one of MUTATIONS
    parents: tuple[ArchiveEntry, ...] = ()
    seed: Seed | None = None
    target: str | None = None  # the empty niche a fill or move aims at

    @property
    def question(self) -> tuple[str, frozenset[int | None]]:
        """What the model is asked: the operator and the parents, in any order."""
        return self.operator, frozenset(p.id for p in self.parents)

    @property
    def label(self) -> str:
        """The operator as recorded: seeds say where they came from."""
        return f"seed:{self.seed.source}" if self.seed else self.operator


@dataclass
class _Rejection:
    status: Literal["duplicate", "infeasible", "gate"]
    reason: str
    kinds: frozenset[str]  # the gate's failure kinds, "infeasible" or "duplicate"

    @property
    def repairable(self) -> bool:
        return self.kinds <= REPAIRABLE | {SAME_TITLE}


@dataclass
class _State:
    lock: threading.RLock = field(default_factory=threading.RLock)
    stop: threading.Event = field(default_factory=threading.Event)
    niche_locks: dict[str, threading.Lock] = field(default_factory=dict)
    # Ideas past the duplicate check and not yet in the archive (being placed or judged), so
    # that two workers cannot both take up the same idea.
    pending: dict[int, Idea] = field(default_factory=dict)
    # The (operator, parents) questions this session has put to the model.
    asked: set[tuple[str, frozenset[int | None]]] = field(default_factory=set)
    # The techniques handed to a small model, by row (see Evolve._technique).
    techniques: dict[str, set[str]] = field(default_factory=dict)
    counts: SessionCounts = field(default_factory=SessionCounts)
    stopped: StopReason | None = None


class Evolve:
    """One session of `ideagen evolve`; `run()` breeds until the budget is spent."""

    def __init__(
        self,
        model: LanguageModel,
        store: Store,
        template: TemplateContext,
        *,
        topic: str,
        out: Path,
        max_calls: int | None = None,
        max_cost: float | None = None,
        niches: NicheSpec | None = None,
        descriptors: DescriptorMode | None = None,
        concurrency: int | None = None,
        max_seeds: int = DEFAULT_MAX_SEEDS,
        per_niche: int = DEFAULT_PER_NICHE,
        operators: tuple[str, ...] | None = None,
        rng_seed: int | None = None,
        report: Callable[[EvolveEvent], None] | None = None,
    ):
        if max_calls is None and max_cost is None:
            raise EvolveError("give a budget: --budget-calls N or --max-cost USD")
        if max_calls is not None and max_calls < 1:
            raise EvolveError(f"--budget-calls must be at least 1, got {max_calls}")
        if max_cost is not None and max_cost <= 0:
            raise EvolveError(f"--max-cost must be more than 0, got {max_cost}")
        if per_niche < 1:
            raise EvolveError(f"--per-niche must be at least 1, got {per_niche}")
        if max_calls is None and model.provider == "local":
            raise EvolveError(
                "the local model costs nothing per call, so --max-cost would never stop it; "
                "use --budget-calls N"
            )
        self.model = model
        self.store = store
        self.template = template
        self.topic = topic.strip()
        self.out = Path(out).resolve()
        self.spec = niches or default_niches()
        self.key = archive_key(template.name, self.topic, self.out, self.spec)
        self.archive_run = archive_run_id(self.key)
        self.run_id = f"{self.archive_run}/{uuid.uuid4().hex[:8]}"
        self._state = _State()
        self.budget = Budget(store, self.archive_run, max_calls, max_cost, self._state.stop)
        mode = descriptors or ("embedding" if model.weak else "model")
        self.placer = NichePlacer(self.spec, store, mode)
        self.concurrency = max(1, concurrency or default_concurrency(model.provider))
        self.max_seeds = max_seeds
        if operators is None:
            operators = WEAK_MODEL_OPERATORS if model.weak else OPERATORS
        unknown = sorted(set(operators) - set(OPERATORS))
        if unknown or not operators:
            raise EvolveError(f"operators must be some of {', '.join(OPERATORS)}; got {unknown}")
        self.operators = operators
        self.report = report or (lambda event: None)
        self.dataset = template_dataset(template)
        # No examples: the template's seeds are in the archive, where a child may revise them.
        self.gate = Gate(template, store, topic=self.topic, instructions=self._instructions())
        # A weak model writes each child in parts, as it writes brainstorm's drafts, and is
        # shown its parents in parts too.
        sketch = weak_model_schema(model, self.gate.template_terms)
        self._reply_schema = sketch or IdeaDraft
        self._in_parts = sketch is not None
        # As in brainstorm: a child refused for something fixable gets one repair call, except
        # from the local model, which fixed none of the drafts it was asked to repair.
        self._repairs = not model.weak
        self.rng = random.Random(rng_seed)
        self.archive = Archive.load(self.key, self.spec, store, per_niche)
        self._context = render_prompt(
            "evolve_context",
            template_system=template.system,
            template_name=template.name,
            task_description=template.task_description.strip(),
            experiment_code=template.experiment_code.rstrip(),
            reply_form=render_prompt(
                "evolve_reply_parts" if self._in_parts else "evolve_reply_paragraph"
            ),
        )
        try:
            self._seeds = self._collect_seeds()
        except IdeaFileError as exc:
            raise EvolveError(str(exc)) from None

    def _instructions(self) -> list[str]:
        """What the breeding prompts tell the model, which a child must not restate."""
        prompts = ["evolve_context", "evolve_fill", "evolve_technique", "brainstorm_repair"]
        prompts += [f"evolve_{op}" for op in OPERATORS]
        niches = [b.text() for axis in (self.spec.rows, self.spec.columns) for b in axis.bins]
        return [prompt_text(name) for name in prompts] + niches

    @property
    def counts(self) -> SessionCounts:
        return self._state.counts

    def spend(self) -> SpendSummary:
        """Everything the archive has spent, over all its sessions."""
        return self.budget.spent()

    def run(self) -> EvolveResult:
        state = self._state
        error = None
        if self.budget.exhausted():
            state.stopped = "budget"
        else:
            threading.Thread(target=_preload_embedding_model, daemon=True).start()
            error = self._work_concurrently()
        with state.lock:
            kept = self._write_out()
        return EvolveResult(
            out=self.out,
            topic=self.topic,
            archive=self.key,
            run_id=self.run_id,
            elites=self.archive.recommended(),
            cells=len(self.spec.cells()),
            totals=self.archive.counts(),
            session=state.counts,
            spend=self.spend(),
            stopped=state.stopped or "budget",
            kept=kept,
            error=error,
        )

    def _work_concurrently(self) -> str | None:
        state = self._state
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="evolve")
        futures = [pool.submit(self._work, worker) for worker in range(1, self.concurrency + 1)]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                state.stop.set()
                wait(futures)
                error = failed[0].exception()
                if not isinstance(error, ModelError | IdeaFileError | EmbeddingModelMissing):
                    raise error
                state.stopped = "error"
                return str(error)
        except KeyboardInterrupt:
            state.stop.set()
            state.stopped = "interrupted"
            wait(futures)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return None

    def _work(self, worker: int) -> None:
        budgeted = self.model.for_run(f"{self.run_id}/{worker}").with_budget(self.budget)
        judge = Judge(budgeted, self.template.task_description)
        while not self._state.stop.is_set():
            task = self._next_task()
            try:
                with self.budget.promise(self._calls_to_finish(task)):
                    self._run_task(task, budgeted, judge, worker)
            except BudgetSpent:
                # The other workers finish the steps they hold calls for, then stop here too.
                with self._state.lock:
                    self._state.stopped = self._state.stopped or "budget"
                return
            except _Stopped:
                return
            except InvalidReply as exc:
                with self._state.lock:
                    self._state.counts.invalid += 1
                self.report(EvolveEvent(worker, "invalid", task.operator, detail=str(exc)))

    def _calls_to_finish(self, task: Task) -> int:
        """Breeding (not for a seed), the model's placement (when it places), the score. A
        repair is reserved only when needed; the pairwise comparison not at all (without it
        the rubric score decides)."""
        return (task.seed is None) + (self.placer.mode == "model") + 1

    # choosing what to do next

    def _next_task(self) -> Task:
        with self._state.lock:
            if self._seeds:
                return Task("seed", seed=self._seeds.pop(0))
            held = self.archive.elites_by_niche()
            empty = self.archive.empty_niches()
            if len(held) < MIN_NICHES_TO_BREED:
                return Task("fill", target=self.rng.choice(empty))
            task = self._breeding_task(held, empty)
            self._state.asked.add(task.question)
            return task

    def _breeding_task(self, held: dict[str, list[ArchiveEntry]], empty: list[str]) -> Task:
        """A crossover of elites from two niches (about CROSSOVER_SHARE of the time) or a
        mutation, from the questions (operator and parents) the archive has not asked yet
        while there are any: a question asked again can only bring the same kind of child,
        and the local model repeats itself (it wrote one crossover child three times in a
        22-call run, bench/evolve_local.txt). A mutation's parent is weighted by one over its
        niche's elites, so a niche holding two is not bred from twice as often."""
        elites = [elite for niche in held.values() for elite in niche]
        asked = self._state.asked | {
            (e.operator, frozenset(e.parents)) for e in self.archive.entries.values() if e.parents
        }
        mutations = [op for op in MUTATIONS if op in self.operators and (op != "move" or empty)]
        crossovers = (
            [
                Task("crossover", parents=(first, second))
                for first, second in itertools.combinations(elites, 2)
                if first.niche != second.niche
            ]
            if "crossover" in self.operators
            else []
        )
        if not mutations and not crossovers:
            mutations = ["sharpen"]  # only "move" was allowed, and no niche is empty
        singles = [Task(op, parents=(parent,)) for op in mutations for parent in elites]
        new_crossovers = [task for task in crossovers if task.question not in asked]
        new_singles = [task for task in singles if task.question not in asked]
        if new_crossovers or new_singles:
            crossovers, singles = new_crossovers, new_singles
        if crossovers and (not singles or self.rng.random() < CROSSOVER_SHARE):
            return self.rng.choice(crossovers)
        weights = [
            (MOVE_WEIGHT if task.operator == "move" else 1.0) / len(held[task.parents[0].niche])
            for task in singles
        ]
        task = self.rng.choices(singles, weights)[0]
        if task.operator == "move":
            return replace(task, target=self.rng.choice(empty))
        return task

    def _collect_seeds(self) -> list[Seed]:
        """The template's seed ideas, then the output file's, then the store's on the topic;
        each once, none the archive has already judged, at most `max_seeds`. A template seed
        the output file also holds (as when the output is the template's own seed_ideas.json)
        counts as the file's, so that it stays in the file if it loses its niche."""
        template_file = self.template.folder / "seed_ideas.json"
        in_file = load_ideas(self.out, missing_ok=True).ideas
        file_keys = {(i.Title, i.Experiment) for i in in_file}
        found = [
            Seed(i, "file" if (i.Title, i.Experiment) in file_keys else "template")
            for i in load_ideas(template_file, missing_ok=True).ideas
        ]
        found += [Seed(i, "file") for i in in_file]
        found += [
            Seed(s.idea, "store", s.id)
            for s in self.store.ideas(template=self.template.name, topic=self.topic)
        ]
        seen = self.archive.seen()
        seeds = []
        for seed in found:
            keys = {(seed.idea.Name, seed.idea.Title), (seed.idea.Title, seed.idea.Experiment)}
            if keys & seen:
                continue
            seen |= keys
            seeds.append(seed)
        return seeds[: self.max_seeds]

    # one step

    def _run_task(self, task: Task, model: LanguageModel, judge: Judge, worker: int) -> None:
        operator = task.label
        self.report(EvolveEvent(worker, "working", operator, task.target or ""))
        technique = None if task.seed else self._technique(task)
        idea = task.seed.idea if task.seed else self._breed(task, model, technique)
        with self._state.lock:
            if task.seed is None:
                self._state.counts.bred += 1
            else:
                self._state.counts.seeds += 1
        rejection = self._check(idea, task)
        if (
            rejection is not None
            and task.seed is None
            and self._repairs
            and rejection.repairable
            and self.budget.extend(1)
        ):
            repaired = self._repair(idea, rejection, model)
            if repaired is not None:
                idea, rejection = repaired, self._check(repaired, task)
                if rejection is None:
                    with self._state.lock:
                        self._state.counts.repaired += 1
                else:
                    rejection.reason = f"after one repair: {rejection.reason}"
        if rejection is not None:
            self._record_rejection(idea, task, operator, rejection, worker)
            return
        try:
            self._judge_and_place(idea, task, model, judge, worker, technique)
        except BudgetSpent:
            if task.seed is None:
                with self._state.lock:
                    self._state.counts.cut += 1
                detail = f"cut by the budget before its score: {idea.Name}"
                self.report(EvolveEvent(worker, "rejected", operator, detail=detail))
            raise
        finally:
            with self._state.lock:
                self._state.pending.pop(id(idea), None)

    def _judge_and_place(
        self,
        idea: Idea,
        task: Task,
        model: LanguageModel,
        judge: Judge,
        worker: int,
        technique: Technique | None,
    ) -> None:
        operator = task.label
        placement = self._place(idea, model, technique)
        rejection = self._check_moved_revision(idea, task, placement.niche)
        if rejection is not None:
            self._record_rejection(idea, task, operator, rejection, worker)
            return
        score = judge.score(idea)
        # Compared as stored: an unrounded 26/3 is below the stored 8.667 of an equal elite.
        mean = round(score.mean, 3)
        niches = [placement.niche]
        if placement.also is not None and task.operator != "sharpen":
            niches.append(placement.also)  # a sharpened child only challenges its parent
        verdicts = []
        for niche in niches:
            with self._niche_lock(niche):
                incumbent, reason = self._incumbent(niche, task)
                wins = True
                if incumbent is not None:
                    guest = niche != placement.niche
                    wins, reason = self._challenge(judge, incumbent, idea, mean, guest)
                verdicts.append((niche, reason))
                if wins:
                    self._record_judged(idea, task, score, placement, verdicts, niche, incumbent)
                    break
        else:
            self._record_judged(idea, task, score, placement, verdicts, None, None)
        kind = "lost" if not wins else "entered" if incumbent is None else "replaced"
        self.report(
            EvolveEvent(worker, kind, operator, niche if wins else placement.niche, idea.Name)
        )

    def _incumbent(self, niche: str, task: Task) -> tuple[ArchiveEntry | None, str]:
        """The elite a child placed in `niche` must beat, or None and why it enters without
        a challenge. A sharpened child meets its parent while that is an elite there: beside
        it, the archive would hold one idea twice (the duplicate check spares the parent)."""
        held = self.archive.elites_in(niche)
        if task.operator == "sharpen":
            parent = next((e for e in held if e.id == task.parents[0].id), None)
            if parent is not None:
                return parent, ""
        if not held:
            return None, "the niche was empty"
        weakest = self.archive.weakest_in(niche)
        if weakest is None:
            return None, f"the niche had room ({len(held)} of {self.archive.per_niche} held)"
        return weakest, ""

    def _record_judged(
        self,
        idea: Idea,
        task: Task,
        score: JudgeScore,
        placement: Placement,
        verdicts: list[tuple[str, str]],
        entered: str | None,
        replaces: ArchiveEntry | None,
    ) -> None:
        """A judged idea: the elite of the niche it `entered` (called with that niche's lock
        held), or lost in the niche it was placed in. `verdicts`: each niche it challenged,
        with how that went."""
        if len(verdicts) == 1:
            outcome = verdicts[0][1]
        else:
            outcome = "; then ".join(f"in {niche}: {reason}" for niche, reason in verdicts)
        entry = ArchiveEntry(
            archive=self.key,
            idea=idea,
            operator=task.label,
            status=ELITE if entered else LOST,
            parents=tuple(p.id for p in task.parents),
            niche=entered or placement.niche,
            score=round(score.mean, 3),
            judge=score.model_dump_json(),
            reason=f"{outcome}; placed by {placement.source}: {placement.reason}",
            idea_id=self._idea_id(idea, task) if entered else None,
            run_id=self.run_id,
        )
        with self._state.lock:
            self.archive.add(entry, replaces=replaces.id if replaces else None)
            counts = self._state.counts
            if not entered:
                counts.lost += 1
            elif replaces is None:
                counts.entered += 1
            else:
                counts.replaced += 1
            if entered:
                self._write_out()

    def _place(self, idea: Idea, model: LanguageModel, technique: Technique | None) -> Placement:
        """A child whose title names the technique it was built on goes to that technique's
        row: the embeddings alone put 7 of 15 local children whose titles named one row's
        technique in another row (four "Batch Normalization" titles among optimisation,
        evaluation and regularisation). Only the handed technique counts: a title such as
        "Evolving Dropout Rates with a Genetic Algorithm" names a regularisation technique
        but belongs to the search row."""
        if technique is not None and names_technique(idea.Title, technique.name):
            reason = f"built on {technique.name!r}, which its title names"
            return self.placer.in_row(idea, technique.row, reason)
        return self.placer.place(idea, model)

    def _breed(self, task: Task, model: LanguageModel, technique: Technique | None) -> Idea:
        values: dict[str, object] = {"topic": self.topic}
        if task.operator == "fill":
            values["niche"] = self.spec.describe(task.target)
            values["existing_ideas"] = fence(
                summarize_ideas([e.idea for e in self.archive.judged_ideas()]),
                "list of existing ideas",
            )
        elif task.operator == "crossover":
            values["first"] = _shown(task.parents[0].idea, self._in_parts)
            values["second"] = _shown(task.parents[1].idea, self._in_parts)
        else:
            values["parent"] = _shown(task.parents[0].idea, self._in_parts)
            if task.operator == "move":
                values["niche"] = self.spec.describe(task.target)
        prompt = render_prompt(f"evolve_{task.operator}", **values)
        if technique is not None:
            prompt += render_prompt("evolve_technique", technique=technique.name)
        draft = model.structured(
            [Message(role="user", content=prompt)],
            self._reply_schema_for(technique),
            context=self._context,
            max_tokens=DRAFT_MAX_TOKENS,
            purpose=f"evolve.{task.operator}",
        )
        return draft.to_idea()

    def _reply_schema_for(self, technique: Technique | None) -> type[IdeaDraft | IdeaSketch]:
        """The reply in parts, with `function` among those of the technique's row when the
        template defines them all: choosing from all of experiment.py, the local model put
        architecture changes (grouped, dilated convolutions) under `evaluate`."""
        if technique is None or not self._in_parts:
            return self._reply_schema
        terms = self.gate.template_terms
        functions = self.spec.rows.bin(technique.row).functions
        if not functions or not set(functions) <= set(terms.functions):
            return self._reply_schema
        return sketch_schema(functions, terms.metric_names)

    def _technique(self, task: Task) -> Technique | None:
        """For a small model, the technique a fill, move or mechanism child is built on: one of
        its row's examples that this session has not handed out and no elite of the row
        names, while there are any; a measure child gets one of MEASURE_ROW's. Told only to
        move or to change the mechanism, the local model mostly rewrote its parent (8 of 14
        children were duplicates in run 9 of bench/evolve_local.txt); told to measure
        something else, 4 of its 8 measure children in runs 9-12 were refused as duplicates
        and 1 entered the archive. A named technique gives each child a change of its own."""
        if not self.model.weak:
            return None
        if task.operator in ("fill", "move"):
            row, _ = split_cell(task.target)
        elif task.operator == "mechanism":
            row, _ = split_cell(task.parents[0].niche)
        elif task.operator == "measure" and MEASURE_ROW in self.spec.rows.keys():
            row = MEASURE_ROW
        else:
            return None
        examples = self.spec.rows.bin(row).examples
        if not examples:
            return None
        with self._state.lock:
            handed = self._state.techniques.setdefault(row, set())
            elites_text = " ".join(
                f"{e.idea.Title} {e.idea.Experiment}"
                for e in self.archive.elites()
                if split_cell(e.niche)[0] == row
            )
            fresh = [t for t in examples if t not in handed and not names_technique(elites_text, t)]
            technique = self.rng.choice(fresh or examples)
            handed.add(technique)
        return Technique(row, technique)

    def _repair(self, idea: Idea, rejection: _Rejection, model: LanguageModel) -> Idea | None:
        """The child corrected for what the checks found, or None when the reply is invalid."""
        prompt = repair_prompt(self.topic, idea, rejection.reason, self.gate)
        try:
            draft = model.structured(
                [Message(role="user", content=prompt)],
                IdeaDraft,
                context=self._context,
                max_tokens=DRAFT_MAX_TOKENS,
                purpose="evolve.repair",
            )
        except InvalidReply:
            return None
        return draft.to_idea()

    def _check(self, idea: Idea, task: Task) -> _Rejection | None:
        """brainstorm's checks: the gate (for bred children: seeds were written by people
        and need not be on this topic), the feasibility lint, then duplicates of what the
        archive has judged or is judging, and for a bred child the titles of those. A
        sharpened child is a new version of its parent, so it may resemble it. An idea that
        passes is pending until `_run_task` is done with it."""
        failures = [] if task.seed else self.gate.check(idea)
        if failures:
            reason = "; ".join(str(failure) for failure in failures)
            return _Rejection("gate", reason, frozenset(failure.kind for failure in failures))
        problems = feasibility_problems(idea, self.dataset)
        if problems:
            return _Rejection("infeasible", "; ".join(problems), frozenset({"infeasible"}))
        embeddings.embed([opening_text(idea)], self.store)
        exempt = {task.parents[0].id} if task.operator == "sharpen" else set()
        with self._state.lock:
            known = [e.idea for e in self.archive.judged_ideas() if e.id not in exempt]
            known += self._state.pending.values()
            matches = duplicates_against([idea], known, self.store)
            if matches:
                duplicated = known[matches[0].j].summary()
                return _Rejection(
                    "duplicate", f"duplicates {duplicated!r}", frozenset({"duplicate"})
                )
            namesake = (
                None if task.seed else next((k for k in known if same_title_as(k, idea)), None)
            )
            if namesake is not None:
                reason = (
                    f"{SAME_TITLE}: it keeps the title of {namesake.summary()!r}; "
                    "give it a title of its own"
                )
                return _Rejection("duplicate", reason, frozenset({SAME_TITLE}))
            self._state.pending[id(idea)] = idea
        return None

    def _record_rejection(
        self, idea: Idea, task: Task, operator: str, rejection: _Rejection, worker: int
    ) -> None:
        with self._state.lock:
            self.archive.add(
                ArchiveEntry(
                    archive=self.key,
                    idea=idea,
                    operator=operator,
                    status=rejection.status,
                    parents=tuple(p.id for p in task.parents),
                    reason=rejection.reason,
                    run_id=self.run_id,
                )
            )
            counts = self._state.counts
            setattr(counts, rejection.status, getattr(counts, rejection.status) + 1)
        self.report(
            EvolveEvent(worker, "rejected", operator, detail=f"{rejection.status}: {idea.Name}")
        )

    def _check_moved_revision(self, idea: Idea, task: Task, niche: str) -> _Rejection | None:
        """A sharpened child may resemble its parent only to challenge it in its own niche;
        elsewhere it would be the same idea twice in the archive."""
        if task.operator != "sharpen" or niche == task.parents[0].niche:
            return None
        parent = task.parents[0].idea
        if duplicates_against([idea], [parent], self.store):
            reason = f"duplicates {parent.summary()!r} in another niche"
            return _Rejection("duplicate", reason, frozenset({"duplicate"}))
        return None

    def _challenge(
        self, judge: Judge, incumbent: ArchiveEntry, challenger: Idea, score: float, guest: bool
    ) -> tuple[bool, str]:
        """A challenger the rubric rates below the incumbent loses without another call, and
        so does a `guest` (an idea trying its second niche) it rates no higher: in run 20 of
        bench/evolve_local.txt two guests rated 8.00 went, by their log, to an 8.00 elite that
        stayed, through pairwise questions that took 4 of the run's 23 calls. A weak model's
        challenger it rates above the incumbent wins without one: of the local model's
        comparisons in that file answered in both orders, 26 of 33 split (its answer followed
        the order shown, and a split goes to the rubric), so its two calls are spent only on a
        tie. Otherwise both orders of the pairwise question decide; a split, or a comparison
        cut short by the budget or by Ctrl-C, goes to the rubric score (a tie keeps the
        incumbent), so a judged child is always recorded."""
        held = incumbent.score or 0.0
        versus = f"against {incumbent.idea.Name}"
        rubric = f"rubric {score:.2f} vs {held:.2f}"
        if score < held:
            return False, f"rated below the elite, not compared {versus}; {rubric}"
        if guest and score == held:
            return False, f"rated no higher than the elite, not compared {versus}; {rubric}"
        if score > held and self.model.weak:
            return True, f"rated above the elite, not compared {versus}; {rubric}"
        try:
            tournament = run_tournament(
                judge, [incumbent.idea, challenger], seeds=[held, score], rounds=1
            )
        except BudgetSpent:
            return score > held, f"the budget ran out before the comparison {versus}; {rubric}"
        except _Stopped:
            return score > held, f"the run stopped before the comparison {versus}; {rubric}"
        wins = [c.winner for c in tournament.comparisons if c.winner is not None]
        challenger_wins, incumbent_wins = wins.count(1), wins.count(0)
        if challenger_wins != incumbent_wins:
            won = challenger_wins > incumbent_wins
            return won, f"{'won' if won else 'lost'} {challenger_wins}-{incumbent_wins} {versus}"
        return score > held, f"split {challenger_wins}-{incumbent_wins} {versus}; {rubric}"

    def _idea_id(self, idea: Idea, task: Task) -> int | None:
        """Bred elites go into the store's ideas with their provenance; seeds keep theirs."""
        if task.seed is not None:
            return task.seed.idea_id
        parent_ids = [p.idea_id for p in task.parents if p.idea_id is not None]
        return self.store.add_idea(
            idea,
            source_file=str(self.out),
            topic=self.topic,
            model=f"{self.model.provider}:{self.model.model}",
            template=self.template.name,
            parent_id=parent_ids[0] if parent_ids else None,
            run_id=self.run_id,
        )

    def _niche_lock(self, niche: str) -> threading.Lock:
        with self._state.lock:
            return self._state.niche_locks.setdefault(niche, threading.Lock())

    def _write_out(self) -> int:
        """The elites in recommended order, then every other entry the file held that did
        not come from the archive: the user's own ideas are never dropped. One written as an
        elite (it has an `evolve` key) that no longer is goes back as the user wrote it; the
        others stay as they are, edits included. Atomic. Returns how many the file kept."""
        loaded = load_ideas(self.out, missing_ok=True)
        elites = self.archive.recommended()
        replaced = {
            (e.idea.Title, e.idea.Experiment)
            for e in self.archive.entries.values()
            if e.operator != "seed:file"
        } | {(e.idea.Title, e.idea.Experiment) for e in elites}
        as_seeded = {
            (e.idea.Title, e.idea.Experiment): e.idea.to_entry()
            for e in self.archive.entries.values()
            if e.operator == "seed:file"
        }
        kept = []
        for entry in loaded.entries:
            if isinstance(entry, dict):
                key = (entry.get("Title"), entry.get("Experiment"))
                if key in replaced:
                    continue
                if "evolve" in entry:
                    entry = as_seeded.get(key, entry)
            kept.append(entry)
        taken = {entry.get("Name") for entry in kept if isinstance(entry, dict)}
        written = []
        for elite in elites:
            idea = self.archive.output_idea(elite)
            name = unique_name(idea.Name, taken)
            taken.add(name)
            written.append(idea.model_copy(update={"Name": name}).to_entry())
        if written or loaded.entries:
            atomic_write_text(self.out, loaded.style.render(written + kept))
        return len(kept)


def _shown(idea: Idea, in_parts: bool) -> str:
    """An elite as the model sees it, in the form it replies in (in parts, for a weak model);
    its text came from a file or a model, so it is fenced. A weak model is shown no Name: the
    local model took a seed's Name for code of experiment.py, and the gate refused the child
    (3 crossovers in run 23 of bench/evolve_local.txt and a demo run on 2026-12-01)."""
    fields = sketch_fields(idea) if in_parts else draft_fields(idea)
    if in_parts:
        fields.pop("Name", None)
    return fence(json.dumps(fields, indent=2, ensure_ascii=False))


def _preload_embedding_model() -> None:
    try:
        embeddings.load_model()
    except EmbeddingModelMissing:
        pass
