"""Crash safety, for real: ``docqa ingest`` is killed with SIGKILL at several points of a run.

After each kill the index must open and answer (the files indexed before still found), with the
FAISS vectors matching the catalog exactly; a final rerun must complete and give the same chunks
as an index built from scratch. Uses the real MiniLM embedder in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.layout import MANIFEST, VECTORS
from ingest.store import open_index
from ingest.vectors import FlatVectors
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.slow
CORPUS = SHARED / "eval" / "faq-dev" / "corpus" / "python-faq-en"
EMBEDDER = "all-minilm-l6-v2"
# Small batches make the run commit a window every few seconds: more states to be killed in.
ENV = os.environ | {"DOCQA_EMBED_BATCH_SIZE": "4", "DOCQA_THREADS": "1"}


def _files() -> list[Path]:
    files = sorted(p for p in CORPUS.glob("*.txt") if 4_000 < p.stat().st_size < 12_000)
    if len(files) < 20:
        pytest.skip(f"not enough dev corpus files in {CORPUS}")
    return files[:20]


def _start(folder: Path, index: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "rag", "ingest", str(folder), "--index", str(index), "--embedder", EMBEDDER]
    return subprocess.Popen(
        [*cmd, "--json"], cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _complete(folder: Path, index: Path) -> dict:
    proc = _start(folder, index)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return json.loads(out)


def _version(index: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True) as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
    except (sqlite3.Error, TypeError):
        return 0


def _kill_when(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 300
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _check(index_dir: Path, minilm, probes: dict[str, str]) -> set[str]:
    """The index opens, its vectors match its catalog, and each probe text finds its file."""
    with open_index(index_dir, embedder_name=minilm.name) as index:
        count = index.count()
        every = index.search_dense(minilm.embed_queries(["python"])[0], count + 10)
        ids = {cid for cid, _ in every}
        assert len(every) == len(ids) == count, "every chunk searchable, nothing else"
        for source, text in probes.items():
            hits = index.get_chunks(
                [cid for cid, _ in index.search_dense(minilm.embed_queries([text])[0], 3)]
            )
            assert source in [c.source for c in hits], source
            assert index.search_lexical(text, 3)
        return ids


def test_sigkill_never_breaks_the_index(minilm, tmp_path: Path) -> None:
    files = _files()
    docs, index = tmp_path / "docs", tmp_path / "index"
    docs.mkdir()
    for f in files[:5]:
        shutil.copy(f, docs / f.name)
    _complete(docs, index)
    probes = {f.name: f.read_text()[:400] for f in files[1:5]}  # files[0] will change
    _check(index, minilm, probes)

    for f in files[5:]:
        shutil.copy(f, docs / f.name)
    (docs / files[0].name).write_text(
        "How do I freeze a Python program into an executable? Use a freezer tool."
    )
    start = _version(index)
    for kill_at in (0.5, 2.0, "first window", "second window"):
        proc = _start(docs, index)
        if isinstance(kill_at, float):
            time.sleep(kill_at)
            _kill_when(proc, lambda: True)
        else:
            windows = 1 if kill_at == "first window" else 2
            _kill_when(proc, lambda n=windows, s=start: _version(index) >= s + n)
        assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill at {kill_at}"
        _check(index, minilm, probes)
        start = _version(index)

    report = _complete(docs, index)
    assert report["skipped"] == [] and len(report["added"]) + len(report["unchanged"]) == 20
    ids = _check(index, minilm, probes)
    manifest = json.loads((index / MANIFEST).read_text())
    assert manifest["catalog_version"] == _version(index) and manifest["chunks"] == len(ids)
    assert FlatVectors.load(index / VECTORS, minilm.dim).count() == len(ids)
    assert not list(index.glob(".*.tmp"))

    fresh = tmp_path / "fresh"
    _complete(docs, fresh)
    assert _check(fresh, minilm, probes) == ids, "a crashed-then-resumed index equals a fresh one"
    with open_index(index) as a, open_index(fresh) as b:
        some = sorted(ids)[:20]
        assert [c.text for c in a.get_chunks(some)] == [c.text for c in b.get_chunks(some)]
        query = np.asarray(minilm.embed_queries(["freeze a program into an executable"])[0])
        hits_a, hits_b = a.search_dense(query, 5), b.search_dense(query, 5)
        assert [cid for cid, _ in hits_a] == [cid for cid, _ in hits_b]
        assert [s for _, s in hits_a] == pytest.approx([s for _, s in hits_b], abs=1e-5)
