"""OCR engines on real manual pages: character error rate against the PDF's own text, speed, memory.

Pages with a text layer of the real manuals (``corpus/eyes17/en/eyes17.pdf``,
``corpus/eyes17/es/eyes17.pdf``) are rendered to grey images with pypdfium2 at ``--dpi``, as
``ingest.ocr.render_page`` does for a scanned page, and read by each engine; the reference is the
page's own text layer. CER = edit distance / reference length, both with whitespace collapsed to
one space (case and accents kept). Each engine runs in its own process over the same images, so
its peak RSS (``ru_maxrss`` of the process and of the programs it ran) is its own.

Engines: ``tesseract:<langs>`` (docqa's ``ingest.ocr.TesseractOcr``; langs ``en``, ``es`` or
``en+es``; ``tesseract:auto`` is scored from those runs: the ``en+es`` pass, its language detected,
then the single pack of that language, its time the sum of both passes) and ``rapidocr``
(``rapidocr-onnxruntime``, whose ONNX models ship inside its wheel; not a docqa dependency:
``pip install rapidocr-onnxruntime`` to include it, else it is skipped).

    python bench/bench_ocr.py --pages 6 --dpi 300
    python bench/bench_ocr.py --pages 6 --dpi 200 --engines tesseract:en+es --out bench/results/bench_ocr_dpi200.json
    python bench/bench_ocr.py --pages 6 --dpi 300 --engines tesseract:en+es --out bench/results/bench_ocr_dpi300.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANUALS = {"en": ROOT / "corpus/eyes17/en/eyes17.pdf", "es": ROOT / "corpus/eyes17/es/eyes17.pdf"}
RESULTS = ROOT / "bench" / "results"
_SPACE = re.compile(r"\s+")
_MIN_REFERENCE_CHARS = 800  # pages with less text say little about an engine


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=6, help="pages per language")
    parser.add_argument("--dpi", type=int, default=300)
    parser.add_argument(
        "--engines", default="tesseract:en,tesseract:es,tesseract:en+es,rapidocr", help="comma-separated"
    )
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "docqa-bench-ocr")
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON report (default results/bench_ocr_<dpi>dpi.json)"
    )
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.work)
    pages = _prepare(args.work, args.pages, args.dpi)
    load_start = os.getloadavg()
    runs = {}
    for engine in args.engines.split(","):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, __file__, "--child", engine, "--work", str(args.work)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            print(
                f"{engine}: skipped ({done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode})"
            )
            continue
        runs[engine] = json.loads(done.stdout)
        runs[engine]["wall_s"] = time.perf_counter() - started
        runs[engine]["loadavg"] = os.getloadavg()
        print(
            f"{engine}: done in {runs[engine]['wall_s']:.0f} s, load {runs[engine]['loadavg'][0]:.2f}",
            flush=True,
        )
    if all(f"tesseract:{x}" in runs for x in ("en", "es", "en+es")):
        runs["tesseract:auto"] = _auto(runs)
    rows = _score(pages, runs)
    report = {"dpi": args.dpi, "pages": pages, "loadavg_start": load_start, "rows": rows}
    out = args.out or RESULTS / f"bench_ocr_{args.dpi}dpi.json"
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    print(_table(rows, args.dpi, load_start))
    print(f"wrote {out}")


def _prepare(work: Path, per_lang: int, dpi: int) -> list[dict]:
    """Render ``per_lang`` text-rich pages of each manual, evenly spread; save images and references."""
    import pypdfium2 as pdfium

    from ingest.load_pdf import _clean, is_contents
    from ingest.ocr import render_page

    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.png"):
        old.unlink()
    pages = []
    for lang, path in MANUALS.items():
        doc = pdfium.PdfDocument(path)
        texts = {}
        for index in range(len(doc)):
            page = doc[index]
            textpage = page.get_textpage()
            text = _clean(textpage.get_text_range())
            textpage.close()
            page.close()
            if len(text) >= _MIN_REFERENCE_CHARS and not is_contents(text):
                texts[index] = text
        candidates = sorted(texts)
        step = len(candidates) / per_lang
        for k in range(per_lang):
            index = candidates[int(k * step + step / 2)]
            page = doc[index]
            image = render_page(page, dpi)
            page.close()
            name = f"{lang}-p{index + 1:03d}"
            image.save(work / f"{name}.png")
            pages.append({"name": name, "lang": lang, "page": index + 1, "reference": texts[index]})
        doc.close()
    (work / "pages.json").write_text(json.dumps(pages, ensure_ascii=False), encoding="utf-8")
    return pages


def _child(engine: str, work: Path) -> None:
    """OCR every image in ``work`` with one engine; print texts, seconds and peak RSS as JSON."""
    from PIL import Image

    pages = json.loads((work / "pages.json").read_text(encoding="utf-8"))
    read = _engine(engine)
    out = {"texts": {}, "seconds": {}}
    for page in pages:
        with Image.open(work / f"{page['name']}.png") as image:
            started = time.perf_counter()
            out["texts"][page["name"]] = read(image)
            out["seconds"][page["name"]] = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out["peak_rss_mb"] = max(own, children) / 1024
    out["peak_rss_self_mb"], out["peak_rss_children_mb"] = own / 1024, children / 1024
    print(json.dumps(out, ensure_ascii=False))


def _engine(engine: str):
    if engine.startswith("tesseract:"):
        from ingest.ocr import TesseractOcr

        ocr, languages = TesseractOcr(), tuple(engine.split(":", 1)[1].split("+"))
        ocr.check(languages)
        return lambda image: ocr.recognize(image, languages)
    if engine == "rapidocr":
        import numpy as np
        from rapidocr_onnxruntime import RapidOCR  # models inside the wheel: no download

        rapid = RapidOCR()

        def read(image):
            result, _ = rapid(np.asarray(image.convert("RGB")))
            return _rapid_lines(result or [])

        return read
    raise SystemExit(f"unknown engine {engine}")


def _rapid_lines(result: list) -> str:
    """RapidOCR's boxes in reading order: top to bottom, boxes on one line left to right."""
    boxes = sorted(
        (
            (min(p[1] for p in box), max(p[1] for p in box), min(p[0] for p in box), text)
            for box, text, _ in result
        )
    )
    lines: list[list[tuple[float, str]]] = []
    bottom = -1.0
    for top, low, left, text in boxes:
        if lines and top < bottom - (low - top) / 2:
            lines[-1].append((left, text))
            bottom = max(bottom, low)
        else:
            lines.append([(left, text)])
            bottom = low
    return "\n".join(" ".join(t for _, t in sorted(line)) for line in lines)


