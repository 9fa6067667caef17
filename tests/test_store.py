"""The SQLite store: migrations, provenance, spend totals, caches, concurrent writers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import ideagen.store as store_module
from ideagen.schema import Idea
from ideagen.store import MIGRATIONS, SCHEMA_VERSION, CallRecord, Store, StoreError, default_home

IDEA = Idea.from_entry(
    {
        "Name": "x",
        "Title": "T",
        "Experiment": "E",
        "Interestingness": 5,
        "Feasibility": 5,
        "Novelty": 5,
    }
)


def test_default_home_follows_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("IDEAGEN_HOME", str(tmp_path / "h"))
    assert default_home() == tmp_path / "h"
    monkeypatch.delenv("IDEAGEN_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_home() == tmp_path / "xdg" / "ideagen"


def test_store_opens_in_wal_mode_at_the_current_version(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(store.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_migration_from_version_1_keeps_existing_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(MIGRATIONS[1])
    old.execute(
        "INSERT INTO ideas (name, title, body, created) VALUES ('x', 'T', ?, 0)",
        (json_body(),),
    )
    old.execute("PRAGMA user_version=1")
    old.commit()
    old.close()
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert [s.idea.Name for s in store.ideas()] == ["x"]
        store.add_idea(IDEA, topic="t", template="fashion")
        assert [s.topic for s in store.ideas(template="fashion")] == ["t"]


def json_body() -> str:
    import json

    return json.dumps(IDEA.to_entry())


def test_ideas_keep_provenance_and_spend_sums_calls(store: Store) -> None:
    parent = store.add_idea(IDEA, topic="evolution", model="m", source_file="a.json")
    store.add_idea(IDEA, topic="evolution", parent_id=parent)
    stored = store.ideas(topic="evolution")
    assert [s.parent_id for s in stored] == [None, parent]
    assert stored[0].source_file == "a.json" and stored[0].model == "m"
    store.record_call(CallRecord("anthropic", "m", "ok", 100, 20, 0, 80, 1.5, 0.01, run_id="r"))
    store.record_call(CallRecord("anthropic", "m", "error", 100, 0, run_id="r"))
    store.record_call(CallRecord("openai", "m", "ok", 5, 5, run_id="r/2"))
    store.record_call(CallRecord("openai", "m", "ok", 7, 7, run_id="rx"))
    spend = store.spend("r")
    assert (spend.calls, spend.failed_calls, spend.tokens_in, spend.cache_read_tokens) == (
        3,
        1,
        205,
        80,
    )
    assert store.spend("r/2").tokens_in == 5
    assert store.spend().calls == 4


def test_caches_round_trip(store: Store) -> None:
    vector = np.arange(4, dtype=np.float32)
    store.put_embeddings({"h1": vector}, "mini")
    assert store.get_embeddings(["h1", "h2"], "mini").keys() == {"h1"}
    assert np.array_equal(store.get_embeddings(["h1"], "mini")["h1"], vector)
    assert store.get_embeddings(["h1"], "other") == {}
    store.put_literature("openalex", "q", {"results": []})
    assert store.get_literature("openalex", "q") == {"results": []}
    store.put_response("req", "text")
    assert store.get_response("req") == "text"


def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    try:
        Store(path)
    except RuntimeError as exc:
        assert "newer than this ideagen understands" in str(exc)
    else:
        raise AssertionError("a newer schema must be refused")


def open_together(path: Path, connections: int) -> list[StoreError]:
    start = threading.Barrier(connections)
    failures: list[StoreError] = []

    def open_store() -> None:
        start.wait()
        try:
            Store(path).close()
        except StoreError as exc:
            failures.append(exc)

    openers = [threading.Thread(target=open_store) for _ in range(connections)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    return failures


def test_connections_opening_a_new_store_together_all_get_it(tmp_path: Path) -> None:
    """Two runs started at once on a fresh home both switch the new file to WAL."""
    for round_ in range(20):
        assert open_together(tmp_path / f"round{round_}.sqlite3", connections=4) == []


WRITER = """
import sys
import threading
from ideagen.schema import Idea
from ideagen.store import CallRecord, Store
store = Store.open(sys.argv[1])
idea = Idea.from_entry({"Name": "w", "Title": "T", "Experiment": "E",
    "Interestingness": 1, "Feasibility": 1, "Novelty": 1})
for i in range(150):
    store.add_idea(idea, topic=sys.argv[2])
    store.record_call(CallRecord("p", "m", "ok", tokens_in=1))
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    home = tmp_path / "shared_home"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), name]) for name in ("a", "b")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    with Store.open(home) as store:
        assert len(store.ideas(topic="a")) == len(store.ideas(topic="b")) == 150
        assert store.spend().calls == 300
    check = sqlite3.connect(home / "ideagen.sqlite3").execute("PRAGMA integrity_check")
    assert check.fetchone()[0] == "ok"


def test_a_store_held_locked_by_another_process_is_named_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE held(x)")
    monkeypatch.setattr(store_module, "LOCK_PATIENCE_S", 0.3)
    try:
        Store(path)
    except StoreError as exc:
        assert str(exc).startswith(f"{path}: another process has held the store locked")
        assert "damaged" not in str(exc)
    else:
        raise AssertionError("a store held locked must be refused")
    finally:
        holder.execute("ROLLBACK")
