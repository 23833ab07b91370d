"""End to end with ``store = "milvus"``: the real ``docqa ingest`` (MiniLM) into Milvus Lite, an
incremental re-ingest that embeds only the changed file, ``--remove``, then the real engine's
retrieval, whole and scoped, on what Milvus holds."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.records import Scope
from ingest.settings import Settings
from tests.conftest import ROOT

pytest.importorskip("milvus_lite")


def _docqa(*args: str) -> dict:
    """The real entry point, as a user would run it, with ``DOCQA_STORE=milvus``; its --json report."""
    env = {**os.environ, "DOCQA_STORE": "milvus"}
    result = subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=ROOT, capture_output=True, text=True, timeout=600, env=env
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout) if "--json" in args else {"stderr": result.stderr}


def test_ingest_reingest_remove_and_scoped_retrieval_on_milvus_lite(
    tmp_path: Path, minilm, models_dir
) -> None:
    docs, index = tmp_path / "docs", tmp_path / "ix"
    docs.mkdir()
    (docs / "power.md").write_text("# Power\n\nThe battery lasts ten hours. Charge it with the USB-C cable.")
    (docs / "lens.txt").write_text("Clean the lens with a soft cloth and a drop of alcohol.")
    (docs / "wifi.md").write_text(
        "# Network\n\nHold the WPS button for three seconds to join a wifi network."
    )
    common = (
        "--index",
        str(index),
        "--embedder",
        "all-minilm-l6-v2",
        "--models-dir",
        str(models_dir),
        "--json",
    )

    first = _docqa("ingest", str(docs), *common)
    assert sorted(first["added"]) == ["lens.txt", "power.md", "wifi.md"]
    assert (index / "milvus.db").is_dir() and not (index / "vectors.faiss").exists()

    (docs / "lens.txt").write_text(
        "Clean the lens with a soft cloth and a drop of alcohol.\n\nNever touch the sensor behind it."
    )
    second = _docqa("ingest", str(docs), *common)
    assert second["updated"] == ["lens.txt"] and sorted(second["unchanged"]) == ["power.md", "wifi.md"]
    assert second["chunks_added"] <= 2 and not second["added"]  # only lens.txt was embedded again

    removed = _docqa("ingest", "--remove", str(docs / "wifi.md"), "--index", str(index))
    assert f"removed: {docs / 'wifi.md'}" in removed["stderr"]

    from rag.engine import open_engine

    settings = Settings(index_dir=index, embedder="all-minilm-l6-v2", models_dir=models_dir, store="milvus")
    with open_engine(settings, embedder=minilm) as engine:
        assert type(engine.index).__name__ == "MilvusStore"
        assert [f.path for f in engine.index.files()] == ["lens.txt", "power.md"]
        best = engine.retrieve("How long does the battery last?", k=2)
        assert best[0].source == "power.md"
        assert "ten hours" in best[0].text
        lens = engine.retrieve("How long does the battery last?", k=2, scope=Scope(documents=("lens.txt",)))
        assert lens and {p.source for p in lens} == {"lens.txt"}
        assert "sensor" in engine.retrieve("What must I never touch?", k=1)[0].text
        assert not any(p.source == "wifi.md" for p in engine.retrieve("join a wifi network", k=5))
        with sqlite3.connect(index / "catalog.sqlite") as conn:
            rowids = {r[0] for r in conn.execute("SELECT rowid FROM chunks")}
        assert engine.index._milvus.ids() == rowids  # Milvus holds exactly the catalog's chunks
