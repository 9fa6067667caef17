"""What The AI Scientist did with each idea: read its results folders, compare each idea's best
run with the baseline, and keep the outcome in the store beside the idea's provenance.

The layout read here is what SakanaAI/AI-Scientist writes (file and line of its code):
- one folder per idea, `results/<experiment>/<YYYYmmdd_HHMMSS>_<Name>/`, a copy of the
  template folder, run_0 included (launch_scientist.py, lines 166-171 and 342);
- `notes.txt` opening with `# Title: ...` and `# Experiment description: ...`
  (launch_scientist.py, lines 180-185);
- `run_<i>/final_info.json` for each run i >= 1 that succeeded: a failed or timed-out run's
  folder is removed (ai_scientist/perform_experiments.py, lines 52-56 and 79-82), while
  `run_<i>.py` is left for every attempt (lines 33-36);
- final_info.json maps each dataset to {"means": {...}, "stderrs": {...},
  "final_info_dict": {...}}; The AI Scientist itself reads only "means"
  (perform_experiments.py, line 64);
- the paper `<Name>.pdf` (ai_scientist/perform_writeup.py, line 512) and `review.txt`,
  the review as JSON (launch_scientist.py, lines 277-279) whose "Overall" is 1-10 and
  "Decision" is Accept or Reject (ai_scientist/perform_review.py, lines 57-59 and 192).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from ideagen.ideafile import IdeaFileError, load_ideas
from ideagen.resources import render_prompt
from ideagen.schema import RATING_FIELDS, Idea
from ideagen.store import Store

FOLDER_NAME = re.compile(r"^(\d{8}_\d{6})_(.+)$")
RUN_FOLDER = re.compile(r"^run_(\d+)$")
LOWER_IS_BETTER = ("loss", "time", "error", "perplexity", "divergence")
# Which metric counts, when the user does not say: the first kind found, in this order.
METRIC_PREFERENCE = (
    ("test", "acc"),
    ("val", "acc"),
    ("acc",),
    ("test", "loss"),
    ("val", "loss"),
    ("eval", "loss"),
    ("loss",),
)
# A change is called better or worse only when it exceeds this many combined standard
# errors of the two means (about a 95% interval); anything smaller is within noise.
NOISE_WIDTH = 2.0

Verdict = Literal["better", "worse", "mixed", "within noise", "noise unknown", "no baseline"]


class ResultsError(Exception):
    """The results folder cannot be read at all; the message names it."""


class PaperReview(BaseModel):
    Overall: int | float | None = None
    Decision: str | None = None


class Provenance(BaseModel):
    """Where an idea came from and what ideagen thought of it before it ran."""

    idea_ids: list[int] = Field(default_factory=list)
    topic: str | None = None
    drafted_by: str | None = None
    judge: dict[str, int] | None = None
    novel: bool | None = None
    novelty: str | None = None


class IdeaOutcome(BaseModel):
    name: str
    folder: str
    path: str
    experiment: str | None = None
    title: str | None = None
    description: str | None = None
    ran: bool = False
    runs: list[str] = Field(default_factory=list)
    attempts: int = 0
    baseline: bool = False
    best_run: str | None = None
    metric: str | None = None
    higher_is_better: bool = True
    delta: dict[str, float] = Field(default_factory=dict)
    baseline_means: dict[str, float] = Field(default_factory=dict)
    noise: dict[str, float] = Field(default_factory=dict)
    seeds: int | None = None
    verdict: Verdict | None = None
    paper: bool = False
    review: PaperReview | None = None
    problems: list[str] = Field(default_factory=list)
    provenance: Provenance | None = None

    def main_delta(self) -> float | None:
        """The change in the main metric (the mean over datasets when there are several)."""
        values = [v for k, v in self.delta.items() if _bare(k) == self.metric]
        return sum(values) / len(values) if values else None

    def summary(self) -> str:
        """One line: what happened, e.g. `-0.20 pp test_accuracy (within noise), paper
        rejected (Overall 3)`."""
        if not self.ran:
            return "did not run" + (f" ({self.problems[0]})" if self.problems else "")
        parts = []
        change = self.main_delta()
        if change is None:
            parts.append(f"ran {len(self.runs)} runs, no baseline to compare")
        else:
            parts.append(f"{format_change(self.metric or '', change)} {self.metric}")
            if self.verdict in ("within noise", "noise unknown", "mixed"):
                parts[-1] += f" ({self.verdict})"
        if self.review is not None and self.review.Decision:
            decided = "accepted" if self.review.Decision.lower() == "accept" else "rejected"
            overall = f" (Overall {_number(self.review.Overall)})" if self.review.Overall else ""
            parts.append(f"paper {decided}{overall}")
        else:
            parts.append("paper written, not reviewed" if self.paper else "no paper")
        return ", ".join(parts)

    def short(self) -> str:
        """A few words for a table cell, e.g. `-0.20 pp, rejected`."""
        if not self.ran:
            return "did not run"
        change = self.main_delta()
        first = "no baseline" if change is None else format_change(self.metric or "", change)
        if self.verdict == "within noise":
            first += " (noise)"
        if self.review is not None and self.review.Decision:
            decided = "accepted" if self.review.Decision.lower() == "accept" else "rejected"
            return f"{first}, {decided}"
        return f"{first}, {'paper' if self.paper else 'no paper'}"

    def public(self) -> dict[str, Any]:
        """The `--json` form: the documented keys first, then the rest."""
        data = self.model_dump(mode="json")
        head = {key: data.pop(key) for key in ("name", "folder", "ran", "best_run", "delta")}
        head["paper"] = data.pop("paper")
        head["review"] = data.pop("review")
        return {**head, **data}


class ResultsSummary(BaseModel):
    directory: str
    experiment: str | None
    ideas_file: str | None = None
    outcomes: list[IdeaOutcome]


class RunInfo(BaseModel):
    """One run's final_info.json, flattened: `metric` or `dataset.metric` when several."""

    means: dict[str, float]
    stderrs: dict[str, float]
    seeds: dict[str, int]


def lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


def format_change(metric: str, change: float) -> str:
    """A change in final_info's units; accuracies (fractions) are shown in percentage points."""
    if "acc" in metric.lower() and abs(change) <= 1:
        return f"{change * 100:+.2f} pp"
    return f"{change:+.4g}"


def read_results(
    directory: Path,
    *,
    experiment: str | None = None,
    ideas_file: Path | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    store: Store | None = None,
) -> ResultsSummary:
    """Every idea folder under `directory` (The AI Scientist's `results/<experiment>`)."""
    if not directory.is_dir():
        raise ResultsError(f"{directory}: no such results folder")
    if (directory / "launch_scientist.py").is_file():
        names = sorted(p.name for p in (directory / "results").glob("*") if p.is_dir())
        raise ResultsError(
            f"{directory} is The AI Scientist's folder: add --experiment NAME"
            + (f" (its results hold: {', '.join(names)})" if names else " (it has no results yet)")
        )
    experiment = experiment or directory.name
    if ideas_file is None:
        guess = directory.resolve().parent.parent / "templates" / directory.name / "ideas.json"
        ideas_file = guess if guess.is_file() else None
    known = _ideas_in(ideas_file)
    outcomes = []
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        outcome = read_idea_folder(folder, metric, higher_is_better)
        outcome.experiment = experiment
        outcome.provenance = _provenance(outcome, known, store)
        outcomes.append(outcome)
    return ResultsSummary(
        directory=str(directory),
        experiment=experiment,
        ideas_file=str(ideas_file) if ideas_file else None,
        outcomes=outcomes,
    )


def read_idea_folder(
    folder: Path, metric: str | None = None, higher_is_better: bool | None = None
) -> IdeaOutcome:
    """One idea folder. Anything missing or unreadable is noted in `problems`, never fatal."""
    match = FOLDER_NAME.match(folder.name)
    name = match.group(2) if match else folder.name
    outcome = IdeaOutcome(name=name, folder=folder.name, path=str(folder.resolve()))
    outcome.title, outcome.description = _read_notes(folder / "notes.txt")
    outcome.attempts = len(list(folder.glob("run_*.py")))
    runs: dict[str, RunInfo] = {}
    for run in sorted(folder.glob("run_*"), key=_run_number):
        if not run.is_dir() or not RUN_FOLDER.match(run.name):
            continue
        info_file = run / "final_info.json"
        if not info_file.is_file():
            if run.name == "run_0":
                outcome.problems.append(f"{info_file}: missing")
            continue
        try:
            runs[run.name] = read_final_info(info_file)
        except ResultsError as exc:
            outcome.problems.append(str(exc))
    baseline = runs.pop("run_0", None)
    outcome.baseline = baseline is not None
    if baseline is None and not any("run_0" in p for p in outcome.problems):
        outcome.problems.append(f"{folder / 'run_0'}: missing (no baseline)")
    outcome.runs = list(runs)
    outcome.ran = bool(runs)
    _compare(outcome, baseline, runs, metric, higher_is_better)
    outcome.paper = (folder / f"{name}.pdf").is_file()
    review_file = folder / "review.txt"
    if review_file.is_file():
        try:
            outcome.review = read_review(review_file)
        except ResultsError as exc:
            outcome.problems.append(str(exc))
    return outcome


