"""Questions answered only on scanned pages: retrieval hit@k by page, OCR'd copy vs the original.

Builds scanned copies of the real expEYES manuals (``corpus/eyes17``): the pages of chapter 2
(sections 2.1-2.19: English pages 17-37, Spanish 17-29) become image-only pages (rendered with
pypdfium2 at ``--scan-dpi``, written by Pillow as a PDF without a text layer), the other pages
keep their text. The copies are ingested with docqa's real pipeline (Tesseract OCR at the
``ocr_dpi`` setting) and the originals into a second index (the baseline: the same pages read
from their text layer). Each question of ``bench/data/scanned_questions.jsonl`` (gold: file and
page, all on scanned pages; its ``checked`` quote is verified against the page's text layer here)
is retrieved as the engine does (``rag.retrieve.retrieve`` with the settings' fusion weights);
hit@k: a passage of the gold file and page in the top k.

``--answers`` also runs ``docqa eval`` (real generator, default settings) over the scanned index.

    python bench/bench_scanned.py                                   # EmbeddingGemma, hit@1/3/5
    python bench/bench_scanned.py --embedder all-minilm-l6-v2 --answers
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "bench" / "data" / "scanned_questions.jsonl"
MANUALS = ROOT / "corpus" / "eyes17"
SCANNED = {"en": range(17, 38), "es": range(17, 30)}  # 1-based pages of chapter 2, sections 2.1-2.19
RESULTS = ROOT / "bench" / "results"
_SPACE = re.compile(r"\s+")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="embeddinggemma-300m")
    parser.add_argument("--scan-dpi", type=int, default=200, help="resolution of the scanned images")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench-scanned")
    parser.add_argument("--answers", action="store_true", help="also docqa eval with the generator")
    args = parser.parse_args()

    from ingest.embedders import load_embedder
    from ingest.pipeline import ingest_folder
    from ingest.settings import load_settings

    questions = [json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    _check_questions(questions)
    shutil.rmtree(args.out, ignore_errors=True)
    scanned_docs, original_docs = args.out / "scanned", args.out / "original"
    for lang, pages in SCANNED.items():
        scanned_copy(
            MANUALS / lang / "eyes17.pdf",
            scanned_docs / "eyes17" / lang / "eyes17.pdf",
            set(pages),
            args.scan_dpi,
        )
        (original_docs / "eyes17" / lang).mkdir(parents=True)
        shutil.copy(MANUALS / lang / "eyes17.pdf", original_docs / "eyes17" / lang / "eyes17.pdf")

    settings = load_settings(embedder=args.embedder)
    embedder = load_embedder(settings)
    report: dict = {
        "embedder": args.embedder,
        "scan_dpi": args.scan_dpi,
        "ocr_dpi": settings.ocr_dpi,
        "runs": {},
    }
    for name, docs in (("scanned", scanned_docs), ("original", original_docs)):
        index_dir = args.out / f"index-{name}"
        load = os.getloadavg()[0]
        started = time.perf_counter()
        ingest = ingest_folder(docs, index_dir, embedder, settings.replace(index_dir=index_dir))
        seconds = time.perf_counter() - started
        hits = _hits(questions, index_dir, embedder, settings)
        report["runs"][name] = {
            "ingest_s": round(seconds, 1),
            "loadavg_before_ingest": load,
            "loadavg_after": os.getloadavg()[0],
            "chunks": ingest.chunks_added,
            "warnings": [f"{w.path}: {w.reason}" for w in ingest.warnings],
            "ocr_chunks": _ocr_chunks(index_dir),
            **hits,
        }
        print(
            name,
            json.dumps({k: v for k, v in report["runs"][name].items() if k != "per_question"}),
            flush=True,
        )
    if args.answers:
        report["answers"] = _answers(args.out, settings.replace(index_dir=args.out / "index-scanned"))
    out = RESULTS / f"bench_scanned_{args.embedder}.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(_table(report))
    print(f"wrote {out}")


def scanned_copy(source: Path, target: Path, scanned: set[int], dpi: int) -> None:
    """``source`` with the pages in ``scanned`` (1-based) replaced by an image of themselves."""
    import pypdfium2 as pdfium

    doc, out = pdfium.PdfDocument(source), pdfium.PdfDocument.new()
    for index in range(len(doc)):
        if index + 1 in scanned:
            page = doc[index]
            image = page.render(scale=dpi / 72, grayscale=True).to_pil()
            page.close()
            data = io.BytesIO()
            image.save(data, "PDF", resolution=dpi)
            out.import_pages(pdfium.PdfDocument(data.getvalue()))
        else:
            out.import_pages(doc, [index])
    target.parent.mkdir(parents=True, exist_ok=True)
    out.save(target)
    out.close()
    doc.close()


def _check_questions(questions: list[dict]) -> None:
    """Every gold page is a scanned one and holds the question's ``checked`` quote in its text layer."""
    import pypdfium2 as pdfium

    from ingest.load_pdf import _clean

    for q in questions:
        path, page = q["gold"].split("#")
        lang = path.split("/")[1]
        if int(page) not in SCANNED[lang]:
            raise SystemExit(f"{q['id']}: gold page {page} is not scanned")
        doc = pdfium.PdfDocument(MANUALS.parent / path)
        textpage = doc[int(page) - 1].get_textpage()
        text = _SPACE.sub(" ", _clean(textpage.get_text_range()))  # hyphenation marks joined
        doc.close()
        if _SPACE.sub(" ", unicodedata.normalize("NFKC", q["checked"])) not in unicodedata.normalize(
            "NFKC", text
        ):
            raise SystemExit(f"{q['id']}: {q['checked']!r} is not on {q['gold']}")


