"""Questions answered by a table row: retrieval hit@k with tables read as tables, and as before.

``bench/data/table_questions.jsonl``: 24 questions (14 English, 10 Spanish; the Spanish ones ask
about the English guide: no Spanish manual here has a data table) whose answer is one row of a
table of the WeeChat user's guide. Each names its gold page of the guide printed to PDF by
chromium (``bench_tables.printed_guide``), the row as Markdown, and the row's key cells. A
question is a hit at k when one of the first k passages comes from the gold file (and, for the
PDF, the gold page) and holds every key cell (whitespace and table pipes ignored).

An index per guide format (PDF or HTML) and table setting, each a fresh ``ingest_folder`` of
the real pipeline: ``tables = "off"`` (before: PDF cells as a stream of text, HTML rows as
"a | b" lines) and ``"on"``; the sample manuals of ``corpus/`` are indexed beside the guide as
distractors.

    python bench/bench_table_qa.py                          # MiniLM (fast)
    python bench/bench_table_qa.py --embedder embeddinggemma-300m --kinds pdf --cache
    python bench/bench_table_qa.py --tables off md md-half md-lead rows rows-lead

``--tables`` also takes representations measured against each other, patched in for the run
only: ``md`` (Markdown tables, the header repeated in each piece) or ``rows`` (each row one
line, "Header: value; Header: value": ``_linear_table``); then ``-lead`` (the line
before the table, which says what it holds, repeated with the header in every piece:
``ingest.chunk._lead_line``; without it a table's pieces start at the table) and ``-half`` (a
table's pieces at most half a chunk: fewer rows per piece, ``ingest.chunk._table_tokens``).
``on`` is the product as it is (``md-lead-half``); ``md`` is what ``on`` was before.
``--cache`` keeps every chunk's vector on disk by its text, so a second index of the same files
embeds only new text (its "ingest s" is then no time to compare).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_tables import WEECHAT_HTML, printed_guide  # noqa: E402
from ingest.embed import uses_titles  # noqa: E402

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


class _CachedEmbedder:
    """An embedder whose document vectors are kept on disk by text (``--cache``)."""

    def __init__(self, embedder, folder: Path) -> None:
        self._embedder, self._file = embedder, folder / f"vectors-{embedder.name}.npz"
        self.name, self.dim, self.max_tokens = embedder.name, embedder.dim, embedder.max_tokens
        self.titles = uses_titles(embedder)
        self.token_spans, self.embed_queries = embedder.token_spans, embedder.embed_queries
        self._vectors = {}
        if self._file.is_file():
            import numpy as np

            with np.load(self._file) as saved:
                self._vectors = dict(zip(saved["keys"].tolist(), saved["vectors"], strict=True))

    def embed_documents(self, texts, titles=None):
        import numpy as np

        titles = titles or [""] * len(texts)
        keys = [
            hashlib.sha256(f"{h}\x00{t}".encode()).hexdigest() if h and self.titles
            else hashlib.sha256(t.encode("utf-8")).hexdigest()  # the keys before titles
            for h, t in zip(titles, texts, strict=True)
        ]  # fmt: skip
        new = sorted({i for i, key in enumerate(keys) if key not in self._vectors}, key=keys.__getitem__)
        todo = {keys[i]: (texts[i], titles[i]) for i in new}
        if todo:
            got = self._embedder.embed_documents([t for t, _ in todo.values()], [h for _, h in todo.values()])
            for key, vector in zip(todo, got, strict=True):
                self._vectors[key] = vector
        return np.stack([self._vectors[key] for key in keys]).astype(np.float32)

    def save(self) -> None:
        import numpy as np

        keys = list(self._vectors)
        np.savez(self._file, keys=np.array(keys), vectors=np.stack([self._vectors[k] for k in keys]))


# A linearised row's first named cell "Name: ", and a later one "; Name: " (``_linear_table``).
_ROW_START = re.compile(r"[^\s:;|][^\n:;|]{0,79}: ")
_NEXT_CELL = re.compile(r"; [^\s:;|][^\n:;|]{0,79}: ")


def _linear_table(rows) -> str:
    """Rows (the first is the header) as one line per row, each cell after its column name;
    empty cells left out, a cell under an empty header alone, a row without text dropped.

    >>> print(_linear_table([["Pin", "Range", ""], ["A1", "±16 V", ""], ["IN1", "0 to\\n3.3 V", "slow"]]))
    Pin: A1; Range: ±16 V
    Pin: IN1; Range: 0 to 3.3 V; slow
    """
    header = [" ".join(cell.split()) for cell in rows[0]]
    lines = []
    for row in rows[1:]:
        cells = []
        for number, text in enumerate(row):
            value, name = " ".join(text.split()), header[number] if number < len(header) else ""
            if value:
                cells.append(f"{name}: {value}" if name else value)
        if cells:
            lines.append("; ".join(cells))
    return "\n".join(lines)


def _blocks_with_rows(text: str):
    """``ingest.tables.table_blocks`` plus runs of two ``_linear_table`` lines or more (no header
    lines), so that the chunker cuts those between rows too.

    >>> [(b.start, b.header_end, b.end) for b in _blocks_with_rows("Pins\\nPin: A1; Max: 1 V\\nPin: A2\\nEnd")]
    [(5, 5, 30)]
    """
    from ingest.tables import TableBlock, table_blocks

    blocks, lines, at = list(table_blocks(text)), [], 0
    for line in text.split("\n"):
        lines.append((at, at + len(line)))
        at += len(line) + 1
    i = 0
    while i < len(lines):
        a, b = lines[i]
        first = _ROW_START.match(text, a, b)
        j = i + 1
        if first and _NEXT_CELL.search(text, a, b):  # later rows: the same first name, or two cells
            while j < len(lines) and (
                text.startswith(first.group(), lines[j][0])
                or (_ROW_START.match(text, *lines[j]) and _NEXT_CELL.search(text, *lines[j]))
            ):
                j += 1
        if j - i >= 2 and not any(x.start <= a < x.end for x in blocks):
            blocks.append(TableBlock(a, a, lines[j - 1][1], tuple(lines[i:j])))
        i = j
    return sorted(blocks, key=lambda block: block.start)


@contextlib.contextmanager
def _representation(name: str):
    """Patch ``name``'s table representation into the loaders and the chunker for one run."""
    from unittest import mock

    from ingest import chunk

    with contextlib.ExitStack() as stack:
        if name in ("on", "off"):
            yield
            return
        if "-lead" not in name:  # as before: only a caption line ("Table 2: ...") joins the header

            def caption(text, start, block, tokenizer, size):
                return chunk._caption_line(text, start, block.start, last=True)

            stack.enter_context(mock.patch("ingest.chunk._lead_line", caption))
        if not name.endswith("-half"):  # as before: a table's pieces as long as a chunk
            stack.enter_context(mock.patch("ingest.chunk._table_tokens", lambda size: size))
        if name.startswith("rows"):
            for module in ("ingest.tables", "ingest.load_html", "ingest.load_docx"):
                stack.enter_context(mock.patch(f"{module}.markdown_table", _linear_table))
            stack.enter_context(mock.patch("ingest.chunk.table_blocks", _blocks_with_rows))
        yield


