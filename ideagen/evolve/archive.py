"""The MAP-Elites archive, kept in the store so a run can be resumed.

A niche holds up to `per_niche` elites (three by default), a "deep grid" in the sense of
Flageat and Cully (2020), who keep several solutions per cell because one noisy evaluation
can throw the better solution away. Our judge is noisy (the local model's score of one idea
moved by 0.67 with the reply schema alone, bench/evolve_local.txt), and the ideas a user
seeds with often share a niche: the bundled template's six seeds are five search methods.
With one place per niche, evolve kept one of two search seeds the judge rated 8.67 and
dropped the other (run 26 of that file). A child placed in a full niche challenges its
weakest elite. Three places met the bench's goals from the seeds and from nothing (runs 31
and 32); two lost one seed's place from the seeds (run 29).

Every idea the archive has judged is an `ArchiveEntry` in the store: the elites, the elites
they replaced, the challengers that lost, and the children rejected before judging (as
duplicates, infeasible, or refused by the gate). An entry's parents are the entries it was
bred from, so the lineage of any elite can be walked back to its seeds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ideagen.evolve.niches import NicheSpec
from ideagen.schema import RATING_FIELDS, Idea
from ideagen.store import ArchiveEntry, Store

ELITE, REPLACED, LOST = "elite", "replaced", "lost"
DEFAULT_PER_NICHE = 3
REJECTED = ("duplicate", "infeasible", "gate")
MAX_LINEAGE = 12


def archive_key(template: str, topic: str, out: Path, spec: NicheSpec) -> str:
    """One archive per template, topic, output file and niche grid."""
    identity = json.dumps([template, topic, str(out), spec.fingerprint()])
    return hashlib.sha256(identity.encode()).hexdigest()[:12]


def archive_run_id(key: str) -> str:
    """The store run id under which every call of every session of this archive is recorded."""
    return f"evolve-{key}"


@dataclass(frozen=True)
class LineageStep:
    entry_id: int
    name: str
    title: str
    operator: str
    status: str
    score: float | None
    niche: str | None
    depth: int


@dataclass
class ArchiveCounts:
    judged: int = 0
    entered: int = 0  # elites that took a free place; the rest replaced an elite
    replaced: int = 0
    lost: int = 0
    duplicate: int = 0
    infeasible: int = 0
    gate: int = 0

    @property
    def rejected(self) -> int:
        return self.duplicate + self.infeasible + self.gate


@dataclass
class Archive:
    """The archive's entries as loaded from (and written through to) the store."""

    key: str
    spec: NicheSpec
    store: Store
    per_niche: int = DEFAULT_PER_NICHE
    entries: dict[int, ArchiveEntry] = field(default_factory=dict)

    @classmethod
    def load(
        cls, key: str, spec: NicheSpec, store: Store, per_niche: int = DEFAULT_PER_NICHE
    ) -> Archive:
        archive = cls(key, spec, store, per_niche)
        for entry in store.archive_entries(key):
            archive.entries[entry.id] = entry
        return archive

    def elites(self) -> list[ArchiveEntry]:
        return [e for e in self.entries.values() if e.status == ELITE and e.niche]

    def elites_by_niche(self) -> dict[str, list[ArchiveEntry]]:
        """Each filled niche's elites, best first: by judge score, then the earlier entry."""
        held: dict[str, list[ArchiveEntry]] = {}
        for elite in sorted(self.elites(), key=lambda e: (-(e.score or 0.0), e.id)):
            held.setdefault(elite.niche, []).append(elite)
        return held

    def elites_in(self, niche: str) -> list[ArchiveEntry]:
        return self.elites_by_niche().get(niche, [])

    def weakest_in(self, niche: str) -> ArchiveEntry | None:
        """The elite a challenger in a full niche must beat; None while the niche has room.
        A niche that holds more than `per_niche` (a run resumed with fewer places) keeps
        them, and a challenger still meets only its weakest."""
        held = self.elites_in(niche)
        return held[-1] if len(held) >= self.per_niche else None

    def empty_niches(self) -> list[str]:
        filled = self.elites_by_niche()
        return [niche for niche in self.spec.cells() if niche not in filled]

    def judged_ideas(self) -> list[ArchiveEntry]:
        """Everything the judge has seen: elites, former elites and losing challengers."""
        return [e for e in self.entries.values() if e.status in (ELITE, REPLACED, LOST)]

    def seen(self) -> set[tuple[str, str]]:
        return {(e.idea.Name, e.idea.Title) for e in self.entries.values()} | {
            (e.idea.Title, e.idea.Experiment) for e in self.entries.values()
        }

    def add(self, entry: ArchiveEntry, replaces: int | None = None) -> ArchiveEntry:
        """Write an entry (and the replacement, in one transaction) and return it with its id."""
        entry_id = self.store.add_archive_entry(entry, replaces)
        for stored in self.store.archive_entries(self.key):
            if stored.id in (entry_id, replaces):
                self.entries[stored.id] = stored
        return self.entries[entry_id]

    def counts(self) -> ArchiveCounts:
        counts = ArchiveCounts()
        replacers = {e.replaced_by for e in self.entries.values() if e.replaced_by is not None}
        for entry in self.entries.values():
            if entry.status in (ELITE, REPLACED):
                counts.judged += 1
                if entry.id in replacers:
                    counts.replaced += 1
                else:
                    counts.entered += 1
            elif entry.status == LOST:
                counts.judged += 1
                counts.lost += 1
            elif entry.status in REJECTED:
                setattr(counts, entry.status, getattr(counts, entry.status) + 1)
        return counts

    def lineage(self, entry: ArchiveEntry) -> list[LineageStep]:
        """The entry, then its parents, theirs and so on (breadth first, each once)."""
        steps: list[LineageStep] = []
        queue = [(entry.id, 0)]
        seen: set[int] = set()
        while queue and len(steps) < MAX_LINEAGE:
            entry_id, depth = queue.pop(0)
            if entry_id in seen or entry_id not in self.entries:
                continue
            seen.add(entry_id)
            current = self.entries[entry_id]
            steps.append(
                LineageStep(
                    entry_id,
                    current.idea.Name,
                    current.idea.Title,
                    current.operator,
                    current.status,
                    current.score,
                    current.niche,
                    depth,
                )
            )
            queue.extend((parent, depth + 1) for parent in current.parents)
        return steps

    def recommended(self) -> list[ArchiveEntry]:
        """The best elite of each niche, best judge score first (grid order breaks ties),
        then each niche's second best in the same order, and so on: the AI Scientist runs
        ideas in the order of the file, and its first runs should cover the most niches."""
        order = {niche: i for i, niche in enumerate(self.spec.cells())}
        ranked = [
            (rank, elite)
            for held in self.elites_by_niche().values()
            for rank, elite in enumerate(held)
        ]
        ranked.sort(key=lambda item: (item[0], -(item[1].score or 0.0), order[item[1].niche]))
        return [elite for _, elite in ranked]

    def output_idea(self, entry: ArchiveEntry) -> Idea:
        """The elite as the AI Scientist reads it: the judge's ratings in the rating fields
        (the author's kept under `original_ratings`) and where it sits in the archive."""
        values = entry.idea.to_entry()
        if entry.judge:
            judged = json.loads(entry.judge)
            values.setdefault("original_ratings", {name: values[name] for name in RATING_FIELDS})
            values.update({name: judged[name] for name in RATING_FIELDS})
        values["evolve"] = {
            "niche": entry.niche,
            "score": entry.score,
            "operator": entry.operator,
            "parents": [self.entries[p].idea.Name for p in entry.parents if p in self.entries],
        }
        return Idea.from_entry(values)
