"""The index folder: read API, one transaction per file, embedder checks, repair of a stale FAISS file."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest.catalog import FileUpdate
from ingest.chunk import chunk_sections
from ingest.errors import EmbedderMismatch, IndexCorrupt, IndexNotFound
from ingest.records import Section
from ingest.store import MANIFEST, VECTORS, IndexBusy, fts_terms, open_index
from ingest.vectors import FlatVectors
from tests.fakes import HashEmbedder

EMB = HashEmbedder(dim=32)
ROOT = "/docs"


def update(path: str, *texts: str, root: str = ROOT, sha: str | None = None) -> FileUpdate:
    sha = sha or (path.encode().hex() + "0" * 64)[:64]
    sections = [Section(t, path, page=i + 1) for i, t in enumerate(texts)]
    chunks = chunk_sections(sections, EMB, 32, 4, file_sha256=sha)
    return FileUpdate(root, path, sha, 100, 1.0, tuple(chunks), EMB.embed_documents([c.text for c in chunks]),
                      pages=len(texts))  # fmt: skip


def make(tmp_path: Path, *updates: FileUpdate):
    index = open_index(tmp_path / "ix", embedder_name=EMB.name, create=True, dim=EMB.dim)
    if updates:
        index.apply(updates)
        index.commit()
    return index


def dense(index, text: str, k: int = 3) -> list[str]:
    return [cid for cid, _ in index.search_dense(EMB.embed_queries([text])[0], k)]


def sources(index, ids) -> list[str]:
    return [c.source for c in index.get_chunks(ids)]


DOCS = (
    update("a.txt", "The red cable goes to the voltage terminal.", "Calibrate the sensor first."),
    update("b.md", "La configuración de la señal se guarda en el menú."),
    update("c.pdf", "Battery replacement and safety notes."),
)


def test_missing_index_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFound, match=r"no index at .*; run 'docqa ingest FOLDER' first"):
        open_index(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_read_api(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as index:
        assert index.count() == 4
        assert [(f.path, f.chunks, f.pages) for f in index.files()] == [
            ("a.txt", 2, 2),
            ("b.md", 1, 1),
            ("c.pdf", 1, 1),
        ]
        assert index.manifest["embedder"] == EMB.name and index.manifest["dim"] == 32
        assert index.manifest["normalized"] is True
        hits = index.search_dense(EMB.embed_queries(["battery safety notes"])[0], 2)
        assert sources(index, [hits[0][0]]) == ["c.pdf"] and 0.5 < hits[0][1] <= 1.0001
        chunks = index.get_chunks([hits[1][0], hits[0][0], "no-such-id"])
        assert [c.id for c in chunks] == [hits[1][0], hits[0][0]]
        first = index.get_chunks([dense(index, "red cable voltage terminal")[0]])[0]
        assert (first.source, first.page, first.position) == ("a.txt", 1, 0)
        assert first.text == "The red cable goes to the voltage terminal."


def test_lexical_search_folds_accents_and_accepts_any_text(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as index:
        for query in ("configuracion senal", "CONFIGURACIÓN", '"señal" AND (menu OR', "señal*^-:"):
            hits = index.search_lexical(query, 5)
            assert hits and sources(index, [hits[0][0]]) == ["b.md"], query
            assert all(score > 0 for _, score in hits)
        assert index.search_lexical("?!¿ \" ' ()", 5) == []
        assert index.search_lexical("", 5) == []
        # FTS5 operators are plain words here: "and" is in c.pdf's text
        assert sources(index, [c for c, _ in index.search_lexical("NEAR OR AND NOT", 5)]) == ["c.pdf"]


def test_fts_terms() -> None:
    assert fts_terms('¿Cómo "configuro" el WiFi?! (v2.0)') == ["cómo", "configuro", "el", "wifi", "v2", "0"]
    assert fts_terms("a_b a-b") == ["a", "b"]


def test_replacing_a_file_swaps_its_chunks(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as index:
        old = {c for c, _ in index.search_lexical("battery", 5)}
        index.apply([update("c.pdf", "Firmware upgrade steps.", sha="f" * 64)])
        assert index.search_lexical("battery", 5) == []
        assert index.get_chunks(list(old)) == []
        assert sources(index, dense(index, "firmware upgrade steps", 1)) == ["c.pdf"]
        assert index.count() == 4


def test_remove_file(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as index:
        assert index.remove_file(ROOT, "a.txt")
        assert not index.remove_file(ROOT, "a.txt")
        assert index.count() == 2
        assert "a.txt" not in sources(index, dense(index, "red cable voltage terminal", 5))
        assert index.search_lexical("calibrate", 5) == []


def test_a_failed_update_changes_nothing(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as index:
        version = index.manifest["catalog_version"]
        clash = update(
            "d.txt", "Battery replacement and safety notes.", sha=DOCS[2].sha256
        )  # same ids as c.pdf
        with pytest.raises(sqlite3.IntegrityError):
            index.apply([update("e.txt", "Something new."), clash])
        assert index.count() == 4 and [f.path for f in index.files()] == ["a.txt", "b.md", "c.pdf"]
        assert index.search_lexical("something", 5) == []
        index.commit()
        assert index.manifest["catalog_version"] == version


def test_another_embedder_is_refused_with_the_fix(tmp_path: Path) -> None:
    make(tmp_path, *DOCS).close()
    with pytest.raises(EmbedderMismatch) as err:
        open_index(tmp_path / "ix", embedder_name="embeddinggemma-300m")
    message = str(err.value)
    assert f"built with {EMB.name} (dim 32)" in message and "you asked for embeddinggemma-300m" in message
    assert "--embedder embeddinggemma-300m" in message and f"--embedder {EMB.name}" in message
    with pytest.raises(EmbedderMismatch, match="dim 64"):
        open_index(tmp_path / "ix", embedder_name=EMB.name, dim=64, create=True)
    open_index(tmp_path / "ix", embedder_name=EMB.name).close()


def test_damaged_catalog_is_reported(tmp_path: Path) -> None:
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "catalog.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexCorrupt, match="delete it and run 'docqa ingest"):
        open_index(tmp_path / "ix")


@pytest.mark.parametrize("damage", ["old-faiss", "no-faiss", "garbage-faiss", "no-manifest", "wrong-count"])
def test_stale_vectors_are_repaired_never_served(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "ix"
    make(tmp_path, *DOCS).close()
    shutil.copy(folder / VECTORS, tmp_path / "old.faiss")
    shutil.copy(folder / MANIFEST, tmp_path / "old.json")
    with open_index(folder) as index:
        index.remove_file(ROOT, "c.pdf")
        index.apply([update("d.txt", "Cleaning the optical lens with alcohol.")])
        index.commit()
    if damage == "old-faiss":  # a crash after the catalog commit, before the FAISS rename
        shutil.copy(tmp_path / "old.faiss", folder / VECTORS)
        shutil.copy(tmp_path / "old.json", folder / MANIFEST)
    elif damage == "no-faiss":
        (folder / VECTORS).unlink()
    elif damage == "garbage-faiss":
        (folder / VECTORS).write_bytes(b"\0" * 100)
    elif damage == "no-manifest":
        (folder / MANIFEST).unlink()
    else:  # stamped right, but holding other vectors: the count check catches it
        shutil.copy(tmp_path / "old.faiss", folder / VECTORS)
        vectors = FlatVectors.load(folder / VECTORS, 32)
        vectors.remove([vectors.search(np.ones(32, dtype=np.float32), 1)[0][0]])
        vectors.save(folder / VECTORS)
    with open_index(folder) as index:
        found = dense(index, "cleaning the optical lens with alcohol", 10)
        assert sources(index, found[:1]) == ["d.txt"]
        assert "c.pdf" not in sources(index, found)
        assert len(found) == index.count() == 4
        index.commit()
    assert json.loads((folder / MANIFEST).read_text())["catalog_version"] == _version(folder)
    assert FlatVectors.load(folder / VECTORS, 32).count() == 4


def test_a_reader_sees_a_writers_commits(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as writer, open_index(tmp_path / "ix", embedder_name=EMB.name) as reader:
        assert len(dense(reader, "lens", 10)) == 4
        writer.apply([update("d.txt", "Cleaning the optical lens with alcohol.")])
        assert sources(reader, dense(reader, "cleaning the optical lens with alcohol", 1)) == ["d.txt"]
        writer.remove_file(ROOT, "d.txt")
        assert "d.txt" not in sources(reader, dense(reader, "cleaning the optical lens", 10))


def test_one_writer_at_a_time(tmp_path: Path) -> None:
    with make(tmp_path, *DOCS) as first, open_index(tmp_path / "ix") as second:
        first.remove_file(ROOT, "b.md")
        with pytest.raises(IndexBusy, match="another process"):
            second.remove_file(ROOT, "a.txt")
    with open_index(tmp_path / "ix") as third:
        assert third.remove_file(ROOT, "a.txt")


def test_same_path_in_two_roots_gets_distinct_sources(tmp_path: Path) -> None:
    with make(tmp_path, update("manual.txt", "Corpus manual text."), update("manual.txt", "Uploaded manual text.",
              root=str(tmp_path / "uploads"), sha="9" * 64)) as index:  # fmt: skip
        assert sorted(f.source for f in index.files()) == ["manual.txt", "uploads/manual.txt"]
        hit = index.get_chunks(dense(index, "uploaded manual text", 1))[0]
        assert hit.source == "uploads/manual.txt"
        (tmp_path / "uploads").mkdir()
        (tmp_path / "uploads" / "manual.txt").write_text("x")
        assert index.file_path("uploads/manual.txt") == tmp_path / "uploads" / "manual.txt"
        assert index.file_path("manual.txt") is None  # /docs/manual.txt is not on disk
        assert index.file_path("nope.pdf") is None


def _version(folder: Path) -> int:
    with sqlite3.connect(folder / "catalog.sqlite") as conn:
        return int(conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
