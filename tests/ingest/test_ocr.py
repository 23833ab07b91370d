"""OCR of scanned PDF pages, on scanned copies of the real expEYES manuals made here.

A scanned copy is made in the test: pages of ``corpus/eyes17`` rendered to images with pypdfium2
and written by Pillow as an image-only PDF (no text layer), put together with pages that keep
their text. The real Tesseract reads them; the page's own text layer is the reference. Fast unit
tests pass a fake engine in; the missing-engine tests hide Tesseract (PATH, TESSDATA_PREFIX).
"""

from __future__ import annotations

import io
import re
import sqlite3
from pathlib import Path

import pytest

from ingest import catalog
from ingest.errors import LoadError
from ingest.layout import CATALOG
from ingest.load import load_file_with_warnings
from ingest.load_pdf import load_pdf
from ingest.ocr import OcrUnavailable, PageOcr, TesseractOcr, load_ocr
from ingest.pipeline import ingest_folder
from ingest.settings import Settings
from tests.conftest import ROOT
from tests.fakes import HashEmbedder

EN_PDF = ROOT / "corpus" / "eyes17" / "en" / "eyes17.pdf"
ES_PDF = ROOT / "corpus" / "eyes17" / "es" / "eyes17.pdf"
SETTINGS = Settings(chunk_tokens=64, chunk_overlap=8, embed_batch_size=8)
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def scanned_copy(target: Path, pages: list[tuple[Path, int, bool]], dpi: int = 200) -> Path:
    """A PDF of real pages (file, 1-based page, scanned?): scanned ones as an image and nothing else."""
    import pypdfium2 as pdfium

    out = pdfium.PdfDocument.new()
    for source, number, scanned in pages:
        doc = pdfium.PdfDocument(source)
        if scanned:
            page = doc[number - 1]
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
            page.close()
            data = io.BytesIO()
            image.save(data, "PDF", resolution=dpi)
            out.import_pages(pdfium.PdfDocument(data.getvalue()))
        else:
            out.import_pages(doc, [number - 1])
        doc.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    out.save(target)
    out.close()
    return target


def text_layer(source: Path, number: int) -> str:
    """The page's own text, whitespace collapsed: the reference OCR is compared with."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(source)
    page = doc[number - 1]
    textpage = page.get_textpage()
    try:
        return _SPACE.sub(" ", textpage.get_text_range()).strip()
    finally:
        textpage.close()
        page.close()
        doc.close()


def cer(text: str, reference: str) -> float:
    """Character error rate: edit distance / reference length, whitespace collapsed."""
    from rapidfuzz.distance import Levenshtein

    hyp = _SPACE.sub(" ", text).strip()
    return Levenshtein.distance(hyp, reference) / max(len(reference), 1)


class FakeOcr:
    """Records the pages it is given; reads each as a fixed sentence."""

    name = "fake"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def recognize(self, image, languages):
        self.sizes.append(image.size)
        return "Scanned text about the oscilloscope. " * 3


# Page 8 keeps its text; 51 (the IC555 page) and the Spanish 21 (Ohm's law) are scans.
MIXED = [(EN_PDF, 8, False), (EN_PDF, 51, True), (ES_PDF, 21, True)]


@pytest.fixture(scope="module")
def scanned_index(tmp_path_factory) -> tuple[Path, object, list]:
    """The mixed copy ingested with the real Tesseract; (index folder, report, progress notes)."""
    root = tmp_path_factory.mktemp("ocr")
    scanned_copy(root / "docs" / "manual.pdf", MIXED)
    notes: list[str] = []
    settings = SETTINGS.replace(index_dir=root / "index")
    report = ingest_folder(
        root / "docs", settings.index_dir, HashEmbedder(), settings, progress=lambda p: notes.append(p.note)
    )
    return settings.index_dir, report, notes


def _rows(index_dir: Path) -> list[tuple[int, str, str, str, int, int]]:
    conn = sqlite3.connect(index_dir / CATALOG)
    try:
        sql = 'SELECT page, origin, lang, text, start, "end" FROM chunks ORDER BY position'
        return list(conn.execute(sql))
    finally:
        conn.close()


def _page_text(rows, page: int) -> str:
    """The page's section text put back together from its overlapping chunks."""
    text, end = "", 0
    for p, _, _, chunk, start, stop in rows:
        if p == page:
            text += chunk[max(end - start, 0) :]
            end = max(end, stop)
    return text


