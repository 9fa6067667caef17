"""The embedded SQLite store: every idea with its provenance, every model call, and caches.

One file, WAL mode, safe for several processes at once (each write is one short
transaction; a busy timeout waits out the other writer). The schema carries a version
number and is migrated forward on open.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from platformdirs import user_data_dir

from ideagen.schema import Idea

SCHEMA_VERSION = 4
DB_FILENAME = "ideagen.sqlite3"

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE ideas (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        source_file TEXT,
        topic TEXT,
        model TEXT,
        created REAL NOT NULL,
        parent_id INTEGER REFERENCES ideas(id)
    );
    CREATE TABLE model_calls (
        id INTEGER PRIMARY KEY,
        run_id TEXT,
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        purpose TEXT,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cache_write_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        latency_s REAL NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        status TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE embeddings (
        content_hash TEXT NOT NULL,
        model TEXT NOT NULL,
        dim INTEGER NOT NULL,
        vector BLOB NOT NULL,
        PRIMARY KEY (content_hash, model)
    );
    CREATE TABLE literature (
        source TEXT NOT NULL,
        query TEXT NOT NULL,
        response TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (source, query)
    );
    """,
    2: """
    ALTER TABLE ideas ADD COLUMN template TEXT;
    ALTER TABLE ideas ADD COLUMN rounds INTEGER;
    ALTER TABLE ideas ADD COLUMN tokens INTEGER;
    ALTER TABLE ideas ADD COLUMN cost_usd REAL;
    ALTER TABLE ideas ADD COLUMN run_id TEXT;
    CREATE INDEX ideas_template_topic ON ideas(template, topic);
    CREATE TABLE responses (
        request_hash TEXT PRIMARY KEY,
        response TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE judgments (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        model TEXT NOT NULL,
        answer TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (kind, key, model)
    );
    CREATE TABLE transcripts (
        id INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created REAL NOT NULL
    );
    """,
    3: """
    CREATE TABLE archive_entries (
        id INTEGER PRIMARY KEY,
        archive TEXT NOT NULL,
        idea_id INTEGER REFERENCES ideas(id),
        body TEXT NOT NULL,
        niche TEXT,
        score REAL,
        judge TEXT,
        operator TEXT NOT NULL,
        parents TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        replaced_by INTEGER REFERENCES archive_entries(id),
        run_id TEXT,
        created REAL NOT NULL
    );
    CREATE INDEX archive_entries_archive ON archive_entries(archive, status);
    """,
    4: """
    CREATE TABLE outcomes (
        folder TEXT PRIMARY KEY,
        experiment TEXT,
        name TEXT NOT NULL,
        title TEXT,
        body TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE INDEX outcomes_experiment ON outcomes(experiment);
    CREATE TABLE outcome_ideas (
        folder TEXT NOT NULL REFERENCES outcomes(folder) ON DELETE CASCADE,
        idea_id INTEGER NOT NULL REFERENCES ideas(id),
        PRIMARY KEY (folder, idea_id)
    );
    """,
}


def default_home() -> Path:
    """IDEAGEN_HOME if set, else the user's data folder (XDG_DATA_HOME/ideagen on Linux)."""
    env = os.environ.get("IDEAGEN_HOME")
    return Path(env).expanduser() if env else Path(user_data_dir("ideagen", appauthor=False))


@dataclass(frozen=True)
class StoredIdea:
    id: int
    idea: Idea
    source_file: str | None
    topic: str | None
    model: str | None
    template: str | None
    parent_id: int | None
    created: float


@dataclass(frozen=True)
class StoredOutcome:
    folder: str
    experiment: str | None
    name: str
    title: str | None
    body: str
    idea_ids: list[int]
    created: float