def _auto(runs: dict) -> dict:
    """The eng+spa pass, then the single pack of the language detected in its text."""
    from ingest.lang import detect_language

    both = runs["tesseract:en+es"]
    out = {
        "texts": {},
        "seconds": {},
        "peak_rss_mb": max(r["peak_rss_mb"] for k, r in runs.items() if k.startswith("tesseract")),
        "picked": {},
    }
    for name, text in both["texts"].items():
        lang = detect_language(text)
        single = f"tesseract:{lang}" if lang in ("en", "es") else "tesseract:en+es"
        out["picked"][name] = lang
        out["texts"][name] = runs[single]["texts"][name]
        out["seconds"][name] = both["seconds"][name] + (
            runs[single]["seconds"][name] if single != "tesseract:en+es" else 0
        )
    return out


def cer(text: str, reference: str) -> float:
    """Character error rate after collapsing whitespace.

    >>> cer("Hello  world", "Hello world"), round(cer("Helo world", "Hello world"), 3)
    (0.0, 0.091)
    """
    from rapidfuzz.distance import Levenshtein

    hyp, ref = _SPACE.sub(" ", text).strip(), _SPACE.sub(" ", reference).strip()
    return Levenshtein.distance(hyp, ref) / max(len(ref), 1)


def _score(pages: list[dict], runs: dict) -> list[dict]:
    rows = []
    for engine, run in runs.items():
        for lang in ("en", "es", "all"):
            chosen = [p for p in pages if lang in ("all", p["lang"])]
            errors = sum(
                cer(run["texts"][p["name"]], p["reference"]) * len(_SPACE.sub(" ", p["reference"]).strip())
                for p in chosen
            )
            chars = sum(len(_SPACE.sub(" ", p["reference"]).strip()) for p in chosen)
            seconds = sum(run["seconds"][p["name"]] for p in chosen)
            rows.append(
                {
                    "engine": engine,
                    "lang": lang,
                    "pages": len(chosen),
                    "cer": errors / chars,
                    "cer_per_page": [round(cer(run["texts"][p["name"]], p["reference"]), 4) for p in chosen],
                    "pages_per_s": len(chosen) / seconds,
                    "peak_rss_mb": run["peak_rss_mb"],
                    "loadavg": run.get("loadavg"),
                    "picked": {p["name"]: run["picked"][p["name"]] for p in chosen}
                    if "picked" in run
                    else None,
                }
            )
    return rows


def _table(rows: list[dict], dpi: int, load: tuple) -> str:
    lines = [
        f"OCR at {dpi} DPI (load average at start {load[0]:.2f})",
        "| engine | pages | CER en | CER es | CER all | pages/s | peak RSS MB | load avg |",
        "|---|---|---|---|---|---|---|---|",
    ]
    by = {(r["engine"], r["lang"]): r for r in rows}
    for engine in dict.fromkeys(r["engine"] for r in rows):
        a = by[(engine, "all")]
        load_now = f"{a['loadavg'][0]:.2f}" if a["loadavg"] else ""
        lines.append(
            f"| {engine} | {a['pages']} | {by[(engine, 'en')]['cer']:.4f} | {by[(engine, 'es')]['cer']:.4f} "
            f"| {a['cer']:.4f} | {a['pages_per_s']:.3f} | {a['peak_rss_mb']:.0f} | {load_now} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
