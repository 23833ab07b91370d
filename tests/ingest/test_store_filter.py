"""The ``Store`` seam: ``Index`` and ``MilvusStore`` have every method the protocol names, and
searches limited to some files (the ``sources`` filter) are exact, whatever the FAISS index kind,
and in Milvus (a real Milvus Lite file)."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest

from ingest.milvus_store import MilvusStore
from ingest.settings import Settings
from ingest.store import Index, open_index
from ingest.store_protocol import Store
from ingest.stores import open_store
from tests.ingest.test_store import COMMON, EMB, make, update

DOCS = tuple(
    update(f"d{i:03d}.txt", *(f"Topic {i} part {j} note {i * j}." for j in range(3))) for i in range(100)
)


@pytest.mark.parametrize("kind", [Index, MilvusStore])
def test_index_has_what_the_store_protocol_names(kind: type) -> None:
    for name, member in vars(Store).items():
        if callable(member) and not name.startswith("_"):
            wanted = list(inspect.signature(member).parameters)
            assert list(inspect.signature(getattr(kind, name)).parameters)[: len(wanted)] == wanted, name
    assert {"embedder", "dim"} <= set(Store.__annotations__)


def _brute_force(query: np.ndarray, wanted: set[str], k: int) -> list[tuple[str, float]]:
    scored = [
        (chunk.id, float(vector @ query))
        for u in DOCS
        if u.path in wanted
        for chunk, vector in zip(u.chunks, u.vectors, strict=True)
    ]
    return sorted(scored, key=lambda hit: -hit[1])[:k]


@pytest.mark.parametrize("threshold", [100_000, 50, 0], ids=["flat", "ivf", "milvus"])
def test_filtered_dense_search_is_exact(tmp_path: Path, threshold: int, milvus_lite: str) -> None:
    if threshold:

        def reopen(**options):
            return open_index(tmp_path / "ix", ann_threshold=threshold, **options)
    else:

        def reopen(**options):
            return open_store(Settings(store="milvus", milvus_uri=milvus_lite), tmp_path / "ix", **options)

    with reopen(embedder_name=EMB.name, create=True, dim=EMB.dim) as index:
        index.apply(DOCS)
        index.commit()
    with reopen() as index:
        kind = index.manifest.get("vector_store", "milvus")
        assert kind == (
            "milvus" if not threshold else "faiss-flat-ip" if threshold > 300 else "faiss-ivf-flat-ip"
        )
        if 0 < threshold < 300:  # IVF probes 16 of its 35 lists unfiltered: the filter must probe them all
            assert (index.manifest["nlist"], index.manifest["nprobe"]) == (35, 16)
        for text in ("topic 7 part 1", "note 40", "something else entirely"):
            query = EMB.embed_queries([text])[0]
            for wanted in ({"d002.txt", "d051.txt", "d099.txt"}, {f"d{i:03d}.txt" for i in range(0, 100, 7)}):
                hits = index.search_dense(query, 5, sources=wanted)
                expected = _brute_force(query, wanted, 5)
                assert [cid for cid, _ in hits] == [cid for cid, _ in expected]
                assert [s for _, s in hits] == pytest.approx([s for _, s in expected], abs=1e-5)
        assert index.search_dense(query, 5, sources=set()) == []
        assert index.search_dense(query, 5, sources={"no-such-file.txt"}) == []
        whole_file = index.search_dense(query, 500, sources={"d003.txt"})
        assert [cid for cid, _ in whole_file] == [cid for cid, _ in _brute_force(query, {"d003.txt"}, 500)]
        assert len(whole_file) == 3
        # unfiltered: unchanged (IVF searches only the probed lists, so it finds fewer than all)
        assert (len(index.search_dense(query, 500)) == 300) == (kind != "faiss-ivf-flat-ip")


def test_filtered_lexical_search_ranks_only_those_files(tmp_path: Path, store: Settings) -> None:
    notes = tuple(update(f"n{i}.txt", f"Calibration note {i}.") for i in range(3))
    with make(tmp_path, *COMMON, *notes, settings=store) as index:
        everything = index.search_lexical("device calibration", 10)
        hits = index.search_lexical("device calibration", 10, sources={"m0.txt", "n1.txt"})
        by_id = {c.id: c.source for c in index.get_chunks([cid for cid, _ in everything])}
        assert sorted(by_id[cid] for cid, _ in hits) == ["m0.txt", "n1.txt"]
        assert hits == [hit for hit in everything if by_id[hit[0]] in {"m0.txt", "n1.txt"}]
        # words common in the whole index are kept: within the filter they may be all there is
        only_common = index.search_lexical("the device calibration", 4, sources={"m0.txt"})
        assert [by_id.get(cid) for cid, _ in only_common] == ["m0.txt"]
        assert index.search_lexical("device", 4, sources=set()) == []
