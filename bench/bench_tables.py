"""PDF table libraries on real manual pages: tables found, rows right, seconds per page, memory.

Pages: 12 of the WeeChat user's guide (``/work/shared/manuals/weechat/weechat_user.en.html``
printed to PDF by Debian's chromium, as a user would: ruled tables, several per page, tables
with key-cap boxes inside cells) and 10 of the ExpEYES-17 manual, English and Spanish
(``corpus/eyes17``), whose pages hold figures in frames and labelled diagrams but no table (its
EPUB source has one ``<table>``, a figure's layout). The truth for each page (how many tables,
how many rows each, header included) was checked by looking at the rendered pages.

Every library's tables go through the same filter as docqa's (``ingest.tables``: rows and
columns without text dropped, then at least two rows and two columns); a detected table matches
a true one in page order. Measured per library, each in its own process over the same pages:
table precision and recall, page-level detection, tables whose row count is right, seconds per
page (the library's own reading of the page, cell text included), peak RSS. Libraries not
installed are skipped: ``pip install --target DIR pymupdf camelot-py img2table`` and pass
``--libs DIR`` (repeatable; added at the end of ``sys.path``; none of them is a docqa dependency).

    python bench/bench_tables.py --libs /tmp/tablelibs
    python bench/bench_tables.py --captions --only   # only: how often the chunker cut captions
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
WEECHAT_HTML = Path("/work/shared/manuals/weechat/weechat_user.en.html")
PRINTED = Path.home() / ".cache" / "docqa" / "bench" / "weechat_user.en.pdf"
EYES_EN, EYES_ES = ROOT / "corpus/eyes17/en/eyes17.pdf", ROOT / "corpus/eyes17/es/eyes17.pdf"
# (file, 1-based page) -> rows of each table on the page, header included, top to bottom.
TRUTH: dict[tuple[str, int], list[int]] = {
    ("weechat", 5): [],  # the guide's own table of contents
    ("weechat", 7): [8],  # dependencies; a framed note (its icon and its text in two rows) above it
    ("weechat", 10): [19],  # cmake options
    ("weechat", 13): [],  # code blocks and notes in frames
    ("weechat", 18): [4, 7],
    ("weechat", 20): [22],
    ("weechat", 23): [2, 2],  # two one-row tables
    ("weechat", 28): [26],  # the colour table's continuation (chromium repeats the header)
    ("weechat", 36): [15],
    ("weechat", 39): [2],  # a framed code block above it
    ("weechat", 54): [15],  # mouse bindings, key caps drawn as boxes inside cells
    ("weechat", 56): [13],
    ("eyes17-en", 8): [],
    ("eyes17-en", 13): [],
    ("eyes17-en", 41): [],  # terminal labels in boxes
    ("eyes17-en", 42): [],
    ("eyes17-en", 82): [],  # a figure in a frame, with its caption
    ("eyes17-en", 84): [],
    ("eyes17-es", 8): [],
    ("eyes17-es", 32): [],
    ("eyes17-es", 56): [],
    ("eyes17-es", 57): [],
}
LIBRARIES = ("docqa", "pdfplumber", "pymupdf", "camelot", "img2table")


def printed_guide() -> Path:
    """The WeeChat user's guide printed to PDF by chromium (made once, then reused)."""
    if PRINTED.is_file():
        return PRINTED
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None or not WEECHAT_HTML.is_file():
        sys.exit(f"need chromium and {WEECHAT_HTML} to print the WeeChat guide (make browser)")
    PRINTED.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
         f"--print-to-pdf={PRINTED}", WEECHAT_HTML.as_uri()],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return PRINTED


def _files() -> dict[str, Path]:
    return {"weechat": printed_guide(), "eyes17-en": EYES_EN, "eyes17-es": EYES_ES}


# --- one library, in its own process ------------------------------------------------------------


def _read_docqa(path: Path, pages: list[int]) -> dict[int, list[list[list[str]]]]:
    """docqa's own path: pdfium path count, pdfplumber's line strategy, pdfium's cell text."""
    import pdfplumber
    import pypdfium2 as pdfium

    from ingest.tables import char_centres, count_paths, find_pdf_tables, text_in_box, worth_searching

    out = {}
    doc, plumber = pdfium.PdfDocument(path), pdfplumber.open(path)
    for number in pages:
        page = doc[number - 1]
        textpage = page.get_textpage()
        found = []
        if worth_searching(count_paths(page)):
            text = textpage.get_text_range()
            centres = char_centres(text, textpage.get_charbox)
            tables = find_pdf_tables(
                plumber.pages[number - 1], lambda *box, t=text, c=centres: text_in_box(t, c, box)
            )
            found = [list(map(list, table.rows)) for table in tables]
        out[number] = found
    return out


