"""Faults at any point: ``docqa ingest`` SIGKILLed at seeded random moments, and writes that fail.

Three phases, each against the same index: a first ingest, a re-ingest after files changed,
were added and deleted, and ``docqa ingest --remove``. In each, the real CLI (MiniLM, small
batches so a run commits often) is killed after delays drawn from ``random.Random(SEED)`` across
the run's measured length, one kill per run, so kills land in imports, the scan, embedding,
SQLite commits and the FAISS write alike. Then writes fail: the CLI runs with a file-size limit
(``RLIMIT_FSIZE``; Python ignores SIGXFSZ, so writes past it fail with EFBIG, as on a full disk)
that stops it at open, half-way through writing ``vectors.faiss``, and in the middle of the
catalog transaction that stores a window's chunks and vectors; each must end with one clean
error line (exit 1), the index untouched by the failed part.

After every fault the index must open and answer a retrieval with the same embedder (every
chunk searchable, chunks committed before the phase still found); the phase's final normal run
must converge to exactly what a fresh build of the same folder gives: same files, same chunk ids
and texts, the same vectors (cosine >= 0.9999), FAISS count = catalog count, manifest stamped with
the catalog's version, no temporary file left. Counts are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.embedders import embedder_name
from ingest.errors import IndexNotFound
from ingest.layout import MANIFEST, TEMP_GLOB, VECTORS
from ingest.settings import Settings
from ingest.store import open_index
from ingest.vectors import FlatVectors
from rag.retrieve import retrieve
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.slow
SEED = 20261202
KILLS = {"ingest": 6, "re-ingest": 6, "remove": 10}
CORPUS = SHARED / "eval" / "faq-dev" / "corpus" / "python-faq-en"
EMBEDDER = "all-minilm-l6-v2"
INDEXED_AS = embedder_name(Settings(embedder=EMBEDDER))  # with the default embed_backend
ENV = os.environ | {"DOCQA_EMBED_BATCH_SIZE": "4", "DOCQA_THREADS": "1"}
# The language model unpacks itself into a temporary file on first use: done before the limit,
# so that only the index's own writes meet it. Then the real CLI entry point runs.
_LIMITED = """
import resource, sys
from ingest.lang import detect_language
detect_language("unpack the language model now")
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv[0] = "docqa"
from rag.cli import main
main()
"""


def _files() -> list[Path]:
    files = sorted(p for p in CORPUS.glob("*.txt") if 2_500 < p.stat().st_size < 6_000)
    if len(files) < 16:
        pytest.skip(f"not enough dev corpus files in {CORPUS}")
    return files[:16]


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rag", "ingest", *args]


def _ingest_args(docs: Path, index: Path) -> list[str]:
    return [str(docs), "--index", str(index), "--embedder", EMBEDDER, "--json"]


def _complete(args: list[str], cmd=_cmd) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return time.perf_counter() - started


def _killed(args: list[str], delay: float, log: Path) -> bool:
    """Run, SIGKILL after ``delay`` seconds; False if the run had already finished."""
    with log.open("w") as err:  # a file, not a pipe: a full pipe would stall the run before its kill
        proc = subprocess.Popen(_cmd(*args), cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-2000:]
    return proc.returncode == -signal.SIGKILL


def _answers(index_dir: Path, minilm, probes: dict[str, str]) -> bool:
    """The index opens and answers; False when no index was created yet (killed that early)."""
    try:
        index = open_index(index_dir, embedder_name=INDEXED_AS)
    except IndexNotFound:
        return False
    with index:
        count = index.count()
        every = index.search_dense(minilm.embed_queries(["python"])[0], count + 10)
        assert len(every) == len({cid for cid, _ in every}) == count, "every chunk searchable, no other"
        for source, text in probes.items():
            passages = retrieve(text, index, minilm, k=3)
            assert source in [p.source for p in passages], source
        if count:
            assert retrieve("How do I use Python?", index, minilm, k=3)
    return True


def _snapshot(index_dir: Path) -> dict:
    """What a converged index holds: files, chunks (id -> source, text), vectors by (file, text)."""
    with open_index(index_dir, embedder_name=INDEXED_AS) as index:
        files = index.files()
        count = index.count()
        ids = [cid for cid, _ in index.search_dense(np.ones(index.dim, dtype=np.float32), count + 10)]
        chunks = {c.id: (c.source, c.text) for c in index.get_chunks(ids)}
        vectors = {
            (f.path, text): vector
            for f in files
            for text, vector in index.file_vectors(f.root, f.path).items()
        }
        version = int(index.meta("version") or 0)
        manifest = json.loads((index_dir / MANIFEST).read_text())
    assert len(chunks) == count
    assert manifest["catalog_version"] == version and manifest["chunks"] == count
    assert FlatVectors.load(index_dir / VECTORS, manifest["dim"]).count() == count
    assert not list(index_dir.glob(TEMP_GLOB))
    return {"files": sorted(f.path for f in files), "chunks": chunks, "vectors": vectors}


def _same(a: dict, b: dict) -> None:
    assert a["files"] == b["files"]
    assert a["chunks"] == b["chunks"], "same chunk ids and texts as a fresh build"
    assert a["vectors"].keys() == b["vectors"].keys()
    for key, vector in a["vectors"].items():
        assert float(np.dot(vector, b["vectors"][key])) >= 0.9999, key


def _without(snapshot: dict, removed: set[str]) -> dict:
    return {
        "files": [f for f in snapshot["files"] if f not in removed],
        "chunks": {i: c for i, c in snapshot["chunks"].items() if c[0] not in removed},
        "vectors": {k: v for k, v in snapshot["vectors"].items() if k[0] not in removed},
    }


def _limited(limit: int):
    return lambda *args: [sys.executable, "-c", _LIMITED, str(limit), "ingest", *args]


def _failed_write(args: list[str], limit: int) -> str:
    """Run with a file-size limit; the one line it failed with (exit 1, no traceback)."""
    done = subprocess.run(
        _limited(limit)(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.stderr.strip().splitlines()[-1]


def test_faults_at_random_moments_never_break_the_index(minilm, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    files = _files()
    docs, index, fresh = tmp_path / "docs", tmp_path / "index", tmp_path / "fresh"
    docs.mkdir()
    for f in files[:12]:
        shutil.copy(f, docs / f.name)
    counts = {"kills": 0, "runs ended before their kill": 0, "write failures": 0, "unusable indexes": 0}
    started = time.perf_counter()

    def kill_phase(phase: str, args: list[str], length: float, probes: dict[str, str]) -> None:
        killed = 0
        for _ in range(3 * KILLS[phase]):  # until KILLS[phase] runs were really killed
            if _killed(args, rng.uniform(0.05, 0.95) * length, tmp_path / "killed.log"):
                killed += 1
            else:
                counts["runs ended before their kill"] += 1
            _answers(index, minilm, probes)  # raises, failing the test, if the index is unusable
            if killed == KILLS[phase]:
                break
        counts["kills"] += killed

    # 1. First ingest of 12 files, killed 6 times, then completed.
    length = _complete(_ingest_args(docs, fresh))
    kill_phase("ingest", _ingest_args(docs, index), length, {})
    _complete(_ingest_args(docs, index))
    _same(_snapshot(index), _snapshot(fresh))

    # 2. Re-ingest: 3 files changed, 2 deleted, 4 added.
    for f in files[:3]:
        text = (docs / f.name).read_text()
        (docs / f.name).write_text(text[: len(text) // 2] + "\n\nA new paragraph about frozen binaries.\n")
    for f in files[3:5]:
        (docs / f.name).unlink()
    for f in files[12:]:
        shutil.copy(f, docs / f.name)
    probes = {f.name: f.read_text()[:300] for f in files[5:9]}  # untouched: must stay found
    trial = tmp_path / "trial"
    shutil.copytree(index, trial)
    length = _complete(_ingest_args(docs, trial))  # how long this incremental run takes
    shutil.rmtree(fresh)
    _complete(_ingest_args(docs, fresh))
    kill_phase("re-ingest", _ingest_args(docs, index), length, probes)
    _complete(_ingest_args(docs, index))
    reference = _snapshot(fresh)
    _same(_snapshot(index), reference)

    # 3. docqa ingest --remove of three files (no model loads: a short run).
    removed = {f.name for f in files[9:12]}
    remove_args = [a for name in sorted(removed) for a in ("--remove", str(docs / name))]
    remove_args += ["--index", str(index)]
    shutil.rmtree(trial)
    shutil.copytree(index, trial)
    length = _complete([*remove_args[:-1], str(trial)])
    kill_phase("remove", remove_args, length, {f.name: f.read_text()[:300] for f in files[5:7]})
    _complete(remove_args)
    _same(_snapshot(index), _without(reference, removed))

    # 4. Writes that fail under a file-size limit: at open (SQLite's 32 KB shared-memory file),
    # while vectors.faiss is written (a touched file: one tiny catalog transaction, then the
    # FAISS file rewritten whole), and in the catalog's transaction (four changed files).
    _complete(_ingest_args(docs, index))  # the removed files come back
    _same(_snapshot(index), reference)
    probes = {f.name: f.read_text()[:300] for f in files[7:9]}
    touched = docs / files[5].name
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 10))
    failures = {}

    def write_fails(where: str, limit: int) -> None:
        failures[where] = _failed_write(_ingest_args(docs, index), limit)
        counts["write failures"] += 1
        _answers(index, minilm, probes)

    write_fails("open", 16 * 1024)
    write_fails("vectors", (index / VECTORS).stat().st_size - 1)
    for f in files[12:16]:
        (docs / f.name).write_text((docs / f.name).read_text() + "\nOne more sentence on wheels.\n")
    write_fails("catalog", 40 * 1024)  # above the 32 KB shared-memory file: fails mid-run
    _complete(_ingest_args(docs, index))
    shutil.rmtree(fresh)
    _complete(_ingest_args(docs, fresh))
    _same(_snapshot(index), _snapshot(fresh))
    assert failures["open"].startswith(f"error: cannot open the index at {index}"), failures
    assert failures["vectors"].startswith(f"error: could not write {VECTORS} in {index}"), failures
    assert failures["catalog"].startswith(f"error: could not write catalog.sqlite in {index}"), failures

    seconds = time.perf_counter() - started
    print(f"faults: {counts}, data lost: 0, {seconds:.0f} s; write errors: {failures}")
    assert counts["kills"] >= 20