def read_final_info(path: Path) -> RunInfo:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict) or not data:
        raise ResultsError(f"{path}: expected an object mapping each dataset to its results")
    several = len(data) > 1
    info = RunInfo(means={}, stderrs={}, seeds={})
    for dataset, block in data.items():
        if not isinstance(block, dict) or not isinstance(block.get("means"), dict):
            raise ResultsError(f"{path}: {dataset}: means: missing or not an object")
        stderrs = block.get("stderrs") if isinstance(block.get("stderrs"), dict) else {}
        per_seed = block.get("final_info_dict")
        per_seed = per_seed if isinstance(per_seed, dict) else {}
        for key, value in block["means"].items():
            if not _is_number(value):
                continue
            name = f"{dataset}.{key}" if several else key
            info.means[name] = float(value)
            base = key.removesuffix("_mean")
            stderr = stderrs.get(key, stderrs.get(f"{base}_stderr"))
            if _is_number(stderr):
                info.stderrs[name] = float(stderr)
            seeds = per_seed.get(key, per_seed.get(base))
            if isinstance(seeds, list):
                info.seeds[name] = len(seeds)
    return info


def read_review(path: Path) -> PaperReview:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: expected the review as a JSON object")
    overall = data.get("Overall")
    decision = data.get("Decision")
    return PaperReview(
        Overall=overall if _is_number(overall) else None,
        Decision=decision if isinstance(decision, str) else None,
    )


def choose_metric(names: Sequence[str], wanted: str | None = None) -> str | None:
    """The main metric's bare name (without a dataset prefix)."""
    bare = list(dict.fromkeys(_bare(name) for name in names))
    if wanted is not None:
        return wanted if wanted in bare else None
    for words in METRIC_PREFERENCE:
        for name in bare:
            if all(word in name.lower() for word in words):
                return name
    return bare[0] if bare else None


def _compare(
    outcome: IdeaOutcome,
    baseline: RunInfo | None,
    runs: dict[str, RunInfo],
    wanted: str | None,
    higher_is_better: bool | None,
) -> None:
    names = [
        *(baseline.means if baseline else {}),
        *(m for run in runs.values() for m in run.means),
    ]
    outcome.metric = choose_metric(names, wanted)
    if wanted is not None and outcome.metric is None and names:
        outcome.problems.append(f"metric {wanted!r} not in final_info.json")
    if outcome.metric is None or not runs:
        return
    higher = not lower_is_better(outcome.metric) if higher_is_better is None else higher_is_better
    outcome.higher_is_better = higher
    sign = 1.0 if higher else -1.0

    def score(run: RunInfo) -> float:
        changes = []
        for key, value in run.means.items():
            if _bare(key) != outcome.metric:
                continue
            base = baseline.means.get(key) if baseline else None
            if base is None:
                changes.append(sign * value)
            else:
                changes.append(sign * (value - base) / (abs(base) or 1.0))
        return sum(changes) / len(changes) if changes else -math.inf

    best_name = max(runs, key=lambda name: score(runs[name]))
    if score(runs[best_name]) == -math.inf:
        return
    outcome.best_run = best_name
    if baseline is None:
        outcome.verdict = "no baseline"
        return
    best = runs[best_name]
    outcome.baseline_means = dict(baseline.means)
    seeds = [n for n in baseline.seeds.values()]
    outcome.seeds = min(seeds) if seeds else None
    calls = []
    for key, value in best.means.items():
        if key not in baseline.means:
            continue
        outcome.delta[key] = value - baseline.means[key]
        spread = math.hypot(baseline.stderrs.get(key, 0.0), best.stderrs.get(key, 0.0))
        if spread > 0:
            outcome.noise[key] = NOISE_WIDTH * spread
        if _bare(key) == outcome.metric:
            calls.append(_call(sign * outcome.delta[key], outcome.noise.get(key)))
    outcome.verdict = _overall(calls)


def _call(improvement: float, noise: float | None) -> Verdict:
    if noise is None:
        return "noise unknown"
    if abs(improvement) <= noise:
        return "within noise"
    return "better" if improvement > 0 else "worse"


def _overall(calls: list[Verdict]) -> Verdict | None:
    """Datasets whose noise is unknown are left out, unless that is all of them."""
    known = [call for call in calls if call != "noise unknown"]
    if not known:
        return "noise unknown" if calls else None
    calls = known
    found = set(calls) - {"within noise"}
    if not found:
        return "within noise"
    return found.pop() if len(found) == 1 else "mixed"


def _read_notes(path: Path) -> tuple[str | None, str | None]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None, None
    title = description = None
    for line in lines[:5]:
        if line.startswith("# Title: "):
            title = line.removeprefix("# Title: ").strip()
        elif line.startswith("# Experiment description: "):
            description = line.removeprefix("# Experiment description: ").strip()
    return title, description


def _ideas_in(path: Path | None) -> list[Idea]:
    if path is None:
        return []
    try:
        return load_ideas(path).ideas
    except IdeaFileError as exc:
        raise ResultsError(str(exc)) from None


