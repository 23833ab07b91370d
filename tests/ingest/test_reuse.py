"""Changed files keep the vectors of their unchanged text; a loader upgrade re-reads every file once;
an embedder with a title field gets each chunk's heading, and a switch to titles re-embeds once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from ingest.layout import CATALOG
from ingest.load import LOADER_VERSION
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from ingest.store import open_index
from tests.fakes import HashEmbedder, TitledHashEmbedder

SETTINGS = Settings(chunk_tokens=24, chunk_overlap=4, embed_batch_size=4)
PARAGRAPHS = [
    "Connect the red probe to A1 and open the oscilloscope view.",
    "Use the USB cable for power; the battery lasts ten hours.",
    "Clean the lens with a soft cloth and a drop of alcohol.",
    "Spare fuses are kept in the lid of the case.",
]


def _write(folder: Path, paragraphs: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "guide.md").write_text("\n\n".join(f"# Part {i}\n\n{p}" for i, p in enumerate(paragraphs)))


def _vectors(index_dir: Path) -> dict[str, np.ndarray]:
    with open_index(index_dir) as index:
        root = next(f.root for f in index.files())
        return index.file_vectors(root, "guide.md")


def test_a_changed_file_embeds_only_its_new_text(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    _write(docs, PARAGRAPHS)
    first = ingest_folder(docs, index_dir, HashEmbedder(), SETTINGS)
    before = _vectors(index_dir)
    assert first.chunks_added == len(before) >= 4 and first.chunks_reused == 0

    _write(docs, [*PARAGRAPHS[:3], "Spare fuses (2 A, slow-blow) are kept in the lid of the case."])
    embedder = HashEmbedder()
    second = ingest_folder(docs, index_dir, embedder, SETTINGS)
    after = _vectors(index_dir)
    new_texts = set(after) - set(before)
    assert second.updated == ("guide.md",) and new_texts
    assert sum(embedder.calls) == len(new_texts)  # only the new text went through the model
    assert second.chunks_reused == len(after) - len(new_texts) > 0
    for text in set(after) & set(before):
        assert np.array_equal(after[text], before[text])
    with open_index(index_dir) as index:  # the new text is searchable
        hits = index.search_dense(HashEmbedder().embed_queries(["slow-blow fuses"])[0], 1)
        assert "slow-blow" in index.get_chunks([hits[0][0]])[0].text


def test_an_index_read_by_older_loaders_is_read_again_once(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    _write(docs, PARAGRAPHS)
    ingest_folder(docs, index_dir, HashEmbedder(), SETTINGS)
    with sqlite3.connect(index_dir / CATALOG) as conn:  # as an older docqa left it
        conn.execute("UPDATE meta SET value = '1' WHERE key LIKE 'loader_version:%'")
        assert conn.total_changes == 1

    embedder = HashEmbedder()
    report = ingest_folder(docs, index_dir, embedder, SETTINGS)
    assert report.updated == ("guide.md",) and report.unchanged == ()
    assert embedder.calls == [] and report.chunks_reused == report.chunks_added > 0  # same text
    assert "read again" in report.warnings[0].reason
    with open_index(index_dir) as index:
        assert index.meta(f"loader_version:{docs.resolve()}") == str(LOADER_VERSION)

    third = ingest_folder(docs, index_dir, HashEmbedder(), SETTINGS)
    assert third.unchanged == ("guide.md",) and third.updated == () and not third.warnings


def test_the_heading_is_the_title_and_a_new_heading_is_embedded_again(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    _write(docs, PARAGRAPHS)
    embedder = TitledHashEmbedder()
    ingest_folder(docs, index_dir, embedder, SETTINGS)
    assert set(embedder.seen_titles) == {f"Part {i}" for i in range(4)}
    before = _vectors(index_dir)
    with open_index(index_dir) as index:  # the heading counts on the lexical side too
        hit = index.search_lexical("Part 2", 1)[0][0]
        assert "alcohol" in index.get_chunks([hit])[0].text

    text = (docs / "guide.md").read_text().replace("# Part 3", "# Spares")  # same text, new heading
    (docs / "guide.md").write_text(text)
    again = TitledHashEmbedder()
    report = ingest_folder(docs, index_dir, again, SETTINGS)
    assert report.updated == ("guide.md",)
    assert again.seen_titles and set(again.seen_titles) == {"Spares"}  # only its chunks
    assert report.chunks_reused == report.chunks_added - len(again.seen_titles) > 0
    after = _vectors(index_dir)
    spares = [t for t in after if "fuses" in t]
    assert spares and all(not np.array_equal(after[t], before[t]) for t in spares)


def test_an_index_embedded_without_titles_is_embedded_again_once_with_them(tmp_path):
    docs, index_dir = tmp_path / "docs", tmp_path / "ix"
    _write(docs, PARAGRAPHS)
    ingest_folder(docs, index_dir, HashEmbedder(), SETTINGS)  # same name, no title field
    before = _vectors(index_dir)

    titled = TitledHashEmbedder()
    report = ingest_folder(docs, index_dir, titled, SETTINGS)
    assert report.updated == ("guide.md",) and report.chunks_reused == 0  # none of the old vectors kept
    assert len(titled.seen_titles) == report.chunks_added == len(before)
    assert "embedded again" in report.warnings[0].reason
    assert all(not np.array_equal(v, before[t]) for t, v in _vectors(index_dir).items())

    third = ingest_folder(docs, index_dir, TitledHashEmbedder(), SETTINGS)
    assert third.unchanged == ("guide.md",) and not third.warnings
