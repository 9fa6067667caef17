"""Shared fixtures: an isolated store for every test, the stand-in servers at the network edge
(from testkit/, imported under that one name everywhere) and the real idea corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ideagen.store import Store
from testkit import literature
from testkit.literature import LiteratureServer
from testkit.loopback import LoopbackServer

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
def loopback() -> Iterator[LoopbackServer]:
    """The model API server (Anthropic and OpenAI shapes), started for one test."""
    with LoopbackServer() as server:
        yield server


@pytest.fixture
def literature_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiteratureServer]:
    """The OpenAlex / Semantic Scholar server, with ideagen's literature URLs pointed at it."""
    with literature.running() as server:
        monkeypatch.setenv("IDEAGEN_OPENALEX_URL", server.base_url)
        monkeypatch.setenv("IDEAGEN_S2_URL", server.base_url)
        monkeypatch.delenv("S2_API_KEY", raising=False)
        yield server


@pytest.fixture
def corpus_dir() -> Path:
    """AI Scientist v1 idea files, copied into the repository (see its NOTICE.md)."""
    return CORPUS_DIR
