"""The ingestion pipeline: incremental runs, removal, two roots, bad input, bounded batches.

Fast tests use the hash embedder and the real loaders on small files; the ``slow`` ones use the
real MiniLM and EmbeddingGemma on real manuals.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ingest import writer
from ingest.errors import EmbedderMismatch, NothingToIndex
from ingest.layout import VECTORS
from ingest.pipeline import _open_for_writing, ingest_folder, ingest_paths, remove_document
from ingest.settings import Settings
from ingest.store import IndexBusy, open_index
from ingest.vectors import IVF, FlatVectors
from tests.conftest import ROOT, SHARED
from tests.fakes import HashEmbedder
from tests.ingest.test_load_pdf import make_pdf

SETTINGS = Settings(chunk_tokens=24, chunk_overlap=4, embed_batch_size=4)
TEXTS = {
    "guide.md": "# Setup\n\nConnect the red probe to A1. Then open the oscilloscope view.\n\n## Power\n\n"
    "Use the USB cable for power. The battery lasts ten hours.",
    "notes/faq.txt": "Why is the signal noisy? Check the ground wire first. "
    "Shielded cables reduce noise in long runs. " * 6,
    "es/guia.txt": "La configuración de la señal se guarda en el menú principal del equipo.",
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    for name, text in TEXTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def loads(monkeypatch) -> list[str]:
    """Records every file the loaders parse (a spy: the real loader still runs)."""
    seen: list[str] = []
    real = writer.load_file_with_warnings

    def spy(path: Path, source: str, *args, **kwargs):
        seen.append(source)
        return real(path, source, *args, **kwargs)

    monkeypatch.setattr(writer, "load_file_with_warnings", spy)
    return seen


def run(folder: Path, index: Path, embedder=None, **kwargs):
    return ingest_folder(folder, index, embedder or HashEmbedder(), SETTINGS, **kwargs)


def search(index_dir: Path, text: str, k: int = 3) -> list[str]:
    with open_index(index_dir) as index:
        hits = index.search_dense(HashEmbedder().embed_queries([text])[0], k)
        return [c.source for c in index.get_chunks([cid for cid, _ in hits])]


def consistent(index_dir: Path) -> int:
    """Chunk count, after checking the FAISS file holds exactly the catalog's chunks."""
    with open_index(index_dir) as index:
        count = index.count()
        assert index.manifest["chunks"] == count
        assert FlatVectors.load(index_dir / VECTORS, index.dim).count() == count
        return count


def test_first_run_indexes_everything(docs: Path, tmp_path: Path) -> None:
    report = run(docs, tmp_path / "ix")
    assert sorted(report.added) == ["es/guia.txt", "guide.md", "notes/faq.txt"]
    assert report.chunks_added == consistent(tmp_path / "ix") > 3
    assert search(tmp_path / "ix", "battery lasts ten hours")[0] == "guide.md"
    with open_index(tmp_path / "ix") as index:
        assert index.search_lexical("configuracion senal", 1)
        assert {f.root for f in index.files()} == {str(docs.resolve())}


