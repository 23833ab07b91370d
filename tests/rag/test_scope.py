"""Scoped questions: resolving a Scope against the index's files, exact scoped retrieval, the engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.catalog import FileInfo
from ingest.errors import EmptyScope
from ingest.records import Scope
from ingest.settings import Settings
from rag.engine import Engine
from rag.retrieve import retrieve
from rag.scope import scope_sources
from tests.fakes import ReplayGenerator
from tests.rag.conftest import MemoryIndex, make_chunk

FILES = [
    FileInfo("/data/manuals", "eyes17/en/eyes17.pdf", "", 0, 0.0, 9, 9, "eyes17/en/eyes17.pdf"),
    FileInfo("/data/manuals", "eyes17/es/eyes17.pdf", "", 0, 0.0, 9, 9, "eyes17/es/eyes17.pdf"),
    FileInfo("/data/manuals", "eyes17-notes.md", "", 0, 0.0, 2, 0, "eyes17-notes.md"),
    FileInfo("/data/uploads", "guide.md", "", 0, 0.0, 3, 0, "uploads/guide.md"),
]


def _sources(**fields) -> list[str]:
    return sorted(scope_sources(Scope(**fields), FILES))


def test_scope_record_cleans_its_fields_and_refuses_a_lone_string():
    scope = Scope(documents=["a.pdf", " a.pdf ", ""], languages=("ES",))
    assert scope == Scope(documents=("a.pdf",), languages=("es",)) and scope
    assert not Scope()
    with pytest.raises(TypeError, match="list of names"):
        Scope(documents="a.pdf")


def test_documents_match_by_cited_name_path_file_name_and_disk_path():
    assert _sources(documents=["uploads/guide.md"]) == ["uploads/guide.md"]
    assert _sources(documents=["guide.md"]) == ["uploads/guide.md"]  # path in its folder, file name
    assert _sources(documents=["/data/manuals/eyes17/es/eyes17.pdf"]) == ["eyes17/es/eyes17.pdf"]
    assert _sources(documents=["./manuals/eyes17/en/eyes17.pdf"]) == ["eyes17/en/eyes17.pdf"]
    assert _sources(documents=["eyes17.pdf"]) == ["eyes17/en/eyes17.pdf", "eyes17/es/eyes17.pdf"]


def test_folders_match_whole_folder_names_and_add_to_documents():
    assert _sources(folders=["eyes17"]) == ["eyes17/en/eyes17.pdf", "eyes17/es/eyes17.pdf"]
    assert _sources(folders=["eyes17/es/"]) == ["eyes17/es/eyes17.pdf"]
    assert _sources(folders=["/data/uploads"]) == ["uploads/guide.md"]
    assert _sources(folders=["eyes17/es"], documents=["guide.md"]) == [
        "eyes17/es/eyes17.pdf",
        "uploads/guide.md",
    ]
    with pytest.raises(EmptyScope, match="under the folder 'eyes1'"):
        _sources(folders=["eyes1"])  # a prefix of a name is not a folder: eyes17-notes.md is not in it


def test_languages_alone_keep_every_file():
    assert _sources(languages=["es"]) == sorted(f.source for f in FILES)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"documents": ["eyes18.pdf"]},
            "no indexed document is named 'eyes18.pdf'; use one of: eyes17-notes.md",
        ),
        ({"documents": ["guide.md", "typo.md"]}, "named 'typo.md'"),
        ({"folders": ["manuals/fr"]}, "folders with documents: eyes17/en, eyes17/es, uploads"),
        ({"languages": ["xx"]}, "language 'xx': docqa detects en, es"),
    ],
)
def test_a_scope_matching_nothing_says_what_would_match(fields, message):
    with pytest.raises(EmptyScope, match=message):
        _sources(**fields)
    with pytest.raises(EmptyScope, match="docqa ingest"):
        scope_sources(Scope(**fields), [])


@pytest.fixture
def mixed(embedder) -> MemoryIndex:
    """Two manuals; the English one has two Spanish chunks among fifty English ones."""
    english = [
        make_chunk(i, f"Step {i}: connect the probe to input A{i % 3} and read volts.") for i in range(50)
    ]
    spanish = [
        make_chunk(50, "Para medir un voltaje, conecte la sonda a A1 y lea los voltios.", lang="es"),
        make_chunk(51, "El generador WG produce una onda de 5 Hz a 5 kHz.", lang="es"),
    ]
    other = [
        make_chunk(60 + i, t, source="other.pdf")
        for i, t in enumerate(["Install with apt.", "Voltmeter A1."])
    ]
    return MemoryIndex(english + spanish + other, embedder)


def test_scoped_retrieval_equals_retrieval_over_only_the_scoped_passages(mixed, embedder):
    """A rare language below every candidate of an unscoped search: still found, same scores."""
    question = "Step: connect the probe to input A1 and read volts."
    unscoped = retrieve(question, mixed, embedder, k=20, dense_weight=1.0)
    assert all(p.lang == "en" for p in unscoped)  # filtering these afterwards would find nothing
    scope = Scope(documents=["manual.pdf"], languages=["es"])
    scoped = retrieve(question, mixed, embedder, k=3, dense_weight=1.0, scope=scope)
    alone = MemoryIndex([c for c in mixed.chunks if c.lang == "es" and c.source == "manual.pdf"], embedder)
    expected = retrieve(question, alone, embedder, k=3, dense_weight=1.0)
    assert [p.chunk_id for p in scoped] == [p.chunk_id for p in expected]
    assert {p.chunk_id for p in scoped} == {"c050", "c051"}
    assert [p.dense_score for p in scoped] == pytest.approx([p.dense_score for p in expected])
    lexical = retrieve("voltaje sonda", mixed, embedder, k=3, dense_weight=0.0, scope=Scope(languages=["es"]))
    assert [p.chunk_id for p in lexical] == ["c050"]


def test_scoped_retrieval_keeps_to_the_documents(mixed, embedder):
    passages = retrieve("voltmeter A1 install", mixed, embedder, k=5, scope=Scope(documents=["other.pdf"]))
    assert {p.source for p in passages} == {"other.pdf"} and len(passages) == 2


def test_documents_without_a_passage_in_the_language_are_an_empty_scope(mixed, embedder):
    with pytest.raises(EmptyScope, match="hold no passage in es"):
        retrieve("install", mixed, embedder, k=3, scope=Scope(documents=["other.pdf"], languages=["es"]))


def _engine(tmp_path: Path, index, embedder, reply: str, **changes) -> Engine:
    settings = Settings(index_dir=tmp_path / "i", models_dir=tmp_path / "m", generator="/nonexistent")
    settings = settings.replace(**({"min_relevance": 0.0, "top_k": 3} | changes))
    return Engine(settings, index, embedder, ReplayGenerator(reply), refusal_model=None)


def test_engine_answers_from_the_scope_only(tmp_path, mixed, embedder):
    engine = _engine(tmp_path, mixed, embedder, "Use the voltmeter [1].")
    answer = engine.ask("How do I measure a voltage?", scope=Scope(documents=["other.pdf"]))
    assert {p.source for p in answer.passages} == {"other.pdf"}
    assert answer.citations[0].source == "other.pdf"
    assert {p.source for p in engine.retrieve("voltage", scope=Scope(languages=["es"]))} == {"manual.pdf"}
    with pytest.raises(EmptyScope, match=r"named 'nothing\.pdf'"):
        engine.ask("How do I measure a voltage?", scope=Scope(documents=["nothing.pdf"]))


def test_refusal_decides_on_the_scoped_passages(tmp_path, mixed, embedder):
    """The unscoped best passage is relevant enough; the scope's best is not: refused."""
    question = "Step 7: connect the probe to input A1 and read volts."
    unscoped = _engine(tmp_path, mixed, embedder, "Connect it [1].").retrieve(question)
    threshold = unscoped[0].dense_score - 1e-6
    engine = _engine(tmp_path, mixed, embedder, "should not be used", min_relevance=threshold)
    assert not engine.ask(question).refused
    answer = engine.ask(question, scope=Scope(documents=["other.pdf"]))
    assert answer.refused and answer.passages and {p.source for p in answer.passages} == {"other.pdf"}


