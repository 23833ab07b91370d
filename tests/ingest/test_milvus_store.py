"""``store = "milvus"`` on a real Milvus Lite file: a Milvus copy that lost rows or kept stale ones
(a crash between the catalog's commit and Milvus's write) is repaired from the catalog, never
served; the store can be switched both ways on one index folder; a Milvus Lite file open in another
process is one clear error; and what Milvus Lite's own BM25 does, which is why lexical search stays
in the catalog (``ingest.milvus_store``). The shared store contract runs on both stores in
``test_store.py`` and ``test_store_filter.py``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ingest.errors import ConfigError, IndexBusy
from ingest.milvus_store import MilvusStore
from ingest.settings import Settings
from ingest.stores import open_store
from tests.conftest import ROOT
from tests.ingest.test_store import DOCS, EMB, dense, make, sources, update

pymilvus = pytest.importorskip("pymilvus")


@pytest.fixture
def settings(milvus_lite: str) -> Settings:
    return Settings(store="milvus", milvus_uri=milvus_lite)


def _client(store: MilvusStore):
    return store._milvus.client  # the store's own client: Milvus Lite serves one process per file


def _milvus_ids(store: MilvusStore) -> list[int]:
    return sorted(store._milvus.ids())


def _same(hits: list[tuple[str, float]], expected: list[tuple[str, float]]) -> bool:
    """Same chunk ids in the same order, scores equal to float32 precision."""
    return [c for c, _ in hits] == [c for c, _ in expected] and np.allclose(
        [s for _, s in hits], [s for _, s in expected], atol=1e-5
    )


def _catalog_ids(folder: Path) -> list[int]:
    import sqlite3

    with sqlite3.connect(folder / "catalog.sqlite") as conn:
        return [r[0] for r in conn.execute("SELECT rowid FROM chunks ORDER BY rowid")]


def test_lost_and_stale_milvus_rows_are_repaired_never_served(tmp_path: Path, settings: Settings) -> None:
    folder = tmp_path / "ix"
    with make(tmp_path, *DOCS, settings=settings) as index:
        client, name = _client(index), index.collection
        lens = update("d.txt", "Cleaning the optical lens with alcohol.")
        # a crash after the catalog's commit: the new rows never reached Milvus, the old ones stayed
        with index._lock:
            from ingest import catalog

            removed, added = catalog.apply(
                index._conn, [lens, update("c.pdf", "Firmware notes.", sha="f" * 64)]
            )
        query = EMB.embed_queries(["battery replacement and safety notes"])[0]
        client.upsert(name, [{"id": 10_000, "vector": query.tolist()}])  # stale, and the best match
        assert len(removed) == 1 and set(added) - set(_milvus_ids(index))
    with open_store(settings, folder) as index:  # a fresh process: its first search repairs
        found = dense(index, "cleaning the optical lens with alcohol", 10)
        assert sources(index, found[:1]) == ["d.txt"]
        assert len(found) == index.count() == 5
        assert _milvus_ids(index) == _catalog_ids(folder)
        old_battery = DOCS[2].chunks[0].id
        assert old_battery not in dense(index, "battery replacement and safety notes", 10)


def test_a_stale_row_among_the_best_is_dropped_and_the_k_best_still_returned(
    tmp_path: Path, settings: Settings
) -> None:
    with make(tmp_path, *DOCS, settings=settings) as index:
        query = EMB.embed_queries(["battery replacement and safety notes"])[0]
        before = index.search_dense(query, 3)
        # another process's race left a row the catalog does not have, while this one's version is current
        _client(index).upsert(index.collection, [{"id": 99_999, "vector": query.tolist()}])
        assert _same(index.search_dense(query, 3), before)
        assert 99_999 not in _milvus_ids(index)


def test_a_dropped_collection_fails_one_write_then_is_rebuilt_from_the_catalog(
    tmp_path: Path, settings: Settings
) -> None:
    from ingest.errors import IndexUnavailable

    folder = tmp_path / "ix"
    with make(tmp_path, *DOCS, settings=settings) as index:
        _client(index).drop_collection(index.collection)
        with pytest.raises(IndexUnavailable, match="the catalog in the index folder keeps what was indexed"):
            index.apply([update("d.txt", "Cleaning the optical lens with alcohol.")])
    with open_store(settings, folder) as index:
        assert [f.path for f in index.files()] == ["a.txt", "b.md", "c.pdf", "d.txt"]
        assert sources(index, dense(index, "cleaning the optical lens with alcohol", 1)) == ["d.txt"]
        index.commit()
        assert _milvus_ids(index) == _catalog_ids(folder)


def test_switching_the_store_on_one_index_folder_keeps_the_results(
    tmp_path: Path, settings: Settings
) -> None:
    folder = tmp_path / "ix"
    questions = ["battery safety", "red cable voltage", "configuración de la señal"]
    with make(tmp_path, *DOCS) as local:  # built by the local store
        expected = [local.search_dense(EMB.embed_queries([q])[0], 4) for q in questions]
    with open_store(settings, folder) as milvus:  # Milvus filled from the catalog on first use
        for question, hits in zip(questions, expected, strict=True):
            assert _same(milvus.search_dense(EMB.embed_queries([question])[0], 4), hits)
        milvus.remove_file("/docs", "a.txt")
        milvus.commit()
        after = milvus.search_dense(EMB.embed_queries(["battery safety"])[0], 4)
    with open_store(Settings(), folder) as local:  # vectors.faiss is stale: rebuilt from the catalog
        assert _same(local.search_dense(EMB.embed_queries(["battery safety"])[0], 4), after)
        assert local.count() == 2


def test_a_milvus_lite_file_open_in_another_process_is_one_clear_error(tmp_path: Path) -> None:
    lite = tmp_path / "busy.db"
    settings = Settings(store="milvus", milvus_uri=str(lite))
    make(tmp_path, *DOCS).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pymilvus import MilvusClient
            MilvusClient(uri={str(lite)!r})
            print("open", flush=True)
            sys.stdin.read()
        """)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(IndexBusy, match=r"open in another process .* set milvus_uri"):
            open_store(settings, tmp_path / "ix")
    finally:
        holder.communicate("", timeout=60)
    with open_store(settings, tmp_path / "ix") as index:  # free again
        assert index.count() == 4