@dataclass(frozen=True)
class CallRecord:
    provider: str
    model: str
    status: str
    tokens_in: int = 0
    tokens_out: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    purpose: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class ArchiveEntry:
    """One idea an `evolve` archive evaluated: an elite, a former elite, or a rejected child.

    `parents` are the ids of the archive entries it was bred from; `niche` is "row/column".
    """

    archive: str
    idea: Idea
    operator: str
    status: str
    parents: tuple[int, ...] = ()
    niche: str | None = None
    score: float | None = None
    judge: str | None = None
    reason: str | None = None
    idea_id: int | None = None
    run_id: str | None = None
    id: int | None = None
    replaced_by: int | None = None
    created: float = 0.0


@dataclass(frozen=True)
class SpendSummary:
    calls: int
    failed_calls: int
    tokens_in: int
    tokens_out: int
    cache_write_tokens: int
    cache_read_tokens: int
    cost_usd: float
    latency_s: float


class StoreError(Exception):
    """The store cannot be used; one line naming the file or folder and what to do."""


def store_path(home: str | Path | None) -> Path:
    return (Path(home).expanduser() if home else default_home()) / DB_FILENAME


def damaged_store(path: Path, error: Exception) -> str:
    return (
        f"{path}: the store is damaged or not an ideagen store ({error}); move it aside "
        "(ideagen never deletes a store) and run again to start a new one"
    )