SPANISH = (
    "Para medir un voltaje, conecte la sonda roja a la entrada A1 y lea el valor en voltios en la pantalla."
)


def test_scoped_retrieval_over_the_real_store_equals_an_index_of_only_the_scoped_files(tmp_path):
    """The local store (SQLite + FAISS), mixed languages: a folder scope and a language scope."""
    from ingest.pipeline import ingest_folder
    from ingest.store import open_index
    from tests.fakes import HashEmbedder

    embedder = HashEmbedder()
    docs = tmp_path / "docs"
    (docs / "en").mkdir(parents=True)
    (docs / "es").mkdir()
    english = [
        f"## Step {i}\n\nConnect the red probe to input A{i % 3} and read the volts.\n" for i in range(40)
    ]
    (docs / "en" / "guide.md").write_text("# Guide\n\n" + "\n".join(english), encoding="utf-8")
    (docs / "es" / "guia.md").write_text(f"# Guía\n\n{SPANISH}\n", encoding="utf-8")
    settings = Settings(
        index_dir=tmp_path / "index", models_dir=tmp_path / "m", chunk_tokens=32, chunk_overlap=0
    )
    ingest_folder(docs, settings.index_dir, embedder, settings)
    only = Settings(index_dir=tmp_path / "only", models_dir=tmp_path / "m", chunk_tokens=32, chunk_overlap=0)
    ingest_folder(docs / "es", only.index_dir, embedder, only)
    question = "Connect the red probe to input A1 and read the volts."
    with open_index(settings.index_dir) as index, open_index(only.index_dir) as alone:
        expected = [
            (p.chunk_id, p.dense_score) for p in retrieve(question, alone, embedder, k=3, dense_weight=1.0)
        ]
        for scope in (
            Scope(folders=["es"]),
            Scope(languages=["es"]),
            Scope(documents=["guia.md"], languages=["es"]),
        ):
            got = retrieve(question, index, embedder, k=3, dense_weight=1.0, scope=scope)
            assert [p.chunk_id for p in got] == [cid for cid, _ in expected], scope
            assert [p.dense_score for p in got] == pytest.approx([s for _, s in expected])
            assert {p.source for p in got} == {"es/guia.md"}
        unscoped = retrieve(question, index, embedder, k=20, dense_weight=1.0)
        assert all(p.source == "en/guide.md" for p in unscoped)  # a post-filter would find nothing
