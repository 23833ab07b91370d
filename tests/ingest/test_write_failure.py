"""Writes that fail (a full disk, a file-size limit) are ``IndexUnavailable``, never "damaged".

A child process ingests under ``RLIMIT_FSIZE`` (Python ignores SIGXFSZ, so a write past the
limit fails with EFBIG, as on a full disk): at open, in the catalog's transaction, or while
``vectors.faiss`` is written. Each is one clean error that does not tell the user to delete the
index, and the index keeps what it held: it opens, and the next run converges to a fresh build.
Uses the hash embedder (no model).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ingest.layout import VECTORS
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.store import open_index
from tests.conftest import ROOT
from tests.fakes import HashEmbedder

_CHILD = """
import json, resource, sys
from pathlib import Path
from ingest.errors import DocqaError
from ingest.lang import detect_language
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from tests.fakes import HashEmbedder
detect_language("the language model unpacks itself into a temporary file: before the limit")
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]),) * 2)
try:
    ingest_folder(Path(sys.argv[1]), Path(sys.argv[2]), HashEmbedder(), Settings())
    print(json.dumps(None))
except DocqaError as err:
    print(json.dumps([type(err).__name__, str(err)]))
"""


def _limited(docs: Path, index: Path, limit: int) -> list[str] | None:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(docs), str(index), str(limit)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def _chunks(index_dir: Path) -> dict[str, str]:
    with open_index(index_dir) as index:
        ids = [cid for cid, _ in index.search_dense(HashEmbedder().embed_queries(["x"])[0], 10**6)]
        assert len(ids) == index.count()
        return {c.id: c.text for c in index.get_chunks(ids)}


def _write(path: Path, seed: int, words: int = 1500) -> None:
    path.write_text(" ".join(f"w{(seed * 7919 + i * 31) % 5000}" for i in range(words)) + ".\n")


def test_failed_writes_leave_the_index_usable_and_are_not_called_damage(tmp_path: Path) -> None:
    docs, index, fresh = tmp_path / "docs", tmp_path / "index", tmp_path / "fresh"
    docs.mkdir()
    for i in range(20):
        _write(docs / f"f{i:02}.txt", i)
    ingest_folder(docs, index, HashEmbedder(), Settings())
    before = _chunks(index)

    # at open: SQLite's 32 KB shared-memory file cannot even be made
    _write(docs / "f00.txt", 100, words=1600)  # a small change: a small log, the FAISS file whole
    kind, message = _limited(docs, index, 16 * 1024)
    assert kind == "IndexUnavailable" and message.startswith(f"cannot open the index at {index}")
    assert "delete" not in message
    assert _chunks(index) == before

    # while vectors.faiss is written: the catalog is committed, the old FAISS file stays
    kind, message = _limited(docs, index, (index / VECTORS).stat().st_size - 1)
    assert kind == "IndexUnavailable" and message.startswith(f"could not write {VECTORS} in {index}")
    assert "What was indexed before is kept" in message
    after_catalog = _chunks(index)  # the vectors are rebuilt from the catalog, not served stale
    assert after_catalog != before

    # in the catalog's transaction: many new files make a log larger than the limit
    for i in range(20, 40):
        _write(docs / f"f{i:02}.txt", i)
    kind, message = _limited(docs, index, 48 * 1024)
    assert kind == "IndexUnavailable" and message.startswith(f"could not write catalog.sqlite in {index}")
    assert _chunks(index) == after_catalog

    ingest_folder(docs, index, HashEmbedder(), Settings())
    ingest_folder(docs, fresh, HashEmbedder(), Settings())
    assert _chunks(index) == _chunks(fresh)


def test_a_full_temporary_folder_is_one_clean_error(tmp_path: Path) -> None:
    # py3langid unpacks its 68 MB model into the temporary folder on first use (a 4 MB limit fits
    # the new index, not that); ingestion used to stop there with an OSError traceback.
    (tmp_path / "docs").mkdir()
    _write(tmp_path / "docs" / "a.txt", 1)
    child = _CHILD.replace('detect_language("the language model', '("the language model')
    done = subprocess.run(
        [sys.executable, "-c", child, str(tmp_path / "docs"), str(tmp_path / "ix"), str(4 << 20)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    kind, message = json.loads(done.stdout)
    assert kind == "ModelError" and "temporary folder" in message and "TMPDIR" in message