def _read_pdfplumber(path: Path, pages: list[int]) -> dict[int, list[list[list[str]]]]:
    import pdfplumber

    with pdfplumber.open(path) as pdf:
        return {
            n: [[[c or "" for c in row] for row in t.extract()] for t in pdf.pages[n - 1].find_tables()]
            for n in pages
        }


def _read_pymupdf(path: Path, pages: list[int]) -> dict[int, list[list[list[str]]]]:
    import pymupdf

    doc = pymupdf.open(path)
    return {
        n: [[[c or "" for c in row] for row in t.extract()] for t in doc[n - 1].find_tables().tables]
        for n in pages
    }


def _read_camelot(path: Path, pages: list[int]) -> dict[int, list[list[list[str]]]]:
    import camelot

    out = {}
    for n in pages:
        tables = camelot.read_pdf(str(path), pages=str(n), flavor="lattice")
        out[n] = [t.df.astype(str).values.tolist() for t in tables]
    return out


def _read_img2table(path: Path, pages: list[int]) -> dict[int, list[list[list[str]]]]:
    from img2table.document import PDF

    found = PDF(str(path), pages=[n - 1 for n in pages], pdf_text_extraction=True).extract_tables()
    return {
        n: [[[c.value or "" for c in row] for row in t.content.values()] for t in found.get(n - 1, [])]
        for n in pages
    }


def run_library(name: str) -> dict:
    """Read every sample page with one library; tables after docqa's filter, time, peak RSS."""
    from ingest.tables import _without_empty_lines, is_table

    reader = globals()[f"_read_{name}"]
    files = _files()
    by_file: dict[str, list[int]] = {}
    for key, page in TRUTH:
        by_file.setdefault(key, []).append(page)
    pages, seconds, cpu, raw = {}, 0.0, 0.0, 0
    for key, numbers in by_file.items():
        start, start_cpu = time.perf_counter(), time.process_time()
        found = reader(files[key], numbers)
        seconds += time.perf_counter() - start
        cpu += time.process_time() - start_cpu
        for number, tables in found.items():
            raw += len(tables)
            kept = [rows for rows in map(_without_empty_lines, tables) if is_table(rows)]
            pages[f"{key}#{number}"] = [len(rows) for rows in kept]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"pages": pages, "seconds": seconds, "cpu_seconds": cpu, "raw_tables": raw, "rss_mb": rss}


# --- scoring ------------------------------------------------------------------------------------


