"""Shared fixtures: the real bundled models (loaded once per session) and paths to real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest import registry

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _models_dir() -> Path:
    from ingest.settings import load_settings

    return load_settings().models_dir


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return _models_dir()


def _require(name: str) -> Path:
    folder = registry.model_path(name, _models_dir())
    if not registry.is_fetched(name, _models_dir()):
        pytest.fail(f"{name} is not fetched in {_models_dir()}; run 'make test' (it fetches models)")
    return folder


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 embedder (fast; English)."""
    from ingest.embedders import load_embedder
    from ingest.settings import Settings

    _require("all-minilm-l6-v2")
    return load_embedder(
        Settings(embedder="all-minilm-l6-v2", models_dir=_models_dir(), threads=os.cpu_count() or 1)
    )


@pytest.fixture(scope="session")
def gemma():
    """The real EmbeddingGemma-300M embedder (the default; slow on CPU: keep inputs small)."""
    from ingest.embedders import load_embedder
    from ingest.settings import Settings

    _require("embeddinggemma-300m")
    return load_embedder(Settings(embedder="embeddinggemma-300m", models_dir=_models_dir()))


@pytest.fixture(scope="session")
def qwen_folder() -> Path:
    return _require("qwen2.5-coder-0.5b-instruct")