def _hits(questions: list[dict], index_dir: Path, embedder, settings) -> dict:
    from ingest.store import open_index
    from rag.retrieve import dense_weight_for, retrieve

    per_question = []
    with open_index(index_dir) as index:
        for q in questions:
            path, page = q["gold"].split("#")
            passages = retrieve(
                q["question"],
                index,
                embedder,
                k=5,
                dense_weight=dense_weight_for(settings.dense_weight, embedder.name),
                lang=q["lang"],
                lang_bonus=settings.same_language_bonus,
            )
            ranks = [p.rank for p in passages if p.source == path and p.page == int(page)]
            per_question.append({"id": q["id"], "lang": q["lang"], "rank": min(ranks) if ranks else None})
    out: dict = {"per_question": per_question}
    for lang in ("en", "es", "all"):
        chosen = [r for r in per_question if lang in ("all", r["lang"])]
        for k in (1, 3, 5):
            out[f"hit@{k}_{lang}"] = f"{sum(1 for r in chosen if r['rank'] and r['rank'] <= k)}/{len(chosen)}"
    return out


def _ocr_chunks(index_dir: Path) -> int:
    import sqlite3

    from ingest.layout import CATALOG

    conn = sqlite3.connect(index_dir / CATALOG)
    try:
        return conn.execute("SELECT count(*) FROM chunks WHERE origin = 'ocr'").fetchone()[0]
    finally:
        conn.close()


def _answers(out: Path, settings) -> dict:
    """``docqa eval`` over the scanned index with the default generator: its summary table."""
    run = out / "eval-scanned"
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "rag", "eval", str(QUESTIONS), "--index", str(settings.index_dir),
         "--embedder", settings.embedder, "--out", str(run)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return {
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - started, 1),
        "loadavg": os.getloadavg()[0],
        "stdout": done.stdout[-4000:],
        "stderr": done.stderr[-2000:],
    }


def _table(report: dict) -> str:
    lines = [
        f"Scanned-page questions ({report['embedder']}; scans at {report['scan_dpi']} DPI, OCR at "
        f"{report['ocr_dpi']} DPI)",
        "| index | hit@1 | hit@3 | hit@5 | hit@5 en | hit@5 es | ingest s | load avg | OCR chunks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in report["runs"].items():
        lines.append(
            f"| {name} | {run['hit@1_all']} | {run['hit@3_all']} | {run['hit@5_all']} | {run['hit@5_en']} "
            f"| {run['hit@5_es']} | {run['ingest_s']} | {run['loadavg_before_ingest']:.2f} | {run['ocr_chunks']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