def test_scanned_pages_are_read_and_stored_as_ocr_with_their_page(scanned_index):
    index_dir, report, _ = scanned_index
    rows = _rows(index_dir)
    assert report.added == ("manual.pdf",) and not report.skipped
    assert {(page, origin) for page, origin, *_ in rows} == {(1, "text"), (2, "ocr"), (3, "ocr")}
    assert "IC555 is a very popular time circuit IC" in _SPACE.sub(" ", _page_text(rows, 2))
    # measured 0.092: the page's formulas and figure labels (0.002 on a page of prose, page 9)
    assert cer(_page_text(rows, 2), text_layer(EN_PDF, 51)) < 0.12
    assert "The constant current source can be switched ON and OFF" in _page_text(rows, 1)


def test_a_spanish_scanned_page_is_read_with_its_accents(scanned_index):
    index_dir, _, _ = scanned_index
    rows = _rows(index_dir)
    assert {lang for page, _, lang, *_ in rows if page == 3} == {"es"}
    ocr = _page_text(rows, 3)
    reference = text_layer(ES_PDF, 21)
    accented = {w for w in _WORD.findall(reference) if re.search(r"[áéíóúñÁÉÍÓÚÑ]", w)}
    found = {w for w in accented if w in _WORD.findall(ocr)}
    assert len(accented) >= 10 and len(found) >= 0.9 * len(accented), sorted(accented - found)
    assert "Medir resistencias por comparación" in ocr
    assert cer(ocr, reference) < 0.08  # measured 0.051; the text layer has "£" where the page shows "¿"


def test_ocr_progress_names_the_page(scanned_index):
    _, _, notes = scanned_index
    assert "OCR page 2/3 of manual.pdf" in notes and "OCR page 3/3 of manual.pdf" in notes
    assert not any(n.startswith("OCR page 1/") for n in notes)
    assert notes[-1] == ""  # cleared once the file is read


def test_ocr_runs_only_on_pages_without_text(tmp_path: Path):
    path = scanned_copy(tmp_path / "mixed.pdf", [(EN_PDF, 8, False), (EN_PDF, 9, True), (EN_PDF, 6, True)])
    fake, seen = FakeOcr(), []
    sections, warnings = load_pdf(
        path, "mixed.pdf", PageOcr(fake, dpi=100, progress=lambda n, t: seen.append(n))
    )
    # the fake reads every image it is given, even the manual's blank page 6
    assert seen == [2, 3] and len(fake.sizes) == 2
    assert [(s.page, s.origin) for s in sections] == [(1, "text"), (2, "ocr"), (3, "ocr")]
    assert sections[1].text.startswith("Scanned text about the oscilloscope.")
    width, height = fake.sizes[0]  # A4 at 100 DPI (827 x 1169): rendered at the loader's dpi
    assert abs(width - 827) <= 2 and abs(height - 1169) <= 2, fake.sizes
    assert warnings == []


def test_a_page_ocr_reads_as_empty_is_a_warning(tmp_path: Path):
    class Blank(FakeOcr):
        def recognize(self, image, languages):
            return " \n\x0c"

    path = scanned_copy(tmp_path / "mixed.pdf", [(EN_PDF, 8, False), (EN_PDF, 9, True)])
    sections, warnings = load_pdf(path, "mixed.pdf", PageOcr(Blank(), dpi=72))
    assert [s.page for s in sections] == [1]
    assert warnings == ["no text layer on page 2 (scanned?); OCR found no text"]


def test_ocr_off_keeps_the_old_warning(tmp_path: Path):
    path = scanned_copy(tmp_path / "mixed.pdf", [(EN_PDF, 8, False), (EN_PDF, 9, True)])
    assert load_ocr("off", 300) is None
    sections, warnings = load_file_with_warnings(path, "mixed.pdf", None)
    assert [s.page for s in sections] == [1] and warnings == ["page 2 has no text layer (scanned?)"]


def test_missing_tesseract_is_a_warning_and_the_old_skip(tmp_path: Path, monkeypatch):
    docs = tmp_path / "docs"
    scanned_copy(docs / "mixed.pdf", [(EN_PDF, 8, False), (EN_PDF, 9, True), (EN_PDF, 10, True)])
    scanned_copy(docs / "scan.pdf", [(EN_PDF, 9, True)])
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs-here"))
    settings = SETTINGS.replace(index_dir=tmp_path / "index")
    report = ingest_folder(docs, settings.index_dir, HashEmbedder(), settings)
    assert report.added == ("mixed.pdf",)
    assert [(w.path, w.reason) for w in report.warnings] == [
        (
            "mixed.pdf",
            "no text layer on pages 2, 3 (scanned?); OCR is unavailable: Tesseract ('tesseract') is not "
            "on PATH; install it with 'make ocr' (apt-get install tesseract-ocr tesseract-ocr-eng "
            "tesseract-ocr-spa)",
        )
    ]
    (skipped,) = report.skipped
    assert skipped.path == "scan.pdf"
    assert skipped.reason.startswith(
        "no text layer on any page (scanned PDF?) and OCR is unavailable: Tesseract"
    )
    assert {(page, origin) for page, origin, *_ in _rows(settings.index_dir)} == {(1, "text")}