def check_not_truncated(path: Path) -> None:
    """SQLite notices a cut-off file only when it reads a missing page, possibly after a paid
    call; the header says how long the file must be (when SQLite itself trusts that field)."""
    try:
        with path.open("rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        return  # not a database at all: SQLite's own error says so
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    trusted = header[24:28] == header[92:96]
    if trusted and path.stat().st_size < page_size * pages:
        raise StoreError(damaged_store(path, f"cut off at {path.stat().st_size:,} bytes"))


LOCK_PATIENCE_S = 30.0  # how long a run waits for another process's write before giving up


def switch_to_wal(conn: sqlite3.Connection) -> None:
    """SQLite answers "database is locked" at once, without waiting on the busy timeout, when
    two processes switch a new store to WAL together; wait for the other one ourselves."""
    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    def __init__(self, path: Path):
        self.path = path
        folder = path.parent
        if folder.exists() and not folder.is_dir():
            raise StoreError(
                f"{folder}: is a file, not a folder; give --home (or IDEAGEN_HOME) a folder"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{folder}: cannot create the store's folder ({exc.strerror}); "
                "give --home (or IDEAGEN_HOME) a folder you can write to"
            ) from None
        if path.is_dir():
            raise StoreError(f"{path}: is a folder, expected the store file; move it aside")
        check_not_truncated(path)
        # One connection shared by the threads of a run; the lock keeps their
        # transactions from interleaving.
        try:
            self._conn = sqlite3.connect(
                path, timeout=LOCK_PATIENCE_S, isolation_level=None, check_same_thread=False
            )
            self._lock = threading.RLock()
            switch_to_wal(self._conn)
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc):
                raise StoreError(
                    f"{path}: another process has held the store locked for over "
                    f"{LOCK_PATIENCE_S:g} s; "
                    "let it finish, or give this run its own --home"
                ) from None
            if not path.exists() or not os.access(path, os.W_OK) or "readonly" in str(exc):
                raise StoreError(
                    f"{path}: cannot write the store ({exc}); give --home (or IDEAGEN_HOME) "
                    "a folder you can write to"
                ) from None
            raise StoreError(damaged_store(path, exc)) from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(damaged_store(path, exc)) from None

    @classmethod
    def open(cls, home: str | Path | None = None) -> Store:
        folder = Path(home).expanduser() if home else default_home()
        return cls(folder / DB_FILENAME)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: takes the write lock up front, so two writers queue."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return self._conn.execute("PRAGMA user_version").fetchone()[0]

    def _migrate(self) -> None:
        with self._write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: store schema version {current} is newer than this ideagen "
                    f"understands ({SCHEMA_VERSION}); upgrade ideagen"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version}")

    # ideas

    def add_idea(
        self,
        idea: Idea,
        *,
        source_file: str | None = None,
        topic: str | None = None,
        model: str | None = None,
        template: str | None = None,
        parent_id: int | None = None,
        rounds: int | None = None,
        tokens: int | None = None,
        cost_usd: float | None = None,
        run_id: str | None = None,
    ) -> int:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO ideas (name, title, body, source_file, topic, model, template,"
                " created, parent_id, rounds, tokens, cost_usd, run_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    idea.Name,
                    idea.Title,
                    json.dumps(idea.to_entry(), ensure_ascii=False),
                    source_file,
                    topic,
                    model,
                    template,
                    time.time(),
                    parent_id,
                    rounds,
                    tokens,
                    cost_usd,
                    run_id,
                ),
            )
            return int(cursor.lastrowid)

    def ideas(
        self, *, template: str | None = None, topic: str | None = None, name: str | None = None
    ) -> list[StoredIdea]:
        query = (
            "SELECT id, body, source_file, topic, model, template, parent_id, created FROM ideas"
        )
        conditions, params = [], []
        if template is not None:
            conditions.append("template = ?")
            params.append(template)
        if topic is not None:
            conditions.append("topic = ?")
            params.append(topic)
        if name is not None:
            conditions.append("name = ?")
            params.append(name)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        rows = self._conn.execute(query + " ORDER BY id", params).fetchall()
        return [StoredIdea(row[0], Idea.from_entry(json.loads(row[1])), *row[2:]) for row in rows]

    # what The AI Scientist did with ideas (one row per idea folder, linked to idea records)

    def put_outcome(
        self,
        folder: str,
        *,
        experiment: str | None,
        name: str,
        title: str | None,
        body: str,
        idea_ids: list[int],
    ) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM outcomes WHERE folder = ?", (folder,))
            conn.execute(
                "INSERT INTO outcomes (folder, experiment, name, title, body, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (folder, experiment, name, title, body, time.time()),
            )
            conn.executemany(
                "INSERT INTO outcome_ideas (folder, idea_id) VALUES (?, ?)",
                [(folder, idea_id) for idea_id in idea_ids],
            )

    def outcomes(self, *, experiment: str | None = None) -> list[StoredOutcome]:
        query = "SELECT folder, experiment, name, title, body, created FROM outcomes"
        params: tuple[Any, ...] = ()
        if experiment is not None:
            query += " WHERE experiment = ?"
            params = (experiment,)
        rows = self._conn.execute(query + " ORDER BY created, folder", params).fetchall()
        links: dict[str, list[int]] = {}
        for folder, idea_id in self._conn.execute(
            "SELECT folder, idea_id FROM outcome_ideas ORDER BY idea_id"
        ):
            links.setdefault(folder, []).append(idea_id)
        return [StoredOutcome(*row[:5], links.get(row[0], []), row[5]) for row in rows]

    # model calls

    def record_call(self, record: CallRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO model_calls (run_id, provider, model, purpose, tokens_in, tokens_out,"
                " cache_write_tokens, cache_read_tokens, latency_s, cost_usd, status, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.run_id,
                    record.provider,
                    record.model,
                    record.purpose,
                    record.tokens_in,
                    record.tokens_out,
                    record.cache_write_tokens,
                    record.cache_read_tokens,
                    record.latency_s,
                    record.cost_usd,
                    record.status,
                    time.time(),
                ),
            )

    def spend(self, run_id: str | None = None) -> SpendSummary:
        """Totals of the recorded calls, for one run (with its sub-runs, named `RUN/...`)
        or for everything."""
        query = (
            "SELECT COUNT(*), COALESCE(SUM(status != 'ok'), 0), COALESCE(SUM(tokens_in), 0),"
            " COALESCE(SUM(tokens_out), 0), COALESCE(SUM(cache_write_tokens), 0),"
            " COALESCE(SUM(cache_read_tokens), 0), COALESCE(SUM(cost_usd), 0),"
            " COALESCE(SUM(latency_s), 0) FROM model_calls"
        )
        params: tuple[Any, ...] = ()
        if run_id is not None:
            query += " WHERE run_id = ? OR substr(run_id, 1, ?) = ?"
            params = (run_id, len(run_id) + 1, run_id + "/")
        return SpendSummary(*self._conn.execute(query, params).fetchone())

    # caches

    def get_embeddings(self, hashes: Iterable[str], model: str) -> dict[str, np.ndarray]:
        hashes = list(hashes)
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(hashes), 500):
            chunk = hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT content_hash, vector FROM embeddings"
                f" WHERE model = ? AND content_hash IN ({marks})",
                (model, *chunk),
            )
            for content_hash, blob in rows:
                found[content_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_embeddings(self, vectors: dict[str, np.ndarray], model: str) -> None:
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO embeddings (content_hash, model, dim, vector)"
                " VALUES (?, ?, ?, ?)",
                [
                    (h, model, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
                    for h, v in vectors.items()
                ],
            )

    def get_literature(self, source: str, query: str) -> Any | None:
        row = self._conn.execute(
            "SELECT response FROM literature WHERE source = ? AND query = ?", (source, query)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put_literature(self, source: str, query: str, response: Any) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO literature (source, query, response, created)"
                " VALUES (?, ?, ?, ?)",
                (source, query, json.dumps(response), time.time()),
            )

    def get_response(self, request_hash: str) -> str | None:
        row = self._conn.execute(
            "SELECT response FROM responses WHERE request_hash = ?", (request_hash,)
        ).fetchone()
        return row[0] if row else None

    def put_response(self, request_hash: str, response: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO responses (request_hash, response, created)"
                " VALUES (?, ?, ?)",
                (request_hash, response, time.time()),
            )

    def get_judgment(self, kind: str, key: str, model: str) -> Any | None:
        row = self._conn.execute(
            "SELECT answer FROM judgments WHERE kind = ? AND key = ? AND model = ?",
            (kind, key, model),
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put_judgment(self, kind: str, key: str, model: str, answer: Any) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO judgments (kind, key, model, answer, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (kind, key, model, json.dumps(answer), time.time()),
            )

    # evolve archives

    def add_archive_entry(self, entry: ArchiveEntry, replaces: int | None = None) -> int:
        """Record an entry; with `replaces`, that elite becomes 'replaced' in the same
        transaction, so a replacement never leaves a niche one elite over or under."""
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT INTO archive_entries (archive, idea_id, body, niche, score, judge,"
                " operator, parents, status, reason, run_id, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.archive,
                    entry.idea_id,
                    json.dumps(entry.idea.to_entry(), ensure_ascii=False),
                    entry.niche,
                    entry.score,
                    entry.judge,
                    entry.operator,
                    json.dumps(list(entry.parents)),
                    entry.status,
                    entry.reason,
                    entry.run_id,
                    time.time(),
                ),
            )
            new_id = int(cursor.lastrowid)
            if replaces is not None:
                conn.execute(
                    "UPDATE archive_entries SET status = 'replaced', replaced_by = ?"
                    " WHERE id = ? AND archive = ?",
                    (new_id, replaces, entry.archive),
                )
            return new_id

    def archive_entries(self, archive: str) -> list[ArchiveEntry]:
        rows = self._conn.execute(
            "SELECT archive, body, operator, status, parents, niche, score, judge, reason,"
            " idea_id, run_id, id, replaced_by, created FROM archive_entries"
            " WHERE archive = ? ORDER BY id",
            (archive,),
        ).fetchall()
        return [
            ArchiveEntry(
                row[0],
                Idea.from_entry(json.loads(row[1])),
                row[2],
                row[3],
                tuple(json.loads(row[4])),
                *row[5:],
            )
            for row in rows
        ]

    def add_transcript(self, session_id: str, role: str, content: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO transcripts (session_id, role, content, created) VALUES (?, ?, ?, ?)",
                (session_id, role, content, time.time()),
            )

    def transcript(self, session_id: str) -> list[tuple[str, str]]:
        rows = self._conn.execute(
            "SELECT role, content FROM transcripts WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        return list(rows)