def run(
    kind: str,
    tables: str,
    embedder_name: str,
    questions: list[dict],
    k: int,
    reuse: bool = False,
    cache: bool = False,
    dense_weight: float | None = None,
) -> dict:
    """Index one folder afresh with ``tables`` (or reuse that index), then retrieve every question."""
    from ingest.embedders import load_embedder
    from ingest.pipeline import ingest_folder
    from ingest.settings import load_settings
    from rag.engine import open_engine

    index = WORK / f"index-{kind}-{tables}-{embedder_name}"
    setting = "off" if tables == "off" else "on"
    settings = load_settings(
        env={}, index_dir=index, embedder=embedder_name, tables=setting, dense_weight=dense_weight
    )
    embedder = load_embedder(settings)
    if cache:
        embedder = _CachedEmbedder(embedder, WORK)
    report, seconds = None, None
    load = Path("/proc/loadavg").read_text().split()[:3]
    if not (reuse and index.is_dir()):
        shutil.rmtree(index, ignore_errors=True)
        started = time.perf_counter()
        with _representation(tables):
            report = ingest_folder(_docs(kind), index, embedder, settings)
        seconds = time.perf_counter() - started
        if cache:
            embedder.save()
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
        "loadavg": [load, Path("/proc/loadavg").read_text().split()[:3]],  # at the start, at the end
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
    parser.add_argument(
        "--tables",
        nargs="*",
        default=["off", "on"],
        choices=["off", "on", "md", "md-half", "md-lead", "md-lead-half", "rows", "rows-half", "rows-lead"],
        help="settings and representations to index (on = the product's tables)",
    )
    parser.add_argument("--cache", action="store_true", help="reuse chunk vectors across indexes by text")
    parser.add_argument(
        "--dense-weight", type=float, help="the fusion's dense weight (default: the setting's)"
    )
    args = parser.parse_args()
    questions = [
        json.loads(line) for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()
    ]
    load = Path("/proc/loadavg").read_text().split()[:3]
    results = {}
    weight = "" if args.dense_weight is None else f"-dense{args.dense_weight}"
    out = RESULTS / f"bench_table_qa-{args.embedder}{weight}.json"
    before = json.loads(out.read_text())["runs"] if out.is_file() else {}
    for kind in args.kinds:
        for tables in args.tables:
            name = f"{kind}/{tables}"
            results[name] = run(
                kind, tables, args.embedder, questions, args.k, args.reuse, args.cache, args.dense_weight
            )
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
    runs = {**before, **results}  # earlier runs of other settings stay
    out.write_text(
        json.dumps({"loadavg": load, "embedder": args.embedder, "k": args.k, "runs": runs}, indent=1)
    )


if __name__ == "__main__":
    main()