def test_a_missing_language_pack_is_unavailable_not_a_crash(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TESSDATA_PREFIX", str(tmp_path))  # an empty tessdata folder: no eng, no spa
    with pytest.raises(OcrUnavailable, match="no language pack for en, es; install tesseract-ocr-eng"):
        TesseractOcr().check()
    path = scanned_copy(tmp_path / "scan.pdf", [(EN_PDF, 9, True)], dpi=72)
    with pytest.raises(
        LoadError, match="OCR is unavailable: Tesseract is missing a language pack of eng\\+spa"
    ):
        load_pdf(path, "scan.pdf", PageOcr(TesseractOcr(), dpi=72))


def test_an_index_from_before_ocr_gains_the_column_and_stays_readable(tmp_path: Path):
    old = catalog._SCHEMA.replace(",\n    origin TEXT NOT NULL DEFAULT 'text'  -- 'text' (the file's own text) "
                                  "or 'ocr' (a scanned page)", "")  # fmt: skip
    assert "origin" not in old
    path = tmp_path / CATALOG
    conn = sqlite3.connect(path)
    conn.executescript(old)
    conn.execute("INSERT INTO files VALUES (1, '/r', 'a.md', 'a.md', 'x', 1, 0, 'indexed', '', 0, 1, 0)")
    conn.execute("INSERT INTO chunks VALUES (1, 'c1', 1, 'old text', NULL, '', 'en', 0, 8, 0, 0, 2)")
    conn.commit()
    conn.close()

    readonly = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # a folder docqa cannot write
    catalog._migrate(readonly, writable=False)
    assert catalog.get_chunks(readonly, ["c1"])["c1"].origin == "text"
    readonly.close()

    conn = catalog.connect(str(path), create=False)
    assert [c[1] for c in conn.execute("PRAGMA table_info(chunks)")][-1] == "origin"
    chunk = catalog.get_chunks(conn, ["c1"])["c1"]
    assert (chunk.text, chunk.origin) == ("old text", "text")
    conn.close()


def test_ocr_settings_are_checked():
    from ingest.errors import ConfigError

    assert (Settings().ocr, Settings().ocr_dpi) == ("tesseract", 300)
    with pytest.raises(ConfigError, match="bad setting ocr='easyocr': use one of tesseract, off"):
        Settings(ocr="easyocr")
    with pytest.raises(ConfigError, match="bad setting ocr_dpi=1000"):
        Settings(ocr_dpi=1000)


@pytest.mark.slow
def test_docqa_ask_answers_from_a_scanned_copy_citing_its_page(
    tmp_path: Path, gemma, qwen_folder, models_dir
):
    """The real CLI with the default models over pages 8-10 of the manual, every one a scan."""
    import json
    import os
    import subprocess
    import sys

    docs = tmp_path / "docs"
    scanned_copy(docs / "eyes17-scan.pdf", [(EN_PDF, n, True) for n in (8, 9, 10)])
    settings = Settings(index_dir=tmp_path / "index", models_dir=models_dir)
    report = ingest_folder(docs, settings.index_dir, gemma, settings)
    assert report.added == ("eyes17-scan.pdf",) and not report.warnings
    done = subprocess.run(
        [sys.executable, "-m", "rag", "ask", "What is the frequency range of the sine/triangular wave generator WG?",
         "--index", str(settings.index_dir), "--models-dir", str(models_dir), "--json"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "DOCQA_MAX_NEW_TOKENS": "64"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert not answer["refused"], answer["text"]
    assert "5 Hz" in answer["text"].replace("5Hz", "5 Hz") and "5 kHz" in answer["text"].replace(
        "5kHz", "5 kHz"
    )
    assert 2 in {c["page"] for c in answer["citations"]}, answer  # page 9 of the manual is page 2 here


def test_ocr_runs_with_the_network_cut(tmp_path: Path):
    from tests.offline_audit import run_offline

    path = scanned_copy(tmp_path / "scan.pdf", [(EN_PDF, 9, True)])
    script = r"""
from pathlib import Path
from ingest.load_pdf import load_pdf
from ingest.ocr import load_ocr
(section,), warnings = load_pdf(Path(sys.argv[1]), "scan.pdf", load_ocr("tesseract", 300))
print(json.dumps({"origin": section.origin, "text": section.text, "attempts": attempts}))
"""
    result = run_offline(script, str(path))
    assert result["attempts"] == [] and result["origin"] == "ocr"
    assert "Frequency can be varied from 5Hz to 5kHz" in " ".join(result["text"].split())
