"""The store's lexical index (``ingest.lexical.LexicalIndex``): FTS5's BM25 ranking reproduced in
memory, kept in step with the catalog through writes, saved with the catalog version it matches,
and rebuilt from the catalog when its file is missing, stale or damaged (a crash before ``commit``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from ingest import catalog
from ingest.lexical import LEXICAL, LexicalIndex, fts_terms, match_expression, tokens
from ingest.store import open_index
from tests.ingest.test_store import EMB, update

WORDS = [
    "voltage",
    "probe",
    "range",
    "signal",
    "generator",
    "menu",
    "battery",
    "display",
    "cable",
    "sensor",
    "calibration",
]


def _docs(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    common = ["the", "device", "manual"]
    return [
        " ".join(common + list(rng.choice(WORDS, size=int(rng.integers(3, 12))))) + f" note{i}"
        for i in range(n)
    ]


def _make(tmp_path: Path, texts: list[str], per_file: int = 5):
    index = open_index(tmp_path / "ix", embedder_name=EMB.name, create=True, dim=EMB.dim)
    index.apply([update(f"f{i}.txt", *texts[i : i + per_file]) for i in range(0, len(texts), per_file)])
    index.commit()
    return index


def _fts5(index, query: str, k: int, sources: list[str] | None = None) -> list[tuple[str, float]]:
    """FTS5's own BM25 ranking over every word: the reference."""
    return catalog.search_lexical(index._conn, match_expression(fts_terms(query)), k, sources)


def _same_ranking(index, query: str, k: int, sources: list[str] | None = None) -> bool:
    """The store's top ``k`` is FTS5's: the same scores in the same order, each hit scored by FTS5
    as by the store (hits tied at the cut may differ). Words in half the chunks or more are left
    out when the rest fill ``k``; FTS5 weighs them 1e-6 (its idf floor), hence the tolerance."""
    ours = index.search_lexical(query, k, sources=sources)
    ref = _fts5(index, query, k, sources)
    every = dict(_fts5(index, query, 100_000, sources))
    return [s for _, s in ours] == pytest.approx([s for _, s in ref], abs=1e-5) and all(
        every.get(c, -1.0) == pytest.approx(s, abs=1e-5) for c, s in ours
    )


QUERIES = ["voltage probe", "battery display cable", "the calibration of the sensor", "menu", "note7 range"]


def test_tokens_fold_case_and_accents_as_fts5_does() -> None:
    assert tokens("Configuración del SEÑAL_2, v2.0!") == ["configuracion", "del", "senal", "2", "v2", "0"]
    assert tokens("naïve Ωmega straße") == ["naive", "ωmega", "straße"]
    assert tokens("") == [] and tokens("¿¡...!?") == []


def test_scores_and_order_are_fts5_bm25(tmp_path: Path) -> None:
    with _make(tmp_path, _docs(60)) as index:
        for query in QUERIES:
            assert all(_same_ranking(index, query, k) for k in (1, 3, 8, 100)), query


def test_spanish_accents_match_either_way(tmp_path: Path) -> None:
    texts = ["Configuración de la señal del generador.", "Menú de calibración del sensor.", "Battery."]
    with _make(tmp_path, texts, per_file=1) as index:
        for query, source in [("configuracion senal", "f0.txt"), ("menu calibracion", "f1.txt"),
                              ("¿Cómo configuro la SEÑAL?", "f0.txt")]:  # fmt: skip
            hits = index.search_lexical(query, 1)
            assert [c.source for c in index.get_chunks([hits[0][0]])] == [source]


def test_a_query_of_only_very_common_words_still_returns_results(tmp_path: Path) -> None:
    with _make(tmp_path, _docs(40)) as index:  # "the device manual" is in every chunk
        hits = index.search_lexical("the device manual", 5)
        assert len(hits) == 5 and all(s > 0 for _, s in hits)
        assert index.search_lexical("", 5) == [] and index.search_lexical("?!", 5) == []
        assert index.search_lexical("voltage", 0) == [] and index.search_lexical("zzzz", 5) == []


def test_scoped_search_is_exact(tmp_path: Path) -> None:
    with _make(tmp_path, _docs(60)) as index:
        wanted = ["f5.txt", "f35.txt"]
        for query in QUERIES:
            assert _same_ranking(index, query, 50, wanted) and _same_ranking(index, query, 3, wanted), query
            hits = index.search_lexical(query, 50, sources=wanted)
            assert {c.source for c in index.get_chunks([c for c, _ in hits])} <= set(wanted)
        scoped = len(catalog.source_rowids(index._conn, wanted))
        assert len(index.search_lexical("the device manual", 50, sources=wanted)) == scoped > 0  # all of them


