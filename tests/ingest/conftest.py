"""Fixtures for the store tests: each backend's settings, Milvus Lite started once per module."""

from __future__ import annotations

import pytest

from ingest.settings import Settings


@pytest.fixture(scope="module")
def milvus_lite(tmp_path_factory) -> str:
    """A Milvus Lite file for the test module: it starts a server inside this process, once per file
    (every index gets its own collection in it, so tests stay apart)."""
    pytest.importorskip("milvus_lite")
    return str(tmp_path_factory.mktemp("milvus") / "milvus.db")


@pytest.fixture(params=["local", "milvus"])
def store(request) -> Settings:
    """The settings of each store: the local one, and Milvus on a real Milvus Lite file."""
    if request.param == "local":
        return Settings()
    return Settings(store="milvus", milvus_uri=request.getfixturevalue("milvus_lite"))