def test_ingestion_calibrates_ivf_with_its_embedders_queries(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    embedder = HashEmbedder()
    with _open_for_writing(SETTINGS, tmp_path / "ix", embedder) as index:  # as ingest_folder opens it
        queries = index.calibration_queries(want=3)
    assert embedder.calls == [len(queries)] and queries.shape == (3, embedder.dim)


class _QueriesFail(HashEmbedder):
    def embed_queries(self, texts):
        raise RuntimeError("embedder session lost")


def test_ingestion_warns_when_calibration_fails_and_keeps_every_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("ingest.store.ANN_THRESHOLD", 100)  # IVF from 100 chunks, not 50,000
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(150):
        (folder / f"note{i}.txt").write_text(f"Note {i} covers setting {i % 7} of module {i % 11}.")
    report = ingest_folder(folder, tmp_path / "ix", _QueriesFail(), SETTINGS)
    assert len(report.added) == 150 and not report.skipped
    (warning,) = [w for w in report.warnings if "calibrated" in w.reason]
    assert "RuntimeError: embedder session lost" in warning.reason
    with open_index(tmp_path / "ix") as index:
        assert index.manifest["vector_store"] == IVF and "nprobe_recall" not in index.manifest
        assert index.count() == 150


def test_rerun_with_nothing_changed_parses_and_embeds_nothing(docs: Path, tmp_path: Path, loads) -> None:
    run(docs, tmp_path / "ix")
    loads.clear()
    faiss_written = (tmp_path / "ix" / VECTORS).stat().st_mtime_ns
    embedder = HashEmbedder()
    report = run(docs, tmp_path / "ix", embedder)
    assert embedder.calls == [] and loads == []
    assert (tmp_path / "ix" / VECTORS).stat().st_mtime_ns == faiss_written
    assert sorted(report.unchanged) == ["es/guia.txt", "guide.md", "notes/faq.txt"]
    assert (report.added, report.updated, report.removed, report.chunks_added) == ((), (), (), 0)


def test_touched_file_is_rehashed_once_not_reembedded(docs: Path, tmp_path: Path, loads) -> None:
    run(docs, tmp_path / "ix")
    loads.clear()
    os.utime(docs / "guide.md", (1e9, 1e9))
    embedder = HashEmbedder()
    assert "guide.md" in run(docs, tmp_path / "ix", embedder).unchanged
    with open_index(tmp_path / "ix") as index:
        assert next(f.mtime for f in index.files() if f.path == "guide.md") == 1e9
    assert embedder.calls == [] and "guide.md" not in loads


def test_changed_file_replaces_its_chunks(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    before = consistent(tmp_path / "ix")
    (docs / "guide.md").write_text("# Firmware\n\nFlash the firmware with the bootloader button held.")
    embedder = HashEmbedder()
    report = run(docs, tmp_path / "ix", embedder)
    assert report.updated == ("guide.md",) and report.added == ()
    assert sum(embedder.calls) == report.chunks_added == 1
    assert consistent(tmp_path / "ix") == before - 2 + 1
    assert search(tmp_path / "ix", "flash the firmware bootloader")[0] == "guide.md"
    with open_index(tmp_path / "ix") as index:
        assert index.search_lexical("battery", 5) == []


def test_deleted_file_is_removed_and_renamed_file_is_not_reembedded(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    (docs / "es" / "guia.txt").unlink()
    (docs / "notes" / "faq.txt").rename(docs / "faq-moved.txt")
    embedder = HashEmbedder()
    report = run(docs, tmp_path / "ix", embedder)
    assert sorted(report.removed) == ["es/guia.txt", "notes/faq.txt"]
    assert report.added == ("faq-moved.txt",) and embedder.calls == []
    assert search(tmp_path / "ix", "signal noisy ground wire")[0] == "faq-moved.txt"
    with open_index(tmp_path / "ix") as index:
        assert index.search_lexical("configuracion", 5) == []
    consistent(tmp_path / "ix")


def test_keep_missing(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    (docs / "guide.md").unlink()
    assert run(docs, tmp_path / "ix", remove_missing=False).removed == ()
    assert search(tmp_path / "ix", "battery lasts ten hours")[0] == "guide.md"


def test_remove_document_by_path_or_cited_name(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    assert remove_document(tmp_path / "ix", docs / "guide.md")
    assert remove_document(tmp_path / "ix", "notes/faq.txt")
    assert not remove_document(tmp_path / "ix", "notes/faq.txt")
    assert not remove_document(tmp_path / "ix", "missing.pdf")
    with open_index(tmp_path / "ix") as index:
        assert [f.path for f in index.files()] == ["es/guia.txt"]
    assert consistent(tmp_path / "ix") == 1


def test_a_second_root_leaves_the_first_alone(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "guide.md").write_text("# Uploaded\n\nThe uploaded guide talks about calibration weights.")
    (uploads / "new.txt").write_text("Spare fuses are in the lid.")
    report = ingest_paths(
        [uploads / "guide.md", Path("new.txt")], uploads, tmp_path / "ix", HashEmbedder(), SETTINGS
    )
    assert sorted(report.added) == ["guide.md", "new.txt"] and report.removed == ()
    report = run(uploads, tmp_path / "ix")  # a whole-folder run of uploads removes nothing of docs
    assert report.removed == () and sorted(report.unchanged) == ["guide.md", "new.txt"]
    with open_index(tmp_path / "ix") as index:
        assert len(index.files()) == 5
        assert sorted(f.source for f in index.files() if f.root == str(uploads.resolve())) == [
            "new.txt",
            "uploads/guide.md",
        ]
    assert search(tmp_path / "ix", "uploaded guide calibration weights")[0] == "uploads/guide.md"


def test_bad_inputs_are_skipped_with_reasons(docs: Path, tmp_path: Path) -> None:
    (docs / "zero.txt").touch()
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 40)
    (docs / "latin1.txt").write_bytes("Configuración rápida del equipo.".encode("latin-1"))
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(2000))
    (docs / "locked.pdf").write_bytes(make_pdf(["text:secret words"], password="pw"))
    (docs / "scanned.pdf").write_bytes(make_pdf(["image", "image"]))
    (docs / "huge.txt").write_text("big " * 400_000)
    (docs / "image.png").write_bytes(b"\x89PNG....")
    (docs / "loop").symlink_to(docs)
    (docs / "dangling.md").symlink_to(docs / "nowhere.md")
    (docs / ".DS_Store").write_bytes(b"\0\1")
    settings = replace(SETTINGS, max_file_mb=1.0)
    report = ingest_folder(docs, tmp_path / "ix", HashEmbedder(), settings)
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"zero.txt", "binary.txt", "broken.pdf", "locked.pdf", "scanned.pdf", "huge.txt",
                            "image.png", "loop", "dangling.md"}  # fmt: skip
    assert "empty" in reasons["zero.txt"] and "binary" in reasons["binary.txt"]
    assert "encrypted" in reasons["locked.pdf"] and "scanned" in reasons["scanned.pdf"]
    assert "limit" in reasons["huge.txt"] and "unsupported" in reasons["image.png"]
    assert "loop" in reasons["loop"] and "broken symbolic link" in reasons["dangling.md"]
    assert "latin1.txt" in report.added  # invalid UTF-8 is decoded, not skipped
    assert sorted(report.added) == ["es/guia.txt", "guide.md", "latin1.txt", "notes/faq.txt"]
    consistent(tmp_path / "ix")
    # A rerun does not parse the known-bad files again, and still reports them.
    again = ingest_folder(docs, tmp_path / "ix", HashEmbedder(), settings)
    assert {s.path: s.reason for s in again.skipped} == reasons


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_skipped(docs: Path, tmp_path: Path) -> None:
    (docs / "secret.txt").write_text("no access")
    (docs / "secret.txt").chmod(0)
    report = run(docs, tmp_path / "ix")
    assert "permission denied" in {s.path: s.reason for s in report.skipped}["secret.txt"]


def test_file_vanishing_mid_run_is_skipped(docs: Path, tmp_path: Path) -> None:
    def delete_after_scan(progress) -> None:
        (docs / "notes" / "faq.txt").unlink(missing_ok=True)

    report = run(docs, tmp_path / "ix", progress=delete_after_scan)
    assert {s.path: s.reason for s in report.skipped} == {
        "notes/faq.txt": "the file disappeared during the run"
    }
    assert sorted(report.added) == ["es/guia.txt", "guide.md"]


def test_duplicate_content_is_indexed_once(docs: Path, tmp_path: Path) -> None:
    shutil.copy(docs / "guide.md", docs / "guide-copy.md")
    report = run(docs, tmp_path / "ix")
    assert {s.path: s.reason for s in report.skipped} == {
        "guide.md": "same content as guide-copy.md, indexed once"
    }
    assert consistent(tmp_path / "ix") > 0


def test_nothing_to_index(tmp_path: Path) -> None:
    with pytest.raises(NothingToIndex, match="is not a folder"):
        run(tmp_path / "missing", tmp_path / "ix")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(NothingToIndex, match=r"no file docqa can index .*photo.jpg: unsupported"):
        run(tmp_path / "empty", tmp_path / "ix")


def test_index_inside_the_folder_is_not_indexed(docs: Path) -> None:
    run(docs, docs / "index")
    (docs / "index" / "notes.txt").write_text("this must not be indexed")
    report = run(docs, docs / "index")
    assert all(not p.startswith("index") for p in report.added + report.unchanged)
    assert all(not s.path.startswith("index") for s in report.skipped)


def test_another_embedder_cannot_extend_the_index(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    with pytest.raises(EmbedderMismatch, match="--embedder hash-embedder"):
        run(docs, tmp_path / "ix", HashEmbedder(name="other"))


def test_batches_are_bounded_and_length_sorted(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30):
        (folder / f"f{i:02}.txt").write_text(" ".join(f"word{i}x{j}" for j in range(7 + 5 * i)) + ".")

    class Recorder(HashEmbedder):
        def embed_documents(self, texts, titles=None):
            self.lengths.append([len(t.split()) for t in texts])
            return super().embed_documents(texts, titles)

    embedder = Recorder()
    embedder.lengths = []
    events = []
    report = run(folder, tmp_path / "ix", embedder, progress=events.append)
    assert max(embedder.calls) <= SETTINGS.embed_batch_size
    assert sum(embedder.calls) == report.chunks_added == consistent(tmp_path / "ix")
    flat = [n for batch in embedder.lengths for n in batch]
    assert flat[:4] == sorted(flat[:4], reverse=True)
    done = [(e.files_done, e.chunks_done, e.bytes_done) for e in events]
    assert done == sorted(done) and events[-1].files_done == events[-1].files_total == 30
    assert events[-1].bytes_done == events[-1].bytes_total


@pytest.mark.slow
def test_real_faq_files_with_minilm(minilm, tmp_path: Path) -> None:
    corpus = SHARED / "eval" / "faq-dev" / "corpus" / "python-faq-en"
    files = sorted(corpus.glob("*.txt"), key=lambda p: p.stat().st_size)[:4]
    if not files:
        pytest.skip(f"no dev corpus at {corpus}")
    folder = tmp_path / "faq"
    folder.mkdir()
    for f in files:
        shutil.copy(f, folder / f.name)
    settings = Settings(embed_batch_size=16)
    report = ingest_folder(folder, tmp_path / "ix", minilm, settings)
    assert len(report.added) == 4 and report.chunks_added == consistent(tmp_path / "ix")
    with open_index(tmp_path / "ix", embedder_name=minilm.name) as index:
        for chunk in index.get_chunks([cid for cid, _ in index.search_lexical("python", 50)]):
            assert len(minilm.token_spans(chunk.text)) <= minilm.max_tokens
        probe = index.get_chunks([index.search_lexical("python", 1)[0][0]])[0]
        hits = index.search_dense(minilm.embed_queries([probe.text[:300]])[0], 3)
        assert hits[0][0] == probe.id and hits[0][1] > 0.8
    assert ingest_folder(folder, tmp_path / "ix", minilm, settings).unchanged == report.added


@pytest.mark.slow
def test_spanish_pdf_pages_with_gemma(gemma, tmp_path: Path) -> None:
    import pypdfium2 as pdfium

    source = ROOT / "corpus" / "eyes17" / "es" / "eyes17.pdf"
    if not source.is_file():
        pytest.skip(f"no {source}")
    folder = tmp_path / "pdf"
    folder.mkdir()
    pdf, few = pdfium.PdfDocument(source), pdfium.PdfDocument.new()
    few.import_pages(pdf, [6, 7, 8])  # pages 7-9 of the manual
    few.save(folder / "eyes17-es.pdf")
    report = ingest_folder(folder, tmp_path / "ix", gemma, Settings())
    assert report.added == ("eyes17-es.pdf",) and report.skipped == ()
    with open_index(tmp_path / "ix", embedder_name=gemma.name) as index:
        (info,) = index.files()
        assert info.pages == 3 and info.chunks == report.chunks_added == index.count()
        chunks = index.get_chunks([cid for cid, _ in index.search_lexical("el", 100)])
        assert {c.page for c in chunks} == {1, 2, 3} and {c.lang for c in chunks} == {"es"}
        probe = chunks[len(chunks) // 2]
        hits = index.search_dense(gemma.embed_queries([probe.text[:200]])[0], 3)
        assert probe.id in [cid for cid, _ in hits]


def test_a_second_writer_fails_fast(docs: Path, tmp_path: Path) -> None:
    run(docs, tmp_path / "ix")
    (docs / "guide.md").write_text("Changed while another process writes.")
    with open_index(tmp_path / "ix") as other:
        other.begin_write()
        embedder = HashEmbedder()
        with pytest.raises(IndexBusy, match="being written by another process"):
            run(docs, tmp_path / "ix", embedder)
        assert embedder.calls == []
    assert run(docs, tmp_path / "ix").updated == ("guide.md",)


def test_a_moved_folder_takes_over_from_its_old_place(docs: Path, tmp_path: Path) -> None:
    """Same files under a new root: while the old copies exist they keep the index (ids would
    collide); once the old folder is gone, the new copies replace them instead of being skipped."""
    run(docs, tmp_path / "ix")
    moved = tmp_path / "moved"
    shutil.copytree(docs, moved)
    report = run(moved, tmp_path / "ix")
    assert report.added == () and len(report.skipped) == 3
    assert f"same content as {docs.resolve() / 'guide.md'}, indexed once" in {
        s.reason for s in report.skipped
    }
    shutil.rmtree(docs)
    report = run(moved, tmp_path / "ix")
    assert sorted(report.added) == ["es/guia.txt", "guide.md", "notes/faq.txt"] and not report.skipped
    assert any("gone from disk" in w.reason for w in report.warnings)
    with open_index(tmp_path / "ix") as index:
        assert {f.root for f in index.files()} == {str(moved.resolve())}
    assert search(tmp_path / "ix", "battery lasts ten hours")[0] == "guide.md"
    consistent(tmp_path / "ix")