def test_writes_keep_it_in_step_and_commit_saves_it(tmp_path: Path) -> None:
    with _make(tmp_path, _docs(30)) as index:
        index.apply([update("new.txt", "A zeppelin voltage note.")])
        assert [c.source for c in index.get_chunks([index.search_lexical("zeppelin", 3)[0][0]])] == [
            "new.txt"
        ]
        index.remove_file("/docs", "f0.txt")
        for query in QUERIES:  # removed chunks are gone and the statistics follow the catalog
            assert _same_ranking(index, query, 10), query
        index.commit()
        version = catalog.read_version(index._conn)
    saved = LexicalIndex.load(tmp_path / "ix" / LEXICAL)
    assert saved.version == version and saved.count() == 26
    with open_index(tmp_path / "ix") as index:
        assert index.search_lexical("zeppelin", 3)[0][1] > 0
        assert index._lexical.version == version  # loaded, not rebuilt


@pytest.mark.parametrize(
    "damage", ["uncommitted", "missing", "garbage", "truncated", "old-format", "other-weight"]
)
def test_a_stale_or_damaged_lexical_file_is_rebuilt_from_the_catalog(
    tmp_path: Path, damage: str, monkeypatch
) -> None:
    with _make(tmp_path, _docs(30)) as index:
        if damage == "uncommitted":  # a crash after the catalog's transaction, before commit()
            index.apply([update("late.txt", "A zeppelin arrives.")])
            index.remove_file("/docs", "f10.txt")
    path = tmp_path / "ix" / LEXICAL
    if damage == "missing":
        path.unlink()
    elif damage == "garbage":
        path.write_bytes(b"not an npz file")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "old-format":  # before headings were indexed: no format in its meta
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        arrays["meta"] = arrays["meta"][:3]
        with path.open("wb") as file:
            np.savez(file, **arrays)
        with pytest.raises(ValueError, match="older format"):
            LexicalIndex.load(path)
    elif damage == "other-weight":  # built before HEADING_WEIGHT changed
        monkeypatch.setattr("ingest.lexical.HEADING_WEIGHT", 0.5)
        with pytest.raises(ValueError, match=r"heading weight 1\.0"):
            LexicalIndex.load(path)
    with open_index(tmp_path / "ix") as index:
        for query in [*QUERIES, "zeppelin"]:
            assert _same_ranking(index, query, 10), query
        assert index._lexical.count() == index.count()
        assert bool(index.search_lexical("zeppelin", 1)) == (damage == "uncommitted")
        index.commit()  # the next commit writes a current file
    assert LexicalIndex.load(path).count() == LexicalIndex.load(path).count() > 0


