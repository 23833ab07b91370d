"""``docqa ingest`` over the hostile corpus (``tests.hostile.build_corpus``), for real.

The real CLI runs in a subprocess with the real MiniLM embedder over every kind of bad input issue
12 names. It must exit 0 with every file either indexed or skipped with a reason, stay under
``PEAK_RSS_MB`` (its own peak, measured from a small parent), leave an index that opens and
answers with no control character or oversized heading in it, and the app's page renderer must
keep every page of the corpus's PDFs within its pixel cap.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from ingest.embedders import embedder_name
from ingest.settings import Settings
from ingest.store import open_index
from tests.conftest import ROOT
from tests.hostile import BIG_LINE_MB, INJECTION, build_corpus

pytestmark = pytest.mark.slow
EMBEDDER = "all-minilm-l6-v2"
INDEXED_AS = embedder_name(Settings(embedder=EMBEDDER))  # with the default embed_backend
# Measured: 926 and 935 MB run alone (torch, MiniLM, the index, the 20 MB line in 100,000-character
# pieces), but 1,755 MB once inside the whole suite (cause not found yet: same code and corpus).
# Before the chunker cut long sections, tokenizing that line whole took 1.3 GB more, and embedding
# its 20 MB chunk as much again; the 1.1 GB zip bomb took 2.7 GB before the archive check (that
# one has its own tighter test in test_archive.py).
PEAK_RSS_MB = 2048
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# Linux counts in a process's peak RSS the memory of the process it was forked from (the mm it had
# until exec): forked from pytest, which holds the real models by then, ``docqa ingest`` "peaked"
# at 2.8 GB while its own peak was 0.9 GB. So a small Python process runs it and reports the peak
# of that child alone (``RUSAGE_CHILDREN``: forked from the small process).
_PEAK_OF_CHILD = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as file:
    file.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def _run_measured(cmd: list[str], out: Path, err: Path) -> tuple[int, float, float]:
    """Run ``cmd``; (exit code, peak RSS in MB of that process alone, seconds)."""
    started = time.perf_counter()
    env = os.environ | {"DOCQA_THREADS": "2"}
    peak = out.with_suffix(".peak")
    with out.open("w") as stdout, err.open("w") as stderr:
        code = subprocess.call(
            [sys.executable, "-c", _PEAK_OF_CHILD, str(peak), *cmd],
            cwd=ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    return code, int(peak.read_text()) / 1024, time.perf_counter() - started


def test_docqa_ingest_indexes_or_skips_every_hostile_file(minilm, tmp_path: Path) -> None:
    docs, index_dir = tmp_path / "docs", tmp_path / "index"
    kinds = build_corpus(docs)
    assert len(kinds) == len(os.listdir(docs)) >= 40
    cmd = [sys.executable, "-m", "rag", "ingest", str(docs), "--index", str(index_dir)]
    code, peak_mb, seconds = _run_measured(
        [*cmd, "--embedder", EMBEDDER, "--json"], tmp_path / "out.json", tmp_path / "err.txt"
    )
    stderr = (tmp_path / "err.txt").read_text(errors="replace")
    print(f"hostile corpus: {len(kinds)} files, exit {code}, peak RSS {peak_mb:.0f} MB, {seconds:.1f} s")
    assert code == 0, stderr[-3000:]
    assert "Traceback" not in stderr
    report = json.loads((tmp_path / "out.json").read_text())
    added, skipped = set(report["added"]), {s["path"]: s["reason"] for s in report["skipped"]}
    print("indexed:", sorted(added), "\nskipped:", json.dumps(skipped, indent=1, ensure_ascii=True))
    assert added | set(skipped) == set(kinds), "every file is either indexed or skipped"
    assert not added & set(skipped) and all(reason.strip() for reason in skipped.values())
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB; its stderr ends: {stderr[-1500:]}"

    for bomb in ("bomb.docx", "bomb.epub", "members.epub", "nested-zip.epub"):
        assert "zip bomb" in skipped[bomb], (bomb, skipped[bomb])
    assert "encrypted" in skipped["encrypted.pdf"] and "UTF-8" in skipped["not-utf8-\\xff\\xfe.md"]
    must_index = {"huge-line.txt", "huge-heading.md", "giant-page.pdf", "control.md", "nul.html"}
    must_index |= {name for name, kind in kinds.items() if kind.startswith("injection")}
    assert must_index <= added, must_index - added

    with open_index(index_dir, embedder_name=INDEXED_AS) as index:
        files = {f.path: f for f in index.files()}
        assert set(files) == added
        everything = index.get_chunks([cid for cid, _ in index.search_dense(_query(minilm), index.count())])
        assert len(everything) == index.count()
        big = [c for c in everything if c.source == "huge-line.txt"]
        assert sum(len(c.text) for c in big) >= BIG_LINE_MB * 2**20, "the 20 MB line is all indexed"
        for chunk in everything:
            assert not _CONTROL.search(chunk.text) and not _CONTROL.search(chunk.heading), chunk.source
            assert len(chunk.heading) <= 500 and len(chunk.text) <= 100_000, chunk.source
        hits = index.get_chunks([cid for cid, _ in index.search_dense(_query(minilm), 5)])
        assert any("red probe" in c.text for c in hits), "the index answers"
        assert index.search_lexical("red probe voltage display", 5)
        assert any(INJECTION[:30] in c.text for c in everything), "injected text is indexed as text"
    _check_page_images(docs, sorted(name for name in added if name.endswith(".pdf")))


def _query(minilm):
    return minilm.embed_queries(["Which input does the red probe go to?"])[0]


def _check_page_images(docs: Path, pdfs: list[str]) -> None:
    """Every page of every indexed PDF renders within the app's pixel cap, quickly."""
    from ui.pages import MAX_PIXELS, render_page, render_scale

    assert "giant-page.pdf" in pdfs
    for name in pdfs:
        document = pdfium.PdfDocument(docs / name)
        pages = len(document)
        document.close()
        for number in range(1, pages + 1):
            started = time.perf_counter()
            try:
                png = render_page(docs / name, number, quote="red probe")
            except pdfium.PdfiumError:
                continue  # a page pdfium cannot load (a broken page tree): the app shows the passage
            image = Image.open(io.BytesIO(png))
            assert image.width * image.height <= MAX_PIXELS, (name, number, image.size)
            assert time.perf_counter() - started < 10, (name, number)
            if name == "giant-page.pdf":  # drawn smaller than the app's 1.5 pixels per point
                assert render_scale(14400, 14400) < 0.15 and image.size == (2000, 2000)