def _provenance(outcome: IdeaOutcome, known: list[Idea], store: Store | None) -> Provenance:
    """The records of this idea: same Name, and the same Title (and Experiment, when the
    notes give it) so that a reused Name does not link another idea's history."""
    provenance = Provenance()
    candidates = [idea for idea in known if _same_idea(outcome, idea)]
    if store is not None:
        for stored in store.ideas(name=outcome.name):
            if not _same_idea(outcome, stored.idea):
                continue
            provenance.idea_ids.append(stored.id)
            candidates.append(stored.idea)
            provenance.topic = provenance.topic or stored.topic
            if stored.idea.model_extra.get("review") is None:
                provenance.drafted_by = provenance.drafted_by or stored.model
    for idea in candidates:
        if isinstance(idea.model_extra.get("original_ratings"), dict):
            provenance.judge = {field: getattr(idea, field) for field in RATING_FIELDS}
        review = idea.model_extra.get("review")
        if isinstance(review, dict) and isinstance(review.get("novelty"), dict):
            provenance.novelty = review["novelty"].get("status")
        if idea.novel is not None:
            provenance.novel = idea.novel
    return provenance


def _same_idea(outcome: IdeaOutcome, idea: Idea) -> bool:
    if idea.Name != outcome.name:
        return False
    if outcome.title is not None and idea.Title.strip() != outcome.title:
        return False
    return outcome.description is None or idea.Experiment.strip() == outcome.description


def save_outcomes(store: Store, summary: ResultsSummary) -> None:
    for outcome in summary.outcomes:
        store.put_outcome(
            outcome.path,
            experiment=outcome.experiment,
            name=outcome.name,
            title=outcome.title,
            body=outcome.model_dump_json(),
            idea_ids=outcome.provenance.idea_ids if outcome.provenance else [],
        )


def stored_outcomes(store: Store, experiment: str | None = None) -> list[IdeaOutcome]:
    outcomes = []
    for stored in store.outcomes(experiment=experiment):
        try:
            outcomes.append(IdeaOutcome.model_validate_json(stored.body))
        except ValidationError:
            continue  # written by another version of ideagen; `ideagen results` rewrites it
    return outcomes


def as_idea(outcome: IdeaOutcome) -> Idea | None:
    """The idea as The AI Scientist ran it (its notes), for comparing texts; the ratings are
    placeholders that duplicate detection does not read."""
    if not outcome.title or not outcome.description:
        return None
    return Idea.from_entry(
        {
            "Name": outcome.name,
            "Title": outcome.title,
            "Experiment": outcome.description,
            **{field: 1 for field in RATING_FIELDS},
        }
    )


def earlier_outcomes(
    ideas: Sequence[Idea], store: Store, experiment: str | None = None
) -> list[IdeaOutcome | None]:
    """For each idea, the outcome of an earlier run of the same idea or a near-duplicate."""
    from ideagen.dedup import duplicates_against

    outcomes = stored_outcomes(store, experiment)
    pairs = [(o, idea) for o in outcomes if (idea := as_idea(o)) is not None]
    found: list[IdeaOutcome | None] = [None] * len(ideas)
    for index, idea in enumerate(ideas):
        for outcome, ran in pairs:
            if ran.Name == idea.Name and ran.Title.strip() == idea.Title.strip():
                found[index] = outcome
                break
    if pairs:
        matches = duplicates_against(list(ideas), [ran for _, ran in pairs], store)
        for match in matches:  # best first
            if found[match.i] is None:
                found[match.i] = pairs[match.j][0]
    return found


def outcome_lessons(store: Store, experiment: str) -> str:
    """For a brainstorm's context: what worked and what did not for this template, or ""
    when nothing of it has been run yet. Starts with a blank line so it can be appended."""
    worked, failed = template_lessons(store, experiment)
    if not worked and not failed:
        return ""
    return "\n\n" + render_prompt(
        "brainstorm_outcomes",
        worked="\n".join(worked) or "(nothing yet)",
        failed="\n".join(failed) or "(nothing yet)",
    )


def template_lessons(store: Store, experiment: str, limit: int = 8) -> tuple[list[str], list[str]]:
    """Lines on what worked and what did not for this template, most recent first."""
    worked, failed = [], []
    for outcome in reversed(stored_outcomes(store, experiment)):
        label = outcome.title or outcome.name
        line = f"- {label}: {outcome.summary()}"
        if outcome.verdict == "better" or (
            outcome.review is not None and (outcome.review.Decision or "").lower() == "accept"
        ):
            worked.append(line)
        else:
            failed.append(line)
    return worked[:limit], failed[:limit]


def _bare(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else name


def _run_number(path: Path) -> int:
    match = RUN_FOLDER.match(path.name)
    return int(match.group(1)) if match else -1


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
