"""`review`: the steps in order, from an idea file to an ordered, scored, checked list.

1. validate: the same checks and messages as `ideagen validate`; any error stops the review.
2. judge: an independent score per idea.
3. merge duplicates: each duplicate group keeps the member the judge scored best; the others
   are listed with it. The steps below run on the kept ideas only.
4. lint: what the template cannot do, and the brainstorm gate's failures (not plain English
   or of no sensible length; with --template, not grounded in its code and metrics).
5. novelty: online literature, an offline corpus, or off.
6. rank (optional): a pairwise tournament among the kept ideas.
7. order: ready ideas first, then flagged ones, then those already published; within each
   group by tournament strength (when ranked), then by the judge's mean score.
8. output: AI Scientist-compatible ideas (the judge's scores in the rating fields, the
   author's kept under `original_ratings`) plus everything the report and the table show.

`novel` follows The AI Scientist's own contract: `launch_scientist.py` runs an idea only when
`idea["novel"]` is true, and `check_idea_novelty` skips any idea that already has the key
(ai_scientist/generate_ideas.py, lines 420-422). So an input `novel` is evidence that is
kept: "unknown" or a check that is off never replaces it, `false` stays `false` unless the
user overrides it, and an idea that had none gets none when ideagen's own check is off.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ideagen.dedup import find_duplicates
from ideagen.gate import Gate, review_flags
from ideagen.ideafile import IdeaFile, IdeaFileError, load_ideas, unique_name
from ideagen.providers.base import LanguageModel, ModelError
from ideagen.results import IdeaOutcome, earlier_outcomes
from ideagen.review.judge import Judge, JudgeScore, Tournament, default_rounds, run_tournament
from ideagen.review.lint import LintFlag, lint_idea
from ideagen.review.novelty import (
    CorpusError,
    CorpusIndex,
    NoveltyChecker,
    NoveltyResult,
    RetryPolicy,
    load_corpus,
    online_clients,
)
from ideagen.schema import MAX_FIELD_CHARS, RATING_FIELDS, Idea, oversized
from ideagen.store import SpendSummary, Store
from ideagen.template_prompt import TemplateContext
from ideagen.workers import parallel_map

NoveltyMode = Literal["online", "offline", "off"]
Progress = Callable[[str, int, int], None]
EXIT_INVALID, EXIT_UNREADABLE = 1, 2


class ReviewInputError(Exception):
    """The input cannot be reviewed. `lines` are the messages to show, `exit_code` the status
    (the same as `ideagen validate` would give for the same file)."""

    def __init__(self, lines: list[str], exit_code: int):
        super().__init__("\n".join(lines))
        self.lines = lines
        self.exit_code = exit_code


@dataclass(frozen=True)
class MergedDuplicate:
    """An idea folded into a better one; `index` is its entry number in the input file."""

    index: int
    name: str
    title: str
    reason: str


@dataclass
class ReviewedIdea:
    position: int
    original: Idea
    reviewed: Idea
    judge: JudgeScore | None
    judge_error: str | None
    lint: list[LintFlag]
    novelty: NoveltyResult
    duplicates: list[MergedDuplicate] = field(default_factory=list)
    rank_score: float | None = None
    novel_conflict: str | None = None
    earlier: IdeaOutcome | None = None  # what The AI Scientist did with it or a near-duplicate

    @property
    def score(self) -> float:
        """The mean of the three ratings in the output (the judge's, else the author's)."""
        return sum(getattr(self.reviewed, name) for name in RATING_FIELDS) / len(RATING_FIELDS)


@dataclass
class ReviewResult:
    source: Path
    ideas: list[ReviewedIdea]
    input_count: int
    provider: str
    model_name: str
    weak_model: bool
    novelty_mode: NoveltyMode
    unknown_as_novel: bool
    run_id: str
    override_novel: bool = False
    tournament: Tournament | None = None
    spend: SpendSummary | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def output_ideas(self) -> list[Idea]:
        return [item.reviewed for item in self.ideas]


@dataclass
class ReviewOptions:
    novelty: NoveltyMode | None = None  # None: offline when a corpus is given, else online
    corpus: Path | None = None
    unknown_as_novel: bool = True
    override_novel: bool = False
    rank: bool = False
    rank_rounds: int | None = None
    template_dataset: str = "FashionMNIST"
    task_description: str | None = None
    template_name: str | None = None  # the store's name for the template (for provenance)
    template: TemplateContext | None = None  # when known, ideas are checked against its code
    limit: int | None = None
    literature_retry: RetryPolicy | None = None
    workers: int | None = None

    def novelty_mode(self) -> NoveltyMode:
        if self.novelty is not None:
            return self.novelty
        return "offline" if self.corpus is not None else "online"


def load_for_review(path: Path) -> IdeaFile:
    """The file's ideas, or ReviewInputError with exactly `ideagen validate`'s lines."""
    try:
        loaded = load_ideas(path)
    except IdeaFileError as exc:
        raise ReviewInputError([str(exc)], EXIT_UNREADABLE) from None
    if loaded.errors:
        lines = [str(problem) for problem in loaded.problems]
        lines.append(
            f"{path}: {len(loaded.entries)} entries, {len(loaded.errors)} errors, "
            f"{len(loaded.warnings)} warnings; fix them (see `ideagen validate --fix`) and rerun"
        )
        raise ReviewInputError(lines, EXIT_INVALID)
    if not loaded.ideas:
        raise ReviewInputError([f"{path}: the file holds no ideas"], EXIT_INVALID)
    return loaded


# What one judge or novelty call sends besides the idea (rubric, instructions, papers), and
# about how long its answer is: for the estimate shown before a paid review starts.
PROMPT_CHARS_PER_CALL = 4000
REPLY_TOKENS_PER_CALL = 400


def review_estimate(ideas: list[Idea], options: ReviewOptions) -> tuple[int, int, int]:
    """(calls, characters per call, reply tokens per call) at most, for the cost estimate."""
    ideas = ideas[: options.limit] if options.limit else ideas
    if not ideas:
        return 0, 0, 0
    per_idea = 1 + (0 if options.novelty_mode() == "off" else 2)
    calls = per_idea * len(ideas)
    if options.rank and len(ideas) > 1:
        calls += 2 * (options.rank_rounds or default_rounds(len(ideas))) * (len(ideas) // 2)
    idea_chars = max(len(idea.Title) + len(idea.Experiment) for idea in ideas)
    return calls, PROMPT_CHARS_PER_CALL + 2 * idea_chars, REPLY_TOKENS_PER_CALL


def refuse_oversized(path: Path, ideas: list[Idea], model: LanguageModel) -> None:
    """No idea far larger than any real one goes to a paid model (see schema.MAX_FIELD_CHARS)."""
    if not getattr(model, "paid", False):
        return
    lines = [
        f"{path}: entry {number} ({idea.Name}): {field}: over {MAX_FIELD_CHARS:,} characters; "
        "not sent to a paid model (shorten it, or review without it)"
        for number, idea in enumerate(ideas)
        if (field := oversized(idea))
    ]
    if lines:
        raise ReviewInputError(lines, EXIT_INVALID)


def review_file(
    path: Path,
    model: LanguageModel,
    store: Store,
    options: ReviewOptions | None = None,
    *,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> ReviewResult:
    """Run every step on one file. Raises ReviewInputError before any model call when the
    file or the corpus cannot be used. The spend reported is that of `run_id`, so build the
    model with the same run_id."""
    options = options or ReviewOptions()
    started = time.monotonic()
    run_id = run_id or uuid.uuid4().hex
    report = progress or (lambda step, done, total: None)
    mode = options.novelty_mode()

    loaded = load_for_review(path)
    checker = _novelty_checker(mode, options, model, store)
    ideas = loaded.ideas[: options.limit] if options.limit else loaded.ideas
    refuse_oversized(path, ideas, model)
    warnings = [
        str(problem).removeprefix("warning: ")
        for problem in loaded.warnings
        if problem.index is None or problem.index < len(ideas)
    ]
    if options.limit and len(loaded.ideas) > options.limit:
        warnings.append(f"only the first {options.limit} of {len(loaded.ideas)} ideas reviewed")

    workers = options.workers or (1 if model.weak else 4)
    judge = Judge(model, options.task_description)
    # Every idea is judged before merging so that each duplicate group keeps the member
    # the judge likes best, not the one its author rated highest.
    scores = _parallel(ideas, lambda idea: _score(judge, idea), workers, "judging", report)
    report("merging duplicates", 0, 1)
    judge_means = {i: score.mean for i, (score, _) in enumerate(scores) if score is not None}
    kept, merged = merge_duplicates(ideas, store, judge_means)
    report("merging duplicates", 1, 1)

    if checker is None:
        novelty = [
            NoveltyResult(status="unknown", reason="novelty check off", mode="off") for _ in kept
        ]
    else:
        novelty = _parallel([ideas[i] for i in kept], checker.check, workers, "novelty", report)

    gate = Gate(options.template, store) if options.template else None
    items = []
    for slot, index in enumerate(kept):
        score, error = scores[index]
        items.append(
            ReviewedIdea(
                position=index,
                original=ideas[index],
                reviewed=ideas[index],
                judge=score,
                judge_error=error,
                lint=lint_idea(ideas[index], options.template_dataset)
                + review_flags(ideas[index], gate),
                novelty=novelty[slot],
                duplicates=merged.get(index, []),
            )
        )

    tournament = None
    if options.rank and len(items) > 1:
        tournament = _rank(judge, items, options, report)

    items.sort(key=_recommended_order)
    taken: set[str] = set()
    for item in items:
        item.reviewed = _output_idea(item, options, mode, taken)

    earlier = earlier_outcomes([item.original for item in items], store, options.template_name)
    for item, outcome in zip(items, earlier, strict=True):
        item.earlier = outcome
    for item in items:
        if item.novel_conflict:
            warnings.append(f"{item.reviewed.Name}: novel: {item.novel_conflict}")
        store.add_idea(
            item.reviewed,
            source_file=str(path),
            model=model.model,
            template=options.template_name,
            run_id=run_id,
        )
    failed = sum(1 for item in items if item.judge is None)
    if failed:
        warnings.append(
            f"the judge could not score {failed} of {len(items)} ideas; "
            "their own ratings are kept (see the report for why)"
        )
    return ReviewResult(
        source=path,
        ideas=items,
        input_count=len(ideas),
        provider=model.provider,
        model_name=model.model,
        weak_model=model.weak,
        novelty_mode=mode,
        unknown_as_novel=options.unknown_as_novel,
        run_id=run_id,
        override_novel=options.override_novel,
        tournament=tournament,
        spend=store.spend(run_id),
        warnings=warnings,
        seconds=time.monotonic() - started,
    )


def merge_duplicates(
    ideas: list[Idea], store: Store, scores: dict[int, float] | None = None
) -> tuple[list[int], dict[int, list[MergedDuplicate]]]:
    """Indices of the ideas kept (in input order) and, per kept index, what merged into it.
    With `scores` (index -> judge's mean), each group keeps its best-scored member."""
    result = find_duplicates(ideas, store, scores=scores or None)
    merged: dict[int, list[MergedDuplicate]] = {}
    dropped: set[int] = set()
    for cluster in result.clusters:
        keep = cluster.keep
        for member in cluster.members:
            if member == keep:
                continue
            dropped.add(member)
            merged.setdefault(keep, []).append(
                MergedDuplicate(
                    index=member,
                    name=ideas[member].Name,
                    title=ideas[member].Title,
                    reason=cluster.reasons.get(member, ""),
                )
            )
    return [i for i in range(len(ideas)) if i not in dropped], merged


def _novelty_checker(
    mode: NoveltyMode, options: ReviewOptions, model: LanguageModel, store: Store
) -> NoveltyChecker | None:
    if mode == "off":
        return None
    if mode == "offline":
        if options.corpus is None:
            raise ReviewInputError(
                ["--novelty offline needs --corpus FILE (JSONL of title/abstract, or BibTeX)"],
                EXIT_UNREADABLE,
            )
        try:
            papers = load_corpus(options.corpus)
        except CorpusError as exc:
            raise ReviewInputError([str(exc)], EXIT_UNREADABLE) from None
        return NoveltyChecker(model, corpus=CorpusIndex.build(papers, store))
    return NoveltyChecker(model, clients=online_clients(store, options.literature_retry))


def _score(judge: Judge, idea: Idea) -> tuple[JudgeScore | None, str | None]:
    try:
        return judge.score(idea), None
    except ModelError as exc:
        return None, str(exc)


def _parallel(
    ideas: list[Idea], work: Callable[[Idea], Any], workers: int, step: str, report: Progress
) -> list[Any]:
    """`work` on every idea, results in input order, progress after each one finishes."""
    results: list[Any] = [None] * len(ideas)
    report(step, 0, len(ideas))
    if workers <= 1:
        for number, idea in enumerate(ideas):
            results[number] = work(idea)
            report(step, number + 1, len(ideas))
        return results
    return parallel_map(work, ideas, workers, on_done=lambda done: report(step, done, len(ideas)))


def _rank(
    judge: Judge, items: list[ReviewedIdea], options: ReviewOptions, report: Progress
) -> Tournament:
    seeds = [item.judge.mean if item.judge else item.score for item in items]
    total_rounds = options.rank_rounds
    asked = 0

    def on_comparison(_: object) -> None:
        nonlocal asked
        asked += 1
        report("pairwise tournament", asked, 0)

    tournament = run_tournament(
        judge, [item.original for item in items], seeds, total_rounds, on_comparison
    )
    for number, item in enumerate(items):
        item.rank_score = tournament.score(number)
    return tournament


def _recommended_order(item: ReviewedIdea) -> tuple:
    group = 2 if item.novelty.status == "not_novel" else 1 if item.lint else 0
    judge_mean = item.judge.mean if item.judge else item.score
    rank = -(item.rank_score if item.rank_score is not None else 0.0)
    return (group, rank, -judge_mean, item.position)


def _output_idea(
    item: ReviewedIdea, options: ReviewOptions, mode: NoveltyMode, taken: set[str]
) -> Idea:
    """The idea as the AI Scientist will read it, with the review kept in extra keys."""
    entry = item.original.to_entry()
    if item.judge is not None:
        entry.setdefault("original_ratings", {name: entry[name] for name in RATING_FIELDS})
        entry.update(item.judge.ratings())
    novel, item.novel_conflict = decide_novel(item.original.novel, item.novelty, mode, options)
    if novel is None:
        entry.pop("novel", None)
    else:
        entry["novel"] = novel
    name = unique_name(item.original.Name, taken)
    taken.add(name)
    entry["Name"] = name
    entry["review"] = _review_record(item)
    return Idea.from_entry(entry)


def decide_novel(
    given: bool | None, found: NoveltyResult, mode: NoveltyMode, options: ReviewOptions
) -> tuple[bool | None, str | None]:
    """The `novel` value to write (None: leave the key out) and, when the input's verdict
    and ideagen's disagree, a sentence saying how."""
    if mode == "off":
        if given is False and options.override_novel:
            return None, None
        return given, None
    if found.status == "not_novel":
        paper = found.paper.citation() if found.paper is not None else "a published paper"
        if given is True:
            return False, f"the input said novel; ideagen found it in {paper}"
        return False, None
    ours = found.status == "novel" or options.unknown_as_novel
    if given is False:
        seen = "found no overlapping paper" if found.status == "novel" else "found nothing"
        if options.override_novel:
            return ours, f"the input said not novel; ideagen {seen} and --override-novel won"
        return False, f"the input said not novel (kept); ideagen {seen}"
    if given is True:
        return True, None
    return ours, None


def _review_record(item: ReviewedIdea) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if item.judge is not None:
        record["rationales"] = item.judge.rationales()
    else:
        record["judge_error"] = item.judge_error
    if item.rank_score is not None:
        record["rank_score"] = item.rank_score
    record["lint"] = [f"{flag.kind}: {flag.evidence}" for flag in item.lint]
    novelty: dict[str, Any] = {"status": item.novelty.status, "reason": item.novelty.reason}
    if item.novelty.paper is not None:
        novelty["paper"] = item.novelty.paper.citation()
        if item.novelty.paper.url:
            novelty["url"] = item.novelty.paper.url
    if item.original.novel is not None:
        novelty["input_novel"] = item.original.novel
    if item.novel_conflict:
        novelty["conflict"] = item.novel_conflict
    record["novelty"] = novelty
    if item.duplicates:
        record["merged"] = [duplicate.name for duplicate in item.duplicates]
    return record
