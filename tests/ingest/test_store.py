"""The index folder: read API, one transaction per file, embedder checks, repair of a stale FAISS file,
the FAISS index kind chosen for the size (flat / IVF), and the lexical query's common words.

Tests of store behaviour take the ``store`` fixture and run against both backends: the local store
and ``store = "milvus"`` on a real Milvus Lite file (one per test module, a collection per index);
the FAISS and FTS5 internals are the local store's own."""

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
from ingest.layout import MANIFEST, VECTORS
from ingest.lexical import fts_terms
from ingest.records import Section
from ingest.settings import Settings
from ingest.store import IndexBusy, open_index
from ingest.stores import open_store
from ingest.vectors import (
    FLAT,
    IVF,
    RECALL_TARGET,
    FlatVectors,
    IVFVectors,
    load_vectors,
    nlist_for,
    nprobe_for,
)
from tests.fakes import HashEmbedder

EMB = HashEmbedder(dim=32)
ROOT = "/docs"


def update(path: str, *texts: str, root: str = ROOT, sha: str | None = None) -> FileUpdate:
    sha = sha or (path.encode().hex() + "0" * 64)[:64]
    sections = [Section(t, path, page=i + 1) for i, t in enumerate(texts)]
    chunks = chunk_sections(sections, EMB, 32, 4, file_sha256=sha)
    return FileUpdate(root, path, sha, 100, 1.0, tuple(chunks), EMB.embed_documents([c.text for c in chunks]),
                      pages=len(texts))  # fmt: skip


LOCAL = Settings()


def reopen(settings: Settings, folder: Path, **options):
    return open_store(settings, folder, **options)


def make(tmp_path: Path, *updates: FileUpdate, settings: Settings = LOCAL):
    index = open_store(settings, tmp_path / "ix", embedder_name=EMB.name, create=True, dim=EMB.dim)
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


