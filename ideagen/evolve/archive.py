"""The MAP-Elites archive: one elite per niche, kept in the store so a run can be resumed.

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
    entered_empty: int = 0
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
    entries: dict[int, ArchiveEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, key: str, spec: NicheSpec, store: Store) -> Archive:
        archive = cls(key, spec, store)
        for entry in store.archive_entries(key):
            archive.entries[entry.id] = entry
        return archive

    def elites(self) -> dict[str, ArchiveEntry]:
        return {e.niche: e for e in self.entries.values() if e.status == ELITE and e.niche}

    def elite_in(self, niche: str) -> ArchiveEntry | None:
        return self.elites().get(niche)

    def empty_niches(self) -> list[str]:
        filled = self.elites()
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
                    counts.entered_empty += 1
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
        """The elites, best judge score first (grid order breaks ties)."""
        order = {niche: i for i, niche in enumerate(self.spec.cells())}
        return sorted(
            self.elites().values(), key=lambda e: (-(e.score or 0.0), order.get(e.niche, 0))
        )

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