@pytest.mark.parametrize(
    ("field", "value", "fix"),
    [
        ("store", "faiss", "use one of local, milvus"),
        ("milvus_collection", "docqa-prod", "letters, digits and underscores"),
        ("milvus_uri", "localhost:19530", "a server URL such as http://localhost:19530"),
    ],
)
def test_bad_milvus_settings_name_the_value_and_the_fix(field: str, value: str, fix: str) -> None:
    with pytest.raises(ConfigError, match=f"bad setting {field}={value!r}: .*{fix}"):
        Settings(**{field: value})


def test_milvus_lite_bm25_does_not_fold_accents_and_negates_scores(tmp_path: Path) -> None:
    """Why lexical search stays in the catalog's FTS5 (which folds accents, scores > 0): if this
    starts failing, Milvus Lite's BM25 changed and moving lexical search into Milvus may be worth it."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    client = MilvusClient(uri=str(tmp_path / "bm25.db"))
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("text", DataType.VARCHAR, max_length=1000, enable_analyzer=True)
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))  # fmt: skip
    params = client.prepare_index_params()
    params.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
    client.create_collection("t", schema=schema)
    client.create_index("t", params, sync=False)
    texts = ["La configuración de la señal", "Battery notes", "configuracion rapida", "Lens care"]
    client.insert("t", [{"id": i, "text": t} for i, t in enumerate(texts)])

    def bm25(query: str) -> list[tuple[int, float]]:
        found = client.search("t", data=[query], anns_field="sparse", limit=4, output_fields=["id"])
        return [(hit["id"], hit["distance"]) for hit in found[0]]

    try:
        assert [i for i, _ in bm25("configuracion")] == [2]  # "configuración" is not found
        assert [i for i, _ in bm25("configuración")] == [0]
        assert all(score < 0 for _, score in bm25("battery"))  # a Milvus server returns them > 0
    finally:
        client.close()


def test_the_default_milvus_lite_file_lives_in_the_index_folder(tmp_path: Path) -> None:
    settings = Settings(store="milvus", milvus_collection="manuals")
    with make(tmp_path, *DOCS, settings=settings) as index:
        assert index.uri == str(tmp_path / "ix" / "milvus.db")
        name = index.collection
        assert name.startswith("manuals_") and _client(index).has_collection(name)
    assert (tmp_path / "ix" / "milvus.db").is_dir()
    with open_store(settings.replace(milvus_collection="other"), tmp_path / "ix") as index:
        assert index.collection == name  # recorded in the catalog when the index first met Milvus
        assert sources(index, dense(index, "battery replacement", 1)) == ["c.pdf"]