def test_missing_index_says_how_to_make_one(tmp_path: Path, store: Settings) -> None:
    with pytest.raises(IndexNotFound, match=r"no index at .*; run 'docqa ingest FOLDER' first"):
        reopen(store, tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_read_api(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as index:
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


def test_lexical_search_folds_accents_and_accepts_any_text(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as index:
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


def test_replacing_a_file_swaps_its_chunks(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as index:
        old = {c for c, _ in index.search_lexical("battery", 5)}
        index.apply([update("c.pdf", "Firmware upgrade steps.", sha="f" * 64)])
        assert index.search_lexical("battery", 5) == []
        assert index.get_chunks(list(old)) == []
        assert sources(index, dense(index, "firmware upgrade steps", 1)) == ["c.pdf"]
        assert index.count() == 4


def test_remove_file(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as index:
        assert index.remove_file(ROOT, "a.txt")
        assert not index.remove_file(ROOT, "a.txt")
        assert index.count() == 2
        assert "a.txt" not in sources(index, dense(index, "red cable voltage terminal", 5))
        assert index.search_lexical("calibrate", 5) == []


def test_a_failed_update_changes_nothing(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as index:
        version = _version(tmp_path / "ix")
        clash = update(
            "d.txt", "Battery replacement and safety notes.", sha=DOCS[2].sha256
        )  # same ids as c.pdf
        with pytest.raises(sqlite3.IntegrityError):
            index.apply([update("e.txt", "Something new."), clash])
        assert index.count() == 4 and [f.path for f in index.files()] == ["a.txt", "b.md", "c.pdf"]
        assert index.search_lexical("something", 5) == []
        assert len(dense(index, "something new", 10)) == 4
        index.commit()
        assert _version(tmp_path / "ix") == version
        assert index.manifest.get("catalog_version", version) == version  # the local store's stamp


def test_another_embedder_is_refused_with_the_fix(tmp_path: Path, store: Settings) -> None:
    make(tmp_path, *DOCS, settings=store).close()
    with pytest.raises(EmbedderMismatch) as err:
        reopen(store, tmp_path / "ix", embedder_name="embeddinggemma-300m")
    message = str(err.value)
    assert f"built with {EMB.name} (dim 32)" in message and "you asked for embeddinggemma-300m" in message
    assert "--embedder embeddinggemma-300m" in message and f"--embedder {EMB.name}" in message
    with pytest.raises(EmbedderMismatch, match="dim 64"):
        reopen(store, tmp_path / "ix", embedder_name=EMB.name, dim=64, create=True)
    reopen(store, tmp_path / "ix", embedder_name=EMB.name).close()


def test_damaged_catalog_is_reported(tmp_path: Path, store: Settings) -> None:
    (tmp_path / "ix").mkdir()
    (tmp_path / "ix" / "catalog.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(IndexCorrupt, match="delete it and run 'docqa ingest"):
        reopen(store, tmp_path / "ix")


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


def test_a_reader_sees_a_writers_commits(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as writer, reopen(store, tmp_path / "ix", embedder_name=EMB.name) as reader:  # fmt: skip
        assert len(dense(reader, "lens", 10)) == 4
        writer.apply([update("d.txt", "Cleaning the optical lens with alcohol.")])
        assert sources(reader, dense(reader, "cleaning the optical lens with alcohol", 1)) == ["d.txt"]
        writer.remove_file(ROOT, "d.txt")
        assert "d.txt" not in sources(reader, dense(reader, "cleaning the optical lens", 10))


def test_one_writer_at_a_time(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, *DOCS, settings=store) as first, reopen(store, tmp_path / "ix") as second:
        first.remove_file(ROOT, "b.md")
        with pytest.raises(IndexBusy, match="another process"):
            second.remove_file(ROOT, "a.txt")
    with reopen(store, tmp_path / "ix") as third:
        assert third.remove_file(ROOT, "a.txt")


def test_same_path_in_two_roots_gets_distinct_sources(tmp_path: Path, store: Settings) -> None:
    with make(tmp_path, update("manual.txt", "Corpus manual text."), update("manual.txt", "Uploaded manual text.",
              root=str(tmp_path / "uploads"), sha="9" * 64), settings=store) as index:  # fmt: skip
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


# -- the FAISS index kind follows the size (a small ann_threshold keeps these fast) ----------------

MORE = tuple(
    update(f"more{i}.txt", f"Spare part {word} number {i} for the {word} assembly.")
    for i, word in enumerate(["gear", "spring", "valve", "pump", "fuse", "belt", "lamp", "motor"])
)


def _kind(folder: Path) -> tuple[str, object]:
    manifest = json.loads((folder / MANIFEST).read_text())
    return manifest["vector_store"], load_vectors(folder / VECTORS, 32)


def test_index_kind_switches_at_the_threshold_and_back(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    with open_index(folder, embedder_name=EMB.name, create=True, dim=32, ann_threshold=6) as index:
        index.apply(DOCS)  # 4 chunks
        index.commit()
        kind, vectors = _kind(folder)
        assert kind == FLAT and type(vectors) is FlatVectors and "nlist" not in index.manifest
        index.apply(MORE[:3])  # 7 chunks
        index.commit()
        kind, vectors = _kind(folder)
        assert kind == IVF and isinstance(vectors, IVFVectors) and vectors.count() == 7
        manifest = index.manifest
        assert manifest["nlist"] == nlist_for(7) and manifest["trained_for"] == 7 and manifest["nprobe"] >= 1
        assert sources(index, dense(index, "spare part valve number 2 for the valve assembly", 1)) == [
            "more2.txt"
        ]
        for path in ("more0.txt", "more1.txt", "a.txt"):  # 3 chunks: half the threshold, stays IVF
            assert index.remove_file(ROOT, path)
        index.commit()
        assert index.manifest["vector_store"] == IVF
        for path in ("b.md",):  # 2 chunks: below half the threshold
            assert index.remove_file(ROOT, path)
        index.commit()
        kind, vectors = _kind(folder)
        assert kind == FLAT and type(vectors) is FlatVectors and vectors.count() == index.count() == 2
        assert "nlist" not in index.manifest and "trained_for" not in index.manifest


def test_ivf_index_reloads_removes_a_document_and_is_repaired(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    with open_index(folder, embedder_name=EMB.name, create=True, dim=32, ann_threshold=6) as index:
        index.apply(DOCS + MORE)
        index.commit()
    assert _kind(folder)[0] == IVF
    with open_index(folder, ann_threshold=6) as index:  # loads the IVF file: no rebuild
        assert sources(index, dense(index, "spare part pump number 3 for the pump assembly", 1)) == [
            "more3.txt"
        ]
        assert isinstance(index._vectors, IVFVectors) and index._saved_version == index._vectors_version
        assert index.remove_file(ROOT, "more3.txt")
        found = dense(index, "spare part pump number 3 for the pump assembly", 20)
        assert "more3.txt" not in sources(index, found) and len(found) == index.count() == 11
        index.commit()
    vectors = load_vectors(folder / VECTORS, 32)
    assert isinstance(vectors, IVFVectors) and vectors.count() == 11
    (folder / VECTORS).write_bytes(b"\0" * 100)  # damaged: rebuilt from the catalog, then IVF again
    with open_index(folder, ann_threshold=6) as index:
        found = dense(index, "spare part fuse number 4 for the fuse assembly", 20)
        assert sources(index, found[:1]) == ["more4.txt"] and len(found) == 11
        index.commit()
    assert _kind(folder)[0] == IVF


def test_ivf_lists_are_retrained_when_the_index_grows(tmp_path: Path) -> None:
    folder = tmp_path / "ix"
    with open_index(folder, embedder_name=EMB.name, create=True, dim=32, ann_threshold=2) as index:
        index.apply(DOCS[2:])  # 1 chunk: flat
        index.apply(MORE[:2])  # 3 chunks: IVF trained for 3
        index.commit()
        assert index.manifest["vector_store"] == IVF and index.manifest["trained_for"] == 3
        index.apply(MORE[2:6])  # 7 chunks: not 4x yet
        index.commit()
        assert index.manifest["trained_for"] == 3
        index.apply(DOCS[:2] + MORE[6:])  # 12 chunks: 4x, not above
        index.commit()
        assert index.manifest["trained_for"] == 3
        index.apply([update("z.txt", "Torque values for the bolts.")])  # 13 chunks > 4 * 3: retrained
        index.commit()
        manifest = index.manifest
        assert manifest["trained_for"] == 13 and manifest["nlist"] == nlist_for(13) > nlist_for(3)
        assert load_vectors(folder / VECTORS, 32, manifest["trained_for"]).count() == 13
        assert sources(index, dense(index, "spare part motor number 7 for the motor assembly", 1)) == [
            "more7.txt"
        ]


def test_an_existing_flat_index_keeps_working_and_the_next_commit_converts_it(tmp_path: Path) -> None:
    import faiss

    folder = tmp_path / "ix"
    make(tmp_path, *DOCS, *MORE).close()
    # the file and manifest as docqa wrote them before IVF existed
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    vectors = FlatVectors.load(folder / VECTORS, 32)
    ids = [rowid for rowid, _ in vectors.search(np.ones(32, dtype=np.float32), 100)]
    with sqlite3.connect(folder / "catalog.sqlite") as conn:
        blobs = dict(conn.execute("SELECT rowid, vector FROM vectors"))
    old.add_with_ids(np.stack([np.frombuffer(blobs[i], dtype=np.float32) for i in ids]), np.array(ids))
    faiss.write_index(old, str(folder / VECTORS))
    manifest = json.loads((folder / MANIFEST).read_text())
    assert manifest["vector_store"] == FLAT
    with open_index(folder, ann_threshold=6) as index:  # 12 chunks >= 6, but the flat file is served
        assert sources(index, dense(index, "spare part belt number 5 for the belt assembly", 1)) == [
            "more5.txt"
        ]
        assert type(index._vectors) is FlatVectors and index._saved_version == index._vectors_version
    with open_index(folder, ann_threshold=6) as index:
        assert index.remove_file(ROOT, "c.pdf")
        assert type(index._vectors) is FlatVectors
        index.commit()  # a writer's commit rebuilds it as the kind its size calls for
    assert _kind(folder)[0] == IVF and json.loads((folder / MANIFEST).read_text())["trained_for"] == 11
    with open_index(folder, ann_threshold=6) as index:
        found = dense(index, "spare part belt number 5 for the belt assembly", 20)
        assert sources(index, found[:1]) == ["more5.txt"] and "c.pdf" not in sources(index, found)


@pytest.mark.parametrize("kind", [FlatVectors, IVFVectors])
def test_vectors_remove_by_id_and_survive_a_reload(tmp_path: Path, kind) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((200, 32)).astype(np.float32)
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    ids = np.arange(1000, 1200)
    vectors = IVFVectors.train(32, data, 200) if kind is IVFVectors else FlatVectors(32)
    vectors.add(ids, data)
    assert vectors.search(data[7], 1) == [(1007, pytest.approx(1.0, abs=1e-5))]
    vectors.remove([1007, 1008, 5])  # 5: not there, ignored
    assert vectors.count() == 198 and 1007 not in dict(vectors.search(data[7], 200))
    vectors.save(tmp_path / "v.faiss")
    loaded = load_vectors(tmp_path / "v.faiss", 32, 200)
    assert type(loaded) is kind and loaded.count() == 198 and loaded.params() == vectors.params()
    assert loaded.search(data[9], 1)[0][0] == 1009
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="size 32, expected 64"):
        load_vectors(tmp_path / "v.faiss", 64)
    if kind is IVFVectors:
        with pytest.raises(ValueError, match="not a flat one"):
            FlatVectors.load(tmp_path / "v.faiss", 32)


def _recall(vectors: IVFVectors, data: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :k]
    return float(
        np.mean(
            [
                len(set(t) & {i for i, _ in vectors.search(q, k)}) / k
                for t, q in zip(truth, queries, strict=True)
            ]
        )
    )


def _unit(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    out = rng.standard_normal((n, dim)).astype(np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_calibrate_probes_the_lists_the_recall_target_needs() -> None:
    rng = np.random.default_rng(3)
    data = _unit(rng, 4000)  # unclustered: the worst case for IVF, 1/32 of the lists falls short
    vectors = IVFVectors.train(32, data, len(data))
    vectors.add(np.arange(len(data)), data)
    fresh = _unit(rng, 200)  # queries calibrate never saw
    nlist, default = int(vectors._index.nlist), nprobe_for(int(vectors._index.nlist))
    assert vectors._index.nprobe == default and _recall(vectors, data, fresh) < 0.9
    reached = vectors.calibrate(_unit(rng, 200))
    nprobe = int(vectors._index.nprobe)
    assert reached >= RECALL_TARGET and default < nprobe < nlist
    assert _recall(vectors, data, fresh) >= RECALL_TARGET - 0.02
    assert vectors.params()["nprobe"] == nprobe and vectors.params()["nprobe_recall"] == reached
    vectors._index.nprobe = nprobe - nprobe // 3  # the step before (counts grow by half) falls short
    assert _recall(vectors, data, fresh) < RECALL_TARGET
    # clustered vectors (what real embeddings look like at a distance) keep the default
    centres = _unit(rng, 40)
    clustered = centres[rng.integers(0, 40, 4000)] + 0.05 * rng.standard_normal((4000, 32)).astype(np.float32)
    clustered /= np.linalg.norm(clustered, axis=1, keepdims=True)
    easy = IVFVectors.train(32, clustered, len(clustered))
    easy.add(np.arange(len(clustered)), clustered)
    assert easy.calibrate(clustered[:200] + 0.01) >= RECALL_TARGET and easy._index.nprobe == default


def test_an_ivf_index_is_calibrated_on_queries_from_its_chunks_and_keeps_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(400)]
    docs = tuple(update(f"p{i}.txt", " ".join(rng.choice(words, 14))) for i in range(400))
    asked: list[list[str]] = []

    def encode(texts: list[str]) -> np.ndarray:
        asked.append(list(texts))
        return EMB.embed_queries(texts)

    folder = tmp_path / "ix"
    with open_index(
        folder, embedder_name=EMB.name, create=True, dim=32, ann_threshold=100, encode_queries=encode
    ) as ix:
        ix.apply(docs)
        ix.commit()
        manifest = ix.manifest
    assert manifest["vector_store"] == IVF and len(asked) == 1 and 150 <= len(asked[0]) <= 200
    assert all(len(q.split()) == 12 for q in asked[0])  # 12 consecutive words of a stored chunk
    assert manifest["nprobe_recall"] >= RECALL_TARGET and manifest["nprobe"] > nprobe_for(manifest["nlist"])
    with open_index(folder, ann_threshold=100) as ix:  # reloaded: the calibrated count, no new queries
        ix.search_dense(EMB.embed_queries(["w1 w2"])[0], 3)
        assert (
            ix._vectors._index.nprobe == manifest["nprobe"]
            and ix._vectors.recall == manifest["nprobe_recall"]
        )
    plain = tmp_path / "plain"
    with open_index(plain, embedder_name=EMB.name, create=True, dim=32, ann_threshold=100) as ix:
        ix.apply(docs)
        ix.commit()
        assert (
            ix.manifest["nprobe"] == nprobe_for(ix.manifest["nlist"]) and "nprobe_recall" not in ix.manifest
        )


def test_an_encoder_failing_on_calibration_leaves_the_rule_and_a_later_write_calibrates(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(5)
    words = [f"w{i}" for i in range(400)]
    docs = tuple(update(f"p{i}.txt", " ".join(rng.choice(words, 14))) for i in range(400))

    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("embedder session lost")

    folder = tmp_path / "ix"
    with open_index(
        folder, embedder_name=EMB.name, create=True, dim=32, ann_threshold=100, encode_queries=broken
    ) as ix:
        ix.apply(docs)
        ix.commit()  # written all the same: every chunk searchable, the default lists per query
        assert ix.calibration_error == "RuntimeError: embedder session lost"
        manifest = ix.manifest
        assert ix.search_dense(EMB.embed_queries(["w1 w2"])[0], 1)
    assert manifest["vector_store"] == IVF and manifest["nprobe"] == nprobe_for(manifest["nlist"])
    assert "nprobe_recall" not in manifest
    # The next write with a working encoder calibrates the lists it did not retrain.
    with open_index(folder, ann_threshold=100, encode_queries=EMB.embed_queries) as ix:
        ix.apply((update("extra.txt", "w1 w2 w3 w4"),))
        ix.commit()
        assert ix.calibration_error is None
        calibrated = ix.manifest
    assert calibrated["nlist"] == manifest["nlist"] and calibrated["nprobe_recall"] >= RECALL_TARGET
    assert calibrated["nprobe"] > nprobe_for(calibrated["nlist"])


# -- lexical: words in half the chunks or more are left out of the query ---------------------------

COMMON = tuple(
    update(f"m{i}.txt", f"The device manual explains the {word} of the device.")
    for i, word in enumerate(["display", "battery", "menu", "cable", "sensor", "calibration"])
)


def _selective(index, terms: list[str], k: int) -> list[str]:
    with index._lock:
        index._sync()
        return index._lexical.selective(terms, k)


def test_a_query_of_common_words_still_finds_the_rare_word(tmp_path: Path) -> None:
    with make(tmp_path, *COMMON, *(update(f"n{i}.txt", f"Calibration note {i}.") for i in range(3))) as index:
        hits = index.search_lexical("the device manual explains the device calibration", 4)
        assert sorted(sources(index, [c for c, _ in hits])) == ["m5.txt", "n0.txt", "n1.txt", "n2.txt"]
        # "the", "device" are in 6 of 9 chunks: left out, as "calibration" is in 4 >= k chunks
        assert _selective(index, ["the", "device", "calibration", "zzz"], 4) == ["calibration", "zzz"]
        # ... but kept when the rest cannot fill the k results alone, or when nothing else is left
        assert _selective(index, ["the", "device", "calibration"], 5) == ["the", "device", "calibration"]
        assert len(index.search_lexical("the device manual", 10)) == 6
        # the k best are BM25 over all the words: left-out words weigh 1e-6 (FTS5's IDF floor)
        sql = "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY bm25(chunks_fts)"
        full = index._conn.execute(sql, ('"the" OR "device" OR "calibration" OR "note"',)).fetchall()
        kept = index.search_lexical("the device calibration note", 3)
        assert [s for _, s in kept] == pytest.approx([s for _, s in full[:3]], abs=1e-4)
        assert sources(index, [c for c, _ in kept]) == ["n0.txt", "n1.txt", "n2.txt"]


def test_tiny_index_keeps_every_word(tmp_path: Path) -> None:
    # 2 chunks: each word is in half of them (IDF 1e-6), yet they are all the lexical search has
    with make(tmp_path, update("v.txt", "Para medir un voltaje, conecte la señal."), update("s.txt", "Scope timebase.")) as index:  # fmt: skip
        hits = index.search_lexical("mido voltaje senal", 5)
        assert sources(index, [c for c, _ in hits]) == ["v.txt"]


def test_document_frequencies_follow_the_catalog(tmp_path: Path) -> None:
    with make(tmp_path, *COMMON) as index:
        assert _selective(index, ["device", "display"], 1) == ["display"]
        index.apply([update(f"x{i}.txt", f"Unrelated note {i} about shipping.") for i in range(7)])
        assert _selective(index, ["device", "display"], 1) == ["device", "display"]  # 6 of 13 now
        assert len(index.search_lexical("device", 20)) == 6
