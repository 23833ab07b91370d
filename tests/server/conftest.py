"""Fixtures for the HTTP API's fast tests: the real app and engine over a real index folder, with
the fake embedder and generator of ``tests.fakes`` passed in (no model is loaded)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.pipeline import ingest_folder
from ingest.records import Message
from ingest.settings import Settings
from ingest.stores import open_store
from rag.engine import Engine
from rag.server.app import create_app
from tests.fakes import HashEmbedder, ReplayGenerator

TOKEN = "test-token-0123456789abcdef"
MANUAL = """# Measuring voltage

Connect the signal to input A1 and read the voltage in volts. The range of A1 is -16 V to 16 V.

# Sine wave generator

The WG output gives a sine wave from 5 Hz to 5 kHz; set its frequency in the WG panel.
"""
MANUAL_ES = """# Medir voltaje

Conecte la señal a la entrada A1 y lea el voltaje en voltios. El rango de A1 es de -16 V a 16 V.
"""


class GatedGenerator(ReplayGenerator):
    """A ``ReplayGenerator`` that waits for ``gate`` before each answer and records how many
    answers ran at once (``most_at_once``)."""

    def __init__(self, *replies: str) -> None:
        super().__init__(*replies)
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self._running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def stream(self, messages: Sequence[Message], max_new_tokens: int = 256) -> Iterator[str]:
        with self._lock:
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            self.started.set()
            self.gate.wait(30)
            yield from super().stream(messages, max_new_tokens)
        finally:
            with self._lock:
                self._running -= 1


@pytest.fixture()
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture()
def generator() -> GatedGenerator:
    return GatedGenerator()


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        index_dir=tmp_path / "index", models_dir=tmp_path / "models", generator="/nonexistent"
    ).replace(min_relevance=0.0, top_k=3, serve_max_body_mb=1.0)


@pytest.fixture()
def index_dir(tmp_path: Path, settings: Settings, embedder: HashEmbedder) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.md").write_text(MANUAL, encoding="utf-8")
    (docs / "manual.es.md").write_text(MANUAL_ES, encoding="utf-8")
    ingest_folder(docs, settings.index_dir, embedder, settings)
    return settings.index_dir


def make_client(settings: Settings, embedder, generator, tokens: tuple[str, ...] = ()) -> TestClient:
    """A test client of the real app; its engine opens the index at the first request."""

    def engine_factory() -> Engine:
        return Engine(settings, open_store(settings), embedder, generator, refusal_model=None)

    app = create_app(engine_factory, settings, tokens, embedder_factory=lambda: embedder)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture()
def client(index_dir: Path, settings: Settings, embedder, generator) -> Iterator[TestClient]:
    with make_client(settings, embedder, generator) as client:
        yield client
