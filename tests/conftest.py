"""Shared fixtures: an isolated store for every test, and the real idea corpus when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from ideagen.store import Store

CORPUS_DIR = Path(__file__).resolve().parents[1] / "bench" / "data" / "ai-scientist-v1-ideas"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Point IDEAGEN_HOME at a fresh folder so no test touches the user's real store."""
    home = tmp_path_factory.mktemp("ideagen_home")
    monkeypatch.setenv("IDEAGEN_HOME", str(home))
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    return home


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with Store.open(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def corpus_dir() -> Path:
    if not CORPUS_DIR.is_dir():
        pytest.skip(f"the idea corpus is not present at {CORPUS_DIR}")
    return CORPUS_DIR
