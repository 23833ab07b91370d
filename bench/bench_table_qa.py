"""Questions answered by a table row: retrieval hit@k with tables read as tables, and as before.

``bench/data/table_questions.jsonl``: 24 questions (14 English, 10 Spanish; the Spanish ones ask
about the English guide: no Spanish manual here has a data table) whose answer is one row of a
table of the WeeChat user's guide. Each names its gold page of the guide printed to PDF by
chromium (``bench_tables.printed_guide``), the row as Markdown, and the row's key cells. A
question is a hit at k when one of the first k passages comes from the gold file (and, for the
PDF, the gold page) and holds every key cell (whitespace and table pipes ignored).

Four indexes, each a fresh ``ingest_folder`` of the real pipeline: the guide as PDF or as HTML,
with ``tables = "off"`` (before: PDF cells as a stream of text, HTML rows as "a | b" lines) and
``"on"``; the sample manuals of ``corpus/`` are indexed beside it as distractors.

    python bench/bench_table_qa.py                          # MiniLM (fast)
    python bench/bench_table_qa.py --embedder embeddinggemma-300m
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_tables import WEECHAT_HTML, printed_guide  # noqa: E402

QUESTIONS = ROOT / "bench" / "data" / "table_questions.jsonl"
RESULTS = ROOT / "bench" / "results"
WORK = Path.home() / ".cache" / "docqa" / "bench" / "table_qa"
DISTRACTORS = ["eyes17/en/eyes17.pdf", "eyes17/es/eyes17.pdf", "weechat/weechat_quickstart.en.html"]


def _normal(text: str) -> str:
    """Whitespace collapsed, table pipes and escapes gone, lower case.

    >>> _normal("| PgUp | Scroll up\\n one page. |")
    'pgup scroll up one page.'
    """
    return re.sub(r"\s+", " ", text.replace("\\|", " ").replace("|", " ")).strip().lower()


def _docs(kind: str) -> Path:
    """A folder with the guide (PDF or HTML) and the distractors, made once."""
    folder = WORK / f"docs-{kind}"
    guide = printed_guide() if kind == "pdf" else WEECHAT_HTML
    if not (folder / guide.name).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(guide, folder / guide.name)
        for name in DISTRACTORS:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / "corpus" / name, folder / name)
    return folder


def run(
    kind: str, tables: str, embedder_name: str, questions: list[dict], k: int, reuse: bool = False
) -> dict:
    """Index one folder afresh with ``tables`` (or reuse that index), then retrieve every question."""
    from ingest.embedders import load_embedder
    from ingest.pipeline import ingest_folder
    from ingest.settings import load_settings
    from rag.engine import open_engine

    index = WORK / f"index-{kind}-{tables}-{embedder_name}"
    settings = load_settings(env={}, index_dir=index, embedder=embedder_name, tables=tables)
    embedder = load_embedder(settings)
    report, seconds = None, None
    if not (reuse and index.is_dir()):
        shutil.rmtree(index, ignore_errors=True)
        started = time.perf_counter()
        report = ingest_folder(_docs(kind), index, embedder, settings)
        seconds = time.perf_counter() - started
    engine = open_engine(settings, embedder=embedder)
    ranks = {}
    for q in questions:
        gold_file, gold_page = q["gold"].split("#")
        if kind == "html":
            gold_file, gold_page = q["html"], None
        cells = [_normal(cell) for cell in q["cells"]]
        rank = None
        for passage in engine.retrieve(q["question"], k=k):
            text = _normal(passage.text)
            right_place = passage.source == gold_file and (
                gold_page is None or passage.page == int(gold_page)
            )
            if right_place and all(cell in text for cell in cells):
                rank = passage.rank
                break
        ranks[q["id"]] = rank
    return {
        "ranks": ranks,
        "with_header": _rows_with_header(index, kind, questions),
        "chunks": report.chunks_added if report else None,
        "ingest_seconds": seconds,
    }


def _rows_with_header(index: Path, kind: str, questions: list[dict]) -> dict[str, bool]:
    """Per question: does one chunk of the gold file (and page) hold the row's key cells and the
    table's header cells? A row without its column names is hard to read ("OFF" of what?)."""
    import sqlite3

    from ingest.layout import CATALOG

    conn = sqlite3.connect(f"file:{index / CATALOG}?mode=ro", uri=True)
    out = {}
    try:
        for q in questions:
            gold_file, gold_page = q["gold"].split("#") if kind == "pdf" else (q["html"], None)
            sql = "SELECT c.text FROM chunks c JOIN files f ON f.id = c.file_id WHERE f.path = ?"
            params: tuple = (gold_file,)
            if gold_page is not None:
                sql, params = sql + " AND c.page = ?", (gold_file, int(gold_page))
            texts = [_normal(text) for (text,) in conn.execute(sql, params)]
            header = [_normal(cell) for cell in q["header"].strip("|").split(" | ") if cell.strip()]
            cells = [_normal(cell) for cell in q["cells"]]
            out[q["id"]] = any(all(c in t for c in cells) and all(h in t for h in header) for t in texts)
    finally:
        conn.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--embedder", default="all-minilm-l6-v2")
    parser.add_argument("--kinds", nargs="*", default=["pdf", "html"], choices=["pdf", "html"])
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--reuse", action="store_true", help="score the indexes already built (no ingest)")
    args = parser.parse_args()
    questions = [
        json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    load = Path("/proc/loadavg").read_text().split()[:3]
    results = {}
    out = RESULTS / f"bench_table_qa-{args.embedder}.json"
    before = json.loads(out.read_text())["runs"] if args.reuse and out.is_file() else {}
    for kind in args.kinds:
        for tables in ("off", "on"):
            name = f"{kind}/{tables}"
            results[name] = run(kind, tables, args.embedder, questions, args.k, args.reuse)
            if results[name]["chunks"] is None and name in before:  # reused: the build's own figures
                results[name].update(
                    chunks=before[name]["chunks"], ingest_seconds=before[name]["ingest_seconds"]
                )
    print(f"load average {' '.join(load)} at the start; {args.embedder}; {len(questions)} questions")
    print(
        f"| guide as | tables | hit@1 | hit@{args.k} | hit@{args.k} en | hit@{args.k} es "
        "| row and header in one chunk | chunks | ingest s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        kind, tables = name.split("/")
        ranks = r["ranks"]

        def share(lang: str | None, most: int, ranks: dict = ranks) -> str:
            chosen = [q for q in questions if lang is None or q["lang"] == lang]
            hits = sum(1 for q in chosen if ranks[q["id"]] is not None and ranks[q["id"]] <= most)
            return f"{hits}/{len(chosen)}"

        print(
            f"| {kind} | {tables} | {share(None, 1)} | {share(None, args.k)} | {share('en', args.k)} | "
            f"{share('es', args.k)} | {sum(r['with_header'].values())}/{len(questions)} | {r['chunks']} | "
            f"{r['ingest_seconds'] or 0:.0f} |"
        )
    RESULTS.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"loadavg": load, "embedder": args.embedder, "k": args.k, "runs": results}, indent=1)
    )


if __name__ == "__main__":
    main()