def score(result: dict) -> dict:
    """Precision/recall of tables, of pages with a table, and tables with the right row count."""
    tp = fp = fn = rows_right = page_tp = page_fp = page_fn = 0
    for (key, number), truth in TRUTH.items():
        found = result["pages"][f"{key}#{number}"]
        tp += min(len(truth), len(found))
        fp += max(0, len(found) - len(truth))
        fn += max(0, len(truth) - len(found))
        rows_right += sum(1 for want, got in zip(truth, found, strict=False) if want == got)
        page_tp += bool(truth) and bool(found)
        page_fp += not truth and bool(found)
        page_fn += bool(truth) and not found
    tables = sum(len(t) for t in TRUTH.values())
    return {
        "table_precision": tp / (tp + fp) if tp + fp else 1.0,
        "table_recall": tp / tables,
        "page_precision": page_tp / (page_tp + page_fp) if page_tp + page_fp else 1.0,
        "page_recall": page_tp / (page_tp + page_fn),
        "rows_right": rows_right,
        "tables": tables,
        "seconds_per_page": result["seconds"] / len(TRUTH),
        "cpu_seconds_per_page": result["cpu_seconds"] / len(TRUTH),
        "rss_mb": result["rss_mb"],
        "raw_tables": result["raw_tables"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--libs", type=Path, action="append", default=[], help="extra libraries (repeatable)")
    parser.add_argument("--only", nargs="*", default=list(LIBRARIES), choices=LIBRARIES)
    parser.add_argument("--run", choices=LIBRARIES, help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--captions", action="store_true", help="count captions cut by the chunker")
    parser.add_argument("--load-cost", action="store_true", help="time docqa's PDF loader, tables on and off")
    args = parser.parse_args()
    sys.path += [str(folder) for folder in args.libs]
    if args.run:
        print(json.dumps(run_library(args.run)))
        return
    if args.only:
        printed_guide()
    load = Path("/proc/loadavg").read_text().split()[:3]
    rows = {}
    for name in args.only:
        command = [sys.executable, __file__, "--run", name] + ([f"--libs={folder}" for folder in args.libs])
        done = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            print(f"{name}: skipped ({last})")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        rows[name] = {**score(result), "pages": result["pages"]}
    print(f"load average {' '.join(load)}; {len(TRUTH)} pages, {sum(len(t) for t in TRUTH.values())} tables")
    print(
        "| library | table P | table R | page P | page R | rows right | s/page | CPU s/page | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['table_precision']:.2f} | {r['table_recall']:.2f} | {r['page_precision']:.2f} | "
            f"{r['page_recall']:.2f} | {r['rows_right']}/{r['tables']} | {r['seconds_per_page']:.3f} | "
            f"{r['cpu_seconds_per_page']:.3f} | {r['rss_mb']:.0f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    if rows:
        (RESULTS / "bench_tables.json").write_text(json.dumps({"loadavg": load, "libraries": rows}, indent=1))
    if args.load_cost:
        cost = load_cost()
        print(json.dumps(cost, indent=1))
        (RESULTS / "bench_tables_load.json").write_text(
            json.dumps({"loadavg": load, "files": cost}, indent=1)
        )
    if args.captions:
        captions = caption_cuts()
        print(json.dumps(captions, indent=1))
        (RESULTS / "bench_tables_captions.json").write_text(json.dumps(captions, indent=1))


def load_cost() -> dict:
    """CPU and wall seconds of ``load_pdf`` over each whole PDF, tables off then on, and tables found."""
    from ingest.load_pdf import load_pdf
    from ingest.tables import table_blocks

    out = {}
    for key, path in _files().items():
        row = {}
        for tables in (False, True):
            wall, cpu = time.perf_counter(), time.process_time()
            sections, _ = load_pdf(path, path.name, tables=tables)
            row["on" if tables else "off"] = {
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "pages": len(sections),
                "tables": sum(len(table_blocks(s.text)) for s in sections),
            }
        out[key] = row
    return out


# --- captions -----------------------------------------------------------------------------------


def caption_cuts() -> dict:
    """How many captions of the real manuals the chunker left alone or cut from their text.

    Every file of ``corpus/`` and ``/work/shared/manuals`` is loaded and chunked as docqa does
    (EmbeddingGemma's tokenizer, the default 256/32); "before" is the chunker with captions not
    protected (and tables off), "after" today's. A caption is cut when a chunk boundary falls at
    its edges or inside it (no chunk holds it with the line before or after it), alone when a
    chunk holds nothing else.
    """
    import re

    import ingest.chunk as chunking
    from ingest.embedders import load_embedder
    from ingest.load import load_file_with_warnings
    from ingest.settings import Settings
    from ingest.tables import CAPTION

    embedder = load_embedder(Settings())
    folders = (ROOT / "corpus", Path("/work/shared/manuals"))
    files = sorted(p for d in folders for p in d.rglob("*") if p.suffix in (".pdf", ".html", ".epub"))
    counts = {}
    for label, protect in (("before", False), ("after", True)):
        saved = chunking.CAPTION
        if not protect:
            chunking.CAPTION = re.compile(r"(?!)")
        try:
            total = alone = cut = 0
            for path in files:
                sections, _ = load_file_with_warnings(path, path.name, tables=protect)
                chunks = chunking.chunk_sections(sections, embedder, 256, 32, file_sha256="0" * 64)
                for number, section in enumerate(sections):
                    mine = [c for c in chunks if c.section == number]
                    for match in CAPTION.finditer(section.text):
                        a, b = match.span()
                        total += 1
                        alone += any(c.text.strip() == match.group().strip() for c in mine)
                        lines = [m.span() for m in re.finditer(r"[^\n]+", section.text)]
                        i = next(k for k, (x, y) in enumerate(lines) if x <= a < y or (x <= a and b <= y))
                        near = [lines[k] for k in (i - 1, i + 1) if 0 <= k < len(lines)]
                        cut += not any(
                            c.start <= a and b <= c.end and any(c.start < y and x < c.end for x, y in near)
                            for c in mine
                        )
            counts[label] = {"captions": total, "alone": alone, "cut_from_text": cut, "files": len(files)}
        finally:
            chunking.CAPTION = saved
    return counts


if __name__ == "__main__":
    main()