def test_postings_survive_many_segments_removals_and_a_round_trip(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("ingest.lexical.FLUSH_POSTINGS", 7)  # a numpy segment every few chunks
    texts = _docs(50, seed=3)
    lexical = LexicalIndex.build(((i, "", t) for i, t in enumerate(texts, start=1)), version=1)
    assert len(lexical._segments) > 5
    lexical.remove(range(1, 50, 3))
    kept = {i + 1: t for i, t in enumerate(texts) if i % 3}
    fresh = LexicalIndex.build(((i, "", t) for i, t in kept.items()), version=1)
    lexical.save(tmp_path / "lex.npz")
    loaded = LexicalIndex.load(tmp_path / "lex.npz")
    for query in QUERIES:
        want = fresh.search(query, 10)
        assert lexical.search(query, 10) == want and loaded.search(query, 10) == want, query
    with pytest.raises(ValueError, match="rowids must grow"):
        loaded.add([(2, "", "again")])
    empty = LexicalIndex(version=0)
    empty.save(tmp_path / "empty.npz")
    assert LexicalIndex.load(tmp_path / "empty.npz").search("voltage", 3) == []


def test_the_heading_is_a_field_with_its_own_weight() -> None:
    # BM25F: heading words count heading_weight times in the term frequency and in the length
    chunks = [
        (1, "Calibration", "Connect the probe cable to the sensor input."),
        (2, "", "Calibration of the sensor: connect the probe cable to the input."),
        (3, "", "The battery display shows the charge of the cable sensor."),
        *((i, "Menu", f"The display menu lists the voltage range {i}.") for i in range(4, 12)),
    ]  # eleven chunks: a word in two of them has a real idf
    texts_only = [(i, "", f"{h}\n{t}" if h else t) for i, h, t in chunks]  # the heading before the text
    scores = {}
    for weight in (0.0, 0.5, 1.0, 2.0):
        lexical = LexicalIndex.build(chunks, version=1, heading_weight=weight)
        scores[weight] = dict(lexical.search("calibration", 3))
    assert 1 not in scores[0.0]  # weight 0: the heading is not searched
    assert scores[0.5][1] < scores[1.0][1] < scores[2.0][1]  # more weight, higher score ...
    assert scores[2.0][1] > scores[2.0][2]  # ... until the heading outranks the same word in text
    assert scores[0.5][1] < scores[0.5][2]
    # at weight 1 a chunk reads as its heading followed by its text (what FTS5 ranks)
    same = LexicalIndex.build(texts_only, version=1, heading_weight=1.0)
    fielded = LexicalIndex.build(chunks, version=1, heading_weight=1.0)
    for query in ("calibration", "probe cable sensor", "battery charge", "menu voltage"):
        got, want = fielded.search(query, 5), same.search(query, 5)
        assert [i for i, _ in got] == [i for i, _ in want], query
        assert [s for _, s in got] == pytest.approx([s for _, s in want]), query
    with pytest.raises(ValueError, match="outside"):
        LexicalIndex(heading_weight=-1)


def test_an_index_without_a_lexical_file_gets_one_at_the_next_commit(tmp_path: Path) -> None:
    with _make(tmp_path, _docs(20)) as index:
        pass
    (tmp_path / "ix" / LEXICAL).unlink()  # as written by docqa before the lexical index
    with open_index(tmp_path / "ix") as index:
        index.commit()
    assert (tmp_path / "ix" / LEXICAL).is_file()
    conn = sqlite3.connect(tmp_path / "ix" / "catalog.sqlite")
    assert LexicalIndex.load(tmp_path / "ix" / LEXICAL).version == catalog.read_version(conn)
    conn.close()


def test_pruned_search_equals_scoring_every_posting() -> None:
    # Zipf-distributed words: rare and very common ones mixed, as in manuals; MaxScore must skip
    # work, never change the top k (checked against scoring every posting of every word)
    rng = np.random.default_rng(7)
    vocab = [f"w{i}" for i in range(400)]
    weights = 1 / np.arange(1, 401) ** 1.1
    texts = [
        " ".join(rng.choice(vocab, size=int(rng.integers(5, 60)), p=weights / weights.sum()))
        for _ in range(3000)
    ]
    lexical = LexicalIndex.build(((i, "", t) for i, t in enumerate(texts, start=1)), version=1)
    lexical.remove(range(5, 3000, 11))  # removed chunks' postings are still there
    everyone = range(1, 3001)
    for _ in range(60):
        query = " ".join(rng.choice(vocab, size=int(rng.integers(1, 8)), p=weights / weights.sum()))
        for k in (1, 5, 20):
            pruned, full = (
                lexical.search(query, k),
                lexical._search_among(list(dict.fromkeys(tokens(query))), k, everyone),
            )
            assert [s for _, s in pruned] == pytest.approx([s for _, s in full], abs=1e-5), (query, k)


def test_lead_ins_find_the_chunk_before_by_index_also_in_an_older_catalog(tmp_path: Path) -> None:
    # lead_ins scanned every chunk of the file (58 ms a question at 1M chunks, 1,000 a file)
    _make(tmp_path, _docs(10)).close()
    conn = sqlite3.connect(tmp_path / "ix" / "catalog.sqlite")
    conn.execute("DROP INDEX chunks_position")  # as made by docqa before it
    conn.commit()
    conn.close()
    with open_index(tmp_path / "ix") as reader:  # a reader changes nothing
        assert reader.search_lexical("voltage", 1)
    with open_index(tmp_path / "ix", embedder_name=EMB.name, create=True, dim=EMB.dim) as writer:
        plan = writer._conn.execute(
            "EXPLAIN QUERY PLAN SELECT 1 FROM chunks c JOIN chunks p ON p.file_id = c.file_id "
            "AND p.position = c.position - 1 AND p.section = c.section WHERE c.chunk_id IN ('x')"
        ).fetchall()
    assert any("chunks_position" in str(row) for row in plan)
